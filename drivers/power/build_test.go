package power

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/drivers/driver"
)

// cfg is Mock's config fields.
type cfg struct {
	Voltage, Current    float64
	Interval, CycleWait time.Duration
}

func TestBuildConfig(t *testing.T) {
	tests := []struct {
		src     string
		want    cfg
		wantErr string
	}{
		{src: "type: power.Mock", want: cfg{Voltage: 5, Current: 2, Interval: 100 * time.Millisecond, CycleWait: time.Second}},
		{src: "type: jumpstarter_driver_power.driver.MockPower\nconfig: {voltage: 12, current: 0.5, interval: 1s, cycle_wait: 3s}",
			want: cfg{Voltage: 12, Current: 0.5, Interval: time.Second, CycleWait: 3 * time.Second}},
		{src: "type: power.Mock\nconfig: {voltage: -1}", wantErr: "voltage"},
		{src: "type: power.Mock\nconfig: {volts: 3}", wantErr: `unknown field "volts"`},
	}
	for _, tt := range tests {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("p:\n  "+strings.ReplaceAll(tt.src, "\n", "\n  ")), &doc); err != nil {
			t.Fatal(err)
		}
		tree, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "exporter.yaml:") {
				t.Fatalf("%s: got %v, want a positioned error containing %q", tt.src, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		m := tree.Find("p").Driver.(*Mock)
		if m.Voltage != tt.want.Voltage || m.Current != tt.want.Current || m.Interval != tt.want.Interval || m.CycleWait != tt.want.CycleWait {
			t.Fatalf("%s: got %v V %v A %s %s, want %v V %v A %s %s", tt.src, m.Voltage, m.Current, m.Interval, m.CycleWait,
				tt.want.Voltage, tt.want.Current, tt.want.Interval, tt.want.CycleWait)
		}
	}
}
