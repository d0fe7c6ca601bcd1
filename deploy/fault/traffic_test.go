package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
)

// traffic is lease request/use/release cycles by several clients, and what went wrong.
type traffic struct {
	t        *testing.T
	selector string
	workers  []*worker

	mu     sync.Mutex
	res    result
	holds  map[string][]hold // exporter → leases held on it
	cycles []cycle
}

type worker struct {
	name string
	ctl  *client.Controller
}

// hold is a lease as its holder saw it: from the grant reply to the release request.
type hold struct {
	lease             string
	granted, released time.Time
}

type cycle struct {
	start, done time.Time
	ok          bool
	steps       string // how long each step took
}

// result is what one scenario measured.
type result struct {
	Scenario string
	Cycles   int      // completed request/use/release cycles
	Lost     []string // leases gone before their holder released them
	Double   []string // two holders of one exporter at once
	Reason   []string // leases whose end reason is not their holder's release
	Failed   []string // lease operations that failed (after the client library's retries)
	CallErrs int      // driver calls that failed (not refused) and were repeated by the test
	Retries  int      // controller calls the client library repeated
	Recovery time.Duration
	Worst    time.Duration // the longest cycle
	WorstAt  string        // its steps
	Note     string
}

func newTraffic(t *testing.T, selector string, workers []*worker) *traffic {
	tr := &traffic{t: t, selector: selector, workers: workers, holds: map[string][]hold{}}
	for _, w := range workers {
		w.ctl.OnRetry = func(verb string, err error, next time.Duration) {
			tr.mu.Lock()
			tr.res.Retries++
			tr.mu.Unlock()
		}
	}
	return tr
}

