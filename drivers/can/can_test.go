package can

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
)

func TestParseFrame(t *testing.T) {
	tests := []struct {
		in, dump, err string
	}{
		{"123#1122", "  can0  123   [2]  11 22", ""},
		{"123#", "  can0  123   [0]", ""},
		{"12345678#DEADBEEF", "  can0  12345678   [4]  DE AD BE EF", ""},
		{"7DF#R", "  can0  7DF   [0]  remote request", ""},
		{"7DF#R3", "  can0  7DF   [3]  remote request", ""},
		{"123#11.22.33", "  can0  123   [3]  11 22 33", ""},
		{"123##1" + strings.Repeat("00", 12), "  can0  123  [12]  " + strings.TrimSpace(strings.Repeat(" 00", 12)), ""},
		{"1234#11", "", "3 hex digits"},
		{"800#11", "", "does not fit 11 bits"},
		{"123#112", "", "odd number"},
		{"123#zz", "", "not hex"},
		{"123#112233445566778899", "", "at most 8 bytes"},
		{"123##1" + strings.Repeat("00", 9), "", "CAN FD data"},
		{"123#R9", "", "remote length"},
		{"123", "", "want ID#DATA"},
		{"123##", "", "flags digit"},
	}
	for _, tt := range tests {
		f, err := ParseFrame(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseFrame(%q): got %v, want error containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseFrame(%q): %v", tt.in, err)
			continue
		}
		if got := f.Dump("can0"); got != tt.dump {
			t.Errorf("Dump(%q): got %q, want %q", tt.in, got, tt.dump)
		}
		if got := f.String(); !strings.EqualFold(got, strings.ReplaceAll(tt.in, ".", "")) {
			t.Errorf("String(%q): got %q", tt.in, got)
		}
		back, err := decode(encode(f))
		if err != nil || back.String() != f.String() {
			t.Errorf("decode(encode(%q)): got %v, %v", tt.in, back, err)
		}
		m, err := ParseFrameMap(f.Map())
		if err != nil || m.String() != f.String() {
			t.Errorf("ParseFrameMap(Map(%q)): got %v, %v", tt.in, m, err)
		}
	}
}

func TestFilters(t *testing.T) {
	fs, err := ParseFilters("123:7FF,200~700,12345678:1FFFFFFF")
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string][3]bool{
		"123#": {true, true, false}, "124#": {false, true, false}, "2FF#": {false, false, false},
		"12345678#": {false, true, true},
	} {
		f, _ := ParseFrame(s)
		for i, fl := range fs {
			if fl.Match(f) != want[i] {
				t.Errorf("filter %d on %s: got %v, want %v", i, s, fl.Match(f), want[i])
			}
		}
	}
	for _, bad := range []string{"123", "xyz:7FF", "800:7FF", "123:", "3FFFFFFF:1FFFFFFF"} {
		if _, err := ParseFilters(bad); err == nil {
			t.Errorf("ParseFilters(%q): got nil error", bad)
		}
	}
}

func build(t *testing.T, src string) (*driver.Tree, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{})
}

func TestConfig(t *testing.T) {
	tests := []struct{ src, err string }{
		{"c: {type: jumpstarter_driver_can.Can, config: {channel: 1, interface: virtual}}", ""},
		{"c: {type: jumpstarter_driver_can.Can, config: {channel: can0, interface: socketcan}}", ""},
		{"c: {type: jumpstarter_driver_can.IsoTpPython, config: {channel: 0, interface: socketcan, address: {rxid: 1, txid: 2}, params: {max_frame_size: 2048, blocking_send: false, can_fd: true}}}", ""},
		{"c: {type: jumpstarter_driver_can.IsoTpSocket, config: {channel: vcan0, address: {addressing_mode: Extended_29bits, rxid: 0x18DAF110, txid: 0x18DA10F1, target_address: 0x10, source_address: 0xF1}, params: {tx_padding: 0, stmin: 5, blocksize: 8, tx_data_length: 8}}}", ""},
		{"c: {type: can.Raw, config: {channel: vcan0, can_filters: [{can_id: 0x123, can_mask: 0x7ff}]}}", ""},
		{"c: {type: can.Raw}", `missing required field "channel"`},
		{"c: {type: can.Raw, config: {channel: can0, interface: pcan}}", `interface: want "socketcan" or "virtual", got "pcan"`},
		{"c: {type: can.Raw, config: {channel: 'a/b'}}", "channel"},
		{"c: {type: can.Raw, config: {channel: can0, can_filters: [{can_id: 0x800, can_mask: 0x7ff, extended: false}]}}", "can_filters[0]"},
		{"c: {type: can.IsoTP, config: {channel: vcan0, address: {rxid: 1}}}", "address.txid: required"},
		{"c: {type: can.IsoTP, config: {channel: vcan0, interface: virtual, address: {rxid: 1, txid: 2}}}", "interface"},
		{"c: {type: can.IsoTP, config: {channel: vcan0, address: {addressing_mode: Mixed_11bits, rxid: 1, txid: 2}}}", "addressing_mode"},
		{"c: {type: can.IsoTP, config: {channel: vcan0, address: {rxid: 1, txid: 2}, params: {stmin: 300}}}", "params.stmin: 300 out of range"},
		{"c: {type: can.IsoTP, config: {channel: vcan0, address: {rxid: 1, txid: 2}, params: {tx_data_length: 12}}}", "params.tx_data_length"},
		{"c: {type: can.IsoTP, config: {channel: vcan0, address: {rxid: 1, txid: 2}, params: {bogus: 1}}}", `unknown field "bogus"`},
	}
	for _, tt := range tests {
		_, err := build(t, tt.src)
		if tt.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.src, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "exporter.yaml:") {
			t.Errorf("%s:\ngot %v, want a positioned error containing %q", tt.src, err, tt.err)
		}
	}
}

