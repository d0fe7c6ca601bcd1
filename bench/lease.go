package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller"
	"jsn.dev/jsn/controller/api"
)

// startController initialises a data directory and starts a controller on a loopback port with n
// simulated exporters labelled board=rpi4.
// offlineAfter 0 keeps the controller's production setting.
func startController(ctx context.Context, dir string, n int, offlineAfter time.Duration) (*controller.Controller, []byte, error) {
	adminCfg, err := controller.Init(dir, controller.InitOptions{})
	if err != nil {
		return nil, nil, err
	}
	c, err := controller.Start(ctx, controller.Options{Data: dir, Listen: "127.0.0.1:0", MaxDuration: time.Hour,
		OfflineAfter: offlineAfter, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, nil, err
	}
	if err := c.RegisterSimulated(ctx, "sim", n, map[string]string{"board": "rpi4"}); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, adminCfg, nil
}

// dialAdmin connects to c with the admin client config that controller.Init wrote.
func dialAdmin(ctx context.Context, c *controller.Controller, adminCfg []byte) (*client.Config, *client.Controller, error) {
	acfg, err := client.ParseConfig("", adminCfg)
	if err != nil {
		return nil, nil, err
	}
	acfg.Endpoint = c.URL()
	adm, err := client.DialController(ctx, acfg)
	return acfg, adm, err
}

// benchLease times lease grants (request by selector, then release) through the controller API
// with 1,000 registered exporters, next to one KV Create round trip on the same server (the
// floor: a grant is at least one CAS write of the lease record), and measures the controller's
// RSS with 10,000 exporters in a process of its own.
func benchLease(ctx context.Context, s *suite) error {
	dir, err := os.MkdirTemp("", "jsn-bench-ctl-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, adminCfg, err := startController(ctx, dir, 1000, time.Hour)
	if err != nil {
		return err
	}
	defer c.Close()
	_, adm, err := dialAdmin(ctx, c, adminCfg)
	if err != nil {
		return err
	}
	defer adm.Close()
	ccfgData, err := adm.CreateClient(ctx, "bench", nil, 0, false)
	if err != nil {
		return err
	}
	ccfg, err := client.ParseConfig("", ccfgData)
	if err != nil {
		return err
	}
	cl, err := bus.ConnectWith(ctx, c.URL(), bus.ConnectOptions{Name: "bench", Creds: []byte(ccfg.Credentials), CA: c.CA()})
	if err != nil {
		return err
	}
	defer cl.Close()
	call := func(verb string, req, out any) error {
		b, err := wire.Marshal(req)
		if err != nil {
			return err
		}
		m, err := cl.Request(ctx, api.ClientSubject("bench", verb), nil, b)
		if err != nil {
			return fmt.Errorf("%s: %w", verb, err)
		}
		if out == nil {
			return nil
		}
		return wire.Unmarshal(m.Data, out)
	}
	auth, err := controller.LoadAuthority(dir)
	if err != nil {
		return err
	}
	kvc, err := bus.ConnectWith(ctx, c.URL(), bus.ConnectOptions{Name: "bench-kv", Creds: auth.CtlCreds, CA: c.CA()})
	if err != nil {
		return err
	}
	defer kvc.Close()
	kv, err := kvc.KeyValue(ctx, bus.KVConfig{Bucket: "bench-floor", LimitMarkerTTL: time.Minute})
	if err != nil {
		return err
	}
	n := 2000
	if s.quick {
		n = 300
	}
	var grant, floor []time.Duration
	granted := 0
	var grantTime time.Duration
	for round := 0; round < 5; round++ {
		start := time.Now()
		for i := 0; i < n/5; i++ {
			t := time.Now()
			var r api.LeaseReply
			if err := call(api.VerbLeaseRequest, api.LeaseRequest{Selector: "board=rpi4", Duration: time.Minute}, &r); err != nil {
				return err
			}
			grant = append(grant, time.Since(t))
			if r.Lease == nil {
				return fmt.Errorf("lease request: no lease in the reply")
			}
			if err := call(api.VerbLeaseRelease, api.LeaseID{ID: r.Lease.ID}, nil); err != nil {
				return err
			}
			granted++
		}
		grantTime += time.Since(start)
		for i := 0; i < n/5; i++ {
			t := time.Now()
			if _, err := kv.Create(ctx, fmt.Sprintf("k%d-%d", round, i), []byte("lease record"), time.Minute); err != nil {
				return err
			}
			floor = append(floor, time.Since(t))
		}
	}
	s.add(Result{Name: "lease grant p50 (1,000 exporters)", Unit: "µs", Value: percentile(grant, 50),
		Baseline: map[string]float64{"kv-create": percentile(floor, 50)}, RatioTo: "kv-create"})
	s.add(Result{Name: "lease grant p99 (1,000 exporters)", Unit: "µs", Value: percentile(grant, 99),
		Baseline: map[string]float64{"kv-create": percentile(floor, 99)}, RatioTo: "kv-create", Target: "< 20000 µs"})
	s.add(Result{Name: "lease grants/s (grant + release, 1,000 exporters)", Unit: "grants/s",
		Value: float64(granted) / grantTime.Seconds(), Note: "sequential request+release pairs, one client"})

	// Controller RSS with 10,000 exporters, measured in a helper process.
	rss, err := helperRSS(ctx, 10000)
	if err != nil {
		return err
	}
	rss0, err := helperRSS(ctx, 0)
	if err != nil {
		return err
	}
	s.add(Result{Name: "controller RSS with 10,000 exporters", Unit: "MB", Value: rss,
		Baseline: map[string]float64{"no-exporters": rss0}, RatioTo: "no-exporters", Target: "< 300 MB"})
	return nil
}

// envHelper makes the bench binary run as a helper process (see runHelper).
const envHelper = "JSN_BENCH_HELPER"

// helperRSS re-runs this binary as a controller with n simulated exporters and returns its
// settled VmRSS in MB.
func helperRSS(ctx context.Context, n int) (float64, error) {
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), envHelper+"=controller-rss:"+strconv.Itoa(n))
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("controller helper: %w", err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

// runHelper runs the helper process named by $JSN_BENCH_HELPER and reports whether it did.
func runHelper() bool {
	h := os.Getenv(envHelper)
	if h == "" {
		return false
	}
	err := func() error {
		name, arg, _ := strings.Cut(h, ":")
		if name == "process-shell" {
			return runShellHelper(arg)
		}
		if name != "controller-rss" {
			return fmt.Errorf("unknown helper %q", name)
		}
		n, err := strconv.Atoi(arg)
		if err != nil {
			return err
		}
		ctx := context.Background()
		dir, err := os.MkdirTemp("", "jsn-bench-ctlrss-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c, _, err := startController(ctx, dir, n, time.Hour)
		if err != nil {
			return err
		}
		defer c.Close()
		// Settle: let the scheduler reconcile the registry a few times, then collect.
		time.Sleep(3 * time.Second)
		runtime.GC()
		rss, err := vmRSS(os.Getpid())
		if err != nil {
			return err
		}
		fmt.Println(rss)
		return nil
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	return true
}
