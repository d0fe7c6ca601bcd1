package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/drivers/driver"
)

const formatTree = "tree"

type describeOptions struct {
	f      *cmdutil.Factory
	Format string // tree, json or yaml
}

func newDescribeCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &describeOptions{f: f}
	cmd := &cobra.Command{
		Use:   "describe",
		Short: "Show the exporter's driver tree and methods",
		Long: `Show the driver tree of the attached exporter: each driver's path, type, interface and
description, and its methods with their arguments and results.

Method signatures read:
  on()                        a call without arguments or result
  cycle([wait duration])      an optional argument
  status() -> string          a call with a result
  read([count int]) => reading…  a stream of items
  connect() <=> bytes         a byte stream (see jsn call, jsn forward)`,
		Example: `  $ jsn describe
  demo  board=virtual
  ├── power  power.Mock  jsn.power.v1  in-memory power supply
  │   ├── on()
  │   ├── status() -> string
  │   └── read([count int]) => reading…
  └── network  network.TCP  jsn.network.v1  a TCP port
      └── connect() <=> bytes

  # the same as JSON, for programs
  $ jsn describe -o json | jq '.drivers[].path'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDescribe(cmd.Context(), opts)
		},
	}
	cmdutil.AddFormatFlag(cmd, &opts.Format, formatTree, cmdutil.FormatJSON, cmdutil.FormatYAML)
	return cmd
}

func runDescribe(ctx context.Context, opts *describeOptions) error {
	ex, err := opts.f.Exporter(ctx)
	if err != nil {
		return err
	}
	defer ex.Close()
	desc, err := ex.Describe(ctx)
	if err != nil {
		return fmt.Errorf("describe %s: %w", ex.Name(), err)
	}
	return printDescription(opts.f.Out, opts.Format, desc)
}

func printDescription(w io.Writer, format string, desc *wire.Description) error {
	switch format {
	case cmdutil.FormatJSON:
		b, err := json.MarshalIndent(desc, "", "  ")
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case cmdutil.FormatYAML:
		b, err := yaml.Marshal(desc)
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	// Names, docs and labels come from the exporter: nothing in them may drive the terminal.
	_, err := io.WriteString(w, cmdutil.PrintableText(renderTree(desc)))
	return err
}

// renderTree draws desc with box-drawing characters: the exporter, then each driver (path,
// type, interface, doc) with its methods first and its children after.
func renderTree(desc *wire.Description) string {
	var b strings.Builder
	b.WriteString(desc.Exporter)
	for _, k := range slices.Sorted(maps.Keys(desc.Labels)) {
		fmt.Fprintf(&b, "  %s=%s", k, desc.Labels[k])
	}
	b.WriteByte('\n')
	renderNodes(&b, "", desc.Drivers)
	return b.String()
}

func renderNodes(b *strings.Builder, indent string, ns []*wire.NodeDesc) {
	for i, n := range ns {
		last := i == len(ns)-1
		b.WriteString(indent + branch(last) + nodeLine(n) + "\n")
		child := indent + stem(last)
		if n.Ref != "" {
			continue // its methods are the target's, shown there
		}
		sigs := make([]string, len(n.Methods))
		width := 0
		for j, m := range n.Methods {
			sigs[j] = methodSignature(m)
			width = max(width, utf8.RuneCountInString(sigs[j]))
		}
		for j, m := range n.Methods {
			lastItem := j == len(n.Methods)-1 && len(n.Children) == 0
			line := sigs[j]
			if m.Doc != "" {
				line += strings.Repeat(" ", width-utf8.RuneCountInString(line)+2) + m.Doc
			}
			b.WriteString(child + branch(lastItem) + line + "\n")
		}
		renderNodes(b, child, n.Children)
	}
}

func branch(last bool) string {
	if last {
		return "└── "
	}
	return "├── "
}

func stem(last bool) string {
	if last {
		return "    "
	}
	return "│   "
}

func nodeLine(n *wire.NodeDesc) string {
	if n.Ref != "" {
		return n.Path + " -> " + n.Ref
	}
	parts := []string{n.Path, n.Type}
	if n.Interface != "" {
		parts = append(parts, n.Interface)
	}
	if n.Doc != "" {
		parts = append(parts, n.Doc)
	}
	s := strings.Join(parts, "  ")
	if n.Unavailable != "" {
		s += "  (unavailable: " + n.Unavailable + ")"
	}
	return s
}

// methodSignature renders a method as `on()`, `cycle([wait duration])`, `status() -> string`,
// `read([count int]) => reading…` (server stream) or `connect() <=> bytes` (byte stream).
func methodSignature(m *wire.MethodDesc) string {
	args := make([]string, len(m.Args))
	for i, a := range m.Args {
		s := a.Name + " " + string(a.Type)
		if a.Optional {
			s = "[" + s + "]"
		}
		args[i] = s
	}
	sig := m.Name + "(" + strings.Join(args, ", ") + ")"
	switch m.Kind {
	case driver.KindServerStream:
		ret := m.Returns
		if ret == driver.TypeNone {
			ret = driver.TypeAny
		}
		sig += " => " + string(ret) + "…"
	case driver.KindByteStream:
		sig += " <=> bytes"
	default:
		if m.Returns != driver.TypeNone {
			sig += " -> " + string(m.Returns)
		}
	}
	return sig
}
