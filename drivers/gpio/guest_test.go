package gpio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/drivers/power"
	"jsn.dev/jsn/internal/kerneltest"
	"jsn.dev/jsn/internal/testkit"
)

// The guest tests drive real kernel GPIO lines: gpio-sim in a QEMU guest running Debian's
// kernel (internal/kerneltest), one boot for the whole package. The exporter runs in the guest;
// the client, the CLI and the bus run here.

var (
	guestOnce sync.Once
	theGuest  *kerneltest.Guest
	guestErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theGuest != nil {
		theGuest.Close()
	}
	os.Exit(code)
}

// bootGuest returns the package's guest, booting it on first use; it skips the test when the
// machine cannot boot one (and says which package is missing).
func bootGuest(t *testing.T) *kerneltest.Guest {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a QEMU guest")
	}
	guestOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		var log strings.Builder
		theGuest, guestErr = kerneltest.Boot(ctx, kerneltest.Options{GPIO: true, Log: &log})
		if guestErr == nil {
			fmt.Fprintf(os.Stderr, "gpio: guest booted in %s\n", time.Since(start).Round(time.Millisecond))
		} else if !errors.Is(guestErr, kerneltest.ErrSkip) {
			guestErr = fmt.Errorf("%w\n%s", guestErr, log.String())
		}
	})
	if errors.Is(guestErr, kerneltest.ErrSkip) {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must boot the guest: %v", guestErr)
		}
		t.Skip(guestErr)
	}
	if guestErr != nil {
		t.Fatalf("boot the guest: %v", guestErr)
	}
	return theGuest
}

const guestConfig = `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: gpiolab}
export:
  led:
    type: jumpstarter_driver_gpiod.driver.DigitalOutput
    config: {device: jsn-sim, line: 0, drive: push_pull, initial_value: inactive}
  reset_n:
    type: gpio.Output
    config: {device: jsn-sim, line: sim1, active_low: true, initial_value: active, pulse_width: 50ms}
  button:
    type: jumpstarter_driver_gpiod.driver.DigitalInput
    config: {device: jsn-sim, line: 2, bias: as_is}
  button_n:
    type: gpio.Input
    config: {device: jsn-sim, line: sim3, active_low: true}
  dut_power:
    type: jumpstarter_driver_gpiod.driver.PowerSwitch
    config: {device: jsn-sim, line: 4, mode: push_pull, initial_value: inactive}
  absent:
    type: gpio.Output
    config: {device: /dev/gpiochip9, line: 0}
`

