package controller

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

var selectorTests = []struct {
	in      string
	want    string // canonical form; "" with err
	err     string // substring of the error
	matches map[string]bool
}{
	{in: "", want: ""},
	{in: "   ", want: ""},
	{in: "board=rpi4", want: "board=rpi4"},
	{in: "board==rpi4", want: "board=rpi4"},
	{in: " board = rpi4 , site!=lab2 ", want: "board=rpi4,site!=lab2"},
	{in: "site in (a, b,c)", want: "site in (a,b,c)"},
	{in: "site notin (a)", want: "site notin (a)"},
	{in: "board,!broken", want: "board,!broken"},
	{in: "! broken", want: "!broken"},
	{in: "example.com/arch=arm64", want: "example.com/arch=arm64"},
	{in: "board=", err: "position 7: expected a value after '='"},
	{in: "=x", err: "position 1: expected a label key"},
	{in: "a,", err: "position 3: expected a requirement after ','"},
	{in: "a b", err: "position 3: unknown operator \"b\""},
	{in: "a in a,b", err: "position 6: expected '(' after \"in\""},
	{in: "a in (x", err: "position 8: expected ')'"},
	{in: "a in ()", err: "position 7: expected a value"},
	{in: "a in (x;y)", err: "position 8: expected ',' or ')'"},
	{in: "a=b c", err: "position 5: expected ',' or end"},
	{in: "!", err: "position 2: expected a label key after '!'"},
	{in: "a=\x00", err: "position 3"},
	{in: "a in (x,)", err: "position 9: expected a value"},
}

func TestParseSelector(t *testing.T) {
	for _, tt := range selectorTests {
		sel, err := ParseSelector(tt.in)
		if tt.err != "" {
			var se *SelectorError
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.As(err, &se) {
				t.Errorf("ParseSelector(%q): got %v, want error containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSelector(%q): %v", tt.in, err)
			continue
		}
		if got := sel.String(); got != tt.want {
			t.Errorf("ParseSelector(%q).String(): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSelectorMatches(t *testing.T) {
	rpi := map[string]string{"board": "rpi4", "site": "a"}
	broken := map[string]string{"board": "rpi4", "site": "b", "broken": "yes"}
	none := map[string]string{}
	tests := []struct {
		sel    string
		labels map[string]string
		want   bool
	}{
		{"", none, true},
		{"board=rpi4", rpi, true},
		{"board=rpi3", rpi, false},
		{"board=rpi4", none, false},
		{"board!=rpi3", rpi, true},
		{"board!=rpi4", rpi, false},
		{"board!=rpi4", none, true},
		{"site in (a,c)", rpi, true},
		{"site in (a,c)", broken, false},
		{"site in (a,c)", none, false},
		{"site notin (a,c)", rpi, false},
		{"site notin (a,c)", broken, true},
		{"site notin (a,c)", none, true},
		{"broken", broken, true},
		{"broken", rpi, false},
		{"!broken", rpi, true},
		{"!broken", broken, false},
		{"board=rpi4,!broken", rpi, true},
		{"board=rpi4,!broken", broken, false},
	}
	for _, tt := range tests {
		if got := MustParseSelector(tt.sel).Matches(tt.labels); got != tt.want {
			t.Errorf("%q matches %v: got %v, want %v", tt.sel, tt.labels, got, tt.want)
		}
	}
}

func FuzzParseSelector(f *testing.F) {
	for _, tt := range selectorTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			var se *SelectorError
			if !errors.As(err, &se) || se.Pos < 0 || se.Pos > len(s) {
				t.Fatalf("ParseSelector(%q): bad error %v", s, err)
			}
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("reparse %q (from %q): %v", sel.String(), s, err)
		}
		if !reflect.DeepEqual(again.Reqs, sel.Reqs) && !(len(again.Reqs) == 0 && len(sel.Reqs) == 0) {
			t.Fatalf("round trip %q: got %+v, want %+v", s, again, sel)
		}
		sel.Matches(map[string]string{"a": "b"})
	})
}
