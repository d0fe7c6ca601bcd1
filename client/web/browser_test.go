package web_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/client/web"
	"jsn.dev/jsn/controller"
	"jsn.dev/jsn/controller/api"
	_ "jsn.dev/jsn/drivers/all"
	"jsn.dev/jsn/exporter"
	"jsn.dev/jsn/internal/testkit"
)

var screenshot = flag.String("screenshot", "", "write the exporter page's screenshot here (docs/dashboard.png)")

// browser is the one chromium of this package's tests: each test opens tabs in it.
var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	err    error
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	os.Exit(code)
}

// tab opens a tab of the package's chromium (started on first use).
func tab(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getuid() != 0 && os.Getenv("CI") == "" {
			t.Skip("chromium not installed (Debian package chromium; .ci/run installs it)")
		}
		t.Fatal("chromium not installed: apt-get install chromium")
	}
	browser.once.Do(func() {
		dir, err := os.MkdirTemp("", "jsn-chromium-")
		if err != nil {
			browser.err = err
			return
		}
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(dir),
			chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true), chromedp.WindowSize(1200, 900),
		}
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, bcancel := chromedp.NewContext(actx)
		browser.ctx = bctx
		browser.cancel = func() { bcancel(); acancel(); os.RemoveAll(dir) }
		browser.err = chromedp.Do(bctx) // starts it
	})
	if browser.err != nil {
		t.Fatalf("start chromium: %v", browser.err)
	}
	ctx, cancel := chromedp.NewContext(browser.ctx)
	t.Cleanup(cancel)
	ctx, cancel2 := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel2)
	return ctx
}

// board is a serial console behind socket://: what the test writes to it, the board printed;
// what it receives it records and echoes, like a shell on a tty.
type board struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
	in    []byte // everything received
}

func newBoard(t *testing.T) *board {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &board{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			go func() {
				buf := make([]byte, 512)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					b.mu.Lock()
					b.in = append(b.in, buf[:n]...)
					b.mu.Unlock()
					_, _ = c.Write(buf[:n])
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
	})
	return b
}

func (b *board) print(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		_, _ = c.Write([]byte(s))
	}
}

// received is everything the board has received.
func (b *board) received() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.in)
}

func (b *board) connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns) > 0
}

