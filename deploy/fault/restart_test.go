package fault

import (
	"bytes"
	"context"
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

	"jsn.dev/jsn/controller/api"
)

// jsnCmd is a jsn process run as client name (its config in the lab directory).
type jsnCmd struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan error
}

// clientConfig issues client identity name and writes its config file.
func (l *lab) clientConfig(name string) string {
	l.t.Helper()
	var cfg []byte
	eventually(l.t, "create client "+name, 30*time.Second, func(ctx context.Context) error {
		var err error
		cfg, err = l.adm.CreateClient(ctx, name, nil, 0, false)
		return err
	})
	file := filepath.Join(l.dir, name+".yaml")
	writeFile(l.t, file, string(cfg))
	return file
}

// jsn starts `jsn args…` with the client config file.
func (l *lab) jsn(config string, args ...string) *jsnCmd {
	l.t.Helper()
	c := &jsnCmd{done: make(chan error, 1)}
	c.cmd = exec.Command(os.Args[0], args...)
	c.cmd.Env = append(os.Environ(), envRole+"=jsn", "JSN_CLIENT_CONFIG="+config,
		"XDG_CONFIG_HOME="+filepath.Join(l.dir, "xdg"), "SHELL=/bin/sh")
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	l.t.Cleanup(func() {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
		c.done <- nil
	})
	return c
}

// wait waits for the process and returns its exit code.
func (c *jsnCmd) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("%v still running after %v\nstdout:\n%s\nstderr:\n%s", c.cmd.Args[1:], within, &c.stdout, &c.stderr)
		return -1
	}
}

// outage is how long the controller stays down in TestFaultControllerRestart.
const outage = 3 * time.Second

