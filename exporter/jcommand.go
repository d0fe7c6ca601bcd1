package exporter

import (
	"fmt"
	"os"
	"path/filepath"
)

// JName is the name of Jumpstarter's in-shell command. The jsn binary run under that name
// behaves as jsn (its verbs are the same: `j power on` is `jsn power on`), so scripts and hooks
// written for Jumpstarter run unchanged.
const JName = "j"

// JCommand makes dir/bin/j, a symbolic link to the running jsn binary, and returns dir/bin to
// be put first on PATH (hooks, `jsn shell`).
func JCommand(dir string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("j command: %w", err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o700); err != nil {
		return "", fmt.Errorf("j command: %w", err)
	}
	link := filepath.Join(bin, JName)
	_ = os.Remove(link)
	if err := os.Symlink(exe, link); err != nil {
		return "", fmt.Errorf("j command: %w", err)
	}
	return bin, nil
}