// runExporter runs exporter name with the drivers of export until stop or the test's end.
func runExporter(t *testing.T, admin *client.Controller, name, export string) (stop func()) {
	t.Helper()
	cfgb, err := admin.CreateExporter(t.Context(), name, map[string]string{"rack": name})
	if err != nil {
		t.Fatal(err)
	}
	s := string(cfgb)
	if i := strings.Index(s, "# The drivers"); i >= 0 {
		s = s[:i]
	}
	file := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(file, []byte(s+export), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := exporter.LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exporter.RunRemote(ctx, cfg, nil) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("exporter %s: %v", name, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func dial(t *testing.T, cfg []byte) *client.Controller {
	t.Helper()
	c, err := client.ParseConfig("test.yaml", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := client.DialController(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	return ctl
}

// waitJS waits until the page's expression is true.
func waitJS(ctx context.Context, t *testing.T, what, expr string) {
	t.Helper()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if os.Getenv("JSN_WEB_DEBUG") != "" {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText + " @ " + location.href`))
			t.Logf("%s: %v %v: %q", what, ok, err, body)
		}
		select {
		case <-ctx.Done():
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			status, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("#status").textContent`))
			body, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("page: %s: not seen (status %q, err %v)\npage text:\n%s", what, status, err, body)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestDashboard logs in through `jsn dashboard`'s one-time URL and follows the lab live: a lease
// appears, an exporter goes offline, and a line the board prints shows in the console view.
func TestDashboard(t *testing.T) {
	ctx := tab(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	adminCfg, err := controller.Init(dir, controller.InitOptions{Endpoint: "nats://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := controller.Start(t.Context(), controller.Options{Data: dir, Listen: addr,
		HTTP: "127.0.0.1:0", WebSocket: "127.0.0.1:0", WebSocketNoTLS: true, Dashboard: web.Static(),
		Reconcile: 100 * time.Millisecond, Heartbeat: 200 * time.Millisecond, OfflineAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctl.Close)
	admin := dial(t, adminCfg)
	brd := newBoard(t)
	runExporter(t, admin, "rack1", fmt.Sprintf("export:\n  console: {type: serial.Port, config: {url: \"socket://%s\", reconnect: 50ms}}\n  power: {type: power.Mock}\n", brd.addr))
	stop2 := runExporter(t, admin, "rack2", "export:\n  power: {type: power.Mock}\n")
	aliceCfg, err := admin.CreateClient(t.Context(), "alice", nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	bobCfg, err := admin.CreateClient(t.Context(), "bob", nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := dial(t, aliceCfg), dial(t, bobCfg)
	lease, err := alice.RequestLease(t.Context(), api.LeaseRequest{Exporter: "rack1", Duration: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// The board panics before anyone looks: the page must show it from the console's history.
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !brd.connected() {
			return errors.New("not yet: the serial port connected to the board")
		}
		return nil
	})
	panicLine := "Kernel panic - not syncing: VFS: Unable to mount root fs"
	brd.print("\x1b[31m" + panicLine + "\x1b[0m\r\n")
	watcherCfg, err := admin.CreateClientWith(t.Context(), api.CreateClientRequest{Name: "wall", Watch: []string{"rack1"}})
	if err != nil {
		t.Fatal(err)
	}
	watcher := dial(t, watcherCfg)
	seen := make(chan struct{})
	wctx, wstop := context.WithCancel(t.Context())
	var got strings.Builder
	go func() {
		_ = watcher.Watch(wctx, "rack1", "console", client.TapOptions{History: true}, func(b []byte) {
			got.Write(b)
			if strings.Contains(got.String(), panicLine) {
				select {
				case <-seen:
				default:
					close(seen)
				}
			}
		})
	}()
	select {
	case <-seen:
	case <-time.After(30 * time.Second):
		t.Fatal("the exporter never recorded the board's panic")
	}
	wstop()

	tok, err := alice.DashboardTokenFor(t.Context(), lease.Lease.ID) // the holder's login: it may type
	if err != nil {
		t.Fatal(err)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(tok.URL)); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "rack1 and rack2 online, rack1 leased by alice",
		`!!document.querySelector('tr[data-exporter="rack2"].online') && document.querySelector('tr[data-exporter="rack1"] .holder')?.textContent === "alice"`)
	if _, err := bob.RequestLease(t.Context(), api.LeaseRequest{Exporter: "rack2", Duration: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "bob's lease of rack2", `!!document.querySelector('tr[data-lease="rack2/bob"].active')`)
	stop2()
	waitJS(ctx, t, "rack2 offline", `!!document.querySelector('tr[data-exporter="rack2"].offline')`)

	// The exporter page: a click, no reload.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('tr[data-exporter="rack1"] a').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "rack1's console view", `!!document.querySelector('.console[data-path="console"] .xterm')`)
	waitJS(ctx, t, "the panic printed before the page opened (history)", fmt.Sprintf(`(window.jsnConsoleText?.console || "").includes(%q)`, panicLine))
	// The board prints its banner until the test sees it (the page attaches at its own pace).
	want := "U-Boot 2026.01 (jsn test board)"
	pctx, pstop := context.WithCancel(t.Context())
	defer pstop()
	go func() {
		brd.print("\r\n\x1b[1;32m" + want + "\x1b[0m\r\nDRAM:  1 GiB\r\nHit any key to stop autoboot:  0\r\n")
		for i := 0; ; i++ {
			select {
			case <-pctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			brd.print(fmt.Sprintf("[%6d.%03d] \x1b[33mjsn\x1b[0m: %s line %d\r\n", i/5, i%5*200, want, i))
		}
	}()
	waitJS(ctx, t, "the board's line in the terminal", fmt.Sprintf(`(window.jsnConsoleText?.console || "").includes(%q)`, want))
	// History then live, no duplicate.
	waitJS(ctx, t, "the panic exactly once", fmt.Sprintf(`(window.jsnConsoleText.console.split(%q).length === 2)`, panicLine))
	waitJS(ctx, t, "the power state", `document.querySelector('[data-power="power"]')?.textContent === "off"`)
	waitJS(ctx, t, "the console's input open", `document.querySelector('.console[data-path="console"]')?.dataset.input === "open"`)
	if *screenshot != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
