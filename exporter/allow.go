package exporter

import (
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/internal/yamlconf"
)

// DriverPolicy is the config's `drivers:` key: which driver types, and which programs of
// out-of-process drivers, this exporter may load. An absent list allows everything (the
// default); anything a present list does not name is a config error naming the entry.
type DriverPolicy struct {
	// Allow lists driver types (registered names or aliases, as written in `type:`); an entry
	// may be a glob: "power.*", "jumpstarter_driver_*".
	Allow []string `yaml:"allow"`
	// Commands lists the programs `type: process` nodes may run: paths or globs
	// ("/opt/lab/drivers/*"), matched against command[0] resolved as the driver resolves it
	// (relative to the config file's directory, or looked up in PATH). An entry with a space
	// is matched against the whole command line instead (program resolved, arguments as
	// written): "/usr/bin/python3 -m jsn_driver relay.py".
	Commands []string `yaml:"commands"`
}

// processType is the type of out-of-process driver nodes (drivers/process).
const processType = "process"

// checkDriverPolicy reports every node of export that p does not allow.
func checkDriverPolicy(file string, root *yaml.Node, p *DriverPolicy, export *yaml.Node, dir string, errs yamlconf.Errors) yamlconf.Errors {
	if p == nil {
		return errs
	}
	pn := yamlconf.ValueNode(root, "drivers")
	for i, lists := range [][]string{p.Allow, p.Commands} {
		key := []string{"allow", "commands"}[i]
		for _, e := range lists {
			if _, err := path.Match(e, ""); err != nil || e == "" {
				errs.Add(file, yamlconf.ValueNode(pn, key), "drivers."+key, "invalid entry %q: want a name, path or glob", e)
			}
		}
	}
	var walk func(m *yaml.Node, ypath string)
	walk = func(m *yaml.Node, ypath string) {
		m = yamlconf.ResolveAlias(m)
		if m == nil || m.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			name, node := m.Content[i].Value, yamlconf.ResolveAlias(m.Content[i+1])
			np := ypath + "." + name
			if node == nil || node.Kind != yaml.MappingNode {
				continue
			}
			if tn := yamlconf.ValueNode(node, "type"); tn != nil && tn.Kind == yaml.ScalarNode {
				typ := tn.Value
				if p.Allow != nil && !allowedType(p.Allow, typ) {
					errs.Add(file, tn, np+".type", "driver type %q is not in drivers.allow (%s)", typ, strings.Join(p.Allow, ", "))
				}
				if info, ok := driver.Lookup(typ); ok && info.Type == processType && p.Commands != nil {
					errs = checkCommand(file, yamlconf.ValueNode(node, "config"), p.Commands, dir, np, errs)
				}
			}
			walk(yamlconf.ValueNode(node, "children"), np+".children")
		}
	}
	walk(export, "export")
	return errs
}

// allowedType reports whether typ, or the registered type it names, matches an entry.
func allowedType(allow []string, typ string) bool {
	names := []string{typ}
	if info, ok := driver.Lookup(typ); ok && info.Type != typ {
		names = append(names, info.Type)
	}
	for _, e := range allow {
		for _, n := range names {
			if ok, _ := path.Match(e, n); ok || e == n {
				return true
			}
		}
	}
	return false
}

func checkCommand(file string, cfg *yaml.Node, allow []string, dir, np string, errs yamlconf.Errors) yamlconf.Errors {
	cn := yamlconf.ValueNode(cfg, "command")
	if cn == nil || cn.Kind != yaml.SequenceNode || len(cn.Content) == 0 {
		return errs // the driver's own config check reports it
	}
	var argv []string
	for _, a := range cn.Content {
		argv = append(argv, a.Value)
	}
	prog := argv[0]
	if strings.Contains(prog, "/") {
		if !filepath.IsAbs(prog) {
			prog = filepath.Join(dir, prog)
		}
		prog = filepath.Clean(prog)
	} else if p, err := exec.LookPath(prog); err == nil {
		prog = p
	}
	line := strings.Join(append([]string{prog}, argv[1:]...), " ")
	for _, e := range allow {
		target := prog
		if strings.Contains(e, " ") {
			target = line
		}
		if ok, _ := path.Match(e, target); ok || e == target {
			return errs
		}
	}
	errs.Add(file, cn.Content[0], np+".config.command", "program %s is not in drivers.commands (%s)", prog, strings.Join(allow, ", "))
	return errs
}
