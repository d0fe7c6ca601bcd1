package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/internal/yamlconf"
)

// BuildOptions configure Build.
type BuildOptions struct {
	Dir string       // directory of the config file, given to constructors in Env.Dir
	Log *slog.Logger // parent of every driver's logger; nil discards
	// Tap returns the tap publisher of the driver at path (Env.Tap); nil means taps are dropped.
	Tap func(path string) func(data []byte)
}

// Tree is an exporter's driver tree, built from the `export:` mapping of its config.
//
// Build constructs it without side effects; Open, Reset and Close drive the life cycle of every
// real (non-ref) driver, including the built-in children of Parent drivers: the framework opens,
// resets and closes those, a Parent must not do it itself.
type Tree struct {
	Roots []*Node

	index map[string]*Node // by path; written by Build only
	order []*Node          // real nodes, children before parents

	mu     sync.Mutex     // guards the fields below and serialises Open, Reset and Close
	opened bool           // Open was called
	closed map[*Node]bool // drivers already closed
	done   bool           // Close was called
}

// Node is one node of the tree. Exactly one of Driver and Target is set.
type Node struct {
	Name     string // key in its parent mapping
	Path     string // dotted, "harness.power"
	Info     Info   // registered type; Type is "ref" for `ref:` nodes
	Driver   Driver // nil for ref nodes
	Children []*Node
	Target   *Node  // for ref nodes: the node it proxies (possibly another ref)
	Doc      string // `description:` from the config, "" if none
	// MethodDocs are the `methods_description:` of the config (Jumpstarter's key): method name →
	// the doc describe shows instead of the driver's own.
	MethodDocs map[string]string

	resetErr string // why the last Reset of this driver failed; "" after a good one (guarded by Tree.mu)
	resetMu  sync.Mutex

	methods map[string]*Method // by name; nil for ref nodes
	listed  []*Method          // declaration order
}

