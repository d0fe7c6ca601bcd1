package controller

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/drivers/serial"
	"jsn.dev/jsn/drivers/storage"
	"jsn.dev/jsn/exporter"
	"jsn.dev/jsn/internal/testkit"
)

// echoBoard is a raw TCP serial console that echoes what it is sent, as a board's shell does.
func echoBoard(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// runExporter issues exporter name and runs it (exporter.RunRemote) with export, until the test
// ends.
func (l *lab) runExporter(name, export string) {
	l.t.Helper()
	rep := callOK[api.ConfigReply](l.t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: name})
	s := string(rep.Config)
	if i := strings.Index(s, "# The drivers"); i >= 0 {
		s = s[:i]
	}
	file := filepath.Join(l.t.TempDir(), name+".yaml")
	if err := os.WriteFile(file, []byte(s+export), 0o600); err != nil {
		l.t.Fatal(err)
	}
	cfg, err := exporter.LoadConfig(file)
	if err != nil {
		l.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exporter.RunRemote(ctx, cfg, nil) }()
	l.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			l.t.Errorf("exporter %s: %v", name, err)
		}
	})
}

// leaseExporter requests a lease of exporter for the client on c and connects to it with the
// lease credential, once the exporter serves it.
func (l *lab) leaseExporter(ctx context.Context, c *bus.Conn, who, name string) (*api.LeaseReply, *client.Exporter) {
	l.t.Helper()
	var r api.LeaseReply
	testkit.CheckFor(l.t, 30*time.Second, func() error {
		var err error
		r, err = call[api.LeaseReply](l.t, c, api.ClientSubject(who, api.VerbLeaseRequest), api.LeaseRequest{Exporter: name, Duration: time.Minute})
		if err != nil {
			return err
		}
		if r.Lease.Status != api.StatusActive {
			return fmt.Errorf("lease of %s is %s (%s)", name, r.Lease.Status, r.Lease.Reason)
		}
		return nil
	})
	ex, err := client.Dial(ctx, client.Options{Host: l.ctl.URL(), Exporter: name, Lease: r.Lease.ID,
		CredsData: r.Credential.Creds(), CA: l.ctl.CA()})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { _ = ex.Close() })
	if err := ex.WaitReady(ctx, nil); err != nil {
		l.t.Fatal(err)
	}
	return &r, ex
}

// TestNothingLeftForTheNextHolder is the red team's "data left for the next lease holder": the
// serial ring buffer (the previous holder's typing) and the image cache (has_image +
// write_cached + read returned another user's private image). A real exporter, two holders in
// turn, through the bus.
func TestNothingLeftForTheNextHolder(t *testing.T) {
	l := startLab(t)
	cache := filepath.Join(t.TempDir(), "cache")
	l.runExporter("left1", fmt.Sprintf(`export:
  console: {type: serial.Port, config: {url: "socket://%s", reconnect: 50ms}}
  disk: {type: storage.File, config: {path: %s, cache_dir: %s}}
`, echoBoard(t), filepath.Join(t.TempDir(), "disk.img"), cache))
	alice, _ := l.client("alice", api.CreateClientRequest{})
	bob, _ := l.client("bob", api.CreateClientRequest{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Alice types a secret on the console and flashes a private image, kept in the cache.
	ra, exa := l.leaseExporter(ctx, alice, "alice", "left1")
	con := serial.NewClient(exa.Driver("console"))
	s, err := con.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("export TOKEN=alice-secret\n")); err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if ok := func() bool {
			b, err := con.Log(ctx, 0)
			return err == nil && bytes.Contains(b, []byte("alice-secret"))
		}(); !ok {
			return errors.New("not yet: " + "the echo in alice's log")
		}
		return nil
	})
	_ = s.Close()
	private := bytes.Repeat([]byte("alice's private image "), 4096)
	sum := sha256.Sum256(private)
	sha := hex.EncodeToString(sum[:])
	disk := storage.NewClient(exa.Driver("disk"))
	if res, err := disk.Write(ctx, bytes.NewReader(private), storage.WriteOptions{Cache: true, Size: int64(len(private))}); err != nil || !res.Cached {
		t.Fatalf("alice's cached write: %+v %v", res, err)
	}
	if has, err := disk.HasImage(ctx, sha); err != nil || !has {
		t.Fatalf("alice's own has_image: %v %v", has, err)
	}
	callOK[api.Empty](t, alice, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: ra.Lease.ID})

	// Bob, next: the console log holds nothing of alice's, and the cache gives him nothing.
	_, exb := l.leaseExporter(ctx, bob, "bob", "left1")
	if b, err := serial.NewClient(exb.Driver("console")).Log(ctx, 0); err != nil || bytes.Contains(b, []byte("alice-secret")) {
		t.Errorf("bob's console log: got %q (%v), want nothing of alice's session", b, err)
	}
	bd := storage.NewClient(exb.Driver("disk"))
	if has, err := bd.HasImage(ctx, sha); err != nil || has {
		t.Errorf("bob's has_image of alice's image: got %v %v, want false", has, err)
	}
	if _, err := bd.WriteCached(ctx, sha, nil); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("bob's write_cached of alice's image: got %v, want NOT_FOUND", err)
	}
	var buf bytes.Buffer
	if _, err := bd.Read(ctx, &buf, nil); err == nil && bytes.Contains(buf.Bytes(), []byte("alice's private image")) {
		// The storage still holds what alice flashed (it is the board's disk), but not because
		// bob got it from the cache: only write_cached could have put it there again.
		t.Log("the disk keeps alice's image, as a board's disk does")
	}
	// The cache is private on the exporter's disk too.
	st, err := os.Stat(cache)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %o, want 700", st.Mode().Perm())
	}
	des, _ := os.ReadDir(cache)
	for _, de := range des {
		info, _ := de.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("cache entry %s mode %o, want 600", de.Name(), info.Mode().Perm())
		}
		if strings.Contains(de.Name(), sha) {
			t.Errorf("cache entry %s is named by the image's SHA-256: anyone who knows it finds it", de.Name())
		}
	}
}
