package fileserver

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
)

// TestCLI runs the `jsn fileserver` verbs in-process against a lab (exporter, controller, lease,
// all over NATS) with two servers, so -d picks one.
func TestCLI(t *testing.T) {
	root := t.TempDir()
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: files}
export:
  tftp:
    type: jumpstarter_driver_tftp.driver.Tftp
    config: {root_dir: %s, host: 127.0.0.1, port: 0}
  http:
    type: fileserver.HTTP
    config: {root_dir: %s, host: 127.0.0.1, port: 0}
`, root, filepath.Join(root, "www")))
	t.Chdir(s.Dir)
	data := bytes.Repeat([]byte("jsn"), 100_000)
	if err := os.WriteFile("Image", data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.Run("fileserver", "put", "Image")
	r.Want(t, 4)
	if !strings.Contains(r.Stderr, "several fileserver drivers: tftp, http; choose one with -d PATH") {
		t.Fatalf("two servers without -d: stderr %q should ask for -d", r.Stderr)
	}
	s.Run("fileserver", "put", "Image", "boot/Image", "-d", "tftp").Want(t, 0)
	if got, _ := os.ReadFile(filepath.Join(root, "boot/Image")); !bytes.Equal(got, data) {
		t.Fatalf("the served file differs from the upload (%d bytes)", len(got))
	}
	r = s.Run("fileserver", "ls", "-d", "tftp")
	r.Want(t, 0)
	if !strings.HasPrefix(r.Stdout, "boot/Image  300000  ") {
		t.Fatalf("ls: %q", r.Stdout)
	}
	r = s.Run("files", "url", "boot/Image", "-d", "tftp")
	r.Want(t, 0)
	if !strings.HasPrefix(r.Stdout, "tftp://127.0.0.1:") || !strings.HasSuffix(r.Stdout, "/boot/Image\n") {
		t.Fatalf("url: %q", r.Stdout)
	}
	s.Run("fileserver", "get", "boot/Image", "copy", "-d", "tftp").Want(t, 0)
	if got, _ := os.ReadFile("copy"); !bytes.Equal(got, data) {
		t.Fatal("get: the copy differs")
	}
	s.Run("fileserver", "rm", "boot/Image", "-d", "tftp").Want(t, 0)
	r = s.Run("fileserver", "rm", "boot/Image", "-d", "tftp")
	r.Want(t, 3) // NOT_FOUND
	if !strings.Contains(r.Stderr, "no such file") {
		t.Fatalf("rm twice: stderr %q", r.Stderr)
	}
	r = s.Run("fileserver", "put", "Image", "../escape", "-d", "http")
	r.Want(t, 2)
}
