package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/client/web"
	"jsn.dev/jsn/controller"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/drivers/serial"
)

// benchDashboard measures the browser path: how long a byte the device prints takes to reach
// the dashboard's terminal (xterm.js took it in) in a real chromium, next to a Go watcher of the
// same tap in the same run; and the exporter process's CPU while one console is watched by
// 100 watchers against 1 (NATS fans out; the exporter publishes once).
func benchDashboard(ctx context.Context, s *suite) error {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		return skipped{"no chromium (Debian package chromium)"}
	}
	dir, err := os.MkdirTemp("", "jsn-bench-dash-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	jsn, err := buildJSN(dir)
	if err != nil {
		return err
	}
	data := filepath.Join(dir, "data")
	adminCfg, err := controller.Init(data, controller.InitOptions{})
	if err != nil {
		return err
	}
	c, err := controller.Start(ctx, controller.Options{Data: data, Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0",
		WebSocket: "127.0.0.1:0", WebSocketNoTLS: true, Dashboard: web.Static(), MaxDuration: time.Hour,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer c.Close()
	_, adm, err := dialAdmin(ctx, c, adminCfg)
	if err != nil {
		return err
	}
	defer adm.Close()

	// The board: a raw TCP serial console (socket://) the bench prints into.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	boardc := make(chan net.Conn, 1)
	// What the board receives: the time each "@<n>;" marker (typed input) arrived.
	var typedMu sync.Mutex
	typed := map[int]time.Time{}
	go func() {
		if conn, err := ln.Accept(); err == nil {
			go func() {
				var in strings.Builder
				buf := make([]byte, 4096)
				for {
					n, err := conn.Read(buf)
					if err != nil {
						return
					}
					now := time.Now()
					in.Write(buf[:n])
					typedMu.Lock()
					for _, seq := range markers(&in, '@') {
						typed[seq] = now
					}
					typedMu.Unlock()
				}
			}()
			boardc <- conn
		}
	}()
	expCfg, err := adm.CreateExporter(ctx, "rack1", nil)
	if err != nil {
		return err
	}
	cfgText := string(expCfg)
	if i := strings.Index(cfgText, "# The drivers"); i >= 0 {
		cfgText = cfgText[:i]
	}
	cfgText += fmt.Sprintf("export:\n  console: {type: serial.Port, config: {url: \"socket://%s\"}}\n", ln.Addr())
	cfgFile := filepath.Join(dir, "rack1.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o600); err != nil {
		return err
	}
	exp := exec.Command(jsn, "exporter", "run", "-c", cfgFile)
	exp.Env = append(os.Environ(), "JSN_ENDPOINT="+c.URL())
	if err := exp.Start(); err != nil {
		return err
	}
	defer func() { _ = exp.Process.Kill(); _ = exp.Wait() }()
	var board net.Conn
	select {
	case board = <-boardc:
		defer board.Close()
	case <-time.After(30 * time.Second):
		return fmt.Errorf("the exporter's serial port never connected to the board")
	}
	watchCfg, err := adm.CreateClientWith(ctx, api.CreateClientRequest{Name: "wall", Watch: []string{"rack1"}})
	if err != nil {
		return err
	}
	wcfg, err := client.ParseConfig("", watchCfg)
	if err != nil {
		return err
	}
	wcfg.Endpoint = c.URL()
	dial := func() (*client.Controller, error) { return client.DialController(ctx, wcfg) }

	// Send times by sequence number; a line is "#<seq>;".
	var mu sync.Mutex
	sent := map[int]time.Time{}
	goSeen := map[int]time.Time{}
	w, err := dial()
	if err != nil {
		return err
	}
	defer w.Close()
	wctx, wstop := context.WithCancel(ctx)
	defer wstop()
	var goBuf strings.Builder
	go func() {
		_ = w.Watch(wctx, "rack1", "console", client.TapOptions{}, func(b []byte) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			goBuf.Write(b)
			for _, seq := range seqs(&goBuf) {
				goSeen[seq] = now
			}
		})
	}()

	// The page, in chromium, logged in as the wall identity.
	tok, err := w.DashboardToken(ctx)
	if err != nil {
		return err
	}
	udd, err := os.MkdirTemp(dir, "chromium-")
	if err != nil {
		return err
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(udd),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true))
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx, chromedp.Navigate(tok.URL)); err != nil {
		return err
	}
	// The page records, per sequence number, when xterm.js took the line in (wall clock, ms).
	const hook = `(() => { window.jsnSeen = {}; let buf = "";
	  window.jsnOnConsole = (p, t) => { const now = performance.timeOrigin + performance.now(); buf += t;
	    let m; const re = /#(\d+);/g; let last = 0; while ((m = re.exec(buf)) !== null) { window.jsnSeen[m[1]] = now; last = re.lastIndex; }
	    buf = buf.slice(last); }; return true; })()`
	ready := false
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		ok, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(() => { if (document.querySelector('tr[data-exporter="rack1"]') && location.hash !== "#/x/rack1") location.hash = "#/x/rack1";
		  return !!document.querySelector('.console[data-path="console"] .xterm'); })()`))
		if err == nil && ok {
			ready = true
			break
		}
	}
	if !ready {
		return fmt.Errorf("the dashboard never showed rack1's console")
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](hook)); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // the page's history request and go-live (1.5 s at most)

	n := 300
	if s.quick {
		n = 60
	}
	for i := 0; i < n; i++ {
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		if _, err := fmt.Fprintf(board, "#%d;\r\n", i); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	seen, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]float64](`window.jsnSeen`))
	if err != nil {
		return err
	}
	var browser, gows []time.Duration
	mu.Lock()
	for i := 0; i < n; i++ {
		if ms, ok := seen[strconv.Itoa(i)]; ok {
			at := time.UnixMicro(int64(ms * 1000))
			browser = append(browser, at.Sub(sent[i]))
		}
		if at, ok := goSeen[i]; ok {
			gows = append(gows, at.Sub(sent[i]))
		}
	}
	mu.Unlock()
	if len(browser) < n*9/10 {
		return fmt.Errorf("the page showed %d of %d lines", len(browser), n)
	}
	note := fmt.Sprintf("%d lines, one every 20 ms; chromium headless, xterm.js write callback; clocks: the same host's", len(browser))
	s.add(Result{Name: "console byte → dashboard terminal p50", Unit: "µs", Value: percentile(browser, 50),
		Baseline: map[string]float64{"go-watcher": percentile(gows, 50)}, RatioTo: "go-watcher", Note: note})
	s.add(Result{Name: "console byte → dashboard terminal p99", Unit: "µs", Value: percentile(browser, 99),
		Baseline: map[string]float64{"go-watcher": percentile(gows, 99)}, RatioTo: "go-watcher", Target: "≤ 50000 µs (loopback)"})
	if err := benchTyping(ctx, s, adm, bctx, &typedMu, typed); err != nil {
		return err
	}
	bcancel()
	acancel()

	// Exporter CPU: one console printing ~16 KiB/s for a while, with 1 watcher (the Go one
	// above) and then with 100.
	secs := 6
	if s.quick {
		secs = 3
	}
	load := func() (float64, error) {
		before, err := procCPU(exp.Process.Pid)
		if err != nil {
			return 0, err
		}
		line := strings.Repeat("x", 78) + "\r\n"
		t0 := time.Now()
		for time.Since(t0) < time.Duration(secs)*time.Second {
			for j := 0; j < 4; j++ {
				if _, err := io.WriteString(board, line); err != nil {
					return 0, err
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		after, err := procCPU(exp.Process.Pid)
		if err != nil {
			return 0, err
		}
		return (after - before).Seconds() * 1000 / time.Since(t0).Seconds(), nil // ms CPU per s
	}
	one, err := load()
	if err != nil {
		return err
	}
	var extra []*client.Controller
	defer func() {
		for _, x := range extra {
			x.Close()
		}
	}()
	for i := 0; i < 99; i++ {
		x, err := dial()
		if err != nil {
			return err
		}
		extra = append(extra, x)
		go func() { _ = x.Watch(wctx, "rack1", "console", client.TapOptions{}, func([]byte) {}) }()
	}
	time.Sleep(time.Second) // their subscriptions in place
	hundred, err := load()
	if err != nil {
		return err
	}
	// 1 watcher again (the others gone): the baseline is the mean of before and after, so that
	// a machine that got busier or calmer meanwhile weighs on both sides.
	for _, x := range extra {
		x.Close()
	}
	extra = nil
	time.Sleep(time.Second)
	again, err := load()
	if err != nil {
		return err
	}
	s.add(Result{Name: "exporter CPU, one console watched by 100", Unit: "ms/s", Value: hundred,
		Baseline: map[string]float64{"1-watcher": (one + again) / 2}, RatioTo: "1-watcher", Target: "≤ 1.2×",
		Note: fmt.Sprintf("jsn exporter run process, run time of its threads (schedstat), ~16 KiB/s of console output; 1 watcher before %.3g, after %.3g ms/s", one, again)})
	return nil
}

// seqs takes the "#<n>;" markers out of b, returning their numbers (and keeping a partial tail).
func seqs(b *strings.Builder) []int { return markers(b, '#') }

// markers takes the "<mark><n>;" markers out of b, returning their numbers (and keeping a
// partial tail).
func markers(b *strings.Builder, mark byte) []int {
	s := b.String()
	var out []int
	last := 0
	for {
		i := strings.IndexByte(s[last:], mark)
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[last+i:], ';')
		if j < 0 {
			break
		}
		if n, err := strconv.Atoi(s[last+i+1 : last+i+j]); err == nil {
			out = append(out, n)
		}
		last += i + j + 1
	}
	rest := s[last:]
	b.Reset()
	b.WriteString(rest)
	return out
}

// procCPU is the CPU time process pid has used: the sum over its threads of the scheduler's
// run time (/proc/PID/task/*/schedstat, nanoseconds). /proc/PID/stat counts in ticks of 10 ms,
// too coarse for an exporter using a few ms per second over a few seconds.
func procCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("/proc/%d/task: no threads (%v)", pid, err)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just exited
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return 0, fmt.Errorf("%s: empty", t)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// benchTyping measures typing from the page: the lease holder's login (jsn dashboard --lease)
// types "@<n>;" into rack1's console in chromium; the time from the dispatch of the ";" key to
// the board receiving it, against a Go client writing the same markers into the console's byte
// stream in the same run. typed is filled by the board's reader.
func benchTyping(ctx context.Context, s *suite, adm *client.Controller, bctx context.Context, mu *sync.Mutex, typed map[int]time.Time) error {
	rep, err := adm.RequestLease(ctx, api.LeaseRequest{Exporter: "rack1", Duration: 10 * time.Minute})
	if err != nil {
		return err
	}
	defer func() { _ = adm.Release(context.WithoutCancel(ctx), rep.Lease.ID) }()
	o, err := adm.LeaseOptions(rep)
	if err != nil {
		return err
	}
	ex, err := client.Dial(ctx, o)
	if err != nil {
		return err
	}
	defer ex.Close()
	if err := ex.WaitReady(ctx, nil); err != nil {
		return err
	}
	tok, err := adm.DashboardTokenFor(ctx, rep.Lease.ID)
	if err != nil {
		return err
	}
	tctx, tcancel := chromedp.NewContext(bctx)
	defer tcancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(tok.URL)); err != nil {
		return err
	}
	ready := false
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		ok, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`(() => { if (document.querySelector('tr[data-exporter="rack1"]') && location.hash !== "#/x/rack1") location.hash = "#/x/rack1";
		  return document.querySelector('.console[data-path="console"]')?.dataset.input === "open"; })()`))
		if err == nil && ok {
			ready = true
			break
		}
	}
	if !ready {
		return fmt.Errorf("the holder's page never opened rack1's console input")
	}
	sel := chromedp.CSS(`.console[data-path="console"] textarea.xterm-helper-textarea`)
	if err := chromedp.Do(tctx, chromedp.Focus(sel)); err != nil {
		return err
	}
	// A key as a keyboard sends it: keyDown carrying the text, keyUp.
	key := func(r rune) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			ev := kb.Encode(r)
			down := *ev[0]
			for _, e := range ev {
				if e.Type == kb.KeyChar {
					down.Text, down.UnmodifiedText = e.Text, e.UnmodifiedText
				}
			}
			for _, e := range []*input.DispatchKeyEventParams{&down, ev[len(ev)-1]} {
				if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, *e); err != nil {
					return err
				}
			}
			return nil
		})
	}
	n := 100
	if s.quick {
		n = 30
	}
	sent := map[int]time.Time{}
	for i := 0; i < n; i++ {
		for _, r := range fmt.Sprintf("@%d", i) {
			if err := chromedp.Do(tctx, key(r)); err != nil {
				return err
			}
		}
		sent[i] = time.Now()
		if err := chromedp.Do(tctx, key(';')); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The Go baseline: the same markers written into the console's stream.
	st, err := serial.NewClient(ex.Driver("console")).Connect(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	for i := n; i < 2*n; i++ {
		sent[i] = time.Now()
		if _, err := fmt.Fprintf(st, "@%d;", i); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	var page, gows []time.Duration
	mu.Lock()
	for i := 0; i < 2*n; i++ {
		if at, ok := typed[i]; ok {
			if i < n {
				page = append(page, at.Sub(sent[i]))
			} else {
				gows = append(gows, at.Sub(sent[i]))
			}
		}
	}
	mu.Unlock()
	if len(page) < n*9/10 || len(gows) < n*9/10 {
		return fmt.Errorf("the board received %d of %d typed markers and %d of %d written by the Go client", len(page), n, len(gows), n)
	}
	note := fmt.Sprintf("%d keys; from chromium's dispatch of the key (CDP Input.dispatchKeyEvent) to the board; Go: serial client stream write", len(page))
	s.add(Result{Name: "dashboard key → device p50", Unit: "µs", Value: percentile(page, 50),
		Baseline: map[string]float64{"go-stream": percentile(gows, 50)}, RatioTo: "go-stream", Note: note})
	s.add(Result{Name: "dashboard key → device p99", Unit: "µs", Value: percentile(page, 99),
		Baseline: map[string]float64{"go-stream": percentile(gows, 99)}, RatioTo: "go-stream"})
	return nil
}
