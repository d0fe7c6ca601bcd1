package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/internal/testkit"
)

// leaseOf returns the lease id's row of `jsn lease list --all` (as the admin), ok false if the
// lease is not active or queued any more.
func (l *remoteLab) leaseOf(id string) (leaseRow, bool) {
	r, ok := l.leases()[id]
	return r, ok
}

type fullLeaseRow struct {
	ID         string        `json:"id"`
	Status     string        `json:"status"`
	Reason     string        `json:"reason"`
	FreeAt     time.Time     `json:"free_at"`
	LongestNow time.Duration `json:"longest_now"`
	NotBefore  time.Time     `json:"not_before"`
	Keepalive  time.Duration `json:"keepalive"`
	Until      time.Time     `json:"until"`
	End        time.Time     `json:"end"`
}

func (l *remoteLab) fullLease(id string) (fullLeaseRow, bool) {
	l.t.Helper()
	r := l.jsn("lease", "list", "--all", "-o", "json")
	r.Want(l.t, 0)
	var rows []fullLeaseRow
	if err := json.Unmarshal([]byte(r.Stdout), &rows); err != nil {
		l.t.Fatalf("lease list -o json: %v\n%s", err, r.Stdout)
	}
	for _, x := range rows {
		if x.ID == id {
			return x, true
		}
	}
	return fullLeaseRow{}, false
}

