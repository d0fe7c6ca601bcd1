package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/controller/api"
)

// exitLeaseEnded is jsn shell's exit code when the lease of a remote session ended (expired,
// or released elsewhere) while its child ran; like timeout(1)'s 124 when its command timed out.
const exitLeaseEnded = 124

// runRemoteShell leases an exporter from the controller and runs the shell on it.
func runRemoteShell(ctx context.Context, opts *shellOptions) (err error) {
	f := opts.f
	req, err := leaseTargets(opts.Selectors, opts.Count, opts.Names, f.ExporterName)
	if err != nil {
		return err
	}
	if len(req.Parts) > 0 {
		return runGroupShell(ctx, opts, req) // several exporters (group.go)
	}
	req.Duration, req.Keepalive = opts.Duration, opts.Keepalive

	// Until the child runs, Ctrl-C or SIGTERM withdraws the request and ends jsn; once it runs,
	// signals go to the child (runChild) and the lease is released when it exits.
	wctx, stop := cmdutil.Interruptible(ctx)
	defer stop()
	ctl, err := connectController(wctx, f)
	if err != nil {
		return err
	}
	defer ctl.Close()
	rep, err := acquireLease(wctx, ctl, req, opts.Wait, true, f)
	if err != nil {
		return err
	}
	lease := rep.Lease
	if lease.Keepalive > 0 {
		kctx, kcancel := context.WithCancel(context.WithoutCancel(ctx))
		kdone := make(chan struct{})
		go func() {
			defer close(kdone)
			_ = ctl.KeepAlive(kctx, lease) // its end is noticed by watchLease
		}()
		defer func() { kcancel(); <-kdone }() // runs after the release below
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rerr := ctl.Release(rctx, lease.ID); rerr != nil && !client.IsNotFoundOrEnded(rerr) {
			fmt.Fprintf(f.ErrOut, "jsn: release lease %s: %v\n", lease.ID, rerr)
		}
	}()

	dir, err := os.MkdirTemp("", "jsn-") // 0700
	if err != nil {
		return fmt.Errorf("create session directory: %w", err)
	}
	defer os.RemoveAll(dir)
	credsFile := filepath.Join(dir, "lease.creds")
	if err := os.WriteFile(credsFile, rep.Credential.Creds(), 0o600); err != nil {
		return fmt.Errorf("write lease credential: %w", err)
	}
	caFile := ""
	if ca := ctl.CA(); ca != nil {
		caFile = filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(caFile, ca, 0o600); err != nil {
			return fmt.Errorf("write the controller's CA: %w", err)
		}
	}
	o, err := ctl.LeaseOptions(rep)
	if err != nil {
		return err
	}
	ex, err := client.DialWith(wctx, o, retryNotice(f))
	if err != nil {
		return endedError(ctx, ctl, lease.ID, fmt.Errorf("connect to %s: %w", o.Host, err))
	}
	defer ex.Close()

	// Hook output: the beforeLease output replayed by the exporter, then whatever comes live.
	var mu sync.Mutex
	print := func(h api.HookOutput) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprint(f.ErrOut, hookLine(h))
	}
	ready := make(chan struct{})
	hctx, hcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { hcancel(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = ex.Hooks(hctx, func(h api.HookOutput) {
			select {
			case <-ready:
			default:
				return // before the replay: it has these lines
			}
			if h.Lease == lease.ID && h.Hook == "beforeLease" {
				return
			}
			print(h)
		})
	}()
	if err := ex.WaitReady(wctx, print); err != nil {
		return endedError(ctx, ctl, lease.ID, err)
	}
	close(ready)

	path, err := sessionPath(dir)
	if err != nil {
		return err
	}
	env := sessionEnv(os.Environ(), map[string]string{
		client.EnvHost:      o.Host,
		client.EnvExporter:  lease.Exporter,
		client.EnvLease:     lease.ID,
		client.EnvCreds:     credsFile,
		client.EnvCA:        caFile,
		client.EnvWSURL:     "", // an outer local session's: not this session's bus
		client.EnvWSToken:   "",
		client.EnvExporters: "", // an outer multi-exporter session's
		client.EnvLeases:    "",
		client.EnvCredsDir:  "",
		"PATH":              path,
	})
	argv := opts.Command
	if len(argv) == 0 {
		sh := os.Getenv("SHELL")
		if sh == "" {
			sh = "/bin/sh"
		}
		argv = []string{sh}
		fmt.Fprintf(f.ErrOut, "jsn: exporter %q leased (lease %s until %s); exit to release\n", lease.Exporter, lease.ID, formatTime(lease.End))
	}
	// Watch the lease: renew the credential file when it is extended, end the child when it
	// ends.
	end := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		why, over := watchLease(hctx, ctl, *lease, credsFile, rep.Credential.JWT)
		if !over {
			return
		}
		if why == "expired" {
			fmt.Fprintf(f.ErrOut, "jsn: lease %s expired\n", lease.ID)
		} else {
			fmt.Fprintf(f.ErrOut, "jsn: lease %s ended: %s\n", lease.ID, why)
		}
		close(end)
	}()
	stop() // from here on signals go to the child
	return runChild(f, argv, env, path, end)
}

// endedError explains err, a failure to reach the exporter of lease id, when the lease is already
// over (a failed beforeLease hook ended it, and its credential was revoked before jsn connected):
// exit 5 (permission denied) with the controller's reason.
func endedError(ctx context.Context, ctl *client.Controller, id string, err error) error {
	if !errors.Is(err, client.ErrPermissionDenied) && !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		return err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	r, gerr := ctl.GetLease(cctx, id)
	if gerr != nil || r.Lease.Status != api.StatusEnded {
		return err
	}
	return &cmdutil.ExitError{Code: exitPermission, Message: fmt.Sprintf("lease %s ended: %s", id, r.Lease.Reason)}
}

// Polling bounds of watchLease: it asks at the lease's end, and at least every leaseCheckMax
// (to notice a release by someone else), but not more often than leaseCheckMin.
var (
	leaseCheckMin = 250 * time.Millisecond
	leaseCheckMax = 5 * time.Second
)

// watchLease follows lease l on the controller until ctx ends (it returns false) or the lease
// ends (it returns why and true). When the lease is extended its renewed credential replaces
// credsFile, so the session's new connections keep working past the original end.
func watchLease(ctx context.Context, ctl *client.Controller, l api.Lease, credsFile, jwt string) (why string, over bool) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		t.Reset(min(max(time.Until(l.End), leaseCheckMin), leaseCheckMax))
		select {
		case <-ctx.Done():
			return "", false
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r, err := ctl.GetLease(cctx, l.ID)
		cancel()
		switch {
		case ctx.Err() != nil:
			return "", false
		case errors.Is(err, client.ErrNotFound):
			if !l.End.IsZero() && !time.Now().Before(l.End) {
				return "expired", true // the record is gone because the lease ran out
			}
			return "ended", true
		case err != nil:
			continue // the controller is unreachable: ask again; the exporter enforces the end anyway
		case r.Lease.Status == api.StatusEnded:
			why := r.Lease.Reason
			if why == "" {
				why = "ended"
			}
			return why, true
		}
		if !r.Lease.End.IsZero() {
			l.End = r.Lease.End
		}
		if r.Credential != nil && r.Credential.JWT != "" && r.Credential.JWT != jwt {
			if err := replaceFile(credsFile, r.Credential.Creds()); err == nil {
				jwt = r.Credential.JWT
			}
		}
	}
}

// replaceFile atomically replaces file with data (0600).
func replaceFile(file string, data []byte) error {
	tmp := file + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}
