package serial

import (
	"bytes"
	"context"
	"testing"
	"time"

	"jsn.dev/jsn/drivers/drivertest"
)

// TestLoopURL: pyserial's loop:// reads back what is written, through the real connect stream
// and ring buffer; cps paces the writes; disable_hupcl loads.
func TestLoopURL(t *testing.T) {
	tree, err := build(t, "type: jumpstarter_driver_pyserial.driver.PySerial\nconfig: {url: 'loop://', cps: 2000, disable_hupcl: true}")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := tree.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	p := tree.Find("console").Driver.(*Port)
	if why := p.Unavailable(); why != "" {
		t.Fatalf("loop:// unavailable: %s", why)
	}
	c, err := drivertest.OpenStream(ctx, p, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello loop")); err != nil {
		t.Fatal(err)
	}
	stop := time.AfterFunc(20*time.Second, func() { c.Close() }) // a hung read fails, not hangs
	defer stop.Stop()
	var got []byte
	for !bytes.Contains(got, []byte("hello loop")) {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read back %q, then %v", got, err)
		}
	}
	if err := p.SetBaudrate(ctx, 9600); err == nil {
		t.Error("set_baudrate on loop:// succeeded")
	}
	if _, err := parseURL("loop://x"); err == nil {
		t.Error("loop://x accepted")
	}
}
