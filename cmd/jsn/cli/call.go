package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/drivers/driver"
)

type callOptions struct {
	f      *cmdutil.Factory
	Target string   // PATH.METHOD
	Args   []string // method arguments as typed by the user
	Format string   // yaml or json
}

func newCallCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &callOptions{f: f}
	cmd := &cobra.Command{
		Use:   "call [EXPORTER/]PATH.METHOD [ARG...]",
		Short: "Call a driver method",
		Long: `Call a method of a driver of the attached exporter.

PATH is the driver's dotted path in the exporter's tree and METHOD one of its methods
(see jsn describe). Each ARG is converted to the type the method declares: int, float,
bool, duration (1.5s, 200ms), string or bytes.

How the result is shown depends on the method's kind:
  call           the result, as YAML (default) or JSON; nothing if there is none
  server-stream  each item as it arrives: YAML documents separated by ---, or one JSON
                 line per item; command output is written as is to stdout and stderr,
                 and jsn exits with the command's exit code
  byte-stream    stdin and stdout are connected to the stream, like nc

EXPORTER/ names the exporter, like --exporter EXPORTER: in a jsn shell over several
exporters (JSN_EXPORTERS) every command names one.`,
		Example: `  # switch the power on, read its state
  $ jsn call power.on
  $ jsn call power.status
  on

  # arguments are typed by the method's declaration
  $ jsn call power.cycle 2s

  # three power readings as JSON lines
  $ jsn call power.read 3 -o json

  # run a configured shell method; its exit code becomes jsn's
  $ jsn call shell.build_info

  # talk to a TCP port of the device through a byte stream
  $ echo hello | jsn call network.connect

  # in a shell over several exporters: the board's power
  $ jsn call rack1-rpi4/power.on`,
		Args: cmdutil.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Target, opts.Args = args[0], args[1:]
			return runCall(cmd.Context(), opts)
		},
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeMethods(cmd.Context(), f), cobra.ShellCompDirectiveNoFileComp
		},
	}
	cmdutil.AddFormatFlag(cmd, &opts.Format, cmdutil.FormatYAML, cmdutil.FormatJSON)
	return cmd
}

func runCall(ctx context.Context, opts *callOptions) error {
	if e, rest, ok := strings.Cut(opts.Target, "/"); ok {
		// EXPORTER/PATH.METHOD: --exporter EXPORTER.
		switch {
		case !wire.ValidName(e):
			return &cmdutil.UsageError{Err: fmt.Errorf("%q: %q is not an exporter name (EXPORTER/PATH.METHOD)", opts.Target, e)}
		case opts.f.ExporterName != "" && opts.f.ExporterName != e:
			return &cmdutil.UsageError{Err: fmt.Errorf("%q names exporter %s, --exporter %s", opts.Target, e, opts.f.ExporterName)}
		}
		opts.f.ExporterName, opts.Target = e, rest
	}
	path, method, err := splitTarget(opts.Target)
	if err != nil {
		return err
	}
	ex, err := opts.f.Exporter(ctx)
	if err != nil {
		return err
	}
	defer ex.Close()
	desc, err := ex.Describe(ctx)
	if err != nil {
		return fmt.Errorf("describe %s: %w", ex.Name(), err)
	}
	node, md, err := findMethod(desc, path, method)
	if err != nil {
		return err
	}
	args, err := convertArgs(node.Path+"."+md.Name, md, opts.Args)
	if err != nil {
		return err
	}
	d := ex.Driver(node.Path)
	switch md.Kind {
	case driver.KindCall:
		res, err := d.Call(ctx, md.Name, args...)
		if err != nil {
			return err
		}
		return cmdutil.PrintValue(opts.f.Out, opts.Format, res)
	case driver.KindServerStream:
		return runCallStream(ctx, opts, d, md, args)
	case driver.KindByteStream:
		return runCallBytes(ctx, opts, d, md, args)
	}
	return fmt.Errorf("%s.%s: unknown method kind %q", node.Path, md.Name, md.Kind)
}

// splitTarget splits "harness.power.on" into the driver path and the method name.
func splitTarget(s string) (path, method string, err error) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || i == len(s)-1 {
		return "", "", &cmdutil.UsageError{Err: fmt.Errorf("%q is not PATH.METHOD (for example power.on)", s), ShowHelp: true}
	}
	return s[:i], s[i+1:], nil
}

// findMethod looks up the driver and its method, with not-found errors that list what exists.
func findMethod(desc *wire.Description, path, method string) (*wire.NodeDesc, *wire.MethodDesc, error) {
	node := desc.Find(path)
	if node == nil {
		all := cmdutil.AllPaths(desc)
		if len(all) == 0 {
			return nil, nil, cmdutil.NotFoundf("no driver %q: exporter %q has no drivers", path, desc.Exporter)
		}
		return nil, nil, cmdutil.NotFoundf("no driver %q; drivers: %s", path, strings.Join(all, ", "))
	}
	md := node.Method(method)
	if md == nil {
		names := make([]string, len(node.Methods))
		for i, m := range node.Methods {
			names[i] = m.Name
		}
		if len(names) == 0 {
			return nil, nil, cmdutil.NotFoundf("driver %q has no method %q: it has no methods", path, method)
		}
		return nil, nil, cmdutil.NotFoundf("driver %q has no method %q; methods: %s", path, method, strings.Join(names, ", "))
	}
	return node, md, nil
}

