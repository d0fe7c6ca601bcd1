package exporter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// TestReleasedCredentialIsPermissionDenied: once a lease ends, its credential's connection is
// closed by the server (revocation); a call made on it then says PERMISSION_DENIED and why, not
// a bare "connection closed" (TestRemoteBeforeLeaseFailureEndsLease saw that race under load).
func TestReleasedCredentialIsPermissionDenied(t *testing.T) {
	l := startLab(t)
	cfg := l.exporterConfig("rev1", nil, `export:
  probe:
    type: extest.Probe
`)
	runRemote(t, cfg)
	alice := l.client("alice")
	l.online(alice, "rev1", true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, ex := leaseDial(ctx, t, alice, api.LeaseRequest{Exporter: "rev1", Duration: time.Minute})
	if err := ex.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.Release(ctx, rep.Lease.ID); err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		_, err := ex.Describe(ctx)
		if err == nil {
			return errors.New("describe still answered on a released lease")
		}
		if !errors.Is(err, client.ErrPermissionDenied) {
			return err
		}
		if !strings.Contains(err.Error(), "revoked") && !strings.Contains(err.Error(), "lease") {
			return err
		}
		return nil
	})
}
