package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/jwt/v2"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// RevokeWindow is how long revocations are coalesced: the LAB account is re-signed and pushed at
// most once per window, so a released or expired lease credential is revoked (and its connections
// closed) within about this long. The exporter refuses calls of an ended lease at once anyway
// (Jsn-Lease check), so the window only delays the disconnect.
const RevokeWindow = 50 * time.Millisecond

// revoke queues keys (public key → JWT expiry, zero = none) for the next revocation batch and
// returns at once.
func (c *Controller) revoke(ctx context.Context, keys map[string]time.Time) error {
	if len(keys) == 0 {
		return nil
	}
	c.revMu.Lock()
	if c.revStopped {
		c.revMu.Unlock()
		return c.revokeNow(ctx, keys)
	}
	for k, v := range keys {
		c.revKeys[k] = v
	}
	c.revMu.Unlock()
	c.wakeRevoker()
	return nil
}

// revokeWait revokes keys in the next batch and waits until the servers have the new account.
func (c *Controller) revokeWait(ctx context.Context, keys map[string]time.Time) error {
	if len(keys) == 0 {
		return nil
	}
	done := make(chan error, 1)
	c.revMu.Lock()
	if c.revStopped {
		c.revMu.Unlock()
		return c.revokeNow(ctx, keys)
	}
	for k, v := range keys {
		c.revKeys[k] = v
	}
	c.revDone = append(c.revDone, done)
	c.revMu.Unlock()
	c.wakeRevoker()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("revoke: %w", ctx.Err())
	}
}

func (c *Controller) wakeRevoker() {
	select {
	case c.revWake <- struct{}{}:
	default:
	}
}

// revoker applies queued revocations, at most one batch per RevokeWindow. When ctx ends it
// applies what is left and stops.
func (c *Controller) revoker(ctx context.Context) {
	defer c.wg.Done()
	defer func() {
		c.revMu.Lock()
		c.revStopped = true
		c.revMu.Unlock()
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.flushRevocations(fctx)
	}()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.revWake:
		}
		if d := time.Until(last.Add(RevokeWindow)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c.flushRevocations(fctx)
		cancel()
		last = time.Now()
	}
}

func (c *Controller) flushRevocations(ctx context.Context) {
	c.revMu.Lock()
	keys, done := c.revKeys, c.revDone
	c.revKeys, c.revDone = map[string]time.Time{}, nil
	c.revMu.Unlock()
	if len(keys) == 0 {
		for _, d := range done {
			d <- nil
		}
		return
	}
	err := c.revokeNow(ctx, keys)
	if err != nil {
		c.log.Warn("revoke", "keys", len(keys), "err", err)
		if ctx.Err() == nil {
			// Keep them for the next batch.
			c.revMu.Lock()
			for k, v := range keys {
				if _, ok := c.revKeys[k]; !ok {
					c.revKeys[k] = v
				}
			}
			c.revMu.Unlock()
		}
	}
	c.revokes.Add(1)
	for _, d := range done {
		d <- err
	}
}

// revokeNow adds keys to the LAB account's revocations (stored in jsn-identities, CAS so that
// replicas do not lose each other's), re-signs it and pushes it; the servers disconnect the
// revoked users at once. The decoded account of the last write is kept: while no other replica
// wrote meanwhile, a batch costs one encode and one CAS write, no read or decode.
func (c *Controller) revokeNow(ctx context.Context, keys map[string]time.Time) error {
	if len(keys) == 0 {
		return nil
	}
	c.acctMu.Lock()
	defer c.acctMu.Unlock()
	for attempt := 0; ; attempt++ {
		if c.acct == nil {
			e, err := c.identities.Get(ctx, accountKey)
			if err != nil {
				return fmt.Errorf("revoke: %w", err)
			}
			var ar accountRecord
			if err := wire.Unmarshal(e.Value, &ar); err != nil {
				return fmt.Errorf("revoke: %w", err)
			}
			ac, err := jwt.DecodeAccountClaims(ar.JWT)
			if err != nil {
				return fmt.Errorf("revoke: %w", err)
			}
			if ar.Revoked == nil {
				ar.Revoked = map[string]time.Time{}
			}
			c.acct = &accountCache{rev: e.Revision, rec: ar, claims: ac}
		}
		a := c.acct
		pubs := make([]string, 0, len(keys))
		for k := range keys {
			if _, ok := a.rec.Revoked[k]; !ok {
				pubs = append(pubs, k)
			}
		}
		if len(pubs) == 0 {
			return nil // revoked already: nothing to write
		}
		c.acct = nil // until the write below succeeds: the cached values are being changed
		for _, k := range pubs {
			a.rec.Revoked[k] = keys[k]
		}
		j, err := c.auth.revokeClaims(a.claims, pubs, a.rec.Revoked)
		if err != nil {
			return err
		}
		a.rec.JWT = j
		for k, exp := range a.rec.Revoked {
			if !exp.IsZero() && exp.Before(time.Now()) {
				delete(a.rec.Revoked, k)
			}
		}
		b, err := wire.Marshal(a.rec)
		if err != nil {
			return err
		}
		rev, err := c.identities.Update(ctx, accountKey, b, a.rev, 0)
		if err != nil {
			if errors.Is(err, bus.ErrKeyChanged) && attempt < 20 {
				continue // another replica wrote: read it again
			}
			return fmt.Errorf("revoke: %w", err)
		}
		a.rev = rev
		c.acct = a
		c.warnAccountSize(len(a.rec.Revoked), len(j))
		return c.pushAccount(ctx, j)
	}
}