// RefInfo is the Info of nodes written `ref: path`.
var RefInfo = Info{Type: "ref", Doc: "proxy to another driver", Ref: true}

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]+$`) })

// nodeKeys are the keys allowed in a node mapping.
var nodeKeys = []string{"type", "ref", "description", "methods_description", "config", "children"}

// LogLevelKey is the config key every driver accepts (Jumpstarter's log_level): the level of the
// driver's own logger. It is taken out of the config before the driver decodes it.
const LogLevelKey = "log_level"

type refConfig struct {
	Ref string `yaml:"ref" jsn:"required"`
}

type pendingRef struct {
	node   *Node
	target string
	pos    *yaml.Node
	path   string // yaml path for errors
}

// pendingUser is a ChildUser node waiting for its children's refs to be resolved.
type pendingUser struct {
	node     *Node
	children []*Node // config children, not built-in ones
	pos      *yaml.Node
	path     string // yaml path for errors
}

type builder struct {
	c     *yamlconf.Collector
	d     *yamlconf.Decoder
	opts  BuildOptions
	refs  []pendingRef
	users []pendingUser
	stack map[*yaml.Node]bool // node mappings being built, against alias cycles
	count int                 // nodes built, against alias bombs
	// failed are the paths of nodes that could not be built (unknown class, no type): a ref to
	// one of them is not reported again.
	failed map[string]bool
	// unknownJS is set once a Jumpstarter class without a jsn equivalent was met, so the list
	// of known classes is printed once, after every error.
	unknownJS bool
}

// maxNodes bounds the size of a tree.
const maxNodes = 10000

// Build constructs the driver tree described by export, the `export:` mapping of the config file
// named file (used in error positions). For every node it constructs the driver, decodes its
// config strictly, validates it, attaches built-in children of Parent drivers and config
// children, and resolves refs. It has no side effects: nothing is opened.
//
// A node of a type whose Info.Ref is set (Jumpstarter's
// jumpstarter_driver_composite.driver.Proxy) is turned into a ref node from its `config: {ref:
// path}`, exactly like `ref: path`.
//
// Every problem in the file is reported at once, as ConfigErrors. A nil export builds an empty
// tree.
func Build(file string, export *yaml.Node, opts BuildOptions) (*Tree, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &yamlconf.Collector{File: file}
	b := &builder{c: c, d: yamlconf.NewDecoder(c), opts: opts, stack: map[*yaml.Node]bool{}, failed: map[string]bool{}}
	t := &Tree{index: map[string]*Node{}, closed: map[*Node]bool{}}
	export = yamlconf.ResolveAlias(export)
	switch {
	case yamlconf.IsNull(export):
	case export.Kind != yaml.MappingNode:
		c.Add(export, "export", "want a mapping of driver names to nodes, got %s", yamlconf.Describe(export))
	default:
		t.Roots = b.nodes(export, "", "export")
	}
	t.Walk(func(n *Node) { t.index[n.Path] = n })
	b.resolveRefs(t)
	b.useChildren()
	if b.unknownJS {
		known := Aliases("jumpstarter_")
		list := strings.Join(known, ", ")
		if list == "" {
			list = "none"
		}
		c.Note("Jumpstarter classes jsn loads: %s", list)
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	var post func(ns []*Node)
	post = func(ns []*Node) {
		for _, n := range ns {
			post(n.Children)
			if n.Driver != nil {
				t.order = append(t.order, n)
			}
		}
	}
	post(t.Roots)
	return t, nil
}

// nodes builds the nodes of a mapping name → node.
func (b *builder) nodes(m *yaml.Node, parent, ypath string) []*Node {
	var out []*Node
	keys, keyNodes, vals := b.d.Pairs(m, ypath)
	for i, name := range keys {
		if !nameRE().MatchString(name) {
			b.c.Add(keyNodes[i], ypath, "invalid driver name %q: use letters, digits, - and _ (no dots)", name)
			continue
		}
		path := yamlconf.JoinPath(parent, name)
		if n := b.node(name, path, keyNodes[i], vals[i], ypath+"."+name); n != nil {
			out = append(out, n)
		} else {
			b.failed[path] = true
		}
	}
	return out
}

// node builds one node; key is its name's node (position), v its mapping.
func (b *builder) node(name, path string, key, v *yaml.Node, ypath string) *Node {
	v = yamlconf.ResolveAlias(v)
	if v == nil || v.Kind != yaml.MappingNode {
		at := v
		if yamlconf.IsNull(v) {
			at = key
		}
		b.c.Add(at, ypath, "want a mapping with type or ref, got %s", describeOrNull(v))
		return nil
	}
	if b.stack[v] {
		b.c.Add(key, ypath, "node contains itself (through a YAML alias)")
		return nil
	}
	if b.count++; b.count > maxNodes {
		if b.count == maxNodes+1 {
			b.c.Add(key, ypath, "too many driver nodes (more than %d)", maxNodes)
		}
		return nil
	}
	b.stack[v] = true
	defer delete(b.stack, v)
	fields := map[string]*yaml.Node{} // value nodes
	keyAt := map[string]*yaml.Node{}
	keys, keyNodes, vals := b.d.Pairs(v, ypath)
	for i, k := range keys {
		if !contains(nodeKeys, k) {
			b.c.Add(keyNodes[i], ypath, "unknown field %q%s", k, yamlconf.Suggest(k, nodeKeys))
			continue
		}
		fields[k], keyAt[k] = vals[i], keyNodes[i]
	}
	n := &Node{Name: name, Path: path}
	if d := fields["description"]; d != nil {
		b.d.Decode(d, reflect.ValueOf(&n.Doc).Elem(), ypath+".description")
	}
	var typ, ref string
	if x := fields["type"]; x != nil {
		b.d.Decode(x, reflect.ValueOf(&typ).Elem(), ypath+".type")
	}
	if x := fields["ref"]; x != nil {
		b.d.Decode(x, reflect.ValueOf(&ref).Elem(), ypath+".ref")
	}
	hasType, hasRef := fields["type"] != nil, fields["ref"] != nil
	switch {
	case hasType && hasRef:
		b.c.Add(keyAt["ref"], ypath, "a node has either type or ref, not both")
		return nil
	case !hasType && !hasRef && fields["children"] != nil && fields["config"] == nil:
		typ = "composite" // Jumpstarter: a node with only children is a Composite
	case !hasType && !hasRef:
		b.c.Add(key, ypath, "missing \"type\" (or \"ref\"): add the driver class, e.g. `type: jumpstarter_driver_power.driver.MockPower` or `type: power.Mock`; `ref: other.path` for a second name of another node; or only `children:` for a group")
		return nil
	case hasRef:
		if ref == "" {
			b.c.Add(fields["ref"], ypath+".ref", "empty ref")
			return nil
		}
		n.Info = RefInfo
		b.refOnly(fields, keyAt, ypath)
		b.refs = append(b.refs, pendingRef{node: n, target: ref, pos: fields["ref"], path: ypath + ".ref"})
		return n
	}
	if typ == "" {
		b.c.Add(fields["type"], ypath+".type", "empty type")
		return nil
	}
	info, ok := Lookup(typ)
	if !ok {
		msg, js := unknownType(typ)
		b.unknownJS = b.unknownJS || js
		b.c.Add(fields["type"], ypath+".type", "%s", msg)
		return nil
	}
	n.Info = info
	cfg := fields["config"]
	cfgPath := ypath + ".config"
	if info.Ref {
		var rc refConfig
		before := b.c.Len()
		b.d.DecodeTop(cfg, key, reflect.ValueOf(&rc).Elem(), cfgPath)
		if b.c.Len() > before {
			return nil
		}
		if ch := keyAt["children"]; ch != nil {
			b.c.Add(ch, ypath, "a proxy node has no children")
		}
		at := cfg
		if k := yamlconf.FindKey(cfg, "ref"); k != nil {
			at = yamlconf.ValueOf(cfg, k)
		}
		b.refs = append(b.refs, pendingRef{node: n, target: rc.Ref, pos: at, path: cfgPath + ".ref"})
		return n
	}
	cfg, level := b.logLevel(cfg, cfgPath)
	drv := info.New(b.envLevel(path, level))
	if drv == nil {
		b.c.Add(key, ypath, "driver type %q: constructor returned nil", info.Type)
		return nil
	}
	n.Driver = drv
	b.configure(drv, cfg, key, cfgPath)
	builtin := b.real(n, key, ypath, configChildNames(fields["children"]))
	if md := fields["methods_description"]; md != nil {
		b.methodDocs(n, md, ypath+".methods_description")
	}
	nbuiltin := len(n.Children)
	if _, ok := drv.(ChildUser); ok {
		defer func() {
			pos := keyAt["children"]
			if pos == nil {
				pos = key
			}
			b.users = append(b.users, pendingUser{node: n, children: n.Children[nbuiltin:], pos: pos, path: ypath + ".children"})
		}()
	}
	if ch := fields["children"]; ch != nil {
		ch = yamlconf.ResolveAlias(ch)
		switch {
		case yamlconf.IsNull(ch):
		case ch.Kind != yaml.MappingNode:
			b.c.Add(ch, ypath+".children", "want a mapping of driver names to nodes, got %s", yamlconf.Describe(ch))
		default:
			for _, c := range b.nodes(ch, path, ypath+".children") {
				if builtin[c.Name] {
					b.c.Add(yamlconf.FindKey(ch, c.Name), ypath+".children", "child %q clashes with a built-in child of %s", c.Name, info.Type)
					continue
				}
				n.Children = append(n.Children, c)
			}
		}
	}
	return n
}

func describeOrNull(n *yaml.Node) string {
	if yamlconf.IsNull(n) {
		return "nothing"
	}
	return yamlconf.Describe(n)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// refOnly reports keys a ref node may not have.
func (b *builder) refOnly(fields, keyAt map[string]*yaml.Node, ypath string) {
	for _, k := range []string{"config", "children"} {
		if keyAt[k] != nil {
			b.c.Add(keyAt[k], ypath, "a ref node has no %s", k)
		}
	}
}

// unknownType explains an unknown type; js reports a Jumpstarter class (whose list of known
// classes Build prints once, after every error).
func unknownType(typ string) (msg string, js bool) {
	if strings.HasPrefix(typ, "jumpstarter_") || strings.Contains(typ, ".driver.") {
		return fmt.Sprintf("jumpstarter class %q has no jsn equivalent%s", typ, yamlconf.Suggest(typ, Aliases("jumpstarter_"))), true
	}
	var jsn []string
	for _, info := range Registered() {
		jsn = append(jsn, info.Type)
	}
	return fmt.Sprintf("unknown driver type %q%s", typ, yamlconf.Suggest(typ, jsn)), false
}

// logLevel takes log_level out of a config mapping: it returns the mapping without it (a copy;
// the file's node is not changed) and the level, or nil when there is none or it is invalid
// (reported).
func (b *builder) logLevel(cfg *yaml.Node, cfgPath string) (*yaml.Node, *slog.Level) {
	m := yamlconf.ResolveAlias(cfg)
	if m == nil || m.Kind != yaml.MappingNode {
		return cfg, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != LogLevelKey {
			continue
		}
		v := yamlconf.ResolveAlias(m.Content[i+1])
		cp := *m
		cp.Content = append(append([]*yaml.Node(nil), m.Content[:i]...), m.Content[i+2:]...)
		lv, ok := ParseLogLevel(v.Value)
		if v.Kind != yaml.ScalarNode || !ok {
			b.c.Add(v, cfgPath+"."+LogLevelKey, "want DEBUG, INFO, WARNING, ERROR or CRITICAL, got %s", yamlconf.Describe(v))
			return &cp, nil
		}
		return &cp, &lv
	}
	return cfg, nil
}

// ParseLogLevel parses a Jumpstarter (Python logging) level name, any case: DEBUG, INFO,
// WARNING (WARN), ERROR, CRITICAL (FATAL).
func ParseLogLevel(s string) (slog.Level, bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DEBUG":
		return slog.LevelDebug, true
	case "INFO":
		return slog.LevelInfo, true
	case "WARNING", "WARN":
		return slog.LevelWarn, true
	case "ERROR":
		return slog.LevelError, true
	case "CRITICAL", "FATAL":
		return slog.LevelError + 4, true
	}
	return 0, false
}

// methodDocs decodes methods_description (method name → doc) into n.MethodDocs, rejecting names
// the driver does not have.
func (b *builder) methodDocs(n *Node, md *yaml.Node, ypath string) {
	var docs map[string]string
	b.d.Decode(md, reflect.ValueOf(&docs).Elem(), ypath)
	if len(docs) == 0 {
		return
	}
	var names []string
	for _, m := range n.listed {
		names = append(names, m.Name)
	}
	for name, doc := range docs {
		if n.methods[name] == nil {
			at := yamlconf.FindKey(md, name)
			if at == nil {
				at = md
			}
			b.c.Add(at, ypath, "driver type %s has no method %q%s", n.Info.Type, name, yamlconf.Suggest(name, names))
			continue
		}
		if n.MethodDocs == nil {
			n.MethodDocs = map[string]string{}
		}
		n.MethodDocs[name] = doc
	}
}

// configure decodes cfg into drv and validates it.
func (b *builder) configure(drv Driver, cfg, key *yaml.Node, cfgPath string) {
	before := b.c.Len()
	v := reflect.ValueOf(drv)
	if v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
		b.d.DecodeTop(cfg, key, v.Elem(), cfgPath)
	} else if c := yamlconf.ResolveAlias(cfg); !yamlconf.IsNull(c) && !(c.Kind == yaml.MappingNode && len(c.Content) == 0) {
		b.c.Add(cfg, cfgPath, "this driver takes no config")
	}
	if b.c.Len() > before {
		return // do not validate a half-decoded config
	}
	if val, ok := drv.(Validator); ok {
		if err := val.Validate(); err != nil {
			pos := cfg
			if pos == nil {
				pos = key
			}
			b.c.ReportValidate(err, cfg, pos, cfgPath)
		}
	}
}

// real fills the method table of a real node and attaches built-in children (recursively). It
// returns the built-in children's names.
// configChildNames are the names written under a node's `children:` (nil when there are none).
func configChildNames(ch *yaml.Node) map[string]bool {
	ch = yamlconf.ResolveAlias(ch)
	if ch == nil || ch.Kind != yaml.MappingNode {
		return nil
	}
	names := map[string]bool{}
	for i := 0; i+1 < len(ch.Content); i += 2 {
		names[ch.Content[i].Value] = true
	}
	return names
}

// real fills n's methods and built-in children (Parent, and AutoParent given the names of the
// config children in given).
func (b *builder) real(n *Node, key *yaml.Node, ypath string, given map[string]bool) map[string]bool {
	n.methods = map[string]*Method{}
	if m, ok := n.Driver.(Methoder); ok {
		for _, meth := range m.Methods() {
			meth.path = n.Path
			if msg := checkMethod(&meth); msg != "" {
				b.c.Add(key, ypath, "driver type %s: method %q: %s", n.Info.Type, meth.Name, msg)
				continue
			}
			if n.methods[meth.Name] != nil {
				b.c.Add(key, ypath, "driver type %s: method %q declared twice", n.Info.Type, meth.Name)
				continue
			}
			mp := &meth
			n.methods[meth.Name] = mp
			n.listed = append(n.listed, mp)
		}
	}
	names := map[string]bool{}
	var kids []Child
	if p, ok := n.Driver.(Parent); ok {
		kids = p.Children()
	}
	if p, ok := n.Driver.(AutoParent); ok {
		kids = append(kids, p.AutoChildren(given)...)
	}
	for _, ch := range kids {
		if !nameRE().MatchString(ch.Name) || names[ch.Name] || ch.Driver == nil {
			b.c.Add(key, ypath, "driver type %s: invalid built-in child %q", n.Info.Type, ch.Name)
			continue
		}
		names[ch.Name] = true
		info, ok := Lookup(ch.Type)
		if !ok {
			info = Info{Type: ch.Type}
		}
		c := &Node{Name: ch.Name, Path: n.Path + "." + ch.Name, Info: info, Driver: ch.Driver}
		b.real(c, key, ypath, nil)
		n.Children = append(n.Children, c)
	}
	return names
}

// env is the Env of the driver at path; its Child gives built-in children theirs.
func (b *builder) env(path string) Env { return b.envLevel(path, nil) }

// envLevel is env with the driver's own log level (log_level), which its built-in children
// inherit; nil keeps the exporter's.
func (b *builder) envLevel(path string, level *slog.Level) Env {
	tap := func([]byte) {}
	if b.opts.Tap != nil {
		if t := b.opts.Tap(path); t != nil {
			tap = t
		}
	}
	log := b.opts.Log
	if level != nil {
		log = slog.New(levelHandler{min: *level, h: log.Handler()})
	}
	return Env{Path: path, Log: log.With("driver", path), Dir: b.opts.Dir, Tap: tap,
		Child: func(name string) Env { return b.envLevel(path+"."+name, level) }}
}

// levelHandler logs records at min and above through h, whatever h's own level: a driver's
// log_level: DEBUG shows its debug records under an exporter that logs warnings only.
type levelHandler struct {
	min slog.Level
	h   slog.Handler
}

func (l levelHandler) Enabled(_ context.Context, lv slog.Level) bool   { return lv >= l.min }
func (l levelHandler) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{min: l.min, h: l.h.WithAttrs(as)}
}
func (l levelHandler) WithGroup(g string) slog.Handler {
	return levelHandler{min: l.min, h: l.h.WithGroup(g)}
}

