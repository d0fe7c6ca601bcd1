package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/internal/testkit"
)

// remoteLab is a real controller process plus the environment (XDG_CONFIG_HOME with the admin
// config current) of the jsn processes a test runs against it.
type remoteLab struct {
	t   *testing.T
	dir string
	env []string
}

// background starts jsn with args and stops it (SIGTERM) when the test ends.
func (l *remoteLab) background(name string, args ...string) *exec.Cmd {
	l.t.Helper()
	cmd := exec.Command(jsntest.Binary(l.t), args...)
	cmd.Env = l.env
	log, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
		if l.t.Failed() {
			b, _ := os.ReadFile(log.Name())
			l.t.Logf("%s log:\n%s", name, b)
		}
	})
	return cmd
}

func (l *remoteLab) jsn(args ...string) jsntest.Result {
	l.t.Helper()
	return jsntest.Run(l.t, jsntest.Options{Env: l.env}, args...)
}

func startRemoteLab(t *testing.T, runFlags ...string) *remoteLab {
	t.Helper()
	dir := t.TempDir()
	l := &remoteLab{t: t, dir: dir, env: append(jsntest.Env(), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg"))}
	port := remotePort(t)
	endpoint := fmt.Sprintf("nats://127.0.0.1:%d", port)
	data := filepath.Join(dir, "data")
	l.jsn("controller", "init", "--data", data, "--endpoint", endpoint).Want(t, 0)
	l.background("controller", append([]string{"controller", "run", "--data", data, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--endpoint", endpoint}, runFlags...)...)
	testkit.CheckFor(t, 30*time.Second, func() error {
		if r := l.jsn("admin", "list", "client"); r.Code != 0 {
			return fmt.Errorf("the controller does not answer yet: jsn admin list client: exit %d: %s", r.Code, r.Stderr)
		}
		return nil
	})
	return l
}

// exporter issues exporter name and writes its config with export and hooks.
func (l *remoteLab) exporter(name, label, rest string) string {
	l.t.Helper()
	file := filepath.Join(l.dir, name+".yaml")
	l.jsn("admin", "create", "exporter", name, "-l", label, "--out", file).Want(l.t, 0)
	b, err := os.ReadFile(file)
	if err != nil {
		l.t.Fatal(err)
	}
	s := string(b)
	if i := strings.Index(s, "export:"); i >= 0 {
		s = s[:i]
	}
	if err := os.WriteFile(file, []byte(s+rest), 0o600); err != nil {
		l.t.Fatal(err)
	}
	return file
}

type exporterRow struct {
	Name   string `json:"name"`
	Online bool   `json:"online"`
	Lease  *struct {
		Client string `json:"client"`
	} `json:"lease"`
}

func (l *remoteLab) exporters() map[string]exporterRow {
	l.t.Helper()
	r := l.jsn("get", "exporters", "-o", "json")
	var rows []exporterRow
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &rows) != nil {
		return nil
	}
	out := map[string]exporterRow{}
	for _, e := range rows {
		out[e.Name] = e
	}
	return out
}

func (l *remoteLab) online(name string, want bool, within time.Duration) {
	l.t.Helper()
	testkit.CheckFor(l.t, within, func() error {
		if e, ok := l.exporters()[name]; !ok || e.Online != want {
			return fmt.Errorf("exporter %s: got %+v (listed %v), want online=%v", name, e, ok, want)
		}
		return nil
	})
}

const remoteExport = `export:
  power:
    type: power.Mock
    config: {interval: 10ms}
`

func TestRemoteEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a controller and exporters")
	}
	l := startRemoteLab(t)
	// The admin config is current: issue alice and make her current instead.
	alice := filepath.Join(l.dir, "alice.yaml")
	l.jsn("admin", "create", "client", "alice", "--out", alice).Want(t, 0)
	bench := l.exporter("bench", "board=x", remoteExport+`hooks:
  beforeLease:
    script: |
      echo "hello lease=$JSN_LEASE client=$JSN_CLIENT exporter=$JSN_EXPORTER"
      jsn power on && jsn power status
  afterLease:
    script: jsn power off
`)
	failing := l.exporter("broken", "board=y", remoteExport+`hooks:
  beforeLease:
    script: echo cannot flash; exit 3
    onFailure: endLease
`)
	exp := l.background("exporter-bench", "exporter", "run", "-c", bench, "-v")
	l.background("exporter-broken", "exporter", "run", "-c", failing)
	r := l.jsn("config", "client", "import", alice)
	r.Want(t, 0)
	if r = l.jsn("config", "client", "list"); !strings.Contains(r.Stdout, "*        alice") {
		t.Errorf("config client list: got %q, want alice current", r.Stdout)
	}
	l.online("bench", true, 20*time.Second)
	l.online("broken", true, 20*time.Second)

	t.Run("shell", func(t *testing.T) {
		r := l.jsn("shell", "-l", "board=x", "--", "sh", "-c", `jsn power status && jsn power on && jsn power status && echo "$JSN_EXPORTER" && test -n "$JSN_CREDS"`)
		r.Want(t, 0)
		// The drivers are reset after beforeLease: the session starts with the power off.
		if r.Stdout != "off\non\nbench\n" {
			t.Errorf("got stdout %q, want off, on, bench", r.Stdout)
		}
		if !strings.Contains(r.Stderr, "beforeLease: hello lease=") || !strings.Contains(r.Stderr, "client=alice exporter=bench") ||
			!strings.Contains(r.Stderr, "beforeLease: on") {
			t.Errorf("got stderr %q, want the beforeLease hook's output", r.Stderr)
		}
		r = l.jsn("shell", "--exporter", "bench", "--", "sh", "-c", "exit 7")
		r.Want(t, 7)
	})

	t.Run("hook failure ends the lease", func(t *testing.T) {
		r := l.jsn("shell", "--exporter", "broken", "--", "true")
		r.Want(t, 5)
		// The hook's output comes live, or, if the lease ended before jsn connected, in the reason.
		if !strings.Contains(r.Stderr, "beforeLease: cannot flash") && !strings.Contains(r.Stderr, "(output: cannot flash)") {
			t.Errorf("got stderr %q, want the hook's output", r.Stderr)
		}
		l.free("broken")
	})

	t.Run("lease request, call --lease, restart resumes", func(t *testing.T) {
		r := l.jsn("lease", "request", "--exporter", "bench", "--duration", "5m")
		r.Want(t, 0)
		id := strings.TrimSpace(r.Stdout)
		l.jsn("call", "--lease", id, "power.off").Want(t, 0)
		if r := l.jsn("call", "--lease", id, "power.status"); r.Stdout != "off\n" {
			t.Errorf("call --lease: got %q (%s), want off", r.Stdout, r.Stderr)
		}
		if r := l.jsn("lease", "list"); !strings.Contains(r.Stdout, id) || !strings.Contains(r.Stdout, "active") {
			t.Errorf("lease list: got %q, want %s active", r.Stdout, id)
		}
		if e := l.exporters()["bench"]; e.Lease == nil || e.Lease.Client != "alice" {
			t.Errorf("get exporters: got %+v, want leased by alice", e)
		}
		// kill -9: offline within 15 s; a restart resumes the lease.
		_ = exp.Process.Kill()
		l.online("bench", false, 16*time.Second)
		l.background("exporter-bench-2", "exporter", "run", "-c", bench)
		l.online("bench", true, 20*time.Second)
		testkit.CheckFor(t, 30*time.Second, func() error {
			if r := l.jsn("call", "--lease", id, "power.on"); r.Code != 0 {
				return fmt.Errorf("the lease is not served again: jsn call: exit %d: %s", r.Code, r.Stderr)
			}
			return nil
		})
		l.jsn("lease", "release", id).Want(t, 0)
		if r := l.jsn("call", "--lease", id, "power.on"); r.Code == 0 {
			t.Errorf("call after release: got exit 0, want a failure")
		}
	})

	t.Run("expiry ends the session", func(t *testing.T) {
		// The lease's time includes bench's ~2 s beforeLease hook (longer on a loaded machine):
		// leave the first call a few seconds.
		r := l.jsn("shell", "--exporter", "bench", "--duration", "6s", "--", "sh", "-c",
			"jsn power on || exit 9; sleep 10; jsn power on")
		r.Want(t, exitLeaseEnded)
		if !strings.Contains(r.Stderr, " expired\n") {
			t.Errorf("got stderr %q, want jsn: lease L expired", r.Stderr)
		}
	})
}

func remotePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