// run runs cycles until n have completed; after n/3 it calls inject (which returns a
// description, or "" for none) and after 2n/3 heal (nil: none).
func (tr *traffic) run(name string, n int, inject func() string, heal func()) result {
	tr.mu.Lock()
	tr.res = result{Scenario: name}
	tr.cycles = nil
	tr.holds = map[string][]hold{}
	tr.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range tr.workers {
		wg.Go(func() {
			for ctx.Err() == nil && tr.completed() < n {
				if !tr.cycle(ctx, w) {
					sleepCtx(ctx, 100*time.Millisecond)
				}
			}
		})
	}
	var faultAt time.Time
	if inject != nil {
		for ctx.Err() == nil && tr.completed() < n/3 {
			sleepCtx(ctx, 10*time.Millisecond)
		}
		faultAt = time.Now()
		if note := inject(); note != "" {
			tr.mu.Lock()
			tr.res.Note = note
			tr.mu.Unlock()
		}
		if heal != nil {
			for ctx.Err() == nil && tr.completed() < 2*n/3 {
				sleepCtx(ctx, 10*time.Millisecond)
			}
			heal()
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		tr.t.Errorf("%s: %d of %d cycles in 4 minutes", name, tr.completed(), n)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	r := tr.res
	for _, c := range tr.cycles {
		if d := c.done.Sub(c.start); d > r.Worst {
			r.Worst, r.WorstAt = d, c.start.Format("15:04:05.000")+" "+c.steps
		}
		if !faultAt.IsZero() && c.ok && !c.start.Before(faultAt) {
			if d := c.done.Sub(faultAt); r.Recovery == 0 || d < r.Recovery {
				r.Recovery = d
			}
		}
	}
	return r
}

func (tr *traffic) completed() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.res.Cycles
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (tr *traffic) record(list *[]string, format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	msg := time.Now().Format("15:04:05.000 ") + fmt.Sprintf(format, args...)
	*list = append(*list, msg)
	tr.t.Log(msg)
}

// cycle requests a lease, waits for it if queued, uses it, releases it and checks how it
// ended. It reports whether everything went right.
func (tr *traffic) cycle(ctx context.Context, w *worker) bool {
	start := time.Now()
	var steps strings.Builder
	last := start
	step := func(what string) {
		fmt.Fprintf(&steps, "%s %v, ", what, time.Since(last).Round(time.Millisecond))
		last = time.Now()
	}
	ok := tr.leaseCycle(ctx, w, step)
	if ctx.Err() != nil {
		return ok
	}
	tr.mu.Lock()
	tr.res.Cycles++
	tr.cycles = append(tr.cycles, cycle{start: start, done: time.Now(), ok: ok, steps: steps.String()})
	tr.mu.Unlock()
	return ok
}

func (tr *traffic) leaseCycle(ctx context.Context, w *worker, step func(string)) bool {
	rep, err := w.ctl.RequestLease(ctx, leaseRequest(tr.selector))
	step("request")
	if err != nil {
		if ctx.Err() == nil {
			tr.record(&tr.res.Failed, "%s: lease request: %v", w.name, err)
		}
		return false
	}
	id := rep.Lease.ID
	if rep.Lease.Status != api.StatusActive {
		rep, err = w.ctl.WaitLease(ctx, id, nil)
		step("queued")
		if err != nil {
			if ctx.Err() == nil {
				tr.record(&tr.res.Failed, "%s: wait for lease %s: %v", w.name, id, err)
			}
			tr.release(w, id)
			return false
		}
	}
	granted := time.Now()
	l := *rep.Lease
	ok := tr.use(ctx, w, rep, step)
	released := time.Now()
	tr.mu.Lock()
	for _, h := range tr.holds[l.Exporter] {
		if h.granted.Before(released) && granted.Before(h.released) {
			msg := fmt.Sprintf("%s: leases %s and %s held %s at once", time.Now().Format("15:04:05.000"), h.lease, id, l.Exporter)
			tr.res.Double = append(tr.res.Double, msg)
			tr.t.Log(msg)
			ok = false
		}
	}
	tr.holds[l.Exporter] = append(tr.holds[l.Exporter], hold{lease: id, granted: granted, released: released})
	tr.mu.Unlock()
	if ctx.Err() != nil {
		tr.release(w, id)
		return false
	}
	// Before the release the controller must still have it active.
	g, err := w.ctl.GetLease(ctx, id)
	step("get")
	if err != nil {
		if ctx.Err() == nil {
			tr.record(&tr.res.Failed, "%s: lease get %s: %v", w.name, id, err)
		}
		ok = false
	} else if g.Lease.Status != api.StatusActive {
		tr.record(&tr.res.Lost, "%s: lease %s on %s is %s before its release: %s", w.name, id, l.Exporter, g.Lease.Status, g.Lease.Reason)
		ok = false
	}
	err = w.ctl.Release(ctx, id)
	step("release")
	if err != nil {
		if ctx.Err() == nil {
			tr.record(&tr.res.Failed, "%s: lease release %s: %v", w.name, id, err)
		}
		return false
	}
	g, err = w.ctl.GetLease(ctx, id)
	step("get")
	switch {
	case err != nil:
		if ctx.Err() == nil {
			tr.record(&tr.res.Failed, "%s: lease get %s after release: %v", w.name, id, err)
		}
		ok = false
	case g.Lease.Status != api.StatusEnded || g.Lease.Reason != "released by "+w.name:
		tr.record(&tr.res.Reason, "%s: lease %s after release: status %s, reason %q", w.name, id, g.Lease.Status, g.Lease.Reason)
		ok = false
	}
	return ok
}

// use connects with the lease credential, waits until the exporter serves the lease, calls it,
// holds it a moment and calls it again. A refusal by the exporter means the lease is lost.
func (tr *traffic) use(ctx context.Context, w *worker, rep *api.LeaseReply, step func(string)) bool {
	id, exp := rep.Lease.ID, rep.Lease.Exporter
	opts, err := w.ctl.LeaseOptions(rep)
	if err != nil {
		tr.record(&tr.res.Failed, "%s: lease %s options: %v", w.name, id, err)
		return false
	}
	var ex *client.Exporter
	err = tr.retry(ctx, func(ctx context.Context) error {
		var err error
		ex, err = client.Dial(ctx, opts)
		return err
	})
	step("dial")
	if err != nil {
		tr.lostOrFailed(ctx, w, id, exp, "connect with the lease credential", err)
		return false
	}
	defer ex.Close()
	steps := []struct {
		what string
		fn   func(ctx context.Context) error
	}{
		{"wait until served", func(ctx context.Context) error { return ex.WaitReady(ctx, nil) }},
		{"power.on", func(ctx context.Context) error { _, err := ex.Driver("power").Call(ctx, "on"); return err }},
		{"hold", func(ctx context.Context) error {
			sleepCtx(ctx, time.Duration(10+rand.IntN(40))*time.Millisecond)
			return nil
		}},
		{"power.status", func(ctx context.Context) error {
			var s string
			return ex.Driver("power").CallInto(ctx, "status", &s)
		}},
	}
	for _, s := range steps {
		err := tr.retry(ctx, s.fn)
		step(s.what)
		if err != nil {
			tr.lostOrFailed(ctx, w, id, exp, s.what, err)
			return false
		}
	}
	return true
}

// retry repeats fn while it fails other than by a refusal (a server or exporter that is away
// for a moment), for up to 30 s, counting the failures.
func (tr *traffic) retry(ctx context.Context, fn func(ctx context.Context) error) error {
	end := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := fn(cctx)
		cancel()
		if err == nil || refused(err) || ctx.Err() != nil || time.Now().After(end) {
			return err
		}
		tr.mu.Lock()
		tr.res.CallErrs++
		tr.mu.Unlock()
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

func refused(err error) bool {
	return errors.Is(err, client.ErrPermissionDenied) || strings.Contains(strings.ToLower(err.Error()), "authorization")
}

func (tr *traffic) lostOrFailed(ctx context.Context, w *worker, id, exp, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	if refused(err) {
		tr.record(&tr.res.Lost, "%s: lease %s on %s: %s: %v", w.name, id, exp, what, err)
		return
	}
	tr.record(&tr.res.Failed, "%s: lease %s on %s: %s: %v", w.name, id, exp, what, err)
}

// release ends id after a failed cycle, best effort.
func (tr *traffic) release(w *worker, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = w.ctl.Release(ctx, id)
}

// report logs the results as a table (the figures of docs/performance.md) and fails the test
// for every lost lease, double grant, wrong end reason and failed operation.
func report(t *testing.T, rs []result) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-34s %6s %5s %6s %6s %6s %8s %9s %8s  %s\n", "scenario", "cycles", "lost", "double", "reason", "failed", "retried", "recovery", "worst", "note")
	for _, r := range rs {
		rec := "-"
		if r.Recovery > 0 {
			rec = r.Recovery.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "%-34s %6d %5d %6d %6d %6d %7d %7d %9s %8s  %s\n", r.Scenario, r.Cycles, len(r.Lost), len(r.Double),
			len(r.Reason), len(r.Failed), r.Retries, r.CallErrs, rec, r.Worst.Round(10*time.Millisecond), r.Note)
	}
	for _, r := range rs {
		fmt.Fprintf(&b, "%s: worst cycle at %s\n", r.Scenario, r.WorstAt)
	}
	t.Log(b.String())
	for _, r := range rs {
		for _, list := range []struct {
			what  string
			items []string
		}{{"lost leases", r.Lost}, {"double grants", r.Double}, {"wrong end reasons", r.Reason}, {"failed operations", r.Failed}} {
			if len(list.items) > 0 {
				sort.Strings(list.items)
				t.Errorf("%s: %d %s, want 0; first: %s", r.Scenario, len(list.items), list.what, list.items[0])
			}
		}
	}
}
