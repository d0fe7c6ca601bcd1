package driver

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// ConfigError is one problem in a config file, at a position.
type ConfigError struct {
	File string
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based; 0 when unknown
	Path string // dotted path in the file, "export.power.config"; may be empty
	Msg  string
}

// Error formats the error as "file:line:col: path: msg", leaving out what is unknown.
func (e ConfigError) Error() string {
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

// ConfigErrors are all the problems found in a config file, sorted by position. Every error
// returned while loading a config is of this type; use errors.As to get it.
type ConfigErrors []ConfigError

// Error lists the errors, one a line.
func (es ConfigErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns each ConfigError, so errors.As(err, &ConfigError{}) finds the first.
func (es ConfigErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Sort orders the errors by file and position, keeping the order of equal positions.
func (es ConfigErrors) Sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
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

// collector gathers config errors for one file.
type collector struct {
	file string
	errs ConfigErrors
}

// add records an error at n (or without position if n is nil).
func (c *collector) add(n *yaml.Node, path, format string, args ...any) {
	e := ConfigError{File: c.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	c.errs = append(c.errs, e)
}

// err returns the collected errors sorted, or nil.
func (c *collector) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	c.errs.Sort()
	return c.errs
}

// DecodeConfig strictly decodes the YAML node n into out, a pointer to a struct (or any other
// supported type), the way driver configs are decoded: only yaml-tagged exported fields, unknown
// and duplicate keys rejected, `jsn:"required"` fields checked. file and path (the dotted path
// of n in the file) are used in the errors, which are ConfigErrors. A nil n decodes nothing but
// still reports missing required fields (without a position).
func DecodeConfig(file string, n *yaml.Node, path string, out any) error {
	c := &collector{file: file}
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		c.add(n, path, "decode into non-pointer %T", out)
		return c.err()
	}
	d := &decoder{c: c}
	d.decodeTop(n, nil, v.Elem(), path)
	return c.err()
}

// maxDecodeSteps bounds the work of decoding one config, against alias bombs.
const maxDecodeSteps = 200000

type decoder struct {
	c      *collector
	steps  int
	bombed bool
}

// decodeTop decodes n (the config mapping, possibly nil) into v; pos is where to report missing
// required fields when n is nil.
func (d *decoder) decodeTop(n, pos *yaml.Node, v reflect.Value, path string) {
	if n != nil && isNull(resolveAlias(n)) {
		// `config:` with nothing after it is the same as no config: keep the constructor's
		// defaults (and its unexported state) instead of zeroing the struct.
		if pos == nil {
			pos = n
		}
		n = nil
	}
	if n == nil {
		if v.Kind() == reflect.Struct {
			d.checkRequired(pos, v.Type(), nil, path)
		}
		return
	}
	d.decode(n, v, path)
}

var (
	nodeType     = reflect.TypeFor[yaml.Node]()
	durationType = reflect.TypeFor[time.Duration]()
)

// resolveAlias follows alias nodes.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.DocumentNode:
		return "a document"
	}
	return "an alias"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.bombed {
		return
	}
	if d.steps++; d.steps > maxDecodeSteps {
		d.bombed = true
		d.c.add(n, path, "config too large (more than %d values after alias expansion)", maxDecodeSteps)
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.c.add(n, path, "alias to nothing")
			return
		}
		d.decode(n.Alias, v, path)
		return
	}
	t := v.Type()
	switch {
	case t == nodeType:
		v.Set(reflect.ValueOf(*n))
		return
	case t == reflect.PointerTo(nodeType):
		v.Set(reflect.ValueOf(n))
		return
	}
	if isNull(n) {
		v.SetZero()
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
		return
	case reflect.Interface:
		if t.NumMethod() != 0 {
			d.c.add(n, path, "unsupported config field type %s", t)
			return
		}
		var x any
		if err := n.Decode(&x); err != nil {
			d.c.add(n, path, "%v", err)
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
		return
	case reflect.Struct:
		d.decodeStruct(n, v, path)
		return
	case reflect.Map:
		d.decodeMap(n, v, path)
		return
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.c.add(n, path, "want a sequence, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, e := range n.Content {
			d.decode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
		return
	}
	if n.Kind != yaml.ScalarNode {
		d.c.add(n, path, "want %s, got %s", typeName(t), describe(n))
		return
	}
	d.decodeScalar(n, v, path)
}

// typeName names a Go type for users.
func typeName(t reflect.Type) string {
	if t == durationType {
		return "a duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	}
	return t.String()
}

var intLike = regexp.MustCompile(`^[-+]?[0-9][0-9_]*$`)

// scalarValue resolves a scalar like yaml.v3 does (int, int64, uint64, float64, bool, string…).
func scalarValue(n *yaml.Node) (any, error) {
	var x any
	err := n.Decode(&x)
	return x, err
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	tag := n.ShortTag()
	wrong := func() { d.c.add(n, path, "want %s, got %s", typeName(t), describe(n)) }
	if t == durationType {
		switch tag {
		case "!!str":
			dur, err := time.ParseDuration(n.Value)
			if err != nil {
				d.c.add(n, path, "want a duration (\"30s\" or a number of seconds), got %s", describe(n))
				return
			}
			v.SetInt(int64(dur))
		case "!!int", "!!float":
			x, err := scalarValue(n)
			f, ok := toFloat(x)
			if err != nil || !ok {
				wrong()
				return
			}
			ns := f * float64(time.Second)
			if math.IsNaN(ns) || ns >= math.MaxInt64 || ns <= math.MinInt64 {
				d.c.add(n, path, "duration %s seconds out of range", n.Value)
				return
			}
			v.SetInt(int64(ns))
		default:
			wrong()
		}
		return
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		if tag != "!!bool" {
			wrong()
			return
		}
		x, err := scalarValue(n)
		b, ok := x.(bool)
		if err != nil || !ok {
			wrong()
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		d.decodeInt(n, v, path, wrong)
	case reflect.Float32, reflect.Float64:
		if tag != "!!int" && tag != "!!float" {
			wrong()
			return
		}
		x, err := scalarValue(n)
		f, ok := toFloat(x)
		if err != nil || !ok {
			wrong()
			return
		}
		if v.OverflowFloat(f) {
			d.c.add(n, path, "value %s overflows %s", n.Value, t)
			return
		}
		v.SetFloat(f)
	default:
		d.c.add(n, path, "unsupported config field type %s", t)
	}
}

func (d *decoder) decodeInt(n *yaml.Node, v reflect.Value, path string, wrong func()) {
	t := v.Type()
	tag := n.ShortTag()
	overflow := func() { d.c.add(n, path, "value %s overflows %s", n.Value, t) }
	if tag == "!!float" && intLike.MatchString(n.Value) {
		overflow() // an integer too large for 64 bits
		return
	}
	if tag != "!!int" {
		wrong()
		return
	}
	x, err := scalarValue(n)
	if err != nil {
		wrong()
		return
	}
	var neg bool
	var u uint64 // magnitude
	switch x := x.(type) {
	case int:
		neg, u = x < 0, absU(int64(x))
	case int64:
		neg, u = x < 0, absU(x)
	case uint64:
		u = x
	default:
		wrong()
		return
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		switch {
		case neg && u <= 1<<63:
			i = int64(-u) // two's complement: -u as int64
		case !neg && u <= math.MaxInt64:
			i = int64(u)
		default:
			overflow()
			return
		}
		if v.OverflowInt(i) {
			overflow()
			return
		}
		v.SetInt(i)
	default:
		if neg || v.OverflowUint(u) {
			overflow()
			return
		}
		v.SetUint(u)
	}
}

func absU(i int64) uint64 {
	if i < 0 {
		return uint64(-(i + 1)) + 1
	}
	return uint64(i)
}

func toFloat(x any) (float64, bool) {
	switch x := x.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// pairs returns the key/value pairs of a mapping, reporting non-scalar and duplicate keys.
func (d *decoder) pairs(n *yaml.Node, path string) (keys []string, keyNodes, vals []*yaml.Node) {
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			d.c.add(n.Content[i], path, "mapping key must be a string")
			continue
		}
		if prev, ok := seen[k.Value]; ok {
			d.c.add(k, path, "duplicate key %q (first at line %d)", k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		keys, keyNodes, vals = append(keys, k.Value), append(keyNodes, k), append(vals, val)
	}
	return keys, keyNodes, vals
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.c.add(n, path, "unsupported config field type %s", t)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.c.add(n, path, "want a mapping, got %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	keys, _, vals := d.pairs(n, path)
	for i, k := range keys {
		e := reflect.New(t.Elem()).Elem()
		d.decode(vals[i], e, joinPath(path, k))
		v.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), e)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.c.add(n, path, "want a mapping, got %s", describe(n))
		return
	}
	fs := fieldsOf(v.Type())
	set := map[string]bool{}
	keys, keyNodes, vals := d.pairs(n, path)
	for i, k := range keys {
		f, ok := fs.byName[k]
		if !ok {
			d.c.add(keyNodes[i], path, "unknown field %q%s", k, suggest(k, fs.names))
			continue
		}
		if !isNull(resolveAlias(vals[i])) {
			set[k] = true
		}
		d.decode(vals[i], fieldByIndex(v, f.index), joinPath(path, k))
	}
	d.checkRequired(n, v.Type(), set, path)
}

func (d *decoder) checkRequired(n *yaml.Node, t reflect.Type, set map[string]bool, path string) {
	for _, f := range fieldsOf(t).list {
		if f.required && !set[f.name] {
			d.c.add(n, path, "missing required field %q", f.name)
		}
	}
}

// fieldByIndex is reflect.Value.FieldByIndex allocating nil embedded pointers.
func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

type field struct {
	name     string
	index    []int
	required bool
}

type fields struct {
	list   []field
	byName map[string]field
	names  []string
}

var fieldCache sync.Map // reflect.Type → *fields

// fieldsOf returns the config fields of struct type t: exported fields with a yaml name, and the
// fields of embedded structs without one (or tagged ",inline").
func fieldsOf(t reflect.Type) *fields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*fields)
	}
	fs := &fields{byName: map[string]field{}}
	var walk func(t reflect.Type, index []int, depth int)
	walk = func(t reflect.Type, index []int, depth int) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			tag, hasTag := sf.Tag.Lookup("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(append([]int(nil), index...), i)
			if sf.Anonymous && name == "" && (!hasTag || strings.Contains(opts, "inline")) {
				et := sf.Type
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct && depth < 10 {
					walk(et, idx, depth+1)
					continue
				}
			}
			if !sf.IsExported() || !hasTag || name == "-" || name == "" {
				continue
			}
			if _, dup := fs.byName[name]; dup {
				continue // the shallower field wins, as in encoding/json
			}
			f := field{name: name, index: idx, required: hasOpt(sf.Tag.Get("jsn"), "required")}
			fs.list = append(fs.list, f)
			fs.byName[name] = f
			fs.names = append(fs.names, name)
		}
	}
	walk(t, nil, 0)
	f, _ := fieldCache.LoadOrStore(t, fs)
	return f.(*fields)
}

