package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/internal/testkit"
)

type groupRow struct {
	ID       string   `json:"id"`
	Exporter string   `json:"exporter"`
	Status   string   `json:"status"`
	Reason   string   `json:"reason"`
	Group    string   `json:"group"`
	Parts    []string `json:"parts"`
}

// groupRows returns the rows of `jsn get leases --all -o json` of group g.
func (l *remoteLab) groupRows(g string) []groupRow {
	l.t.Helper()
	r := l.jsn("get", "leases", "--all", "-o", "json")
	r.Want(l.t, 0)
	var rows []groupRow
	if err := json.Unmarshal([]byte(r.Stdout), &rows); err != nil {
		l.t.Fatalf("get leases -o json: %v\n%s", err, r.Stdout)
	}
	var out []groupRow
	for _, x := range rows {
		if x.Group == g {
			out = append(out, x)
		}
	}
	return out
}

// TestGroupLeaseProcesses runs a controller, two exporters and jsn clients as processes: a
// lease over two selectors waits as one request while one exporter is busy (the other is not
// held), is granted whole once both are free and released whole; jsn shell with two exporters
// runs commands that name each one, and a command that names none fails listing them.
func TestGroupLeaseProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a controller and exporters")
	}
	l := startRemoteLab(t)
	alice := filepath.Join(l.dir, "alice.yaml")
	l.jsn("admin", "create", "client", "alice", "--out", alice).Want(t, 0)
	ga := l.exporter("ga", "board=g", remoteExport)
	gh := l.exporter("gh", "role=gh", remoteExport)
	l.background("exporter-ga", "exporter", "run", "-c", ga)
	l.background("exporter-gh", "exporter", "run", "-c", gh)
	l.online("ga", true, 30*time.Second)
	l.online("gh", true, 30*time.Second)

	busy := l.request("--exporter", "gh") // the admin holds gh
	q := l.jsn("lease", "request", "--config", alice, "-l", "board=g", "-l", "role=gh")
	q.Want(t, 0)
	g := strings.TrimSpace(q.Stdout)
	if g == "" || !strings.Contains(q.Stderr, "queued") {
		t.Fatalf("group request with gh busy: id %q, stderr %q; want an id and queued", g, q.Stderr)
	}
	rows := l.groupRows(g)
	if len(rows) != 1 || rows[0].Status != "queued" || !slices.Equal(rows[0].Parts, []string{"board=g", "role=gh"}) ||
		!strings.Contains(rows[0].Reason, "waiting for all 2 parts") {
		t.Fatalf("queued group in get leases: %+v", rows)
	}
	if e := l.exporters()["ga"]; e.Lease != nil {
		t.Fatalf("ga leased by %s while the group waits for gh", e.Lease.Client)
	}
	if tbl := l.jsn("get", "leases", "--all"); !strings.Contains(tbl.Stdout, "(board=g + role=gh)") || !strings.Contains(tbl.Stdout, "GROUP") {
		t.Errorf("get leases table:\n%s", tbl.Stdout)
	}
	l.jsn("lease", "release", busy).Want(t, 0)
	testkit.CheckFor(t, 30*time.Second, func() error {
		rows = l.groupRows(g)
		var on []string
		for _, r := range rows {
			if r.Status == "active" {
				on = append(on, r.Exporter)
			}
		}
		slices.Sort(on)
		if !slices.Equal(on, []string{"ga", "gh"}) {
			return fmt.Errorf("group %s: rows %+v, want active parts on ga and gh", g, rows)
		}
		return nil
	})
	l.jsn("lease", "release", "--config", alice, g).Want(t, 0)
	l.free("ga")
	l.free("gh")

	// A shell over both: each command names its exporter.
	r := l.jsn("shell", "-l", "board=g", "-l", "role=gh", "--", "sh", "-c",
		`echo "exporters=$JSN_EXPORTERS exporter=$JSN_EXPORTER"; jsn --exporter ga power on && jsn --exporter ga power status && jsn power status --exporter gh; `+
			`jsn power status; echo "rc=$?"`)
	r.Want(t, 0)
	if want := "exporters=ga,gh exporter=\non\noff\nrc=2\n"; r.Stdout != want {
		t.Errorf("shell over ga and gh: stdout %q, want %q\nstderr:\n%s", r.Stdout, want, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "several exporters (ga, gh): name one with --exporter NAME") {
		t.Errorf("a command naming no exporter: stderr %q, want the list of exporters", r.Stderr)
	}
	l.free("ga")
	l.free("gh")

	// --count: more than exist waits with the reason.
	c := l.jsn("lease", "request", "--config", alice, "-l", "board=g", "--count", "2")
	c.Want(t, 0)
	rows = l.groupRows(strings.TrimSpace(c.Stdout))
	if len(rows) != 1 || rows[0].Reason != "needs 2 exporters matching board=g, 1 exists" {
		t.Errorf("--count 2 of 1: %+v", rows)
	}
	l.jsn("lease", "release", "--config", alice, strings.TrimSpace(c.Stdout)).Want(t, 0)
	if u := l.jsn("lease", "request", "-n", "ga", "--count", "2"); u.Code != 2 || !strings.Contains(u.Stderr, "--count 2") {
		t.Errorf("--count with names only: exit %d %q, want a usage error", u.Code, u.Stderr)
	}
}
