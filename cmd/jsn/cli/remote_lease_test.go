package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/internal/testkit"
)

// proc is a jsn process running in the background of a test.
type proc struct {
	t           *testing.T
	args        []string
	cmd         *exec.Cmd
	out, errOut jsntest.Buffer
	done        chan struct{}
	code        int // valid once done is closed
}

// start runs jsn with args in the background; the test's end stops it if it still runs.
func (l *remoteLab) start(args ...string) *proc {
	l.t.Helper()
	p := &proc{t: l.t, args: args, done: make(chan struct{})}
	p.cmd = exec.Command(jsntest.Binary(l.t), args...)
	p.cmd.Env = l.env
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errOut
	if err := p.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.code = 128 + int(ws.Signal())
			}
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	l.t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to end and returns its result.
func (p *proc) wait(within time.Duration) jsntest.Result {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("jsn %q still runs after %v\nstdout:\n%s\nstderr:\n%s", p.args, within, p.out.String(), p.errOut.String())
	}
	return jsntest.Result{Stdout: p.out.String(), Stderr: p.errOut.String(), Code: p.code}
}

// waiting waits until the process shows its "waiting: …" progress line and returns it.
func (p *proc) waiting() string {
	p.t.Helper()
	var line string
	testkit.CheckFor(p.t, 30*time.Second, func() error {
		for _, s := range strings.Split(p.errOut.String(), "\n") {
			if strings.HasPrefix(s, "waiting: ") {
				line = s
				return nil
			}
		}
		if p.exited() {
			return nil
		}
		return fmt.Errorf("no waiting: line from jsn %s yet; stderr %q", strings.Join(p.args, " "), p.errOut.String())
	})
	if line == "" {
		p.t.Fatalf("jsn %q ended without waiting\nstdout:\n%s\nstderr:\n%s", p.args, p.out.String(), p.errOut.String())
	}
	return line
}

type leaseRow struct {
	ID       string    `json:"id"`
	Exporter string    `json:"exporter"`
	Client   string    `json:"client"`
	Status   string    `json:"status"`
	Reason   string    `json:"reason"`
	End      time.Time `json:"end"`
	Priority int       `json:"priority"`
}

func (l *remoteLab) leases() map[string]leaseRow {
	l.t.Helper()
	r := l.jsn("lease", "list", "--all", "-o", "json")
	r.Want(l.t, 0)
	var rows []leaseRow
	if err := json.Unmarshal([]byte(r.Stdout), &rows); err != nil {
		l.t.Fatalf("lease list -o json: %v\n%s", err, r.Stdout)
	}
	out := map[string]leaseRow{}
	for _, x := range rows {
		out[x.ID] = x
	}
	return out
}

// request leases exporter name now and returns the lease id.
func (l *remoteLab) request(args ...string) string {
	l.t.Helper()
	r := l.jsn(append([]string{"lease", "request"}, args...)...)
	r.Want(l.t, 0)
	id := strings.TrimSpace(r.Stdout)
	if id == "" {
		l.t.Fatalf("lease request %q printed no id; stderr %q", args, r.Stderr)
	}
	return id
}

// free waits until exporter name is online and leased by nobody.
func (l *remoteLab) free(name string) {
	l.t.Helper()
	testkit.CheckFor(l.t, 30*time.Second, func() error {
		if e, ok := l.exporters()[name]; !ok || !e.Online || e.Lease != nil {
			return fmt.Errorf("exporter %s: got %+v (listed %v), want online and not leased", name, e, ok)
		}
		return nil
	})
}

