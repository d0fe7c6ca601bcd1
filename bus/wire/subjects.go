package wire

import (
	"fmt"
	"strings"
)

// Subject layout (see docs/protocol.md):
//
//	jsn.x.<exporter>.describe                     request: driver tree
//	jsn.x.<exporter>.call.<driver path…>.<method> request: a driver call
//	jsn.x.<exporter>.stream.<lease>.<id>          client → exporter stream frames
//	jsn.x.<exporter>.out.<lease>.<id>             exporter → client stream frames
//	jsn.tap.<exporter>.<driver path…>             read-only broadcast of device output
const (
	prefixExporter = "jsn.x."
	prefixTap      = "jsn.tap."
)

// validToken reports whether s is usable as one subject token: ASCII letters, digits, '-' and '_'.
func validToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ValidName reports whether s can name an exporter, a driver or a method (one subject token).
func ValidName(s string) bool { return validToken(s) }

// ValidPath reports whether p is a dotted driver path of valid names.
func ValidPath(p string) bool {
	if p == "" {
		return false
	}
	for _, t := range strings.Split(p, ".") {
		if !validToken(t) {
			return false
		}
	}
	return true
}

// CheckName returns an error naming what (e.g. "exporter name") if s is not a valid name.
func CheckName(what, s string) error {
	if !validToken(s) {
		return fmt.Errorf("%s %q: use only letters, digits, '-' and '_' (at most 128)", what, s)
	}
	return nil
}

// DescribeSubject is where an exporter answers describe requests.
func DescribeSubject(exporter string) string { return prefixExporter + exporter + ".describe" }

// CallSubject is the subject of a call of method on the driver at path.
func CallSubject(exporter, path, method string) string {
	return prefixExporter + exporter + ".call." + path + "." + method
}

// CallWildcard matches every call to exporter.
func CallWildcard(exporter string) string { return prefixExporter + exporter + ".call.>" }

// ParseCall splits a call subject of exporter into driver path and method.
func ParseCall(exporter, subject string) (path, method string, ok bool) {
	p := prefixExporter + exporter + ".call."
	if !strings.HasPrefix(subject, p) {
		return "", "", false
	}
	rest := subject[len(p):]
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// Stream subjects carry the lease the stream belongs to, so that a lease credential may publish
// and subscribe to its own lease's streams only (NoLease stands for a stream opened without one,
// which the exporter refuses), and the holder of the lease that opened it (StreamToken), so that
// the clients a lease is shared with reach only their own streams.

// NoLease is the lease token of stream subjects of calls that present no lease.
const NoLease = "-"

// LeaseToken is lease as the lease token of stream subjects: NoLease if it is not a token.
func LeaseToken(lease string) string {
	if !validToken(lease) {
		return NoLease
	}
	return lease
}

// StreamToken is the token of the stream subjects of lease opened by holder: "<lease>~<holder>",
// or the lease's token alone (LeaseToken) when holder is "" or not a token. holder is the token
// right below the lease's inbox in the reply subject of the call that opened the stream
// (_INBOX_l.<exporter>.<lease>.<holder>…): the client whose lease credential may receive the
// reply, and so the only one whose credential may use the stream's subjects.
func StreamToken(lease, holder string) string {
	t := LeaseToken(lease)
	if t == NoLease || holder == "" || !validToken(holder) {
		return t
	}
	return t + "~" + holder
}

// streamToken is t as the token of stream subjects: a StreamToken or a lease (LeaseToken).
func streamToken(t string) string {
	if l, h, ok := strings.Cut(t, "~"); ok && validToken(l) && validToken(h) {
		return t
	}
	return LeaseToken(t)
}

// StreamSubject carries client → exporter frames of stream id of token (a StreamToken, or a
// lease).
func StreamSubject(exporter, token, id string) string {
	return prefixExporter + exporter + ".stream." + streamToken(token) + "." + id
}

// StreamWildcard matches every client → exporter stream subject of exporter.
func StreamWildcard(exporter string) string { return prefixExporter + exporter + ".stream.*.*" }

// StreamOutSubject carries exporter → client frames of stream id of token (a StreamToken, or a
// lease). Exporters publish only under their own jsn.x.<exporter> prefix (never into client
// inboxes), and only the credential of that lease and holder may subscribe to it.
func StreamOutSubject(exporter, token, id string) string {
	return prefixExporter + exporter + ".out." + streamToken(token) + "." + id
}

// StreamOutWildcard matches every exporter → client stream subject of token (a StreamToken, or
// a lease) on exporter.
func StreamOutWildcard(exporter, token string) string {
	return prefixExporter + exporter + ".out." + streamToken(token) + ".*"
}

// TapSubject is where the driver at path broadcasts its output.
func TapSubject(exporter, path string) string { return prefixTap + exporter + "." + path }

// TapWildcard matches every tap subject of exporter, including history replies (see
// HistoryReplySubject: skip subjects whose token after the exporter starts with '~').
func TapWildcard(exporter string) string { return prefixTap + exporter + ".>" }

// StateSubject is where the exporter publishes the state of the driver at path (a power
// driver's "on", "off" or "unknown", raw) whenever it changes: in the exporter's tap namespace,
// so exactly its watchers read it; '~state' is never a driver's tap (docs/protocol.md "Power
// state").
func StateSubject(exporter, path string) string {
	return prefixTap + exporter + "." + stateToken + "." + path
}

const stateToken = "~state"

// Tap history (docs/protocol.md "Taps and their history"): a watcher asks the exporter for the
// recent output of a driver on HistorySubject, with a reply subject HistoryReplySubject, which
// lies in the exporter's tap namespace: whoever may watch the exporter's taps may read it, and
// nobody else, and the exporter publishes nowhere else. '~' never occurs in a driver name, so a
// reply subject is never a driver's tap.
const historyReplyToken = "~history"

// HistorySubject is where the history of the tap of the driver at path is requested.
func HistorySubject(exporter, path string) string {
	return prefixExporter + exporter + ".history." + path
}

// HistoryWildcard matches every history request to exporter.
func HistoryWildcard(exporter string) string { return prefixExporter + exporter + ".history.>" }

// ParseHistory returns the driver path of a history request subject of exporter.
func ParseHistory(exporter, subject string) (path string, ok bool) {
	p, ok := strings.CutPrefix(subject, prefixExporter+exporter+".history.")
	if !ok || !ValidPath(p) {
		return "", false
	}
	return p, true
}

// HistoryReplySubject is the reply subject of a history request of a watcher: token is random.
func HistoryReplySubject(exporter, token string) string {
	return prefixTap + exporter + "." + historyReplyToken + "." + token
}

// HistoryReplyPrefix is the prefix of exporter's history reply subjects (an inbox-like prefix:
// the reply subject is the prefix, '.', a token).
func HistoryReplyPrefix(exporter string) string {
	return prefixTap + exporter + "." + historyReplyToken
}

// IsHistoryReply reports whether subject is a history reply subject of exporter (one token
// after the marker).
func IsHistoryReply(exporter, subject string) bool {
	tok, ok := strings.CutPrefix(subject, prefixTap+exporter+"."+historyReplyToken+".")
	return ok && tok != "" && !strings.ContainsAny(tok, ".*> \t\r\n")
}
