package wire

import "testing"

func TestHistorySubjects(t *testing.T) {
	if got := HistorySubject("rack1", "harness.uart"); got != "jsn.x.rack1.history.harness.uart" {
		t.Errorf("HistorySubject: %s", got)
	}
	if p, ok := ParseHistory("rack1", "jsn.x.rack1.history.harness.uart"); !ok || p != "harness.uart" {
		t.Errorf("ParseHistory: %q %v", p, ok)
	}
	for _, s := range []string{"jsn.x.rack1.history.", "jsn.x.rack2.history.console", "jsn.x.rack1.call.console.x", "jsn.x.rack1.history.a..b"} {
		if _, ok := ParseHistory("rack1", s); ok {
			t.Errorf("ParseHistory(%q) accepted", s)
		}
	}
	r := HistoryReplySubject("rack1", "tok")
	if r != "jsn.tap.rack1.~history.tok" || !IsHistoryReply("rack1", r) {
		t.Errorf("HistoryReplySubject: %s", r)
	}
	for _, s := range []string{"jsn.tap.rack1.console", "jsn.tap.rack1.~history.", "jsn.tap.rack1.~history.a.b", "jsn.tap.rack2.~history.t",
		"_INBOX_c.bob.x", "jsn.tap.rack1.~history.*", "jsn.tap.rack1.~history.>"} {
		if IsHistoryReply("rack1", s) {
			t.Errorf("IsHistoryReply(%q) accepted", s)
		}
	}
}

// FuzzHistorySubjects: the parsers of history subjects (outside input: a request's subject and
// reply subject) never panic, and accept only what the builders make.
func FuzzHistorySubjects(f *testing.F) {
	f.Add("rack1", "jsn.x.rack1.history.console")
	f.Add("rack1", "jsn.tap.rack1.~history.tok")
	f.Add("a", "jsn.x.a.history.b.c.")
	f.Fuzz(func(t *testing.T, exporter, subject string) {
		if p, ok := ParseHistory(exporter, subject); ok {
			if !ValidPath(p) || HistorySubject(exporter, p) != subject {
				t.Fatalf("ParseHistory(%q, %q) = %q", exporter, subject, p)
			}
		}
		if IsHistoryReply(exporter, subject) && !inPrefix(subject, HistoryReplyPrefix(exporter)) {
			t.Fatalf("IsHistoryReply(%q, %q) outside the prefix", exporter, subject)
		}
	})
}

// inPrefix reports whether s is prefix followed by a dot and more.
func inPrefix(s, prefix string) bool {
	return len(s) > len(prefix)+1 && s[:len(prefix)] == prefix && s[len(prefix)] == '.'
}
