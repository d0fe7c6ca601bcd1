package cli

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/internal/testkit"
)

// consoleDevice is a serial device stand-in: a Unix socket whose one client (the exporter's
// serial.Port with url unix://…) gets what the test writes.
type consoleDevice struct {
	mu   sync.Mutex
	conn net.Conn
	path string
}

func newConsoleDevice(t *testing.T, dir, name string) *consoleDevice {
	t.Helper()
	d := &consoleDevice{path: filepath.Join(dir, name+".sock")}
	ln, err := net.Listen("unix", d.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.mu.Lock()
			d.conn = c
			d.mu.Unlock()
		}
	}()
	return d
}

func (d *consoleDevice) print(t *testing.T, s string) {
	t.Helper()
	testkit.CheckFor(t, 20*time.Second, func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.conn == nil {
			return fmt.Errorf("the exporter has not opened %s yet", d.path)
		}
		_, err := d.conn.Write([]byte(s))
		return err
	})
}

// TestRemoteTap watches serial consoles in distributed mode: a viewer gets the recent output
// first, then live bytes, each once; -l follows several exporters with prefixed lines; a client
// without --watch is refused, and with a lease watches through its lease credential.
func TestRemoteTap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a controller and exporters")
	}
	l := startRemoteLab(t)
	devs := map[string]*consoleDevice{}
	for _, name := range []string{"rack1", "rack2"} {
		devs[name] = newConsoleDevice(t, l.dir, name)
		cfg := l.exporter(name, "site=lab1", remoteExport+fmt.Sprintf(`  console:
    type: serial.Port
    config: {url: "unix://%s", reconnect: 100ms}
`, devs[name].path))
		l.background("exporter-"+name, "exporter", "run", "-c", cfg)
	}
	wall := filepath.Join(l.dir, "wall.yaml")
	l.jsn("admin", "create", "viewer", "wall", "--out", wall).Want(t, 0)
	alice := filepath.Join(l.dir, "alice.yaml")
	l.jsn("admin", "create", "client", "alice", "--out", alice).Want(t, 0)
	l.online("rack1", true, 20*time.Second)
	l.online("rack2", true, 20*time.Second)

	devs["rack1"].print(t, "panic: before anyone watched\n")
	devs["rack2"].print(t, "rack2 booting\n")
	// (The exporter may not have read the lines when the watcher attaches: then they come live.
	// Either way each arrives once.)
	one := l.start("tap", "--config", wall, "rack1/console")
	testkit.CheckFor(t, 20*time.Second, func() error {
		if !strings.Contains(one.out.String(), "panic: before anyone watched\n") {
			return fmt.Errorf("tap output %q (stderr %q): no history yet", one.out.String(), one.errOut.String())
		}
		return nil
	})
	devs["rack1"].print(t, "live line\n")
	testkit.CheckFor(t, 20*time.Second, func() error {
		if !strings.Contains(one.out.String(), "live line\n") {
			return fmt.Errorf("tap output %q: no live line yet", one.out.String())
		}
		return nil
	})
	if got := one.out.String(); got != "panic: before anyone watched\nlive line\n" {
		t.Errorf("tap rack1/console: got %q, want the history then the live line, each once", got)
	}

	all := l.start("tap", "--config", wall, "-l", "site=lab1", "console")
	testkit.CheckFor(t, 20*time.Second, func() error {
		out := all.out.String()
		if !strings.Contains(out, "rack1: panic: before anyone watched\n") || !strings.Contains(out, "rack2: rack2 booting\n") {
			return fmt.Errorf("tap -l output %q (stderr %q)", out, all.errOut.String())
		}
		return nil
	})
	devs["rack2"].print(t, "rack2 up\n")
	testkit.CheckFor(t, 20*time.Second, func() error {
		if !strings.Contains(all.out.String(), "rack2: rack2 up\n") {
			return fmt.Errorf("tap -l output %q", all.out.String())
		}
		return nil
	})
	// An exporter that comes online later and matches is followed from then on.
	devs["rack3"] = newConsoleDevice(t, l.dir, "rack3")
	cfg3 := l.exporter("rack3", "site=lab1", remoteExport+fmt.Sprintf(`  console:
    type: serial.Port
    config: {url: "unix://%s", reconnect: 100ms}
`, devs["rack3"].path))
	l.background("exporter-rack3", "exporter", "run", "-c", cfg3)
	l.online("rack3", true, 20*time.Second)
	devs["rack3"].print(t, "rack3 joined\n")
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !strings.Contains(all.out.String(), "rack3: rack3 joined\n") {
			return fmt.Errorf("tap -l output %q (stderr %q): the new exporter is not followed", all.out.String(), all.errOut.String())
		}
		return nil
	})
	if !strings.Contains(all.errOut.String(), "following rack3") {
		t.Errorf("tap -l stderr %q: does not say it follows rack3", all.errOut.String())
	}

	// alice has no --watch: refused, at once and clearly.
	r := l.jsn("tap", "--config", alice, "--no-history", "rack1/console")
	if r.Code != 5 || !strings.Contains(r.Stderr, "may not watch rack1") {
		t.Errorf("tap without watch rights: got exit %d, %q", r.Code, r.Stderr)
	}
	// With a lease on rack1 she watches it through her lease credential.
	id := strings.TrimSpace(l.jsn("lease", "request", "--config", alice, "--exporter", "rack1", "--duration", "5m").Stdout)
	if id == "" {
		t.Fatal("no lease")
	}
	mine := l.start("tap", "--config", alice, "rack1/console")
	devs["rack1"].print(t, "for the holder\n")
	testkit.CheckFor(t, 20*time.Second, func() error {
		if !strings.Contains(mine.out.String(), "for the holder\n") {
			return fmt.Errorf("lease holder's tap: %q (stderr %q)", mine.out.String(), mine.errOut.String())
		}
		return nil
	})
	// What the console said during alice's lease is not served to the next holder, nor to a
	// watcher that attaches after it: the exporter forgets it at the lease's end.
	devs["rack1"].print(t, "alice's secret\n")
	testkit.CheckFor(t, 20*time.Second, func() error {
		if !strings.Contains(mine.out.String(), "alice's secret\n") {
			return fmt.Errorf("lease holder's tap: %q", mine.out.String())
		}
		return nil
	})
	l.jsn("lease", "release", "--config", alice, id).Want(t, 0)
	bob := filepath.Join(l.dir, "bob.yaml")
	l.jsn("admin", "create", "client", "bob", "--out", bob).Want(t, 0)
	testkit.CheckFor(t, 30*time.Second, func() error {
		if r := l.jsn("lease", "request", "--config", bob, "--exporter", "rack1", "--duration", "5m"); r.Code != 0 {
			return fmt.Errorf("bob's lease: %s", r.Stderr)
		}
		return nil
	})
	next := l.start("tap", "--config", bob, "rack1/console")
	devs["rack1"].print(t, "for bob\n")
	testkit.CheckFor(t, 20*time.Second, func() error {
		if !strings.Contains(next.out.String(), "for bob\n") {
			return fmt.Errorf("next holder's tap: %q (stderr %q)", next.out.String(), next.errOut.String())
		}
		return nil
	})
	late := l.start("tap", "--config", wall, "rack1/console")
	testkit.CheckFor(t, 20*time.Second, func() error {
		if !strings.Contains(late.out.String(), "for bob\n") {
			return fmt.Errorf("late viewer's tap: %q (stderr %q)", late.out.String(), late.errOut.String())
		}
		return nil
	})
	if strings.Contains(next.out.String(), "secret") || strings.Contains(late.out.String(), "secret") {
		t.Errorf("the previous lease's output was served after it: next holder %q, late viewer %q", next.out.String(), late.out.String())
	}
}
