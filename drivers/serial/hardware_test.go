package serial

import (
	"context"
	"os"
	"regexp"
	"testing"
	"time"
)

// TestHardware is a smoke test against a real serial adapter, skipped unless one is declared:
//
//	JSN_TEST_SERIAL=/dev/ttyUSB0 go test -run Hardware ./drivers/serial
//
// With JSN_TEST_SERIAL_LOOPBACK=1 (TX wired to RX) it also checks that bytes come back.
func TestHardware(t *testing.T) {
	path := os.Getenv("JSN_TEST_SERIAL")
	if path == "" {
		t.Skip("no serial hardware declared (set JSN_TEST_SERIAL=/dev/ttyUSB0)")
	}
	lb := startLab(t, labConfig(path, ""))
	sc := lb.serial("console")
	st, err := sc.Info(ctx)
	if err != nil || st.State != "open" {
		t.Fatalf("info: got %+v, %v, want open", st, err)
	}
	for _, step := range []struct {
		name string
		fn   func() error
	}{
		{"set_baudrate 9600", func() error { return sc.SetBaudrate(ctx, 9600) }},
		{"set_baudrate 115200", func() error { return sc.SetBaudrate(ctx, 115200) }},
		{"set_dtr off", func() error { return sc.SetDTR(ctx, false) }},
		{"set_dtr on", func() error { return sc.SetDTR(ctx, true) }},
		{"set_rts off", func() error { return sc.SetRTS(ctx, false) }},
		{"set_rts on", func() error { return sc.SetRTS(ctx, true) }},
		{"send_break", func() error { return sc.SendBreak(ctx, 100*time.Millisecond) }},
	} {
		if err := step.fn(); err != nil {
			t.Errorf("%s: %v", step.name, err)
		}
	}
	if os.Getenv("JSN_TEST_SERIAL_LOOPBACK") != "1" {
		return
	}
	s, err := sc.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, _, err := sc.Expect(ectx, s, regexp.MustCompile("jsn-loopback"), []byte("jsn-loopback")); err != nil {
		t.Fatalf("loopback: %v", err)
	}
}
