package web

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBundleUpToDate rebuilds the bundle from ui/src and the pinned packages (ui/node_modules,
// installed by `npm ci` in .ci/run) and compares it with the committed one.
func TestBundleUpToDate(t *testing.T) {
	if _, err := os.Stat("ui/node_modules/.bin/esbuild"); err != nil {
		if os.Getenv("CI") == "" && os.Getenv("JSN_CI") == "" {
			t.Skip("ui/node_modules missing: run `npm ci` in client/web/ui (the CI does) to check the bundle")
		}
		t.Fatal("ui/node_modules missing: `npm ci` in client/web/ui must run before the tests")
	}
	out := t.TempDir()
	cmd := exec.Command("./node_modules/.bin/esbuild", "src/app.js", "--bundle", "--minify", "--format=iife",
		"--target=es2020", "--legal-comments=none", "--log-level=warning", "--outfile="+filepath.Join(out, "app.js"))
	cmd.Dir = "ui"
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, b)
	}
	for _, f := range []struct{ got, want string }{
		{filepath.Join(out, "app.js"), "static/app.js"},
		{"ui/node_modules/@xterm/xterm/css/xterm.css", "static/xterm.css"},
	} {
		got, err := os.ReadFile(f.got)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(f.want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run client/web/ui/build.sh and commit it", f.want)
		}
	}
}

func TestStaticFiles(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "style.css", "xterm.css"} {
		b, err := fs.ReadFile(Static(), name)
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %v (%d bytes)", name, err, len(b))
		}
	}
}
