package qemu

import (
	"bytes"
	"errors"
	"image/color"
	"strings"
	"testing"
)

var qmpTests = []struct {
	in      string
	want    string // return value
	wantErr string
}{
	{`{"return": {}}` + "\n", `{}`, ""},
	{`{"event": "RESET", "data": {}}` + "\n" + `{"return": {"status": "running"}}` + "\n", `{"status": "running"}`, ""},
	{`{"error": {"class": "GenericError", "desc": "Parameter 'format' is unexpected"}}` + "\n", "", "GenericError: Parameter 'format'"},
	{`{"QMP": {"version": {}}}` + "\n" + `{"return": []}` + "\n", `[]`, ""},
	{`{"foo": 1}` + "\n", "", "neither a reply nor an event"},
	{`not json` + "\n", "", "bad message"},
	{``, "", "EOF"},
	{`{"return": 1}`, `1`, ""},
}

func TestQMPReader(t *testing.T) {
	for _, tt := range qmpTests {
		got, err := newQMPReader(strings.NewReader(tt.in)).reply()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: got %v, want error %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%q: got %s, %v, want %s", tt.in, got, err, tt.want)
		}
	}
	var qe *qmpError
	_, err := newQMPReader(strings.NewReader(qmpTests[2].in)).reply()
	if !errors.As(err, &qe) || qe.Class != "GenericError" {
		t.Errorf("got %v, want a *qmpError", err)
	}
	long := `{"return": "` + strings.Repeat("x", maxQMPMessage) + `"}` + "\n"
	if _, err := newQMPReader(strings.NewReader(long)).reply(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("huge message: got %v, want longer than", err)
	}
}

func FuzzQMPReader(f *testing.F) {
	for _, tt := range qmpTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := newQMPReader(bytes.NewReader(b))
		for i := 0; i < 100; i++ {
			if _, err := r.reply(); err != nil {
				return
			}
		}
	})
}

var ppmTests = []struct {
	in      string
	w, h    int
	wantErr string
}{
	{"P6\n2 1\n255\n\xff\x00\x00\x00\xff\x00", 2, 1, ""},
	{"P6 # comment\n# more\n1 1 255\n\x01\x02\x03", 1, 1, ""},
	{"P5\n1 1\n255\n\x00", 0, 0, "want P6"},
	{"P6\n1 1\n65535\n\x00\x00\x00\x00\x00\x00", 0, 0, "maxval"},
	{"P6\n0 1\n255\n", 0, 0, "bad size"},
	{"P6\n100000 100000\n255\n", 0, 0, "bad size"},
	{"P6\n2 2\n255\n\x00\x00\x00", 0, 0, "row"},
	{"P6\n2", 0, 0, "header"},
	{"P6\n99999999999999999999 1\n255\n", 0, 0, "header"},
}

func TestDecodePPM(t *testing.T) {
	for _, tt := range ppmTests {
		img, err := decodePPM(strings.NewReader(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: got %v, want error %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
			t.Errorf("%q: got %v, want %dx%d", tt.in, b, tt.w, tt.h)
		}
	}
	img, _ := decodePPM(strings.NewReader(ppmTests[0].in))
	if got := color.RGBAModel.Convert(img.At(1, 0)).(color.RGBA); got != (color.RGBA{0, 255, 0, 255}) {
		t.Errorf("pixel (1,0): got %v, want green", got)
	}
}

func FuzzDecodePPM(f *testing.F) {
	for _, tt := range ppmTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = decodePPM(bytes.NewReader(b)) })
}
