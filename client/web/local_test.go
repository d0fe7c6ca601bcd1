package web_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"jsn.dev/jsn/cmd/jsn/cli"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/internal/testkit"
)

// TestLocalWeb runs `jsn shell -c FILE --web 127.0.0.1:0` and opens the URL it prints: the
// session's exporter page shows the board's console live, and what is typed into it reaches the
// board (the session holds its lease).
func TestLocalWeb(t *testing.T) {
	ctx := tab(t)
	brd := newBoard(t)
	file := filepath.Join(t.TempDir(), "lab.yaml")
	cfg := fmt.Sprintf("apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: bench1}\nexport:\n  console: {type: serial.Port, config: {url: \"socket://%s\", reconnect: 50ms}}\n  power: {type: power.Mock}\n", brd.addr)
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	stdin, hold := io.Pipe() // the child reads until the test ends
	var out, errOut jsntest.Buffer
	f := &cmdutil.Factory{In: stdin, Out: &out, ErrOut: &errOut, Getenv: func(k string) string {
		if k == "PATH" {
			return os.Getenv("PATH")
		}
		return ""
	}}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(sctx, f, []string{"shell", "-c", file, "--web", "127.0.0.1:0", "--", "sh", "-c", "read x; exit 0"})
	}()
	t.Cleanup(func() {
		hold.Close()
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("jsn shell --web: exit %d\n%s", code, errOut.String())
		}
	})
	var url string
	re := regexp.MustCompile(`dashboard: (http://\S+)`)
	testkit.CheckFor(t, 30*time.Second, func() error {
		m := re.FindStringSubmatch(errOut.String())
		if m == nil {
			return errors.New("not yet: jsn shell printed the dashboard URL: " + errOut.String())
		}
		url = m[1]
		return nil
	})
	if !strings.Contains(url, "#token=") {
		t.Fatalf("URL %q carries no token", url)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "the session's exporter", `!!document.querySelector('tr[data-exporter="bench1"].online a')`)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('tr[data-exporter="bench1"] a').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "the console view", `!!document.querySelector('.console[data-path="console"] .xterm')`)
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !brd.connected() {
			return errors.New("not yet: the serial port connected to the board")
		}
		return nil
	})
	want := "local board says hello"
	pctx, pstop := context.WithCancel(t.Context())
	defer pstop()
	go func() {
		for {
			brd.print(want + "\r\n")
			select {
			case <-pctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	waitJS(ctx, t, "the board's line", fmt.Sprintf(`(window.jsnConsoleText?.console || "").includes(%q)`, want))
	// The session holds its lease: the page types into the console (the board quiet, so that
	// its echo is not interleaved with its lines).
	pstop()
	waitJS(ctx, t, "the console's input open", `document.querySelector('.console[data-path="console"]')?.dataset.input === "open"`)
	typeKeys(ctx, t, "console", "reboot\r")
	waitBoard(t, brd, "reboot\r")
	waitJS(ctx, t, "the board's echo", `(window.jsnConsoleText?.console || "").includes("reboot")`)
	waitJS(ctx, t, "the power state", `["on", "off"].includes(document.querySelector('[data-power="power"]')?.textContent)`)

	// A wrong token buys nothing.
	bad := url[:strings.Index(url, "#token=")] + "#token=AAAA"
	ctx2 := tab(t)
	if err := chromedp.Do(ctx2, chromedp.Navigate(bad)); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx2, t, "a refusal", `document.querySelector("#status").textContent.includes("wrong token")`)
}
