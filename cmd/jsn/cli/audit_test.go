package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/internal/testkit"
)

// TestRemoteAudit: jsn audit shows a lease's events and the calls made with it, filtered, as a
// table and as JSON; bad times are usage errors.
func TestRemoteAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a controller and an exporter")
	}
	l := startRemoteLab(t)
	qa := l.exporter("qa", "board=x", remoteExport)
	l.background("exporter-qa", "exporter", "run", "-c", qa)
	l.online("qa", true, 20*time.Second)
	id := l.request("--exporter", "qa", "--duration", "5m")
	testkit.CheckFor(t, 20*time.Second, func() error {
		if r := l.jsn("call", "--lease", id, "power.on"); r.Code != 0 {
			return fmt.Errorf("call power.on: exit %d: %s", r.Code, r.Stderr)
		}
		return nil
	})
	l.jsn("call", "--lease", id, "power.off").Want(t, 0)
	l.jsn("lease", "release", id).Want(t, 0)

	type row struct {
		Kind, Event, Client, Exporter, Lease, Call, Code string
		Duration                                         time.Duration
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		r := l.jsn("audit", "--lease", id, "--since", "1h", "-o", "json")
		if r.Code != 0 {
			return fmt.Errorf("jsn audit: exit %d: %s", r.Code, r.Stderr)
		}
		var rows []row
		if err := json.Unmarshal([]byte(r.Stdout), &rows); err != nil {
			return fmt.Errorf("jsn audit -o json: %v: %s", err, r.Stdout)
		}
		var got []string
		for _, x := range rows {
			if x.Client != "admin" || x.Exporter != "qa" || x.Lease != id {
				return fmt.Errorf("row %+v: want client admin, exporter qa, lease %s", x, id)
			}
			got = append(got, strings.TrimSpace(x.Event+" "+x.Call+" "+x.Code))
		}
		// (power.on may have been tried before the exporter served the lease: refused calls are
		// logged too, and jsn call retries nothing, so only the last one is OK.)
		want := "request grant call power.on OK call power.off OK release"
		if s := strings.Join(got, " "); !strings.HasSuffix(s, want) || !strings.HasPrefix(s, "request grant") {
			return fmt.Errorf("audit of lease %s: %q, want %q", id, s, want)
		}
		return nil
	})
	r := l.jsn("audit", "--exporter", "qa", "--kind", "call")
	r.Want(t, 0)
	if !strings.Contains(r.Stdout, "power.off") || !strings.Contains(r.Stdout, " OK ") || strings.Contains(r.Stdout, "grant") {
		t.Errorf("jsn audit --kind call (table): %q", r.Stdout)
	}
	if r := l.jsn("audit", "--since", "yesterday"); r.Code != 2 || !strings.Contains(r.Stderr, `--since "yesterday"`) {
		t.Errorf("jsn audit --since yesterday: exit %d, %q; want a usage error naming the flag", r.Code, r.Stderr)
	}
	if r := l.jsn("audit", "--until", "2h"); r.Code != 0 || !strings.Contains(r.Stdout, "TIME") || strings.Contains(r.Stdout, "grant") {
		t.Errorf("jsn audit --until 2h: exit %d, %q; want no events", r.Code, r.Stdout)
	}
}

func FuzzParseWhen(f *testing.F) {
	for _, s := range []string{"", "1h", "-1h", "2026-01-02", "2026-01-02T15:04:05Z", "2026-01-02 15:04:05", "x"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseWhen(s, now)
		if err != nil && !tm.IsZero() {
			t.Fatalf("%q: error %v with a time %v", s, err, tm)
		}
		if err != nil && !strings.Contains(err.Error(), "want") && !strings.Contains(err.Error(), "must") {
			t.Fatalf("%q: unclear error %v", s, err)
		}
	})
}
