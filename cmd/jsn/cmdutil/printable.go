package cmdutil

import (
	"fmt"
	"strings"
	"unicode"
)

// Printable returns s fit for a terminal: control characters (escape sequences, carriage
// returns, line breaks, C1 controls) and bidirectional overrides are written as Go escapes
// (\x1b, \n, \u202e), so that text from the lab (exporter-supplied labels and docs, hook output
// in a lease's reason) can neither drive the terminal nor disguise itself.
func Printable(s string) string { return printable(s, false) }

// PrintableText is Printable keeping line breaks and tabs: for multi-line text.
func PrintableText(s string) string { return printable(s, true) }

func printable(s string, keepLines bool) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r, keepLines) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !unsafeRune(r, keepLines):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func unsafeRune(r rune, keepLines bool) bool {
	if keepLines && (r == '\n' || r == '\t') {
		return false
	}
	return unicode.IsControl(r) || r == unicode.ReplacementChar ||
		r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f
}