// TestLeaseFeatures runs a controller, exporters and jsn clients as processes: keepalive
// leases (kill -9 of the holder), extensions that never shorten, the free-slot answer,
// scheduled leases, maintenance states and policies.
func TestLeaseFeatures(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a controller and exporters")
	}
	l := startRemoteLab(t)
	alice := filepath.Join(l.dir, "alice.yaml")
	l.jsn("admin", "create", "client", "alice", "--out", alice).Want(t, 0)
	bob := filepath.Join(l.dir, "bob.yaml")
	l.jsn("admin", "create", "client", "bob", "--group", "students", "--max-priority", "5", "--out", bob).Want(t, 0)
	ka := l.exporter("ka", "board=x", remoteExport)
	kb := l.exporter("kb", "board=y", remoteExport)
	kc := l.exporter("kc", "board=z", remoteExport+`hooks:
  afterLease:
    script: echo cannot reflash; exit 4
`)
	l.background("exporter-ka", "exporter", "run", "-c", ka)
	l.background("exporter-kb", "exporter", "run", "-c", kb)
	l.background("exporter-kc", "exporter", "run", "-c", kc)
	for _, e := range []string{"ka", "kb", "kc"} {
		l.online(e, true, 30*time.Second)
	}
	as := func(cfg string, args ...string) []string {
		return append(append([]string{args[0], args[1]}, "--config", cfg), args[2:]...)
	}

	t.Run("keepalive ends after kill -9", func(t *testing.T) {
		p := l.start(as(alice, "lease", "request", "--exporter", "ka", "--keepalive", "--duration", "1h")...)
		var id string
		testkit.CheckFor(t, 30*time.Second, func() error {
			id = strings.TrimSpace(p.out.String())
			if id == "" || !strings.Contains(p.errOut.String(), "holding lease") {
				return fmt.Errorf("no lease id yet; stderr %q", p.errOut.String())
			}
			return nil
		})
		row, ok := l.fullLease(id)
		if !ok || row.Status != "active" || row.Keepalive <= 0 || row.Until.Sub(row.End) < 50*time.Minute {
			t.Fatalf("keepalive lease %s: got %+v (listed %v), want active, renewed, until about an hour from now", id, row, ok)
		}
		// It outlives several keepalive windows while its holder runs.
		first := row.End
		testkit.CheckFor(t, 30*time.Second, func() error {
			r, ok := l.fullLease(id)
			if !ok || r.Status != "active" {
				return fmt.Errorf("keepalive lease %s ended while its holder runs: %+v", id, r)
			}
			if r.End.Sub(first) < 12*time.Second {
				return fmt.Errorf("lease end moved %v so far, want at least 12s of renewals", r.End.Sub(first))
			}
			return nil
		})
		if ext := l.jsn(as(alice, "lease", "extend", id, "2h")...); ext.Code == 0 || !strings.Contains(ext.Stderr, "keepalive") {
			t.Errorf("extend of a keepalive lease: got exit %d %q, want refused naming keepalive", ext.Code, ext.Stderr)
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		testkit.CheckFor(t, 10*time.Second, func() error {
			if _, ok := l.leaseOf(id); ok {
				return fmt.Errorf("lease %s still listed %v after kill -9 of its holder", id, time.Since(killed).Round(time.Millisecond))
			}
			return nil
		})
		t.Logf("keepalive lease ended %v after kill -9 of its holder", time.Since(killed).Round(100*time.Millisecond))
		l.free("ka")
	})

	t.Run("queued keepalive request dropped after kill -9", func(t *testing.T) {
		id := l.request("--config", alice, "--exporter", "ka", "--duration", "10m")
		released := false
		defer func() {
			if !released {
				l.jsn(as(alice, "lease", "release", id)...)
			}
		}()
		p := l.start(as(bob, "lease", "request", "--exporter", "ka", "--keepalive", "--duration", "5m", "--wait", "10m")...)
		var qid string
		testkit.CheckFor(t, 30*time.Second, func() error {
			for k, r := range l.leases() {
				if r.Status == "queued" && k != id {
					qid = k
					return nil
				}
			}
			return fmt.Errorf("bob's keepalive request is not queued yet; stderr %q", p.errOut.String())
		})
		// It stays queued while bob's command waits, for longer than a keepalive window.
		queued := time.Now()
		testkit.CheckFor(t, 30*time.Second, func() error {
			if _, ok := l.leaseOf(qid); !ok {
				t.Fatalf("bob's keepalive request dropped while he waits for it: %+v", l.leases())
			}
			if time.Since(queued) < 8*time.Second {
				return errors.New("not yet 8s queued")
			}
			return nil
		})
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		testkit.CheckFor(t, 10*time.Second, func() error {
			if _, ok := l.leaseOf(qid); ok {
				return fmt.Errorf("request %s still queued %v after kill -9 of its holder", qid, time.Since(killed).Round(time.Millisecond))
			}
			return nil
		})
		t.Logf("queued keepalive request dropped %v after kill -9 of its holder", time.Since(killed).Round(100*time.Millisecond))
		// Once ka is free it is not granted to the dead request; the audit log says why it
		// was dropped.
		l.jsn(as(alice, "lease", "release", id)...).Want(t, 0)
		released = true
		l.free("ka")
		r := l.jsn("audit", "--lease", qid, "-o", "json")
		r.Want(t, 0)
		var evs []struct{ Event, Reason string }
		if err := json.Unmarshal([]byte(r.Stdout), &evs); err != nil {
			t.Fatalf("jsn audit -o json: %v\n%s", err, r.Stdout)
		}
		dropped := false
		for _, e := range evs {
			if e.Event == "grant" {
				t.Errorf("the dead request was granted: %s", r.Stdout)
			}
			dropped = dropped || e.Event == "cancel" && strings.Contains(e.Reason, "stopped renewing the request")
		}
		if !dropped {
			t.Errorf("audit of the dropped request: %s, want a cancel naming why", r.Stdout)
		}
	})

	t.Run("keepalive released on interrupt", func(t *testing.T) {
		p := l.start(as(alice, "lease", "request", "-l", "board=x", "--keepalive")...)
		testkit.CheckFor(t, 30*time.Second, func() error {
			if !strings.Contains(p.errOut.String(), "holding lease") {
				return fmt.Errorf("not holding yet; stderr %q", p.errOut.String())
			}
			return nil
		})
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		r := p.wait(20 * time.Second)
		if r.Code != 0 || !strings.Contains(r.Stderr, "released") {
			t.Errorf("interrupted keepalive holder: exit %d, stderr %q; want 0 and released", r.Code, r.Stderr)
		}
		l.free("ka")
	})

	t.Run("extend never shortens", func(t *testing.T) {
		id := l.request("--config", alice, "--exporter", "ka", "--duration", "30m")
		defer l.jsn(as(alice, "lease", "release", id)...)
		r := l.jsn(as(alice, "lease", "extend", id, "5m")...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "never shortens") || !strings.Contains(r.Stderr, "--set") {
			t.Errorf("extend to an earlier end: got exit %d, stderr %q; want refused, pointing at --set", r.Code, r.Stderr)
		}
		if row, _ := l.fullLease(id); time.Until(row.End) < 29*time.Minute {
			t.Errorf("refused extension moved the end to %v", row.End)
		}
		l.jsn(as(alice, "lease", "extend", id, "45m")...).Want(t, 0)
		l.jsn(as(alice, "lease", "extend", "--set", id, "5m")...).Want(t, 0)
		if row, _ := l.fullLease(id); time.Until(row.End) > 6*time.Minute {
			t.Errorf("extend --set 5m: lease ends at %v, want about 5m from now", row.End)
		}
	})

	t.Run("free slot and scheduled leases", func(t *testing.T) {
		holder := l.request("--config", alice, "--exporter", "ka", "--duration", "20m")
		defer l.jsn(as(alice, "lease", "release", holder)...)
		hrow, _ := l.fullLease(holder)
		r := l.jsn(as(alice, "lease", "request", "--exporter", "ka", "--duration", "10m")...)
		r.Want(t, 0)
		waiter := strings.TrimSpace(r.Stdout)
		defer l.jsn(as(alice, "lease", "release", waiter)...)
		wrow, _ := l.fullLease(waiter)
		if wrow.Status != "queued" || !wrow.FreeAt.Equal(hrow.End) || !strings.Contains(wrow.Reason, "earliest free at") {
			t.Errorf("queued behind a 20m lease: got %+v, want free_at = the holder's end %v", wrow, hrow.End)
		}
		l.jsn(as(alice, "lease", "release", waiter)...).Want(t, 0)

		// A scheduled lease on kb in 90 s reserves it: a 30m request now cannot have it, and is
		// told the longest lease available now; a 1m one can.
		begin := time.Now().Add(90 * time.Second).Format(time.RFC3339)
		r = l.jsn(as(alice, "lease", "request", "--exporter", "kb", "--duration", "5m", "--begin", begin)...)
		r.Want(t, 0)
		sched := strings.TrimSpace(r.Stdout)
		defer l.jsn(as(alice, "lease", "release", sched)...)
		srow, _ := l.fullLease(sched)
		if srow.Status != "queued" || srow.NotBefore.IsZero() || !strings.Contains(srow.Reason, "scheduled") {
			t.Errorf("scheduled lease: got %+v, want queued until %s", srow, begin)
		}
		r = l.jsn(as(alice, "lease", "request", "--exporter", "kb", "--duration", "30m")...)
		r.Want(t, 0)
		long := strings.TrimSpace(r.Stdout)
		lrow, _ := l.fullLease(long)
		if lrow.Status != "queued" || lrow.LongestNow <= 0 || lrow.LongestNow > 90*time.Second || !strings.Contains(lrow.Reason, "longest lease available now") {
			t.Errorf("30m request on a reserved exporter: got %+v, want queued with the longest lease available now (under 90s)", lrow)
		}
		l.jsn(as(alice, "lease", "release", long)...).Want(t, 0)
		short := l.request("--config", alice, "--exporter", "kb", "--duration", "30s")
		if row, _ := l.fullLease(short); row.Status != "active" {
			t.Errorf("30s request before the reservation: got %+v, want granted", row)
		}
		l.jsn(as(alice, "lease", "release", short)...).Want(t, 0)
		// Rescheduled sooner to keep the test short: a scheduled lease due in 2 s is granted then.
		l.jsn(as(alice, "lease", "release", sched)...).Want(t, 0)
		soon := time.Now().Add(2 * time.Second).Format(time.RFC3339)
		r = l.jsn(as(alice, "lease", "request", "--exporter", "kb", "--duration", "1m", "--begin", soon)...)
		r.Want(t, 0)
		sched2 := strings.TrimSpace(r.Stdout)
		testkit.CheckFor(t, 20*time.Second, func() error {
			if row, _ := l.fullLease(sched2); row.Status != "active" {
				return fmt.Errorf("scheduled lease %s: %+v, want active after its begin %s", sched2, row, soon)
			}
			return nil
		})
		l.jsn(as(alice, "lease", "release", sched2)...).Want(t, 0)
		l.free("kb")
	})

	t.Run("maintenance", func(t *testing.T) {
		holder := l.request("--config", alice, "--exporter", "ka", "--duration", "10m")
		r := l.jsn("admin", "exporter", "disable", "ka")
		if r.Code != 2 || !strings.Contains(r.Stderr, "--reason") {
			t.Errorf("disable without a reason: exit %d %q, want a usage error naming --reason", r.Code, r.Stderr)
		}
		l.jsn("admin", "exporter", "disable", "ka", "--reason", "new SD mux").Want(t, 0)
		if row, ok := l.leaseOf(holder); !ok || row.Status != "active" {
			t.Errorf("disable without --end ended the current lease: %+v %v", row, ok)
		}
		r = l.jsn("get", "exporters", "-l", "board=x")
		if !strings.Contains(r.Stdout, "maintenance (admin: new SD mux)") {
			t.Errorf("get exporters: got %q, want ka in maintenance with the reason", r.Stdout)
		}
		l.jsn(as(alice, "lease", "release", holder)...).Want(t, 0)
		r = l.jsn(as(alice, "lease", "request", "--exporter", "ka")...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "maintenance") || !strings.Contains(r.Stderr, "new SD mux") {
			t.Errorf("request of an exporter in maintenance: exit %d %q, want refused with the reason", r.Code, r.Stderr)
		}
		r = l.jsn(as(alice, "lease", "request", "-l", "board=x")...)
		r.Want(t, 0)
		q := strings.TrimSpace(r.Stdout)
		if row, _ := l.fullLease(q); row.Status != "queued" || !strings.Contains(row.Reason, "in maintenance: ka (new SD mux)") {
			t.Errorf("selector request matching only ka: %+v, want queued naming the maintenance", row)
		}
		l.jsn("admin", "exporter", "enable", "ka").Want(t, 0)
		testkit.CheckFor(t, 20*time.Second, func() error {
			if row, _ := l.fullLease(q); row.Status != "active" {
				return fmt.Errorf("queued request after enable: %+v, want granted", row)
			}
			return nil
		})
		// --end ends the current lease.
		l.jsn("admin", "exporter", "disable", "ka", "--reason", "urgent", "--end").Want(t, 0)
		testkit.CheckFor(t, 10*time.Second, func() error {
			if _, ok := l.leaseOf(q); ok {
				return fmt.Errorf("lease %s still active after disable --end", q)
			}
			return nil
		})
		l.jsn("admin", "exporter", "enable", "ka").Want(t, 0)
		l.free("ka")
	})

	t.Run("failing afterLease hook puts the exporter in maintenance", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			l.free("kc")
			id := l.request("--config", alice, "--exporter", "kc", "--duration", "1m")
			l.jsn(as(alice, "lease", "release", id)...).Want(t, 0)
		}
		testkit.CheckFor(t, 30*time.Second, func() error {
			r := l.jsn("get", "exporters", "-l", "board=z")
			if !strings.Contains(r.Stdout, "maintenance (controller: afterLease hook failed 3 times in a row") {
				return fmt.Errorf("get exporters: %q, want kc in maintenance by the controller", r.Stdout)
			}
			return nil
		})
		r := l.jsn(as(alice, "lease", "request", "--exporter", "kc")...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "afterLease hook failed") {
			t.Errorf("request of kc: exit %d %q, want refused: in maintenance", r.Code, r.Stderr)
		}
		l.jsn("admin", "exporter", "enable", "kc").Want(t, 0)
		if r := l.jsn("get", "exporters", "-l", "board=z"); !strings.Contains(r.Stdout, " ok") {
			t.Errorf("after enable: %q, want ok", r.Stdout)
		}
	})

	t.Run("share and transfer", func(t *testing.T) {
		run := func(cfg string, args ...string) jsntest.Result {
			return jsntest.Run(t, jsntest.Options{Env: append(append([]string{}, l.env...), "JSN_CLIENT_CONFIG="+cfg)}, args...)
		}
		asBob := func(args ...string) jsntest.Result { return run(bob, args...) }
		id := l.request("--config", alice, "--exporter", "ka", "--duration", "10m")
		if r := asBob("call", "--lease", id, "power.on"); r.Code == 0 {
			t.Errorf("bob calls on alice's lease before it is shared: exit 0")
		}
		r := l.jsn(as(alice, "lease", "share", id, "--with", "bob")...)
		r.Want(t, 0)
		if !strings.Contains(r.Stdout, "shared with bob") {
			t.Errorf("lease share: %q", r.Stdout)
		}
		asBob("call", "--lease", id, "power.on").Want(t, 0)
		if r := asBob("call", "--lease", id, "power.status"); strings.TrimSpace(r.Stdout) != "on" {
			t.Errorf("bob: power.status on the shared lease: %q %q", r.Stdout, r.Stderr)
		}
		run(alice, "call", "--lease", id, "power.off").Want(t, 0)
		// The audit log names who made each call on the shared lease.
		calls := func(who string) string {
			var r jsntest.Result
			if who == "" {
				r = l.jsn("audit", "--lease", id, "--kind", "call", "-o", "json")
			} else {
				r = run(who, "audit", "--lease", id, "--kind", "call", "-o", "json")
			}
			r.Want(t, 0)
			var evs []struct{ Client, Call, Code string }
			if err := json.Unmarshal([]byte(r.Stdout), &evs); err != nil {
				t.Fatalf("jsn audit -o json: %v\n%s", err, r.Stdout)
			}
			var out []string
			for _, e := range evs {
				out = append(out, e.Client+" "+e.Call+" "+e.Code)
			}
			return strings.Join(out, "; ")
		}
		testkit.CheckFor(t, 10*time.Second, func() error {
			if got, want := calls(""), "bob power.on OK; bob power.status OK; alice power.off OK"; got != want {
				return fmt.Errorf("jsn audit of the shared lease's calls: %q, want %q", got, want)
			}
			return nil
		})
		if got, want := calls(bob), "bob power.on OK; bob power.status OK"; got != want {
			t.Errorf("bob's jsn audit of the shared lease: %q, want his own calls %q", got, want)
		}
		l.jsn(as(alice, "lease", "unshare", id, "--with", "bob")...).Want(t, 0)
		if r := asBob("call", "--lease", id, "power.off"); r.Code == 0 {
			t.Errorf("bob calls after unshare: exit 0")
		}
		r = l.jsn(as(alice, "lease", "transfer", id, "--to", "bob")...)
		r.Want(t, 0)
		if !strings.Contains(r.Stdout, "now bob's") {
			t.Errorf("lease transfer: %q", r.Stdout)
		}
		asBob("call", "--lease", id, "power.off").Want(t, 0)
		if r := run(alice, "call", "--lease", id, "power.on"); r.Code == 0 {
			t.Errorf("alice calls after transferring the lease: exit 0")
		}
		asBob("lease", "release", id).Want(t, 0)
		l.free("ka")
	})

	t.Run("policies", func(t *testing.T) {
		l.jsn("admin", "policy", "set", "teaching", "--group", "students", "--max-duration", "10m", "--max-priority", "1", "-l", "board in (y,z)").Want(t, 0)
		r := l.jsn("admin", "policy", "list")
		r.Want(t, 0)
		if !strings.Contains(r.Stdout, "teaching") || !strings.Contains(r.Stdout, "10m0s") {
			t.Errorf("policy list: %q", r.Stdout)
		}
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"--exporter", "kb", "--duration", "1h"}, "duration 1h0m0s exceeds the maximum of 10m0s of policy teaching"},
			{[]string{"--exporter", "kb", "--duration", "5m", "--priority", "3"}, "priority 3 exceeds the ceiling of 1 of policy teaching"},
			{[]string{"--exporter", "ka", "--duration", "5m"}, "exporter ka is outside policy teaching"},
			{[]string{"-l", "board=x", "--duration", "5m"}, "within the policies of client bob"},
		} {
			r := l.jsn(as(bob, append([]string{"lease", "request"}, tt.args...)...)...)
			if r.Code == 0 || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("bob: lease request %q: exit %d %q, want refused: %q", tt.args, r.Code, r.Stderr, tt.want)
			}
		}
		// Within the policy: a selector matching every exporter gets one the policy allows.
		id := l.request("--config", bob, "-l", "board", "--duration", "5m")
		if row, _ := l.leaseOf(id); row.Exporter != "kb" && row.Exporter != "kc" {
			t.Errorf("bob's lease on %q, want kb or kc (the policy's selector)", row.Exporter)
		}
		l.jsn(as(bob, "lease", "release", id)...).Want(t, 0)
		// Keepalive leases are capped by the policy too.
		p := l.start(as(bob, "lease", "request", "--exporter", "kb", "--keepalive")...)
		testkit.CheckFor(t, 30*time.Second, func() error {
			if strings.TrimSpace(p.out.String()) == "" {
				return fmt.Errorf("no id yet: %q", p.errOut.String())
			}
			return nil
		})
		if row, _ := l.fullLease(strings.TrimSpace(p.out.String())); time.Until(row.Until) > 10*time.Minute {
			t.Errorf("bob's keepalive lease until %v, want at most 10m (policy teaching)", row.Until)
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		p.wait(20 * time.Second)
		// alice has no policy.
		l.jsn("admin", "policy", "delete", "teaching").Want(t, 0)
		if r := l.jsn("admin", "policy", "get", "teaching"); r.Code == 0 {
			t.Errorf("policy get after delete: exit 0 %q", r.Stdout)
		}
	})
}
