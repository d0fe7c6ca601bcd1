package fault

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// only reports whether scenario runs: JSN_FAULT_ONLY, if set, picks scenarios whose name
// contains it (to look at one closely).
func only(scenario string) bool {
	o := os.Getenv("JSN_FAULT_ONLY")
	return o == "" || strings.Contains(scenario, o)
}

// cycles is how many lease cycles each scenario runs.
func cycles() int {
	if long() {
		return 300
	}
	return 30
}

// TestFaultCluster runs lease traffic (6 clients, 4 exporters) on the three-node cluster with
// two controller replicas, and under it: nothing, then kill -9 of a NATS server, of the
// JetStream meta leader, a SIGSTOP of a server (a partition that heals), and kill -9 of the
// scheduling controller replica, each killed process restarted after a third of the cycles.
func TestFaultCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node NATS cluster, two controllers and four exporters as processes")
	}
	n := cycles()
	l := newLab(t)
	l.startCluster()
	l.startControllers(2)
	l.startExporters("board", 4, map[string]string{"fault": "yes"}, "")
	var ws []*worker
	for i := range 6 {
		name := fmt.Sprintf("c%d", i)
		ws = append(ws, &worker{name: name, ctl: l.client(name)})
	}
	l.waitOnline(ws[0].ctl, "fault=yes", 4)
	tr := newTraffic(t, "fault=yes", ws)
	victim := -1
	scenarios := []struct {
		name   string
		inject func() string
		heal   func()
	}{
		{"no fault", nil, nil},
		{"kill -9 of a NATS server", func() string {
			victim = (l.mustMetaLeader() + 1) % 3
			l.nodes[victim].kill()
			return fmt.Sprintf("nats-%d (not the meta leader)", victim+1)
		}, func() { l.nodes[victim].start() }},
		{"kill -9 of the meta leader", func() string {
			victim = l.mustMetaLeader()
			killed := time.Now()
			l.nodes[victim].kill()
			took := l.waitFor("a new meta leader", func(ctx context.Context) error {
				_, err := l.metaLeader(ctx)
				return err
			})
			return fmt.Sprintf("nats-%d; new meta leader after %v", victim+1, took(killed))
		}, func() { l.nodes[victim].start() }},
		{"SIGSTOP of a NATS server", func() string {
			victim = (l.mustMetaLeader() + 2) % 3
			l.nodes[victim].signal(syscall.SIGSTOP)
			return fmt.Sprintf("nats-%d stopped, then continued", victim+1)
		}, func() { l.nodes[victim].signal(syscall.SIGCONT) }},
		{"kill -9 of the scheduling replica", func() string {
			victim = l.mustSchedulerLeader()
			killed := time.Now()
			l.ctls[victim].kill()
			took := l.waitFor("another replica schedules", func(ctx context.Context) error {
				_, err := l.schedulerLeader(ctx)
				return err
			})
			return fmt.Sprintf("controller-%d; takeover after %v", victim+1, took(killed))
		}, func() { l.ctls[victim].start() }},
	}
	var rs []result
	for _, sc := range scenarios {
		if !only(sc.name) {
			continue
		}
		rs = append(rs, tr.run(sc.name, n, sc.inject, sc.heal))
		l.waitHealthy()
	}
	report(t, rs)
	l.checkRunning()
}

func (l *lab) mustMetaLeader() int {
	l.t.Helper()
	i := -1
	eventually(l.t, "meta leader", 60*time.Second, func(ctx context.Context) error {
		var err error
		i, err = l.metaLeader(ctx)
		return err
	})
	return i
}

func (l *lab) mustSchedulerLeader() int {
	l.t.Helper()
	i := -1
	eventually(l.t, "scheduling replica", 60*time.Second, func(ctx context.Context) error {
		var err error
		i, err = l.schedulerLeader(ctx)
		return err
	})
	return i
}

// waitFor polls fn until it succeeds (for up to a minute) and returns a function giving the
// time from a moment to that success.
func (l *lab) waitFor(what string, fn func(ctx context.Context) error) func(since time.Time) time.Duration {
	l.t.Helper()
	eventually(l.t, what, 60*time.Second, fn)
	at := time.Now()
	return func(since time.Time) time.Duration { return at.Sub(since).Round(100 * time.Millisecond) }
}

// waitHealthy waits until every server answers /healthz (on a JetStream cluster: its streams
// have caught up).
func (l *lab) waitHealthy() {
	l.t.Helper()
	eventually(l.t, "cluster healthy", 90*time.Second, func(ctx context.Context) error {
		for i := range l.nodes {
			if _, err := get(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", l.mons[i])); err != nil {
				return fmt.Errorf("nats-%d: %w", i+1, err)
			}
		}
		return nil
	})
}

// checkRunning fails the test for every process that died on its own.
func (l *lab) checkRunning() {
	for _, ps := range [][]*proc{l.nodes, l.ctls, l.exps} {
		for _, p := range ps {
			if !p.running() {
				continue
			}
			p.mu.Lock()
			exited := p.exited
			p.mu.Unlock()
			select {
			case <-exited:
				l.t.Errorf("%s exited on its own:\n%s", p.name, tail(p.log, 30))
			default:
			}
		}
	}
}
