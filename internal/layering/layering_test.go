package layering

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "jsn.dev/jsn"

// pkg is what `go list -json` says of one package of the module (without its tests).
type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string // direct imports
	Deps       []string // every package it reaches
}

// listModule lists every package of the module with its imports and dependencies.
func listModule(t *testing.T) map[string]*pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Dir,GoFiles,Imports,Deps", module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs[p.ImportPath] = &p
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages of %s", len(pkgs), module)
	}
	return pkgs
}

// matches reports whether path is pattern, or under it when pattern ends in "/...".
func matches(pattern, path string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func matchesAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(p, path) })
}

// The walls. Each rule names the packages it holds for, what they must not reach (through any
// chain of imports) or must not import directly, and the exceptions to "for".
var rules = []struct {
	why       string
	pkgs      []string // patterns the rule holds for
	except    []string // patterns exempt from it
	notReach  []string // patterns none of their dependencies may match…
	mayReach  []string // …except these
	notImport []string // patterns none of their direct imports may match
}{
	{
		why:       "only bus talks NATS",
		pkgs:      []string{module + "/..."},
		except:    []string{module + "/bus"},
		notImport: []string{"github.com/nats-io/nats.go/...", "github.com/nats-io/nats-server/..."},
	},
	{
		why:      "the controller does not depend on its clients: the client config schema is clientconfig's",
		pkgs:     []string{module + "/controller/..."},
		notReach: []string{module + "/client", module + "/cmd/..."},
	},
	{
		why:      "the client config schema links no NATS",
		pkgs:     []string{module + "/client/clientconfig"},
		notReach: []string{"github.com/nats-io/...", module + "/bus", module + "/client"},
	},
	{
		why:      "the strict YAML decoder is a leaf",
		pkgs:     []string{module + "/internal/yamlconf"},
		notReach: []string{module + "/..."},
	},
	{
		why:      "the wire contract is a NATS-free leaf",
		pkgs:     []string{module + "/bus/wire"},
		notReach: []string{"github.com/nats-io/...", module + "/..."},
	},
	{
		why:      "drivers, their typed clients and CLI verbs link no NATS: they speak wire and client/remote",
		pkgs:     []string{module + "/drivers/..."},
		notReach: []string{"github.com/nats-io/...", module + "/bus", module + "/client", module + "/exporter", module + "/controller"},
	},
	{
		why:      "client/remote is the NATS-free face of client",
		pkgs:     []string{module + "/client/remote"},
		notReach: []string{"github.com/nats-io/...", module + "/bus", module + "/client"},
	},
	{
		why:       "the CLI reaches exporters and the controller through client",
		pkgs:      []string{module + "/cmd/jsn/..."},
		notImport: []string{module + "/bus"},
	},
	{
		why:      "the command tree links no driver (the binary does), so driver tests can run it in-process",
		pkgs:     []string{module + "/cmd/jsn/cli", module + "/cmd/jsn/cli/clitest"},
		notReach: []string{module + "/drivers/..."},
		mayReach: []string{module + "/drivers/driver"},
	},
	{
		why:      "the Go client links no driver (typed clients live with their drivers); only the MCP server, client/mcp, uses some",
		pkgs:     []string{module + "/client/..."},
		except:   []string{module + "/client/mcp/..."},
		notReach: []string{module + "/drivers/..."},
	},
	{
		why:      "the MCP server reaches the lab through client, never the exporter, the controller or the command tree",
		pkgs:     []string{module + "/client/mcp"},
		notReach: []string{module + "/exporter", module + "/controller", module + "/cmd/jsn/cli/..."},
	},
	{
		why:      "the CLI toolkit shared with driver verbs is NATS-free too",
		pkgs:     []string{module + "/cmd/jsn/cmdutil"},
		notReach: []string{"github.com/nats-io/...", module + "/bus", module + "/client", module + "/exporter", module + "/controller"},
	},
}

func TestLayering(t *testing.T) {
	pkgs := listModule(t)
	for _, r := range rules {
		held := 0
		for _, p := range pkgs {
			if !matchesAny(r.pkgs, p.ImportPath) || matchesAny(r.except, p.ImportPath) {
				continue
			}
			held++
			for _, d := range p.Deps {
				if d != p.ImportPath && matchesAny(r.notReach, d) && !matchesAny(r.mayReach, d) {
					t.Errorf("%s reaches %s (%s): %s", p.ImportPath, d, r.why, chain(pkgs, p.ImportPath, d))
				}
			}
			for _, d := range p.Imports {
				if matchesAny(r.notImport, d) {
					t.Errorf("%s imports %s (%s)", p.ImportPath, d, r.why)
				}
			}
		}
		if held == 0 {
			t.Errorf("rule %q holds for no package: %v matched nothing", r.why, r.pkgs)
		}
	}
}

// TestCLIRunsButDoesNotCallServers: package cli links the exporter and the controller because
// `jsn exporter run`, `jsn controller run` and the local `jsn shell` run them in-process. Only the
// files of those commands may import them; every other command reaches exporters and the
// controller through package client.
func TestCLIRunsButDoesNotCallServers(t *testing.T) {
	servers := []string{module + "/exporter", module + "/controller"}
	allowed := map[string]bool{
		"exporter.go":   true, // jsn exporter run
		"controller.go": true, // jsn controller init|run
		"shell.go":      true, // jsn shell -c: a local session
	}
	p := listModule(t)[module+"/cmd/jsn/cli"]
	if p == nil {
		t.Fatal("go list did not list cmd/jsn/cli")
	}
	fset := token.NewFileSet()
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if slices.Contains(servers, path) && !allowed[name] {
				t.Errorf("cmd/jsn/cli/%s imports %s: only the commands that run it may; others use package client", name, path)
			}
		}
	}
}

// chain returns one import path from pkg to dep, "a → b → c", to say where a wall is crossed.
func chain(pkgs map[string]*pkg, from, to string) string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var path []string
			for p := to; p != ""; p = prev[p] {
				path = append(path, p)
			}
			slices.Reverse(path)
			return strings.Join(path, " → ")
		}
		p := pkgs[cur]
		if p == nil {
			continue // outside the module: its imports are not listed
		}
		for _, next := range p.Imports {
			if _, seen := prev[next]; !seen {
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	return from + " → … → " + to
}
