package controller

import (
	"fmt"
	"slices"
	"strings"
)

// Op is a selector requirement's operator.
type Op int

// Selector operators.
const (
	OpEquals    Op = iota // k=v
	OpNotEquals           // k!=v
	OpIn                  // k in (a,b)
	OpNotIn               // k notin (a,b)
	OpExists              // k
	OpNotExists           // !k
)

// Requirement is one comma-separated term of a selector.
type Requirement struct {
	Key    string
	Op     Op
	Values []string // one for OpEquals/OpNotEquals, one or more for OpIn/OpNotIn, none otherwise
}

// Selector is a parsed label selector: every requirement must hold (AND). The zero Selector
// matches every label set.
type Selector struct {
	Reqs []Requirement
}

// SelectorError is a syntax error at a byte offset of the selector text.
type SelectorError struct {
	Input string
	Pos   int // byte offset, 0-based
	Msg   string
}

func (e *SelectorError) Error() string {
	return fmt.Sprintf("selector %q: position %d: %s", e.Input, e.Pos+1, e.Msg)
}

// maxSelector bounds selector text so a hostile request cannot make parsing expensive.
const maxSelector = 4096

// ParseSelector parses "k=v", "k!=v", "k in (a,b)", "k notin (a,b)", "k" and "!k" terms joined
// by commas. Keys and values are letters, digits and "-_./"; spaces around tokens are ignored.
func ParseSelector(s string) (Selector, error) {
	p := &selParser{in: s}
	if len(s) > maxSelector {
		return Selector{}, p.errf(maxSelector, "longer than %d bytes", maxSelector)
	}
	var sel Selector
	p.space()
	if p.eof() {
		return sel, nil
	}
	for {
		r, err := p.requirement()
		if err != nil {
			return Selector{}, err
		}
		sel.Reqs = append(sel.Reqs, r)
		p.space()
		if p.eof() {
			return sel, nil
		}
		if p.in[p.pos] != ',' {
			return Selector{}, p.errf(p.pos, "expected ',' or end, got %q", p.in[p.pos])
		}
		p.pos++
		p.space()
		if p.eof() {
			return Selector{}, p.errf(p.pos, "expected a requirement after ','")
		}
	}
}

// MustParseSelector is ParseSelector for constants; it panics on error.
func MustParseSelector(s string) Selector {
	sel, err := ParseSelector(s)
	if err != nil {
		panic(err)
	}
	return sel
}

type selParser struct {
	in  string
	pos int
}

func (p *selParser) errf(pos int, format string, a ...any) error {
	return &SelectorError{Input: p.in, Pos: pos, Msg: fmt.Sprintf(format, a...)}
}

func (p *selParser) eof() bool { return p.pos >= len(p.in) }

func (p *selParser) space() {
	for !p.eof() && (p.in[p.pos] == ' ' || p.in[p.pos] == '\t') {
		p.pos++
	}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '/'
}

// word reads a key or value; what names it in errors.
func (p *selParser) word(what string) (string, error) {
	start := p.pos
	for !p.eof() && isWordByte(p.in[p.pos]) {
		p.pos++
	}
	if p.pos == start {
		if p.eof() {
			return "", p.errf(p.pos, "expected %s, got end of selector", what)
		}
		return "", p.errf(p.pos, "expected %s, got %q", what, p.in[p.pos])
	}
	return p.in[start:p.pos], nil
}

func (p *selParser) requirement() (Requirement, error) {
	if p.in[p.pos] == '!' {
		p.pos++
		p.space()
		k, err := p.word("a label key after '!'")
		if err != nil {
			return Requirement{}, err
		}
		return Requirement{Key: k, Op: OpNotExists}, nil
	}
	k, err := p.word("a label key")
	if err != nil {
		return Requirement{}, err
	}
	p.space()
	if p.eof() || p.in[p.pos] == ',' {
		return Requirement{Key: k, Op: OpExists}, nil
	}
	switch {
	case p.in[p.pos] == '=':
		p.pos++
		if !p.eof() && p.in[p.pos] == '=' { // k==v, as kubectl accepts
			p.pos++
		}
		p.space()
		v, err := p.word("a value after '='")
		return Requirement{Key: k, Op: OpEquals, Values: []string{v}}, err
	case strings.HasPrefix(p.in[p.pos:], "!="):
		p.pos += 2
		p.space()
		v, err := p.word("a value after '!='")
		return Requirement{Key: k, Op: OpNotEquals, Values: []string{v}}, err
	}
	opPos := p.pos
	op, err := p.word("an operator (=, !=, in, notin)")
	if err != nil {
		return Requirement{}, err
	}
	var o Op
	switch op {
	case "in":
		o = OpIn
	case "notin":
		o = OpNotIn
	default:
		return Requirement{}, p.errf(opPos, "unknown operator %q (want =, !=, in or notin)", op)
	}
	p.space()
	if p.eof() || p.in[p.pos] != '(' {
		return Requirement{}, p.errf(p.pos, "expected '(' after %q", op)
	}
	p.pos++
	var vals []string
	for {
		p.space()
		v, err := p.word("a value")
		if err != nil {
			return Requirement{}, err
		}
		vals = append(vals, v)
		p.space()
		if p.eof() {
			return Requirement{}, p.errf(p.pos, "expected ')' to close the value list")
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
			continue
		case ')':
			p.pos++
			return Requirement{Key: k, Op: o, Values: vals}, nil
		}
		return Requirement{}, p.errf(p.pos, "expected ',' or ')' in the value list, got %q", p.in[p.pos])
	}
}

// Matches reports whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s.Reqs {
		v, ok := labels[r.Key]
		var m bool
		switch r.Op {
		case OpEquals:
			m = ok && v == r.Values[0]
		case OpNotEquals:
			m = !ok || v != r.Values[0]
		case OpIn:
			m = ok && slices.Contains(r.Values, v)
		case OpNotIn:
			m = !ok || !slices.Contains(r.Values, v)
		case OpExists:
			m = ok
		case OpNotExists:
			m = !ok
		}
		if !m {
			return false
		}
	}
	return true
}

// Empty reports whether the selector has no requirement (matches everything).
func (s Selector) Empty() bool { return len(s.Reqs) == 0 }

// String returns the selector in canonical form; ParseSelector(s.String()) gives s back.
func (s Selector) String() string {
	parts := make([]string, len(s.Reqs))
	for i, r := range s.Reqs {
		switch r.Op {
		case OpEquals:
			parts[i] = r.Key + "=" + r.Values[0]
		case OpNotEquals:
			parts[i] = r.Key + "!=" + r.Values[0]
		case OpIn:
			parts[i] = r.Key + " in (" + strings.Join(r.Values, ",") + ")"
		case OpNotIn:
			parts[i] = r.Key + " notin (" + strings.Join(r.Values, ",") + ")"
		case OpExists:
			parts[i] = r.Key
		case OpNotExists:
			parts[i] = "!" + r.Key
		}
	}
	return strings.Join(parts, ",")
}