// TestFaultControllerRestart kills -9 a controller (with its embedded NATS server) while three
// `jsn shell -l` sessions drive their exporters and two `jsn lease request --wait` wait in the
// queue, and starts it again at once (as systemd's Restart=always does): the leases and the
// queue are kept, the waiting requests and the shells ride over the outage (saying so on
// stderr), and the API answers again within a moment of the restart.
func TestFaultControllerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a controller, three exporters and five jsn commands as processes")
	}
	l := newLab(t)
	l.startEmbedded()
	l.startExporters("board", 3, map[string]string{"fault": "yes"}, "")
	adminCtl := l.client("ops")
	l.waitOnline(adminCtl, "fault=yes", 3)
	// Some history in the store, as a lab that has run a while has.
	var ws []*worker
	for i := range 3 {
		name := fmt.Sprintf("c%d", i)
		ws = append(ws, &worker{name: name, ctl: l.client(name)})
	}
	jwtBefore := fileSize(t, filepath.Join(l.data, "lab.jwt"))
	report(t, []result{newTraffic(t, "fault=yes", ws).run("history before the restart", 5*cycles(), nil, nil)})
	// Each lease released before its end leaves a revocation in the LAB account until its
	// credential expires (10 min here).
	t.Logf("LAB account JWT: %d bytes before, %d bytes after %d leases released early", jwtBefore,
		fileSize(t, filepath.Join(l.data, "lab.jwt")), 5*cycles())

	stop := filepath.Join(l.dir, "stop")
	script := `fails=0; n=0; touch "$1"
while [ ! -e ` + stop + ` ]; do
  jsn power on >/dev/null 2>>"$1.err" || fails=$((fails+1))
  n=$((n+1))
  sleep 0.05
done
echo "calls $n failed $fails"`
	var shells []*jsnCmd
	var started []string
	for i := range 3 {
		mark := filepath.Join(l.dir, fmt.Sprintf("shell-%d", i))
		started = append(started, mark)
		shells = append(shells, l.jsn(l.clientConfig(fmt.Sprintf("sh%d", i)), "shell", "-l", "fault=yes",
			"--duration", "10m", "--", "sh", "-c", script, "sh", mark))
	}
	eventually(t, "three shells running their loops", 60*time.Second, func(ctx context.Context) error {
		for _, m := range started {
			if _, err := os.Stat(m); err != nil {
				return err
			}
		}
		return nil
	})
	var waiters []*jsnCmd
	for i := range 2 {
		waiters = append(waiters, l.jsn(l.clientConfig(fmt.Sprintf("w%d", i)), "lease", "request", "-l", "fault=yes",
			"--duration", "10m", "--wait", "3m"))
	}
	var before []api.Lease
	eventually(t, "3 active leases and 2 queued", 60*time.Second, func(ctx context.Context) error {
		var err error
		if before, err = adminCtl.ListLeases(ctx, true); err != nil {
			return err
		}
		return leaseCount(before, 3, 2)
	})

	// kill -9; the controller is away for a few seconds (a host rebooting, systemd's restart
	// delay), then starts again.
	ctl := l.ctls[0]
	killed := time.Now()
	ctl.kill()
	time.Sleep(outage) // the outage itself, not synchronisation
	restarted := time.Now()
	ctl.start()
	up := time.Since(restarted)
	var after []api.Lease
	eventually(t, "the API answers after the restart", 60*time.Second, func(ctx context.Context) error {
		var err error
		after, err = adminCtl.ListLeases(ctx, true)
		return err
	})
	apiBack := time.Since(restarted)
	if err := leaseCount(after, 3, 2); err != nil {
		t.Errorf("after the restart: %v", err)
	}
	ids := func(ls []api.Lease) string {
		var s []string
		for _, x := range ls {
			s = append(s, x.ID+"/"+x.Status)
		}
		return strings.Join(s, " ")
	}
	if ids(after) != ids(before) {
		t.Errorf("leases after the restart: got %s, want %s", ids(after), ids(before))
	}

	// The shells go on for a moment, then end; the waiting requests get their exporters.
	time.Sleep(3 * time.Second) // load, not synchronisation: shells' commands after the restart
	writeFile(t, stop, "")
	calls, failed := 0, 0
	re := regexp.MustCompile(`calls (\d+) failed (\d+)`)
	for i, s := range shells {
		if code := s.wait(t, 2*time.Minute); code != 0 {
			t.Errorf("shell %d: exit %d\nstdout:\n%s\nstderr:\n%s", i, code, &s.stdout, &s.stderr)
		}
		m := re.FindStringSubmatch(s.stdout.String())
		if m == nil {
			t.Errorf("shell %d: no counts in %q", i, s.stdout.String())
			continue
		}
		n, _ := strconv.Atoi(m[1])
		f, _ := strconv.Atoi(m[2])
		calls, failed = calls+n, failed+f
		// A command in flight when the server died fails; those started meanwhile wait for it.
		if f > 1 {
			errs, _ := os.ReadFile(started[i] + ".err")
			t.Errorf("shell %d: %d of %d commands failed, want at most the one in flight at the kill:\n%s", i, f, n, errs)
		}
	}
	for i, w := range waiters {
		if code := w.wait(t, 2*time.Minute); code != 0 {
			t.Errorf("lease request --wait %d: exit %d\nstdout:\n%s\nstderr:\n%s", i, code, &w.stdout, &w.stderr)
		}
		if !regexp.MustCompile(`^[0-9a-f]{16}\n$`).MatchString(w.stdout.String()) {
			t.Errorf("lease request --wait %d: stdout %q, want the lease id", i, w.stdout.String())
		}
	}
	notices := 0
	for _, c := range append(shells, waiters...) {
		notices += strings.Count(c.stderr.String(), "trying again")
	}
	for _, m := range started {
		errs, _ := os.ReadFile(m + ".err") // the shells' jsn commands
		notices += strings.Count(string(errs), "trying again")
	}
	t.Logf("controller kill -9 and restart: ready %v after the restart, API answering after %v (%v after the kill); "+
		"shell commands: %d, failed %d; retry notices on stderr: %d", up.Round(10*time.Millisecond),
		apiBack.Round(10*time.Millisecond), restarted.Sub(killed).Round(10*time.Millisecond)+apiBack.Round(10*time.Millisecond),
		calls, failed, notices)
	t.Logf("controller start:\n%s", grepLines(ctl.log, "controller running"))
	if notices == 0 {
		t.Errorf("no jsn command said on stderr that it was trying again during the %v outage", outage)
	}
}

func leaseCount(ls []api.Lease, active, queued int) error {
	a, q := 0, 0
	for _, l := range ls {
		switch l.Status {
		case api.StatusActive:
			a++
		case api.StatusQueued:
			q++
		}
	}
	if a != active || q != queued {
		return fmt.Errorf("%d active and %d queued leases, want %d and %d", a, q, active, queued)
	}
	return nil
}

func grepLines(file, s string) string {
	b, _ := os.ReadFile(file)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func fileSize(t *testing.T, file string) int64 {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
