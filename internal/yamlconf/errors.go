package yamlconf

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a config file, at a position.
type Error struct {
	File string
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based; 0 when unknown
	Path string // dotted path in the file, "export.power.config"; may be empty
	Msg  string
	// Note marks a summary about the whole file (the list of known driver classes), printed
	// once after the errors it explains.
	Note bool
}

// Error formats the error as "file:line:col: path: msg", leaving out what is unknown.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the problems found in a config file, sorted by position. Every error
// returned while loading a config is of this type; use errors.As to get it.
type Errors []Error

// Error lists the errors, one a line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns each Error, so errors.As(err, &Error{}) finds the first.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Sort orders the errors by file and position, keeping the order of equal positions.
func (es Errors) Sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Note != b.Note {
			return b.Note
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// FieldError is an error about one config field, returned by a Validator through FieldErrorf.
type FieldError struct {
	Field string // yaml key, dotted for nested keys ("serial.baudrate")
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrorf returns an error about the config key field (its yaml name; dotted for nested
// keys). A Validator returns it, or several joined with errors.Join, and the framework reports it
// at the position of that key in the config file.
func FieldErrorf(field string, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Collector gathers the errors of one config file, so that all of them are reported at once.
type Collector struct {
	File string // named in every error
	errs Errors
}

// Len is the number of errors collected so far (to tell whether a step added any).
func (c *Collector) Len() int { return len(c.errs) }

// Add records an error at n (or without position if n is nil).
func (c *Collector) Add(n *yaml.Node, path, format string, args ...any) {
	c.errs.Add(c.File, n, path, format, args...)
}

// Add appends an error of file at n (or without position if n is nil) at the dotted path.
func (es *Errors) Add(file string, n *yaml.Node, path, format string, args ...any) {
	e := Error{File: file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	*es = append(*es, e)
}

// Note records a summary about the whole file, printed after every error (see Error.Note).
func (c *Collector) Note(format string, args ...any) {
	c.errs = append(c.errs, Error{File: c.File, Msg: fmt.Sprintf(format, args...), Note: true})
}

// Err returns the collected errors sorted (an Errors), or nil.
func (c *Collector) Err() error {
	if len(c.errs) == 0 {
		return nil
	}
	c.errs.Sort()
	return c.errs
}

// ReportValidate turns a Validate error into config errors: FieldErrors at their key in cfg,
// the rest at pos.
func (c *Collector) ReportValidate(err error, cfg, pos *yaml.Node, path string) {
	var flat []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		flat = append(flat, e)
	}
	walk(err)
	for _, e := range flat {
		var fe *FieldError
		if errors.As(e, &fe) {
			at := FindKey(cfg, fe.Field)
			if at == nil {
				at = pos
			}
			c.Add(at, JoinPath(path, fe.Field), "%v", fe.Err)
			continue
		}
		c.Add(pos, path, "%v", e)
	}
}
