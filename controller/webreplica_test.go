package controller

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"jsn.dev/jsn/controller/api"
)

// TestDashboardLoginAnyReplica: with two replicas behind one lab (the API is a queue group, so
// either may issue a login token), a token exchanges on either replica's HTTP listener, once;
// deleting the identity on one replica takes the browser credentials the other minted.
func TestDashboardLoginAnyReplica(t *testing.T) {
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := startExternal(t, dir)
	o := testOptions(dir)
	o.NatsURL = srv.TCPURL()
	o.HTTP = "127.0.0.1:0"
	o.WebSocketURL = "ws://127.0.0.1:9/" // the external server's (not dialled here)
	o.Dashboard = fstest.MapFS{"index.html": {Data: []byte("<html>jsn</html>")}}
	r := []*Controller{startReplica(t, o), startReplica(t, o)}
	l := &lab{t: t, dir: dir, ctl: r[0]}
	l.admin = l.connectConfig(adminCfg)
	alice, _ := l.client("alice", api.CreateClientRequest{})
	exchange := func(c *Controller, tok string) int {
		b, _ := json.Marshal(map[string]string{"token": tok})
		resp, err := http.Post("http://"+c.HTTPAddr()+"/api/exchange", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode
	}
	ctx := t.Context()
	for i := range 8 {
		tok := callOK[api.DashboardToken](t, alice, api.ClientSubject("alice", api.VerbDashboard), api.Empty{})
		on, other := r[i%2], r[(i+1)%2]
		if code := exchange(on, tok.Token); code != http.StatusOK {
			t.Fatalf("login %d on replica %d: status %d, want 200 (the token was issued by either replica)", i, i%2, code)
		}
		if code := exchange(other, tok.Token); code != http.StatusUnauthorized {
			t.Fatalf("login %d reused on the other replica: status %d, want 401", i, code)
		}
	}
	keys, err := r[0].web.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		if strings.HasPrefix(k, browserKeyPrefix("alice")) {
			n++
		}
		if strings.HasPrefix(k, "tok.") {
			t.Errorf("used login token %s left in the bucket", k)
		}
	}
	if n != 8 {
		t.Fatalf("%d browser credential keys of alice recorded, want 8 (keys %v)", n, keys)
	}
	got := map[string]time.Time{}
	r[1].browserKeysOf(ctx, got, "alice")
	if len(got) != 8 {
		t.Fatalf("replica 1 found %d of alice's browser credentials, want all 8 whichever replica minted them", len(got))
	}
	for k, exp := range got {
		if !strings.HasPrefix(k, "U") || time.Until(exp) <= 0 {
			t.Errorf("browser key %q expiring %v: want a user public key expiring later", k, exp)
		}
	}
	if keys, _ := r[0].web.Keys(ctx); len(keys) != 0 {
		t.Errorf("keys left after the identity's credentials were taken: %v", keys)
	}
}
