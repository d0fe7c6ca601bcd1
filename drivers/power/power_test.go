package power

import (
	"testing"
)

var parseReadingTests = []struct {
	name    string
	item    any
	want    Reading
	wantErr bool
}{
	{"floats", map[string]any{"voltage": 5.0, "current": 2.0}, Reading{5, 2}, false},
	{"ints", map[string]any{"voltage": int64(12), "current": uint8(1)}, Reading{12, 1}, false},
	{"float32", map[string]any{"voltage": float32(3.5), "current": int8(0)}, Reading{3.5, 0}, false},
	{"missing current", map[string]any{"voltage": 5.0}, Reading{}, true},
	{"string voltage", map[string]any{"voltage": "5", "current": 1.0}, Reading{}, true},
	{"not a map", []any{5.0, 2.0}, Reading{}, true},
	{"nil", nil, Reading{}, true},
}

func TestParseReading(t *testing.T) {
	for _, tt := range parseReadingTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseReading(tt.item)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %v, %v, want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestReadingRoundTrip(t *testing.T) {
	r := Reading{Voltage: 4.98, Current: 1.5}
	got, err := ParseReading(r.Map())
	if err != nil || got != r {
		t.Fatalf("got %v, %v, want %v, nil", got, err, r)
	}
	if s := r.String(); s != "4.98 V  1.50 A" {
		t.Fatalf("String: got %q, want %q", s, "4.98 V  1.50 A")
	}
	if p := r.Power().String(); p != "7.47 W" {
		t.Fatalf("Power: got %q, want %q", p, "7.47 W")
	}
}

// FuzzParseReading feeds arbitrary field values to ParseReading: it must never panic, and a
// reading it accepts must survive a round trip.
func FuzzParseReading(f *testing.F) {
	f.Add(5.0, 2.0, int64(0), "")
	f.Add(0.0, 0.0, int64(12), "x")
	f.Fuzz(func(t *testing.T, v, c float64, n int64, s string) {
		for _, item := range []any{
			map[string]any{"voltage": v, "current": c},
			map[string]any{"voltage": n, "current": s},
			map[string]any{"voltage": s},
			map[string]any{"current": n, "voltage": uint64(n)},
		} {
			r, err := ParseReading(item)
			if err != nil {
				continue
			}
			back, err := ParseReading(r.Map())
			if err != nil || back != r {
				t.Fatalf("round trip of %v: got %v, %v", r, back, err)
			}
		}
	})
}
