package drivertest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"jsn.dev/jsn/bus/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPipeHalfClose(t *testing.T) {
	srv, cli := Pipe()
	defer srv.Close()
	defer cli.Close()

	if _, err := cli.Write([]byte("hello")); err != nil {
		t.Fatalf("client write: %v", err)
	}
	if err := cli.CloseWrite(); err != nil {
		t.Fatalf("client CloseWrite: %v", err)
	}
	if _, err := cli.Write([]byte("x")); err == nil {
		t.Fatalf("write after CloseWrite: got nil error, want one")
	}
	got, err := io.ReadAll(srv)
	if err != nil || string(got) != "hello" {
		t.Fatalf("server read: got %q, %v, want %q, nil", got, err, "hello")
	}
	// The other direction still works after the client's half-close.
	if _, err := srv.Write([]byte("world")); err != nil {
		t.Fatalf("server write after client FIN: %v", err)
	}
	srv.CloseWrite()
	got, err = io.ReadAll(cli)
	if err != nil || string(got) != "world" {
		t.Fatalf("client read: got %q, %v, want %q, nil", got, err, "world")
	}
	// EOF is sticky.
	if n, err := cli.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after EOF: got %d, %v, want 0, EOF", n, err)
	}
}

func TestPipeClose(t *testing.T) {
	tests := []struct {
		name      string
		finFirst  bool // the closing end sent FIN before Close
		wantRead  string
		wantRdErr error
	}{
		{name: "reset", finFirst: false, wantRead: "", wantRdErr: ErrReset},
		{name: "after FIN", finFirst: true, wantRead: "pending", wantRdErr: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, cli := Pipe()
			defer srv.Close()
			if _, err := cli.Write([]byte("pending")); err != nil {
				t.Fatal(err)
			}
			if tt.finFirst {
				cli.CloseWrite()
			}
			cli.Close()
			got, err := io.ReadAll(srv)
			if string(got) != tt.wantRead || !errors.Is(err, tt.wantRdErr) && err != tt.wantRdErr {
				t.Fatalf("peer read: got %q, %v, want %q, %v", got, err, tt.wantRead, tt.wantRdErr)
			}
			if _, err := srv.Write([]byte("x")); !errors.Is(err, ErrReset) {
				t.Fatalf("peer write: got %v, want %v", err, ErrReset)
			}
			if !errors.Is(ErrReset, wire.ErrUnavailable) {
				t.Fatalf("ErrReset does not match wire.ErrUnavailable")
			}
			if _, err := cli.Read(make([]byte, 1)); err != io.ErrClosedPipe {
				t.Fatalf("own read after Close: got %v, want %v", err, io.ErrClosedPipe)
			}
			if _, err := cli.Write([]byte("x")); err != io.ErrClosedPipe {
				t.Fatalf("own write after Close: got %v, want %v", err, io.ErrClosedPipe)
			}
			if err := cli.Close(); err != nil {
				t.Fatalf("second Close: got %v, want nil", err)
			}
		})
	}
}

// TestPipeCloseUnblocks checks that a Read and a Write blocked on a full window return when the
// other end closes.
func TestPipeCloseUnblocks(t *testing.T) {
	srv, cli := Pipe()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, err := srv.Read(make([]byte, 10))
		errs <- err
	}()
	go func() {
		defer wg.Done()
		_, err := srv.Write(make([]byte, 4*window)) // more than the window: blocks
		errs <- err
	}()
	cli.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrReset) {
			t.Errorf("blocked call: got %v, want %v", err, ErrReset)
		}
	}
	srv.Close()
}

func TestPipeConcurrent(t *testing.T) {
	srv, cli := Pipe()
	defer srv.Close()
	defer cli.Close()
	up := make([]byte, 3<<20+17)
	down := make([]byte, 2<<20+5)
	rand.Read(up)
	rand.Read(down)

	var wg sync.WaitGroup
	var gotUp, gotDown []byte
	var errUp, errDown error
	write := func(w interface {
		Write([]byte) (int, error)
		CloseWrite() error
	}, data []byte) {
		defer wg.Done()
		for len(data) > 0 { // odd chunk sizes
			n := min(len(data), 7919)
			if _, err := w.Write(data[:n]); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			data = data[n:]
		}
		w.CloseWrite()
	}
	wg.Add(4)
	go write(cli, up)
	go write(srv, down)
	go func() { defer wg.Done(); gotUp, errUp = io.ReadAll(srv) }()
	go func() { defer wg.Done(); gotDown, errDown = io.ReadAll(cli) }()
	wg.Wait()
	if errUp != nil || !bytes.Equal(gotUp, up) {
		t.Errorf("client→server: got %d bytes, %v, want %d bytes equal, nil", len(gotUp), errUp, len(up))
	}
	if errDown != nil || !bytes.Equal(gotDown, down) {
		t.Errorf("server→client: got %d bytes, %v, want %d bytes equal, nil", len(gotDown), errDown, len(down))
	}
}