func hasOpt(tag, opt string) bool {
	for _, o := range strings.Split(tag, ",") {
		if strings.TrimSpace(o) == opt {
			return true
		}
	}
	return false
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to word, or "".
func suggest(word string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		dist := levenshtein(strings.ToLower(word), strings.ToLower(c))
		if bestD < 0 || dist < bestD {
			best, bestD = c, dist
		}
	}
	limit := max(len([]rune(word))/3, 1) + 1
	if best == "" || bestD > limit || bestD > 3 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 200 || len(rb) > 200 {
		return 1 << 30
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// reportValidate turns a Validate error into config errors: FieldErrors at their key in cfg,
// the rest at pos.
func (c *collector) reportValidate(err error, cfg, pos *yaml.Node, path string) {
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
			at := findKey(cfg, fe.Field)
			if at == nil {
				at = pos
			}
			c.add(at, joinPath(path, fe.Field), "%v", fe.Err)
			continue
		}
		c.add(pos, path, "%v", e)
	}
}

// findKey returns the key node of the dotted field in mapping n, or nil.
func findKey(n *yaml.Node, field string) *yaml.Node {
	var key *yaml.Node
	for _, part := range strings.Split(field, ".") {
		n = resolveAlias(n)
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				key, next = n.Content[i], n.Content[i+1]
				break
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return key
}

// valueOf returns the value node of key node k in mapping m.
func valueOf(m, k *yaml.Node) *yaml.Node {
	m = resolveAlias(m)
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i] == k {
			return m.Content[i+1]
		}
	}
	return k
}

// ValueNode returns the value node of key k in mapping m, or m itself (a position for errors
// about a missing key) when m has no key k or is not a mapping.
func ValueNode(m *yaml.Node, k string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return m
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i+1]
		}
	}
	return m
}
