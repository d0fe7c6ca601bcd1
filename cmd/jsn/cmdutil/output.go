package cmdutil

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// Output formats for -o.
const (
	FormatYAML = "yaml"
	FormatJSON = "json"
)

// AddFormatFlag binds -o/--output to *dst with the allowed values; the first is the default.
// A value outside the list is a usage error when the command runs.
func AddFormatFlag(cmd *cobra.Command, dst *string, allowed ...string) {
	cmd.Flags().StringVarP(dst, "output", "o", allowed[0], "output format: "+strings.Join(allowed, "|"))
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if !slices.Contains(allowed, *dst) {
			return Usagef("invalid output format %q: want %s", *dst, strings.Join(allowed, ", "))
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
}

// Plain converts a value decoded from msgpack into one that prints well: []byte that is UTF-8
// becomes a string, map[any]any becomes map[string]any, recursively.
func Plain(v any) any {
	switch v := v.(type) {
	case []byte:
		if utf8.Valid(v) {
			return string(v)
		}
		return v
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = Plain(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = Plain(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = Plain(e)
		}
		return out
	}
	return v
}

// PrintValue writes v in format (yaml or json) followed by a newline. Nil prints nothing. In
// YAML, a scalar prints bare (`on`, not `"on"`), so results read naturally in a shell.
func PrintValue(w io.Writer, format string, v any) error {
	if v == nil {
		return nil
	}
	v = Plain(v)
	switch format {
	case FormatJSON:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case FormatYAML, "":
		switch s := v.(type) {
		case string:
			_, err := fmt.Fprintln(w, s)
			return err
		case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
			_, err := fmt.Fprintln(w, s)
			return err
		}
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	return Usagef("invalid output format %q", format)
}
