package can

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/internal/kerneltest"
	"jsn.dev/jsn/internal/testkit"
)

// The guest tests use the real kernel CAN stack: vcan, can-raw and can-isotp in a QEMU guest
// with Debian's kernel (internal/kerneltest), one boot for the package, with can-utils'
// candump and cansend beside the exporter as the independent other end.

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
		theGuest, guestErr = kerneltest.Boot(ctx, kerneltest.Options{CAN: true, Programs: []string{"candump", "cansend"}, Log: &log})
		if guestErr == nil {
			fmt.Fprintf(os.Stderr, "can: guest booted in %s\n", time.Since(start).Round(time.Millisecond))
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
metadata: {name: canlab}
export:
  bus:
    type: jumpstarter_driver_can.Can
    config: {interface: socketcan, channel: vcan0}
  fdbus:
    type: can.Raw
    config: {channel: vcan1, fd: true}
  filtered:
    type: can.Raw
    config: {channel: vcan0, can_filters: [{can_id: 0x6e8, can_mask: 0x7ff, extended: false}]}
  virt_a:
    type: jumpstarter_driver_can.Can
    config: {interface: virtual, channel: 1}
  virt_b:
    type: jumpstarter_driver_can.Can
    config: {interface: virtual, channel: 1}
  ecu:
    type: jumpstarter_driver_can.IsoTpSocket
    config: {channel: vcan0, address: {rxid: 0x7e0, txid: 0x7e8}, params: {tx_padding: 0xcc, blocksize: 4, stmin: 0}}
  tester:
    type: jumpstarter_driver_can.IsoTpPython
    config: {interface: socketcan, channel: vcan0, address: {rxid: 0x7e8, txid: 0x7e0}, params: {max_frame_size: 4095, blocking_send: true}}
  absent:
    type: can.Raw
    config: {channel: vcan7}
`

// dumper collects the frames of a Dump running in the background.
type dumper struct {
	mu     sync.Mutex
	frames []Frame
	stop   context.CancelFunc
	done   chan error
}

func startDump(ctx context.Context, c *Client, filters string) *dumper {
	ctx, cancel := context.WithCancel(ctx)
	d := &dumper{stop: cancel, done: make(chan error, 1)}
	go func() {
		d.done <- c.Dump(ctx, filters, 0, func(f Frame) error {
			d.mu.Lock()
			d.frames = append(d.frames, f)
			d.mu.Unlock()
			return nil
		})
	}()
	return d
}

func (d *dumper) got() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var s []string
	for _, f := range d.frames {
		s = append(s, f.String())
	}
	return s
}

func (d *dumper) has(frame string) bool {
	for _, s := range d.got() {
		if s == frame {
			return true
		}
	}
	return false
}

func (d *dumper) close(t *testing.T) {
	d.stop()
	if err := <-d.done; err != nil {
		t.Errorf("dump after cancel: %v", err)
	}
}

func TestGuestCAN(t *testing.T) {
	g := bootGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ex, err := g.Export(ctx, "canlab", guestConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if log, err := ex.Stop(context.Background()); err != nil || t.Failed() {
			t.Logf("exporter log (%v):\n%s", err, log)
		}
	}()
	bus := NewClient(ex.Driver("bus"))

	t.Run("describe", func(t *testing.T) {
		d, err := ex.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range d.Drivers {
			want := ""
			if n.Path == "absent" {
				want = "vcan7"
			}
			if (want == "") != (n.Unavailable == "") || !strings.Contains(n.Unavailable, want) {
				t.Errorf("%s: unavailable %q, want %q", n.Path, n.Unavailable, want)
			}
		}
	})

	t.Run("jsn frames reach candump", func(t *testing.T) {
		if _, err := g.MustRun(ctx, "candump -L vcan0 > /tmp/candump.log 2>&1 & echo $! > /tmp/candump.pid"); err != nil {
			t.Fatal(err)
		}
		defer g.Run(ctx, "kill $(cat /tmp/candump.pid)")
		testkit.CheckFor(t, 20*time.Second, func() error {
			if err := bus.Send(ctx, Frame{ID: 0x100}); err != nil {
				return err
			}
			out, _ := g.MustRun(ctx, "cat /tmp/candump.log")
			if !strings.Contains(out, "vcan0 100#") {
				return fmt.Errorf("candump has not seen the probe yet: %q", out)
			}
			return nil
		})
		for _, s := range []string{"123#1122", "12345678#DEADBEEF", "7DF#R2", "456#"} {
			f, err := ParseFrame(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := bus.Send(ctx, f); err != nil {
				t.Fatalf("send %s: %v", s, err)
			}
		}
		testkit.CheckFor(t, 10*time.Second, func() error {
			out, _ := g.MustRun(ctx, "cat /tmp/candump.log")
			for _, want := range []string{"vcan0 123#1122", "vcan0 12345678#DEADBEEF", "vcan0 7DF#R2", "vcan0 456#"} {
				if !strings.Contains(out, want+"\n") {
					return fmt.Errorf("candump -L: no %q in\n%s", want, out)
				}
			}
			return nil
		})
	})

	t.Run("cansend frames reach jsn dump", func(t *testing.T) {
		d := startDump(ctx, bus, "")
		defer d.close(t)
		testkit.CheckFor(t, 20*time.Second, func() error {
			if _, err := g.MustRun(ctx, "cansend vcan0 321#AABB"); err != nil {
				return err
			}
			if !d.has("321#AABB") {
				return fmt.Errorf("dump got %v, want 321#AABB", d.got())
			}
			return nil
		})
		if _, err := g.MustRun(ctx, "cansend vcan0 1FFFFFFF#0102030405060708"); err != nil {
			t.Fatal(err)
		}
		testkit.CheckFor(t, 10*time.Second, func() error {
			if !d.has("1FFFFFFF#0102030405060708") {
				return fmt.Errorf("dump got %v", d.got())
			}
			return nil
		})
	})

	t.Run("filters", func(t *testing.T) {
		d := startDump(ctx, bus, "6E8:7FF")
		defer d.close(t)
		dflt := startDump(ctx, NewClient(ex.Driver("filtered")), "") // the config's can_filters
		defer dflt.close(t)
		testkit.CheckFor(t, 20*time.Second, func() error {
			for _, s := range []string{"6E0#01", "6E8#02"} {
				if _, err := g.MustRun(ctx, "cansend vcan0 "+s); err != nil {
					return err
				}
			}
			if !d.has("6E8#02") || !dflt.has("6E8#02") {
				return fmt.Errorf("filtered dumps got %v and %v, want 6E8#02", d.got(), dflt.got())
			}
			return nil
		})
		for _, got := range [][]string{d.got(), dflt.got()} {
			for _, s := range got {
				if !strings.HasPrefix(s, "6E8#") {
					t.Errorf("filter 6E8:7FF passed %s", s)
				}
			}
		}
		if _, err := bus.Recv(ctx, time.Second, "7E8~7FF,zz"); err == nil || !strings.Contains(err.Error(), "zz") {
			t.Errorf("bad filter: got %v, want an error naming it", err)
		}
	})

	t.Run("recv", func(t *testing.T) {
		if _, err := bus.Recv(ctx, 200*time.Millisecond, "555:7FF"); err == nil || !strings.Contains(err.Error(), "no frame within") {
			t.Errorf("recv without frame: got %v", err)
		}
	})

	t.Run("can fd", func(t *testing.T) {
		fd := NewClient(ex.Driver("fdbus"))
		d := startDump(ctx, fd, "")
		defer d.close(t)
		f, err := ParseFrame("123##1" + strings.Repeat("AB", 16))
		if err != nil {
			t.Fatal(err)
		}
		testkit.CheckFor(t, 20*time.Second, func() error {
			if err := fd.Send(ctx, f); err != nil {
				return err
			}
			if !d.has(f.String()) {
				return fmt.Errorf("dump got %v, want %s", d.got(), f)
			}
			return nil
		})
		if err := bus.Send(ctx, f); err == nil || !strings.Contains(err.Error(), "fd: true") {
			t.Errorf("FD frame on a classic bus: got %v", err)
		}
	})

	t.Run("virtual", func(t *testing.T) {
		a, b := NewClient(ex.Driver("virt_a")), NewClient(ex.Driver("virt_b"))
		d := startDump(ctx, b, "")
		defer d.close(t)
		testkit.CheckFor(t, 10*time.Second, func() error {
			if err := a.Send(ctx, Frame{ID: 0x42, Data: []byte{1, 2}}); err != nil {
				return err
			}
			if !d.has("042#0102") {
				return fmt.Errorf("virt_b got %v", d.got())
			}
			return nil
		})
	})

	t.Run("isotp", func(t *testing.T) {
		ecu, tester := NewIsoTPClient(ex.Driver("ecu")), NewIsoTPClient(ex.Driver("tester"))
		req := bytes.Repeat([]byte{0x22, 0xF1, 0x90}, 100) // 300 bytes: first frame, flow control, consecutive frames
		got := make(chan []byte, 1)
		errc := make(chan error, 1)
		go func() {
			b, err := ecu.Recv(ctx, 30*time.Second)
			got <- b
			errc <- err
		}()
		// The ECU's socket is bound before the call (Open), so the message waits there.
		if err := tester.Send(ctx, req); err != nil {
			t.Fatalf("tester send: %v", err)
		}
		if b, err := <-got, <-errc; err != nil || !bytes.Equal(b, req) {
			t.Fatalf("ecu recv: got %d bytes, %v, want the %d-byte request", len(b), err, len(req))
		}
		// The reply is a single frame; the ECU pads it with its tx_padding (0xCC) on the wire.
		wireDump := startDump(ctx, bus, "7E8:7FF")
		defer wireDump.close(t)
		reply := []byte{0x62, 0xF1, 0x90, 'J', 'S', 'N'}
		testkit.CheckFor(t, 20*time.Second, func() error {
			if err := ecu.Send(ctx, reply); err != nil {
				return err
			}
			b, err := tester.Recv(ctx, 10*time.Second)
			if err != nil || !bytes.Equal(b, reply) {
				return fmt.Errorf("tester recv: got %q, %v", b, err)
			}
			if !wireDump.has("7E8#0662F1904A534ECC") {
				return fmt.Errorf("on the wire: got %v, want the padded single frame 7E8#0662F1904A534ECC", wireDump.got())
			}
			return nil
		})
		if _, err := tester.Recv(ctx, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "no message within") {
			t.Errorf("recv with nothing sent: got %v", err)
		}
	})

	t.Run("cli", func(t *testing.T) {
		run := func(args ...string) (string, string, int) {
			r := clitest.Run(t, clitest.Options{Timeout: 60 * time.Second}, ex.Env, args...)
			return r.Stdout, r.Stderr, r.Code
		}
		res := make(chan string, 1)
		go func() {
			out, errOut, code := run("can", "dump", "-d", "bus", "--filter", "2A0:7FF", "-n", "1")
			res <- fmt.Sprintf("%d|%s|%s", code, out, errOut)
		}()
		var got string
		testkit.CheckFor(t, 30*time.Second, func() error {
			select {
			case got = <-res:
				return nil
			default:
			}
			if out, errOut, code := run("can", "send", "-d", "bus", "2A0#1122"); code != 0 {
				return fmt.Errorf("jsn can send: exit %d: %s%s", code, out, errOut)
			}
			return errors.New("jsn can dump has printed nothing yet")
		})
		if got != "0|  vcan0  2A0   [2]  11 22\n|" {
			t.Errorf("jsn can dump -n 1: got %q, want candump's line", got)
		}
		if _, errOut, code := run("can", "send", "-d", "bus", "1234#11"); code != 2 || !strings.Contains(errOut, "1234") {
			t.Errorf("jsn can send 1234#11: got exit %d %q, want a usage error naming the id", code, errOut)
		}
		res2 := make(chan string, 1)
		go func() {
			out, errOut, code := run("isotp", "recv", "-d", "ecu", "--timeout", "20s")
			res2 <- fmt.Sprintf("%d|%s|%s", code, out, errOut)
		}()
		time.Sleep(0)
		if out, errOut, code := run("isotp", "send", "-d", "tester", "0322F190"); code != 0 {
			t.Fatalf("jsn isotp send: exit %d: %s%s", code, out, errOut)
		}
		if got := <-res2; got != "0|0322f190\n|" {
			t.Errorf("jsn isotp recv: got %q", got)
		}
	})
}