// The method table on the virtual bus: a real driver, no kernel needed.
func TestVirtualMethods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tree, err := build(t, "a: {type: can.Raw, config: {interface: virtual, channel: unit}}\nb: {type: can.Raw, config: {interface: virtual, channel: unit}}")
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	a, b := tree.Find("a").Driver, tree.Find("b").Driver
	got := make(chan any, 1)
	go func() {
		v, err := drivertest.CallMethod(ctx, b, "recv", 10*time.Second, "7E8:7FF")
		if err != nil {
			v = err
		}
		got <- v
	}()
	for len(got) == 0 {
		if _, err := drivertest.CallMethod(ctx, a, "send", map[string]any{"id": int64(0x7E0), "data": []byte{1}}); err != nil {
			t.Fatal(err)
		}
		if _, err := drivertest.CallMethod(ctx, a, "send", map[string]any{"id": int64(0x7E8), "data": []byte{2, 3}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	f, err := ParseFrameMap(<-got)
	if err != nil || f.ID != 0x7E8 || !bytes.Equal(f.Data, []byte{2, 3}) {
		t.Errorf("recv with filter: got %+v, %v", f, err)
	}
	for _, bad := range []map[string]any{{"id": int64(0x800)}, {"id": int64(1), "data": make([]byte, 9)}, {"id": int64(1), "colour": "red"}, {"data": []byte{1}}} {
		if _, err := drivertest.CallMethod(ctx, a, "send", bad); !errors.Is(err, wire.ErrInvalidArgument) {
			t.Errorf("send %v: got %v, want INVALID_ARGUMENT", bad, err)
		}
	}
	if _, err := drivertest.CallMethod(ctx, a, "send", map[string]any{"id": int64(1), "fd": true}); !errors.Is(err, wire.ErrFailedPrecondition) {
		t.Errorf("FD frame on a classic bus: got %v", err)
	}
	if _, err := drivertest.CallMethod(ctx, b, "recv", 10*time.Millisecond); !errors.Is(err, wire.ErrDeadlineExceeded) {
		t.Errorf("recv with nothing sent: got %v", err)
	}
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{"123#1122", "12345678#DEADBEEF", "7DF#R3", "123##1AABB", "123#11.22", "#", "1#R9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fr, err := ParseFrame(s)
		if err != nil {
			return
		}
		if err := fr.Validate(); err != nil {
			t.Fatalf("%q parsed to an invalid frame: %v", s, err)
		}
		back, err := ParseFrame(fr.String())
		if err != nil || back.String() != fr.String() {
			t.Fatalf("%q: String %q does not parse back: %v", s, fr.String(), err)
		}
		if d, err := decode(encode(fr)); err != nil || d.String() != fr.String() {
			t.Fatalf("%q: kernel encoding round trip: %v %v", s, d, err)
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(Frame{ID: 0x123, Data: []byte{1, 2}}))
	f.Add(encode(Frame{ID: 0x123, FD: true, Data: make([]byte, 64)}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decode(b)
		if err != nil {
			return
		}
		if len(fr.Data) > 64 {
			t.Fatalf("decoded %d bytes of data", len(fr.Data))
		}
		_ = fr.Dump("can0")
	})
}

func FuzzFilters(f *testing.F) {
	f.Add("123:7FF,200~700")
	f.Add("12345678:1FFFFFFF")
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := ParseFilters(s)
		if err == nil && len(fs) > 512 {
			t.Fatalf("%d filters", len(fs))
		}
	})
}

func FuzzParseFrameMap(f *testing.F) {
	f.Add(int64(0x123), []byte{1, 2}, true, false, "id")
	f.Fuzz(func(t *testing.T, id int64, data []byte, ext, fd bool, key string) {
		m := map[string]any{"id": id, "data": data, "ext": ext, "fd": fd}
		if key != "" {
			m[key] = int64(1)
		}
		fr, err := ParseFrameMap(m)
		if err != nil {
			return
		}
		if fr.ID > maskEFF || len(fr.Data) > 64 {
			t.Fatalf("accepted %+v", fr)
		}
	})
}