// convertArgs checks the argument count and converts each string to its declared type.
func convertArgs(name string, md *wire.MethodDesc, raw []string) ([]any, error) {
	required := 0
	for _, a := range md.Args {
		if !a.Optional {
			required++
		}
	}
	if len(raw) < required || len(raw) > len(md.Args) {
		return nil, cmdutil.InvalidArgf("%s, got %d", arity(name, md, required), len(raw))
	}
	out := make([]any, len(raw))
	for i, s := range raw {
		a := md.Args[i]
		v, err := driver.ParseArg(a.Type, s)
		if err != nil {
			return nil, cmdutil.InvalidArgf("%s: argument %d (%s): %v", name, i+1, a.Name, err)
		}
		out[i] = v
	}
	return out, nil
}

func arity(name string, md *wire.MethodDesc, required int) string {
	n := len(md.Args)
	if n == 0 {
		return name + " takes no arguments"
	}
	names := make([]string, n)
	for i, a := range md.Args {
		names[i] = a.Name
	}
	list := " (" + strings.Join(names, ", ") + ")"
	switch {
	case required == n && n == 1:
		return name + " takes 1 argument" + list
	case required == n:
		return fmt.Sprintf("%s takes %d arguments%s", name, n, list)
	}
	return fmt.Sprintf("%s takes %d to %d arguments%s", name, required, n, list)
}

// runCallStream prints a server stream's items as they arrive. Output items go raw to stdout
// and stderr and the last exit_code becomes jsn's exit code.
func runCallStream(ctx context.Context, opts *callOptions, d remote.Driver, md *wire.MethodDesc, args []any) error {
	ctx, stop := cmdutil.Interruptible(ctx)
	defer stop()
	items, err := d.Stream(ctx, md.Name, args...)
	if err != nil {
		return err
	}
	defer items.Close()
	output := md.Returns == driver.TypeOutput
	exit := -1
	for n := 0; ; n++ {
		var item any
		err := items.Next(&item)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil { // interrupted by the user
				if output {
					return &cmdutil.ExitError{Code: 130}
				}
				return nil
			}
			return err
		}
		if output {
			code, err := writeOutput(opts.f, item)
			if err != nil {
				return err
			}
			if code >= 0 {
				exit = code
			}
			continue
		}
		if opts.Format == cmdutil.FormatYAML && n > 0 {
			if _, err := fmt.Fprintln(opts.f.Out, "---"); err != nil {
				return err
			}
		}
		if err := cmdutil.PrintValue(opts.f.Out, opts.Format, item); err != nil {
			return err
		}
	}
	if exit > 0 {
		return &cmdutil.ExitError{Code: exit}
	}
	return nil
}

// writeOutput writes one driver.TypeOutput item; it returns the exit code it carries, or -1.
func writeOutput(f *cmdutil.Factory, item any) (int, error) {
	m, ok := cmdutil.Plain(item).(map[string]any)
	if !ok {
		return -1, fmt.Errorf("output item: want a map, got %T", item)
	}
	if c, ok := m["exit_code"]; ok {
		n, ok := toInt(c)
		if !ok {
			return -1, fmt.Errorf("output item: exit_code: want an int, got %T", c)
		}
		return n, nil
	}
	var data []byte
	switch v := m["data"].(type) {
	case string:
		data = []byte(v)
	case []byte:
		data = v
	case nil:
	default:
		return -1, fmt.Errorf("output item: data: want bytes, got %T", v)
	}
	w := f.Out
	if m["stream"] == "stderr" {
		w = f.ErrOut
	}
	_, err := w.Write(data)
	return -1, err
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int8:
		return int(n), true
	case int16:
		return int(n), true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case uint8:
		return int(n), true
	case uint16:
		return int(n), true
	case uint32:
		return int(n), true
	case uint64:
		return int(n), true
	case float64:
		return int(n), n == float64(int(n))
	}
	return 0, false
}

// runCallBytes connects stdin and stdout to a byte stream, like nc: stdin EOF half-closes the
// stream; the stream's EOF ends the command.
func runCallBytes(ctx context.Context, opts *callOptions, d remote.Driver, md *wire.MethodDesc, args []any) error {
	bs, err := d.Open(ctx, md.Name, args...)
	if err != nil {
		return err
	}
	defer bs.Close()
	// The stdin copier cannot be interrupted while it blocks in a read of a terminal or pipe; it
	// ends at stdin EOF, at the first write after the stream is closed, or with the process.
	go func() {
		if _, err := io.Copy(bs, opts.f.In); err == nil {
			_ = bs.CloseWrite()
		}
	}()
	_, err = io.Copy(opts.f.Out, bs)
	if rd, ok := opts.f.In.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = rd.SetReadDeadline(time.Now()) // wake the copier where the reader allows it
	}
	return err
}

// completeMethods lists PATH.METHOD of every method of the attached exporter, for completion.
func completeMethods(ctx context.Context, f *cmdutil.Factory) []string {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ex, err := f.Exporter(ctx)
	if err != nil {
		return nil
	}
	defer ex.Close()
	desc, err := ex.Describe(ctx)
	if err != nil {
		return nil
	}
	var out []string
	var walk func([]*wire.NodeDesc)
	walk = func(ns []*wire.NodeDesc) {
		for _, n := range ns {
			for _, m := range n.Methods {
				s := n.Path + "." + m.Name
				if m.Doc != "" {
					s += "\t" + m.Doc
				}
				out = append(out, s)
			}
			walk(n.Children)
		}
	}
	walk(desc.Drivers)
	return out
}
