package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/controller/api"
)

// TestRemoteDashboardLease: `jsn dashboard --lease ID` (or JSN_LEASE=ID) prints a login whose
// exchange carries the rights to type into the lease's console; without a lease the login is
// read-only; an unknown lease is refused with a message saying what to do.
func TestRemoteDashboardLease(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a controller and an exporter")
	}
	l := startRemoteLab(t, "--http", "127.0.0.1:0", "--websocket", "127.0.0.1:0", "--websocket-no-tls")
	file := l.exporter("wt1", "board=w", "export:\n  console: {type: serial.Port, config: {url: \"loop://\"}}\n")
	l.background("exporter-wt1", "exporter", "run", "-c", file)
	l.online("wt1", true, 30*time.Second)
	id := l.request("--exporter", "wt1", "--duration", "10m")

	url := regexp.MustCompile(`^(http://[^/]+)/#token=(\S+)$`)
	login := func(r jsntest.Result) *api.BrowserSession {
		t.Helper()
		r.Want(t, 0)
		m := url.FindStringSubmatch(strings.TrimSpace(r.Stdout))
		if m == nil {
			t.Fatalf("jsn dashboard printed %q, want a URL with a token", r.Stdout)
		}
		b, _ := json.Marshal(map[string]string{"token": m[2]})
		resp, err := http.Post(m[1]+"/api/exchange", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s api.BrowserSession
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("exchange: %d %v", resp.StatusCode, err)
		}
		return &s
	}
	for _, r := range []jsntest.Result{l.jsn("dashboard", "--lease", id),
		jsntest.Run(t, jsntest.Options{Env: append(l.env, "JSN_LEASE="+id)}, "dashboard")} {
		s := login(r)
		if s.Write == nil || s.Write.Exporter != "wt1" || s.Write.Lease != id || fmt.Sprint(s.Write.Consoles) != "[console]" {
			t.Errorf("login with the lease: write %+v, want wt1's console under %s", s.Write, id)
		}
	}
	if s := login(l.jsn("dashboard")); s.Write != nil {
		t.Errorf("login without a lease may type: %+v", s.Write)
	}
	r := l.jsn("dashboard", "--lease", "nosuchlease")
	if r.Code == 0 || !strings.Contains(r.Stderr, "not an active lease") || !strings.Contains(r.Stderr, "without --lease") {
		t.Errorf("unknown lease: exit %d, stderr %q; want a refusal saying to log in without --lease", r.Code, r.Stderr)
	}
}
