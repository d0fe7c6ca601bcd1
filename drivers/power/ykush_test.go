package power

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
)

func TestYkushRegistered(t *testing.T) {
	info, ok := driver.Lookup("jumpstarter_driver_yepkit.driver.Ykush")
	if !ok || info.Type != "power.Ykush" {
		t.Fatalf("got %v %v, want power.Ykush", info.Type, ok)
	}
}

func TestYkushConfig(t *testing.T) {
	tests := []struct {
		src     string
		wantErr string
	}{
		{"type: power.Ykush", ""},
		{"type: jumpstarter_driver_yepkit.driver.Ykush\nconfig: {serial: YK25838, port: '2', default: keep}", ""},
		{"type: power.Ykush\nconfig: {port: 3, reset: on, board: ykush3}", ""},
		{"type: power.Ykush\nconfig: {port: 4}", `port: want 1, 2, 3 or "all", got "4"`},
		{"type: power.Ykush\nconfig: {port: '0'}", "port"},
		{"type: power.Ykush\nconfig: {serial: '-u'}", "serial: not a board serial"},
		{"type: power.Ykush\nconfig: {default: maybe}", "default"},
		{"type: power.Ykush\nconfig: {default: on, reset: off}", "give either reset or default"},
		{"type: power.Ykush\nconfig: {board: ykush9}", "board"},
		{"type: power.Ykush\nconfig: {ykushcmd: ''}", "ykushcmd: must not be empty"},
	}
	for _, tt := range tests {
		buildOne(t, tt.src, tt.wantErr)
	}
}

func TestYkush(t *testing.T) {
	tests := []struct {
		config     string
		wantArgv   string // the stand-in's log after on, status, off, status, Reset
		wantStatus [2]string
	}{
		{"{port: '1'}", "-u 1\n-g 1\n-d 1\n-g 1\n-d 1\n", [2]string{"on", "off"}},
		{"{serial: YK25838, port: 2}", "-s YK25838 -u 2\n-s YK25838 -g 2\n-s YK25838 -d 2\n-s YK25838 -g 2\n-s YK25838 -d 2\n",
			[2]string{"on", "off"}},
		// "all" has no status query: the state is assumed. default: keep leaves it at Reset.
		{"{port: all, default: keep}", "-u a\n-d a\n", [2]string{"on", "off"}},
		{"{board: ykush3, port: a, reset: on}", "ykush3 -u a\nykush3 -d a\nykush3 -u a\n", [2]string{"on", "off"}},
	}
	for _, tt := range tests {
		t.Run(tt.config, func(t *testing.T) {
			state := t.TempDir()
			t.Setenv("YKUSH_STATE", state)
			d := buildOne(t, "type: power.Ykush\nconfig: "+strings.TrimSuffix(tt.config, "}")+", ykushcmd: ./ykushcmd}", "")
			call(t, d, "on")
			if got := status(t, d); got != tt.wantStatus[0] {
				t.Fatalf("status after on: got %q, want %q", got, tt.wantStatus[0])
			}
			call(t, d, "off")
			if got := status(t, d); got != tt.wantStatus[1] {
				t.Fatalf("status after off: got %q, want %q", got, tt.wantStatus[1])
			}
			if err := d.Reset(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(state, "argv")); got != tt.wantArgv {
				t.Fatalf("ykushcmd runs: got\n%s\nwant\n%s", got, tt.wantArgv)
			}
		})
	}
}

func TestYkushFailures(t *testing.T) {
	t.Setenv("YKUSH_STATE", t.TempDir())
	t.Setenv("YKUSH_FAIL", "1")
	d := buildOne(t, "type: power.Ykush\nconfig: {port: 1, ykushcmd: ./ykushcmd}", "")
	ctx := context.Background()
	_, err := drivertest.CallMethod(ctx, d, "on")
	wantCode(t, err, wire.Unavailable, `on: "./ykushcmd -u 1" exited with status 1: Could not open YKUSH board`)
	_, err = drivertest.CollectStream(ctx, d, "read")
	wantCode(t, err, wire.Unimplemented, "YKUSH power switch cannot measure")

	d = buildOne(t, "type: power.Ykush\nconfig: {port: 1, ykushcmd: /no/such/ykushcmd}", "")
	_, err = drivertest.CallMethod(ctx, d, "off")
	wantCode(t, err, wire.Unavailable, "/no/such/ykushcmd")
}
