package yamlconf

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Decode strictly decodes the YAML node n into out, a pointer to a struct (or any other
// supported type), the way driver configs are decoded: only yaml-tagged exported fields, unknown
// and duplicate keys rejected, `jsn:"required"` fields checked. file and path (the dotted path
// of n in the file) are used in the errors, which are Errors. A nil n decodes nothing but
// still reports missing required fields (without a position).
func Decode(file string, n *yaml.Node, path string, out any) error {
	c := &Collector{File: file}
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		c.Add(n, path, "decode into non-pointer %T", out)
		return c.Err()
	}
	d := NewDecoder(c)
	d.DecodeTop(n, nil, v.Elem(), path)
	return c.Err()
}

// NewDecoder returns a Decoder reporting into c.
func NewDecoder(c *Collector) *Decoder { return &Decoder{c: c} }

// maxDecodeSteps bounds the work of decoding one config, against alias bombs.
const maxDecodeSteps = 200000

// Decoder decodes YAML nodes into Go values strictly, reporting into a Collector: only
// yaml-tagged exported fields, unknown and duplicate keys rejected (with "did you mean"),
// `jsn:"required"` fields checked, integers range-checked, durations as Go durations or integer
// nanoseconds, and a bound on the work against alias bombs.
type Decoder struct {
	c      *Collector
	steps  int
	bombed bool
}

// DecodeTop decodes n (the config mapping, possibly nil) into v; pos is where to report missing
// required fields when n is nil.
func (d *Decoder) DecodeTop(n, pos *yaml.Node, v reflect.Value, path string) {
	if n != nil && IsNull(ResolveAlias(n)) {
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
	d.Decode(n, v, path)
}

var (
	nodeType     = reflect.TypeFor[yaml.Node]()
	durationType = reflect.TypeFor[time.Duration]()
)

func (d *Decoder) Decode(n *yaml.Node, v reflect.Value, path string) {
	if d.bombed {
		return
	}
	if d.steps++; d.steps > maxDecodeSteps {
		d.bombed = true
		d.c.Add(n, path, "config too large (more than %d values after alias expansion)", maxDecodeSteps)
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.c.Add(n, path, "alias to nothing")
			return
		}
		d.Decode(n.Alias, v, path)
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
	if IsNull(n) {
		v.SetZero()
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.Decode(n, p.Elem(), path)
		v.Set(p)
		return
	case reflect.Interface:
		if t.NumMethod() != 0 {
			d.c.Add(n, path, "unsupported config field type %s", t)
			return
		}
		var x any
		if err := n.Decode(&x); err != nil {
			d.c.Add(n, path, "%v", err)
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
			d.c.Add(n, path, "want a sequence, got %s", Describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, e := range n.Content {
			d.Decode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
		return
	}
	if n.Kind != yaml.ScalarNode {
		d.c.Add(n, path, "want %s, got %s", typeName(t), Describe(n))
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

var intLike = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[-+]?[0-9][0-9_]*$`) })

// scalarValue resolves a scalar like yaml.v3 does (int, int64, uint64, float64, bool, string…).
func scalarValue(n *yaml.Node) (any, error) {
	var x any
	err := n.Decode(&x)
	return x, err
}

func (d *Decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	tag := n.ShortTag()
	wrong := func() { d.c.Add(n, path, "want %s, got %s", typeName(t), Describe(n)) }
	if t == durationType {
		switch tag {
		case "!!str":
			dur, err := time.ParseDuration(n.Value)
			if err != nil {
				d.c.Add(n, path, "want a duration (\"30s\" or a number of seconds), got %s", Describe(n))
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
				d.c.Add(n, path, "duration %s seconds out of range", n.Value)
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
			d.c.Add(n, path, "value %s overflows %s", n.Value, t)
			return
		}
		v.SetFloat(f)
	default:
		d.c.Add(n, path, "unsupported config field type %s", t)
	}
}

func (d *Decoder) decodeInt(n *yaml.Node, v reflect.Value, path string, wrong func()) {
	t := v.Type()
	tag := n.ShortTag()
	overflow := func() { d.c.Add(n, path, "value %s overflows %s", n.Value, t) }
	if tag == "!!float" && intLike().MatchString(n.Value) {
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

// Pairs returns the key/value Pairs of a mapping, reporting non-scalar and duplicate keys.
func (d *Decoder) Pairs(n *yaml.Node, path string) (keys []string, keyNodes, vals []*yaml.Node) {
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := ResolveAlias(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			d.c.Add(n.Content[i], path, "mapping key must be a string")
			continue
		}
		if prev, ok := seen[k.Value]; ok {
			d.c.Add(k, path, "duplicate key %q (first at line %d)", k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		keys, keyNodes, vals = append(keys, k.Value), append(keyNodes, k), append(vals, val)
	}
	return keys, keyNodes, vals
}

func (d *Decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.c.Add(n, path, "unsupported config field type %s", t)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.c.Add(n, path, "want a mapping, got %s", Describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	keys, _, vals := d.Pairs(n, path)
	for i, k := range keys {
		e := reflect.New(t.Elem()).Elem()
		d.Decode(vals[i], e, JoinPath(path, k))
		v.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), e)
	}
}

func (d *Decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.c.Add(n, path, "want a mapping, got %s", Describe(n))
		return
	}
	fs := fieldsOf(v.Type())
	set := map[string]bool{}
	keys, keyNodes, vals := d.Pairs(n, path)
	for i, k := range keys {
		f, ok := fs.byName[k]
		if !ok {
			d.c.Add(keyNodes[i], path, "unknown field %q%s", k, Suggest(k, fs.names))
			continue
		}
		if !IsNull(ResolveAlias(vals[i])) {
			set[k] = true
		}
		d.Decode(vals[i], fieldByIndex(v, f.index), JoinPath(path, k))
	}
	d.checkRequired(n, v.Type(), set, path)
}

func (d *Decoder) checkRequired(n *yaml.Node, t reflect.Type, set map[string]bool, path string) {
	for _, f := range fieldsOf(t).list {
		if f.required && !set[f.name] {
			d.c.Add(n, path, "missing required field %q", f.name)
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

// Suggest returns ` (did you mean "x"?)` for the candidate closest to word, or "".
func Suggest(word string, candidates []string) string {
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