// accountCache is the account record of the last write of jsn-identities' account key.
type accountCache struct {
	rev    uint64
	rec    accountRecord
	claims *jwt.AccountClaims
}

// reviveRevocations revokes the keys of ended leases that the account does not list yet: a
// replica that stopped inside a batch window (or between ending a lease and revoking it) must
// not leave released credentials valid. ar is the account as read at start, nil for the one
// revokeNow knows.
func (c *Controller) reviveRevocations(ctx context.Context, ar *accountRecord) error {
	now := time.Now()
	keys := map[string]time.Time{}
	c.mu.Lock()
	for _, p := range c.pending {
		if p.rec.Lease.Status != api.StatusEnded {
			continue
		}
		for k, exp := range p.rec.Keys {
			if ar != nil {
				if _, ok := ar.Revoked[k]; ok {
					continue
				}
			}
			if exp.After(now) {
				keys[k] = exp
			}
		}
	}
	c.mu.Unlock()
	return c.revokeNow(ctx, keys)
}

// pushAccount makes the servers use accountJWT for LAB and keeps it in the data directory for the
// embedded server's next start.
func (c *Controller) pushAccount(ctx context.Context, accountJWT string) error {
	if c.srv != nil {
		if err := c.srv.UpdateAccountJWT(accountJWT); err != nil {
			return fmt.Errorf("push account: %w", err)
		}
	}
	// Memory resolvers listen on this subject in the system account: every server of a cluster,
	// and leaf nodes linked with a system account remote.
	subj := "$SYS.REQ.ACCOUNT." + c.auth.LabPub + ".CLAIMS.UPDATE"
	if err := c.sys.Publish(subj, nil, []byte(accountJWT)); err != nil {
		return fmt.Errorf("push account: %w", err)
	}
	if err := c.sys.Flush(ctx); err != nil {
		return fmt.Errorf("push account: %w", err)
	}
	c.fileMu.Lock()
	defer c.fileMu.Unlock()
	f, err := os.CreateTemp(c.o.Data, fileLabJWT+".*.tmp")
	if err != nil {
		return fmt.Errorf("push account: %w", err)
	}
	_, werr := f.Write([]byte(accountJWT))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), filepath.Join(c.o.Data, fileLabJWT))
	}
	if werr != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("push account: %w", werr)
	}
	return nil
}

// applyAccountLimits makes the live LAB account carry the controller's account limits (today:
// how many connections the whole account may hold), re-signing and pushing it if they differ.
func (c *Controller) applyAccountLimits(ctx context.Context) error {
	c.acctMu.Lock()
	defer c.acctMu.Unlock()
	c.acct = nil // read it afresh below, and let revokeNow do so after
	for attempt := 0; ; attempt++ {
		e, err := c.identities.Get(ctx, accountKey)
		if err != nil {
			return fmt.Errorf("account limits: %w", err)
		}
		var ar accountRecord
		if err := wire.Unmarshal(e.Value, &ar); err != nil {
			return fmt.Errorf("account limits: %w", err)
		}
		ac, err := jwt.DecodeAccountClaims(ar.JWT)
		if err != nil {
			return fmt.Errorf("account limits: %w", err)
		}
		want := int64(c.o.MaxConnections)
		if ac.Limits.Conn == want {
			return nil
		}
		ac.Limits.Conn = want
		if ar.JWT, err = ac.Encode(c.auth.operator); err != nil {
			return fmt.Errorf("account limits: sign account: %w", err)
		}
		b, err := wire.Marshal(ar)
		if err != nil {
			return err
		}
		if _, err := c.identities.Update(ctx, accountKey, b, e.Revision, 0); err != nil {
			if errors.Is(err, bus.ErrKeyChanged) && attempt < 20 {
				continue
			}
			return fmt.Errorf("account limits: %w", err)
		}
		c.log.Info("account limits applied", "max_connections", want)
		return c.pushAccount(ctx, ar.JWT)
	}
}

// accountWarnBytes is the LAB account JWT size from which the controller warns: claims updates
// travel as one message (max_payload, 1 MiB by default) and the whole JWT is re-signed per batch.
const accountWarnBytes = 256 << 10

// warnAccountSize logs, at most once an hour, that the LAB account JWT is getting large.
func (c *Controller) warnAccountSize(revocations, bytes int) {
	if bytes < accountWarnBytes || time.Since(c.acctWarned) < time.Hour {
		return
	}
	c.acctWarned = time.Now()
	c.log.Warn("the LAB account JWT is large: each lease released before its end is revoked until its credential expires; lower --max-duration",
		"bytes", bytes, "revocations", revocations, "limit", "max_payload (1 MiB by default)")
}

// repushAccount pushes the live LAB account to the servers again: one that missed an update
// (a leaf node whose link was down, a server that restarted from an older config) catches up.
func (c *Controller) repushAccount(ctx context.Context) error {
	c.acctMu.Lock()
	defer c.acctMu.Unlock()
	j := ""
	if c.acct != nil {
		j = c.acct.rec.JWT
	} else {
		e, err := c.identities.Get(ctx, accountKey)
		if err != nil {
			return fmt.Errorf("push account: %w", err)
		}
		var ar accountRecord
		if err := wire.Unmarshal(e.Value, &ar); err != nil {
			return fmt.Errorf("push account: %w", err)
		}
		j = ar.JWT
	}
	return c.pushAccount(ctx, j)
}
