package cmdutil

import "testing"

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want, text string }{
		{"board=rpi4", "board=rpi4", "board=rpi4"},
		{"x\x1b]0;pwned\x07y", `x\x1b]0;pwned\x07y`, `x\x1b]0;pwned\x07y`},
		{"a\nb\tc\rd", `a\nb\tc\rd`, "a\nb\tc\\rd"},
		{"evil\u202etxt.exe", `evil\u202etxt.exe`, `evil\u202etxt.exe`},
		{"\u009b31m", `\x9b31m`, `\x9b31m`},
		{"ünïcode ✓", "ünïcode ✓", "ünïcode ✓"},
		{"bad\xffbyte", `bad\ufffdbyte`, `bad\ufffdbyte`},
	}
	for _, tt := range tests {
		if got := Printable(tt.in); got != tt.want {
			t.Errorf("Printable(%q): got %q, want %q", tt.in, got, tt.want)
		}
		if got := PrintableText(tt.in); got != tt.text {
			t.Errorf("PrintableText(%q): got %q, want %q", tt.in, got, tt.text)
		}
	}
}