func TestGuestGPIO(t *testing.T) {
	g := bootGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ex, err := g.Export(ctx, "gpiolab", guestConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if log, err := ex.Stop(context.Background()); err != nil || t.Failed() {
			t.Logf("exporter log (%v):\n%s", err, log)
		}
	}()
	level := func(n int) int {
		t.Helper()
		v, err := g.SimValue(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	t.Run("describe", func(t *testing.T) {
		d, err := ex.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, n := range d.Drivers {
			got[n.Path] = n.Interface + " " + n.Unavailable
		}
		for path, want := range map[string]string{"led": Interface, "button": Interface, "dut_power": power.Interface} {
			if !strings.HasPrefix(got[path], want+" ") || strings.TrimSpace(strings.TrimPrefix(got[path], want)) != "" {
				t.Errorf("%s: got %q, want %s and available", path, got[path], want)
			}
		}
		if !strings.Contains(got["absent"], "/dev/gpiochip9") {
			t.Errorf("absent: got %q, want unavailable naming /dev/gpiochip9", got["absent"])
		}
	})

	t.Run("output set and get", func(t *testing.T) {
		led := NewClient(ex.Driver("led"))
		if level(0) != 0 {
			t.Fatalf("initial_value inactive: line 0 is high")
		}
		if err := led.Set(ctx, true); err != nil {
			t.Fatal(err)
		}
		if v, err := led.Get(ctx); err != nil || !v {
			t.Errorf("get after set(true): got %v, %v", v, err)
		}
		if level(0) != 1 {
			t.Errorf("set(true): line 0 is low")
		}
		if err := led.Set(ctx, false); err != nil {
			t.Fatal(err)
		}
		if level(0) != 0 {
			t.Errorf("set(false): line 0 is high")
		}
	})

	t.Run("active low output and pulse", func(t *testing.T) {
		rst := NewClient(ex.Driver("reset_n"))
		// initial_value active on an active-low line: low.
		if level(1) != 0 {
			t.Errorf("active-low line initially active: got high, want low")
		}
		if err := rst.Set(ctx, false); err != nil {
			t.Fatal(err)
		}
		if level(1) != 1 {
			t.Errorf("active-low line inactive: got low, want high")
		}
		if err := rst.Pulse(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if v, _ := rst.Get(ctx); v || level(1) != 1 {
			t.Errorf("after pulse: got active=%v level=%d, want inactive (high)", v, level(1))
		}
	})

	t.Run("input get follows the outside", func(t *testing.T) {
		btn := NewClient(ex.Driver("button"))
		for _, up := range []bool{true, false, true} {
			if err := g.SimPull(ctx, 2, up); err != nil {
				t.Fatal(err)
			}
			testkit.CheckFor(t, 10*time.Second, func() error {
				if v, err := btn.Get(ctx); err != nil || v != up {
					return fmt.Errorf("button after pull up=%v: got %v, %v", up, v, err)
				}
				return nil
			})
		}
	})

	t.Run("watch edges", func(t *testing.T) {
		btn := NewClient(ex.Driver("button_n")) // active low: pulling down is a rising edge
		if err := g.SimPull(ctx, 3, true); err != nil {
			t.Fatal(err)
		}
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		events := make(chan Event, 16)
		done := make(chan error, 1)
		go func() {
			done <- btn.Watch(wctx, Both, func(e Event) error { events <- e; return nil })
		}()
		// The watch is subscribed once an edge comes through: keep toggling until one does.
		var first Event
		testkit.CheckFor(t, 20*time.Second, func() error {
			if err := g.SimPull(ctx, 3, false); err != nil {
				return err
			}
			select {
			case first = <-events:
				return nil
			case <-time.After(300 * time.Millisecond):
				_ = g.SimPull(ctx, 3, true)
				return errors.New("no edge yet")
			}
		})
		if first.Edge != Rising || !first.Active {
			t.Errorf("pull down on an active-low input: got %+v, want rising, active", first)
		}
		if err := g.SimPull(ctx, 3, true); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-events:
			if e.Edge != Falling || e.Active || e.Seqno <= first.Seqno || e.Time <= first.Time {
				t.Errorf("pull up: got %+v after %+v, want a later falling edge", e, first)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no falling edge within 10s")
		}
		stop()
		if err := <-done; err != nil {
			t.Errorf("watch after cancel: %v", err)
		}
	})

	t.Run("wait_for_edge and wait_for_active", func(t *testing.T) {
		btn := NewClient(ex.Driver("button"))
		if err := g.SimPull(ctx, 2, false); err != nil {
			t.Fatal(err)
		}
		if _, err := btn.WaitForEdge(ctx, Rising, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "rising") {
			t.Errorf("no edge: got %v, want a deadline error naming rising", err)
		}
		d := ex.Driver("button")
		res := make(chan error, 1)
		go func() { _, err := d.Call(ctx, "wait_for_active", int64(20*time.Second)); res <- err }()
		time.Sleep(0) // the call may subscribe before or after the pull: either way it must return
		if err := g.SimPull(ctx, 2, true); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-res:
			if err != nil {
				t.Errorf("wait_for_active: %v", err)
			}
		case <-time.After(25 * time.Second):
			t.Fatal("wait_for_active did not return")
		}
	})

	t.Run("power switch", func(t *testing.T) {
		p := power.NewClient(ex.Driver("dut_power"))
		if err := p.On(ctx); err != nil {
			t.Fatal(err)
		}
		if s, err := p.Status(ctx); err != nil || s != power.On || level(4) != 1 {
			t.Errorf("after on: got %v, %v, line %d", s, err, level(4))
		}
		if err := p.Cycle(ctx, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := p.Off(ctx); err != nil {
			t.Fatal(err)
		}
		if s, _ := p.Status(ctx); s != power.Off || level(4) != 0 {
			t.Errorf("after off: got %v, line %d", s, level(4))
		}
		if _, err := ex.Driver("dut_power").Call(ctx, "read"); err == nil {
			t.Errorf("read on a GPIO power switch: got nil error")
		}
	})

	t.Run("cli", func(t *testing.T) {
		run := func(args ...string) (string, string, int) {
			r := clitest.Run(t, clitest.Options{Timeout: 60 * time.Second}, ex.Env, args...)
			return r.Stdout, r.Stderr, r.Code
		}
		if out, errOut, code := run("gpio", "set", "1", "-d", "led"); code != 0 {
			t.Fatalf("jsn gpio set 1: exit %d: %s%s", code, out, errOut)
		}
		if out, _, code := run("gpio", "get", "-d", "led"); code != 0 || out != "1\n" {
			t.Errorf("jsn gpio get: got %q exit %d, want 1", out, code)
		}
		if level(0) != 1 {
			t.Errorf("jsn gpio set 1: line 0 is low")
		}
		if _, errOut, code := run("gpio", "set", "maybe", "-d", "led"); code != 2 || !strings.Contains(errOut, "maybe") {
			t.Errorf("jsn gpio set maybe: got exit %d %q, want usage error naming the value", code, errOut)
		}
		if _, _, code := run("gpio", "pulse", "--width", "20ms", "-d", "led"); code != 0 || level(0) != 0 {
			t.Errorf("jsn gpio pulse: exit %d, line %d", code, level(0))
		}
		if _, _, code := run("gpio", "set", "1", "-d", "button"); code == 0 {
			t.Errorf("jsn gpio set on an input: got exit 0")
		}
		// watch -n 1: the CLI in the background, the edge made here.
		if err := g.SimPull(ctx, 2, false); err != nil {
			t.Fatal(err)
		}
		res := make(chan string, 1)
		go func() {
			out, errOut, code := run("gpio", "watch", "-d", "button", "--edge", "rising", "-n", "1")
			res <- fmt.Sprintf("%d|%s|%s", code, out, errOut)
		}()
		var got string
		testkit.CheckFor(t, 30*time.Second, func() error {
			select {
			case got = <-res:
				return nil
			default:
			}
			_ = g.SimPull(ctx, 2, true)
			_ = g.SimPull(ctx, 2, false)
			return errors.New("jsn gpio watch has not printed an edge yet")
		})
		parts := strings.SplitN(got, "|", 3)
		if parts[0] != "0" || !strings.HasSuffix(parts[1], " rising 1\n") || strings.Count(parts[1], "\n") != 1 {
			t.Errorf("jsn gpio watch -n 1: got %q", got)
		}
	})
}
