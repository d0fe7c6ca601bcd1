package web_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/client/web"
	"jsn.dev/jsn/controller"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// typeKeys types s into the terminal of console path (xterm.js reads keys from its textarea)
// as a keyboard does: per key a keyDown that carries the key's text, then a keyUp (as Puppeteer
// does). chromedp's SendKeys sends a separate char event after the keyDown, which Chrome
// delivers even when the page handled the keyDown — a real keyboard's text is dropped then — so
// xterm.js would see every key twice.
func typeKeys(ctx context.Context, t *testing.T, path, s string) {
	t.Helper()
	sel := chromedp.CSS(fmt.Sprintf(`.console[data-path=%q] textarea.xterm-helper-textarea`, path))
	keys := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for _, r := range s {
			ev := kb.Encode(r)
			down := *ev[0]
			for _, e := range ev {
				if e.Type == kb.KeyChar {
					down.Text, down.UnmodifiedText = e.Text, e.UnmodifiedText
				}
			}
			if r == '\r' {
				down.Text, down.UnmodifiedText = "\r", "\r"
			}
			for _, e := range []*input.DispatchKeyEventParams{&down, ev[len(ev)-1]} {
				if _, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, *e); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err := chromedp.Do(ctx, chromedp.Focus(sel), keys); err != nil {
		t.Fatalf("type %q: %v", s, err)
	}
}

// waitBoard waits until the board has received want.
func waitBoard(t *testing.T, brd *board, want string) {
	t.Helper()
	testkit.CheckFor(t, 30*time.Second, func() error {
		if got := brd.received(); !strings.Contains(got, want) {
			return fmt.Errorf("not yet: the board received %q, has %q", want, got)
		}
		return nil
	})
}

// TestDashboardTyping: the lease holder's login (jsn dashboard --lease) types into the console of
// a board behind serial.Port: the board receives the keys and its echo shows on the page; a
// watch-only login sees the console read-only and its keys reach nothing; the power driver's
// state follows power on / power off calls without a reload.
func TestDashboardTyping(t *testing.T) {
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
	aliceCfg, err := admin.CreateClient(t.Context(), "alice", nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	wallCfg, err := admin.CreateClientWith(t.Context(), api.CreateClientRequest{Name: "wall", Watch: []string{"rack1"}})
	if err != nil {
		t.Fatal(err)
	}
	alice, wall := dial(t, aliceCfg), dial(t, wallCfg)
	var rep *api.LeaseReply
	testkit.CheckFor(t, 30*time.Second, func() (err error) {
		rep, err = alice.RequestLease(t.Context(), api.LeaseRequest{Exporter: "rack1", Duration: 30 * time.Minute})
		return err // until the exporter registered
	})
	o, err := alice.LeaseOptions(rep)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := client.Dial(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	if err := ex.WaitReady(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !brd.connected() {
			return errors.New("not yet: the serial port connected to the board")
		}
		return nil
	})

	// The watch-only login first: read-only, its keys go nowhere.
	wtok, err := wall.DashboardToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wctx := tab(t)
	if err := chromedp.Do(wctx, chromedp.Navigate(wtok.URL)); err != nil {
		t.Fatal(err)
	}
	waitJS(wctx, t, "the wall's session", `document.querySelector("#status").textContent.startsWith("connected")`)
	if err := chromedp.Do(wctx, chromedp.Evaluate[chromedp.Void](`location.hash = "#/x/rack1"`)); err != nil {
		t.Fatal(err)
	}
	waitJS(wctx, t, "a read-only console", `document.querySelector('.console[data-path="console"]')?.dataset.input === "readonly" && document.body.innerText.includes("read-only (no lease)")`)
	typeKeys(wctx, t, "console", "nope\r")

	// The holder, with its lease.
	tok, err := alice.DashboardTokenFor(t.Context(), rep.Lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(tok.URL)); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "alice's session", `document.querySelector("#status").textContent.startsWith("connected")`)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = "#/x/rack1"`)); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "the console's input open", `document.querySelector('.console[data-path="console"]')?.dataset.input === "open"`)
	typeKeys(ctx, t, "console", "hello\r")
	waitBoard(t, brd, "hello\r")
	waitJS(ctx, t, "the board's echo of hello", `(window.jsnConsoleText?.console || "").includes("hello")`)
	if got := brd.received(); strings.Contains(got, "nope") {
		t.Errorf("the watch-only page's keys reached the board: %q", got)
	}

	// Power: pushed to the page as it changes.
	waitJS(ctx, t, "power off (the lease's reset)", `document.querySelector('[data-power="power"]')?.textContent === "off"`)
	if _, err := ex.Driver("power").Call(t.Context(), "on"); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "power on", `document.querySelector('[data-power="power"]')?.textContent === "on"`)
	waitJS(wctx, t, "power on on the wall's page", `document.querySelector('[data-power="power"]')?.textContent === "on"`)
	if _, err := ex.Driver("power").Call(t.Context(), "off"); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "power off", `document.querySelector('[data-power="power"]')?.textContent === "off"`)

	// More typing after a while, then the page closes the terminal: RST CANCELLED, which ends
	// the serial stream on the exporter (no connection left). Then the release ends the login.
	typeKeys(ctx, t, "console", "uname -a\r")
	waitBoard(t, brd, "uname -a\r")
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = "#/"`)); err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		res, err := ex.Driver("console").Call(t.Context(), "info")
		if err != nil {
			return err
		}
		m, ok := res.(map[string]any)
		if !ok {
			return fmt.Errorf("console info %T %v", res, res)
		}
		if n := fmt.Sprint(m["connections"]); n != "0" {
			return fmt.Errorf("not yet: the console has %s stream(s) after the page closed it", n)
		}
		return nil
	})
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = "#/x/rack1"`)); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "the console's input open again", `document.querySelector('.console[data-path="console"]')?.dataset.input === "open"`)
	if err := alice.Release(t.Context(), rep.Lease.ID); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "the input ended with the lease", `document.querySelector('.console[data-path="console"]')?.dataset.input === "ended"`)
	waitJS(wctx, t, "the wall still watching", `document.querySelector("#status").textContent.startsWith("connected")`)
}
