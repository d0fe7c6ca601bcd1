package opendal

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/exporter"
)

// TestOpendalThroughJSN: files written, listed, read, hashed and deleted with jsn opendal,
// through a real exporter and NATS, land in the real directory and nowhere else.
func TestOpendalThroughJSN(t *testing.T) {
	root := t.TempDir()
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: files}
export:
  storage:
    type: jumpstarter_driver_opendal.driver.Opendal
    config: {scheme: fs, kwargs: {root: %s}}
`, root))
	big := make([]byte, 3<<20) // more than one message: byte streams both ways
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	s.RunWith(clitest.Options{Stdin: string(big)}, "opendal", "put", "-", "images/board.bin").Want(t, 0)
	if b, err := os.ReadFile(filepath.Join(root, "images/board.bin")); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("file on disk: %d bytes, %v", len(b), err)
	}
	got := s.Run("opendal", "cat", "images/board.bin")
	got.Want(t, 0)
	if got.Stdout != string(big) {
		t.Fatalf("cat: got %d bytes, want %d", len(got.Stdout), len(big))
	}
	sum := md5.Sum(big)
	if h := s.Run("opendal", "hash", "images/board.bin", "--algo", "md5"); strings.TrimSpace(h.Stdout) != hex.EncodeToString(sum[:]) {
		t.Errorf("hash: %q", h.Stdout)
	}
	ls := s.Run("opendal", "ls", "images")
	if !strings.Contains(ls.Stdout, fmt.Sprintf("file %10d", len(big))) || !strings.Contains(ls.Stdout, "images/board.bin") {
		t.Errorf("ls: %q", ls.Stdout)
	}
	if st := s.Run("opendal", "stat", "images"); !strings.HasPrefix(st.Stdout, "dir ") {
		t.Errorf("stat: %q", st.Stdout)
	}
	// ".." cannot climb out: the path is taken relative to the root.
	s.RunWith(clitest.Options{Stdin: "x"}, "opendal", "put", "-", "../../escape.txt").Want(t, 0)
	if _, err := os.Stat(filepath.Join(root, "escape.txt")); err != nil {
		t.Errorf("../../escape.txt did not land in the root: %v", err)
	}
	// A symlink out of the root is refused.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if r := s.RunWith(clitest.Options{Stdin: "x"}, "opendal", "put", "-", "link/evil.txt"); r.Code == 0 {
		t.Errorf("wrote through a symlink leaving the root")
	}
	if _, err := os.Stat(filepath.Join(outside, "evil.txt")); err == nil {
		t.Fatal("a file was written outside the root")
	}
	if r := s.Run("opendal", "rm", "images"); r.Code == 0 {
		t.Error("rm of a non-empty directory without -r succeeded")
	}
	s.Run("opendal", "rm", "-r", "images").Want(t, 0)
	if _, err := os.Stat(filepath.Join(root, "images")); !os.IsNotExist(err) {
		t.Errorf("images still there: %v", err)
	}
	if r := s.Run("opendal", "cat", "images/board.bin"); r.Code != 3 {
		t.Errorf("cat of a deleted file: exit %d, want 3 (not found); %s", r.Code, r.Stderr)
	}
}

func TestRemoveCreatedOnClose(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "keep"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := New(drivertest.Env("s")).(*Opendal)
	o.Scheme, o.Kwargs, o.RemoveCreatedOnClose = "fs", map[string]string{"root": root}, true
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := o.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := drivertest.CallMethod(ctx, o, "write_bytes", "a/b/c.txt", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := drivertest.CallMethod(ctx, o, "create_dir", "d/e"); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(root)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	// a/ and d/ stay (made as parents), what was created in them is gone; keep is untouched.
	if _, err := os.Stat(filepath.Join(root, "a/b/c.txt")); !os.IsNotExist(err) {
		t.Errorf("c.txt left: %v", names)
	}
	if _, err := os.Stat(filepath.Join(root, "keep")); err != nil {
		t.Errorf("keep removed")
	}
}

func TestOpendalConfig(t *testing.T) {
	_, err := exporter.ParseConfig("x.yaml", []byte(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
export:
  s3:
    type: jumpstarter_driver_opendal.driver.Opendal
    config: {scheme: s3, kwargs: {bucket: b}}
`))
	for _, want := range []string{`jsn supports only the fs scheme`, `unknown fs option "bucket"`, `root is required`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q: %v", want, err)
		}
	}
}

// FuzzClean: no client path turns into one that leaves the root.
func FuzzClean(f *testing.F) {
	for _, p := range []string{"", "/", "a/b", "../../x", "a/../../b", "/abs/path", "./.", "a//b/"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := clean(p)
		if err != nil {
			return
		}
		if strings.HasPrefix(c, "/") || c == ".." || strings.HasPrefix(c, "../") || strings.Contains(c, "/../") {
			t.Fatalf("clean(%q) = %q", p, c)
		}
	})
}