func checkMethod(m *Method) string {
	if !nameRE().MatchString(m.Name) {
		return "invalid method name"
	}
	set := 0
	for _, f := range []bool{m.Call != nil, m.Stream != nil, m.Bytes != nil} {
		if f {
			set++
		}
	}
	ok := set == 1 && (m.Kind == KindCall && m.Call != nil ||
		m.Kind == KindServerStream && m.Stream != nil ||
		m.Kind == KindByteStream && m.Bytes != nil)
	if !ok {
		return fmt.Sprintf("kind %q needs exactly its own handler (Call, Stream or Bytes)", m.Kind)
	}
	if m.Raw != nil && m.Kind != KindCall {
		return "Raw is only for methods of kind call"
	}
	optional := false
	for _, a := range m.Args {
		if a.Optional {
			optional = true
		} else if optional {
			return fmt.Sprintf("required argument %q after an optional one", a.Name)
		}
	}
	return ""
}

// resolveRefs sets Target on ref nodes and reports unknown targets and cycles.
func (b *builder) resolveRefs(t *Tree) {
	var paths []string
	for p := range t.index {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, r := range b.refs {
		target := t.index[r.target]
		if target == nil && b.failedPath(r.target) {
			continue // the target's own error says why; a second one would only repeat it
		}
		if target == nil {
			b.c.Add(r.pos, r.path, "ref to unknown driver %q%s", r.target, yamlconf.Suggest(r.target, paths))
			continue
		}
		r.node.Target = target
	}
	inCycle := map[*Node]bool{}
	for _, r := range b.refs {
		if inCycle[r.node] {
			continue
		}
		chain := []*Node{r.node}
		seen := map[*Node]int{r.node: 0}
		for n := r.node.Target; n != nil && n.Info.Ref; n = n.Target {
			if i, ok := seen[n]; ok {
				if i == 0 { // report a cycle once, from its first ref in the file
					var names []string
					for _, c := range append(chain, n) {
						names = append(names, c.Path)
						inCycle[c] = true
					}
					b.c.Add(r.pos, r.path, "ref cycle: %s", strings.Join(names, " -> "))
				}
				break
			}
			seen[n] = len(chain)
			chain = append(chain, n)
		}
	}
}

// failedPath reports whether path is, or is under, a node that could not be built.
func (b *builder) failedPath(path string) bool {
	for p := path; p != ""; {
		if b.failed[p] {
			return true
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return false
}

// useChildren hands every ChildUser its config children. A user with a child that did not resolve
// (a ref to a missing or failed node, already reported) is skipped, against cascades.
func (b *builder) useChildren() {
	for _, u := range b.users {
		m := make(map[string]Driver, len(u.children))
		ok := true
		for _, c := range u.children {
			r := c.Resolve()
			if r == nil || r.Driver == nil {
				ok = false
				break
			}
			m[c.Name] = r.Driver
		}
		if !ok {
			continue
		}
		if err := u.node.Driver.(ChildUser).UseChildren(m); err != nil {
			b.c.Add(u.pos, u.path, "%v", err)
		}
	}
}

// Find returns the node at the dotted path, or nil.
func (t *Tree) Find(path string) *Node { return t.index[path] }

// Walk calls fn for every node, depth first, parents before children.
func (t *Tree) Walk(fn func(*Node)) {
	var walk func(ns []*Node)
	walk = func(ns []*Node) {
		for _, n := range ns {
			fn(n)
			walk(n.Children)
		}
	}
	walk(t.Roots)
}

// Resolve follows Target to the real node (n itself if it is not a ref).
func (n *Node) Resolve() *Node {
	for i := 0; n.Target != nil && i < 1000; i++ {
		n = n.Target
	}
	return n
}

// Method returns the named method of the resolved node's driver, or nil.
func (n *Node) Method(name string) *Method {
	return n.Resolve().methods[name]
}

// MethodNames returns the names of the resolved node's methods, sorted.
func (n *Node) MethodNames() []string {
	r := n.Resolve()
	out := make([]string, 0, len(r.listed))
	for _, m := range r.listed {
		out = append(out, m.Name)
	}
	sort.Strings(out)
	return out
}

// Describe returns the description of every node. A ref node has Type "ref", Ref set to its
// target's path, and the interface and methods of the node it resolves to, so that clients can
// call through it.
func (t *Tree) Describe() []*wire.NodeDesc {
	var desc func(ns []*Node) []*wire.NodeDesc
	desc = func(ns []*Node) []*wire.NodeDesc {
		var out []*wire.NodeDesc
		for _, n := range ns {
			r := n.Resolve()
			d := &wire.NodeDesc{Name: n.Name, Path: n.Path, Type: n.Info.Type, Interface: r.Info.Interface, Doc: n.Doc,
				Unavailable: r.Unavailable()}
			if d.Doc == "" && n.Target == nil {
				d.Doc = n.Info.Doc
			}
			if n.Target != nil {
				d.Type, d.Ref = "ref", n.Target.Path
			}
			for _, m := range r.listed {
				md := &wire.MethodDesc{Name: m.Name, Doc: m.Doc, Kind: m.Kind, Returns: m.Returns}
				if doc, ok := r.MethodDocs[m.Name]; ok {
					md.Doc = doc
				}
				for _, a := range m.Args {
					md.Args = append(md.Args, &wire.ArgDesc{Name: a.Name, Type: a.Type, Doc: a.Doc, Optional: a.Optional})
				}
				d.Methods = append(d.Methods, md)
			}
			d.Children = desc(n.Children)
			out = append(out, d)
		}
		return out
	}
	return desc(t.Roots)
}

// Unavailable returns why the node's (resolved) driver cannot be used now, or "": the driver's
// own reason (Availability), or the error of its last Reset until a Reset succeeds.
func (n *Node) Unavailable() string {
	r := n.Resolve()
	if a, ok := r.Driver.(Availability); ok {
		if why := a.Unavailable(); why != "" {
			return why
		}
	}
	r.resetMu.Lock()
	defer r.resetMu.Unlock()
	if r.resetErr != "" {
		return "reset failed: " + r.resetErr
	}
	return ""
}

// Open opens every real driver, children before their parents; ref nodes are skipped (their
// target is opened once). On the first failure it closes the drivers opened so far and the one
// that failed, and returns "open export.<path>: <err>". Open may be called once.
func (t *Tree) Open(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.opened || t.done {
		return errors.New("open driver tree: already opened or closed")
	}
	t.opened = true
	for i, n := range t.order {
		err := n.Driver.Open(ctx)
		if err == nil {
			err = n.declare()
		}
		if err != nil {
			errs := []error{fmt.Errorf("open export.%s: %w", n.Path, err)}
			errs = append(errs, t.closeLocked(t.order[:i+1])...)
			return errors.Join(errs...)
		}
	}
	return nil
}

// declare replaces the method table of a Declarer's node with what its opened driver declares.
func (n *Node) declare() error {
	d, ok := n.Driver.(Declarer)
	if !ok {
		return nil
	}
	iface, list := d.Declared()
	methods := map[string]*Method{}
	var listed []*Method
	for _, meth := range list {
		meth.path = n.Path
		if msg := checkMethod(&meth); msg != "" {
			return fmt.Errorf("declared method %q: %s", meth.Name, msg)
		}
		if methods[meth.Name] != nil {
			return fmt.Errorf("method %q declared twice", meth.Name)
		}
		mp := &meth
		methods[meth.Name] = mp
		listed = append(listed, mp)
	}
	n.methods, n.listed = methods, listed
	if iface != "" {
		n.Info.Interface = iface
	}
	return nil
}

// Reset resets every real driver that is not closed, children before their parents. A failing
// driver does not stop the others; the errors are joined, each "reset export.<path>: <err>".
func (t *Tree) Reset(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, n := range t.order {
		if t.closed[n] {
			continue
		}
		err := n.Driver.Reset(ctx)
		n.resetMu.Lock()
		n.resetErr = ""
		if err != nil {
			n.resetErr = err.Error()
		}
		n.resetMu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("reset export.%s: %w", n.Path, err))
		}
	}
	return errors.Join(errs...)
}

// Close closes every real driver exactly once, children before their parents, and joins the
// errors. It is safe to call twice, before Open and after a failed Open.
func (t *Tree) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	return errors.Join(t.closeLocked(t.order)...)
}

func (t *Tree) closeLocked(nodes []*Node) []error {
	var errs []error
	for _, n := range nodes {
		if t.closed[n] {
			continue
		}
		t.closed[n] = true
		if err := n.Driver.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close export.%s: %w", n.Path, err))
		}
	}
	return errs
}