func TestRemoteLeases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a controller and exporters")
	}
	l := startRemoteLab(t)
	alice := filepath.Join(l.dir, "alice.yaml")
	l.jsn("admin", "create", "client", "alice", "--max-priority", "5", "--out", alice).Want(t, 0)
	qa := l.exporter("qa", "board=x", remoteExport)
	qb := l.exporter("qb", "board=y", remoteExport)
	l.background("exporter-qa", "exporter", "run", "-c", qa)
	l.background("exporter-qb", "exporter", "run", "-c", qb)
	l.jsn("config", "client", "import", alice).Want(t, 0)
	l.online("qa", true, 20*time.Second)
	l.online("qb", true, 20*time.Second)

	t.Run("get exporters", func(t *testing.T) {
		r := l.jsn("get", "exporters", "-l", "board=x")
		r.Want(t, 0)
		if !strings.Contains(r.Stdout, "qa ") || strings.Contains(r.Stdout, "qb ") || !strings.Contains(r.Stdout, "board=x") {
			t.Errorf("get exporters -l board=x: got %q, want qa only", r.Stdout)
		}
		r = l.jsn("get", "exporters", "-l", "board in (x,y)", "-o", "json")
		r.Want(t, 0)
		var rows []exporterRow
		if err := json.Unmarshal([]byte(r.Stdout), &rows); err != nil || len(rows) != 2 {
			t.Errorf("get exporters -o json: got %q (%v), want qa and qb", r.Stdout, err)
		}
		r = l.jsn("get", "exporters", "-l", "board=y", "-o", "yaml")
		r.Want(t, 0)
		var yrows []struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
			Online bool              `yaml:"online"`
		}
		if err := yaml.Unmarshal([]byte(r.Stdout), &yrows); err != nil || len(yrows) != 1 || yrows[0].Name != "qb" ||
			yrows[0].Labels["board"] != "y" || !yrows[0].Online {
			t.Errorf("get exporters -o yaml: got %q (%v), want qb online with board=y", r.Stdout, err)
		}
		r = l.jsn("get", "exporters", "-l", "board=nope", "-o", "json")
		r.Want(t, 0)
		if strings.TrimSpace(r.Stdout) != "[]" {
			t.Errorf("get exporters matching nothing: got %q, want []", r.Stdout)
		}
	})

	// Two waiters for one busy exporter are granted in order when the holder releases: first
	// come first served, unless a later one has a higher priority.
	for _, tt := range []struct {
		name       string
		prio1      string
		prio2      string
		firstIsTwo bool
	}{
		{"wait FIFO", "0", "0", false},
		{"wait priority", "0", "5", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			holder := l.request("--exporter", "qa", "--duration", "5m")
			w1 := l.start("lease", "request", "-l", "board=x", "--priority", tt.prio1, "--wait", "60s")
			line := w1.waiting()
			if !strings.Contains(line, "leased: qa by alice") {
				t.Errorf("got progress line %q, want the reason (qa leased by alice)", line)
			}
			w2 := l.start("lease", "request", "-l", "board=x", "--priority", tt.prio2, "--wait", "60s")
			w2.waiting()
			queued := 0
			for _, x := range l.leases() {
				if x.Status == "queued" {
					queued++
					if x.Reason == "" {
						t.Errorf("lease list: queued %s has no reason", x.ID)
					}
				}
			}
			if queued != 2 {
				t.Errorf("lease list: got %d queued, want 2", queued)
			}
			first, second := w1, w2
			if tt.firstIsTwo {
				first, second = w2, w1
			}
			l.jsn("lease", "release", holder).Want(t, 0)
			r := first.wait(30 * time.Second)
			r.Want(t, 0)
			id1 := strings.TrimSpace(r.Stdout)
			if got := l.leases()[id1]; got.Status != "active" || got.Exporter != "qa" {
				t.Errorf("first waiter's lease %s: got %+v, want active on qa", id1, got)
			}
			if second.exited() {
				t.Fatalf("the second waiter ended while qa is leased to the first: %+v", second.wait(0))
			}
			l.jsn("lease", "release", id1).Want(t, 0)
			r = second.wait(30 * time.Second)
			r.Want(t, 0)
			l.jsn("lease", "release", strings.TrimSpace(r.Stdout)).Want(t, 0)
			l.free("qa")
		})
	}

	t.Run("wait timeout withdraws", func(t *testing.T) {
		holder := l.request("--exporter", "qa", "--duration", "5m")
		r := l.jsn("lease", "request", "-l", "board=x", "--wait", "1s")
		if r.Code == 0 {
			t.Fatalf("got exit 0, want a failure\nstdout %q\nstderr %q", r.Stdout, r.Stderr)
		}
		m := regexp.MustCompile(`lease (\S+): not granted within 1s; request withdrawn`).FindStringSubmatch(r.Stderr)
		if m == nil || !strings.Contains(r.Stderr, "waiting: ") {
			t.Fatalf("got stderr %q, want the waiting line and a withdrawn message", r.Stderr)
		}
		if strings.TrimSpace(r.Stdout) != "" {
			t.Errorf("got stdout %q, want no lease id", r.Stdout)
		}
		if got, ok := l.leases()[m[1]]; ok && got.Status != "ended" {
			t.Errorf("withdrawn request %s: got %+v, want ended or gone", m[1], got)
		}
		// The withdrawn request does not get the exporter when the holder releases.
		l.jsn("lease", "release", holder).Want(t, 0)
		l.free("qa")
	})

	t.Run("extend", func(t *testing.T) {
		id := l.request("--exporter", "qa", "--duration", "5m")
		before := l.leases()[id].End
		r := l.jsn("lease", "extend", id, "15m")
		r.Want(t, 0)
		if !strings.Contains(r.Stdout, "lease "+id+" now ends at ") {
			t.Errorf("extend: got %q", r.Stdout)
		}
		after := l.leases()[id].End
		if d := after.Sub(before); d < 9*time.Minute || d > 11*time.Minute {
			t.Errorf("extend 15m of a 5m lease: end moved by %v (%v → %v), want about 10m", d, before, after)
		}
		if r := l.jsn("call", "--lease", id, "power.on"); r.Code != 0 {
			t.Errorf("call after extend: %+v", r)
		}
		l.jsn("lease", "extend", id, "soon").Want(t, 2)
		l.jsn("lease", "release", id).Want(t, 0)
		if r := l.jsn("lease", "extend", id, "1m"); r.Code == 0 {
			t.Errorf("extend a released lease: got exit 0, want a failure")
		}
		l.free("qa")
	})

	t.Run("shell releases on SIGTERM", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		p := l.start("shell", "-l", "board=x", "--", "sh", "-c", `echo $$ > "$0"; exec sleep 300`, pidFile)
		pid := waitPID(t, pidFile, p)
		if e := l.exporters()["qa"]; e.Lease == nil || e.Lease.Client != "alice" {
			t.Errorf("during the shell: got qa %+v, want leased by alice", e)
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		r := p.wait(20 * time.Second)
		r.Want(t, 128+int(syscall.SIGTERM)) // the child's end: jsn forwarded SIGTERM to it
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child %d after jsn ended: kill 0 got %v, want ESRCH", pid, err)
		}
		// The release happened before jsn exited.
		if e := l.exporters()["qa"]; e.Lease != nil {
			t.Errorf("after the shell: got qa leased %+v, want free", e.Lease)
		}
	})

	t.Run("lease expiry ends the shell's child", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		// The child ignores SIGHUP (it only notes it): SIGTERM follows after the grace period.
		p := l.start("shell", "--exporter", "qa", "--duration", "3s", "--", "sh", "-c",
			`trap "echo got-hup >&2" HUP; echo $$ > "$0"; while :; do sleep 0.1; done`, pidFile)
		pid := waitPID(t, pidFile, p)
		r := p.wait(40 * time.Second)
		r.Want(t, exitLeaseEnded)
		if !regexp.MustCompile(`jsn: lease \S+ expired\n`).MatchString(r.Stderr) || !strings.Contains(r.Stderr, "got-hup") {
			t.Errorf("got stderr %q, want the expiry message and the child's got-hup", r.Stderr)
		}
		if strings.Contains(r.Stderr, "release lease") {
			t.Errorf("got stderr %q, want no release error for an expired lease", r.Stderr)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child %d after jsn ended: kill 0 got %v, want ESRCH", pid, err)
		}
		l.free("qa")
	})

	t.Run("extend from inside the shell renews its credential", func(t *testing.T) {
		r := l.jsn("shell", "--exporter", "qa", "--duration", "5s", "--", "sh", "-c",
			`jsn lease extend "$JSN_LEASE" 1m >/dev/null && sleep 7 && jsn power on && jsn power status`)
		r.Want(t, 0)
		if r.Stdout != "on\n" {
			t.Errorf("got stdout %q, want on (calls after the original end work)", r.Stdout)
		}
		l.free("qa")
	})
}

// waitPID waits until the shell's child wrote its pid to file.
func waitPID(t *testing.T, file string, p *proc) int {
	t.Helper()
	var pid int
	testkit.CheckFor(t, 30*time.Second, func() error {
		if p.exited() {
			r := p.wait(0)
			t.Fatalf("jsn shell ended early: %+v", r)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("the shell's child wrote no pid: %v", err)
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	return pid
}
