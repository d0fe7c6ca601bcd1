package cmdutil

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/bus/wire"
)

func TestPrintValue(t *testing.T) {
	tests := []struct {
		name   string
		format string
		v      any
		want   string
	}{
		{"nil prints nothing", FormatYAML, nil, ""},
		{"nil json", FormatJSON, nil, ""},
		{"string bare", FormatYAML, "on", "on\n"},
		{"string json", FormatJSON, "on", "\"on\"\n"},
		{"int", FormatYAML, int64(3), "3\n"},
		{"bytes as text", FormatYAML, []byte("hi"), "hi\n"},
		{"map yaml", FormatYAML, map[string]any{"b": 1, "a": []byte("x")}, "a: x\nb: 1\n"},
		{"map json", FormatJSON, map[string]any{"b": 1, "a": []byte("x")}, "{\"a\":\"x\",\"b\":1}\n"},
		{"any keys", FormatJSON, map[any]any{1: "one"}, "{\"1\":\"one\"}\n"},
		{"list yaml", FormatYAML, []any{"a", int8(2)}, "- a\n- 2\n"},
		{"binary json", FormatJSON, []byte{0xff, 0}, "\"/wA=\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := PrintValue(&b, tt.format, tt.v); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}

func TestErrorKinds(t *testing.T) {
	err := NotFoundf("no driver %q", "x")
	if err.Error() != `no driver "x"` {
		t.Errorf("got %q, want %q", err, `no driver "x"`)
	}
	if !errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrInvalidArgument) {
		t.Errorf("got a mismatch of sentinels for %v", err)
	}
	if !errors.Is(InvalidArgf("x"), wire.ErrInvalidArgument) {
		t.Errorf("InvalidArgf does not match ErrInvalidArgument")
	}
	if IsUsage(err) {
		t.Errorf("got IsUsage true for a not-found error")
	}
	if !IsUsage(Usagef("bad %w", errors.New("flag"))) {
		t.Errorf("got IsUsage false for Usagef")
	}
}

func TestFormatFlagRejectsUnknown(t *testing.T) {
	var format string
	run := func(args ...string) error {
		cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
		AddFormatFlag(cmd, &format, FormatYAML, FormatJSON)
		cmd.SetArgs(args)
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
		return cmd.Execute()
	}
	if err := run("-o", "xml"); !IsUsage(err) {
		t.Fatalf("got %v, want a usage error", err)
	}
	if err := run(); err != nil || format != FormatYAML {
		t.Fatalf("got %v, %q, want nil, %q", err, format, FormatYAML)
	}
}

func TestGroups(t *testing.T) {
	n := len(Groups(&Factory{}))
	AddGroup(func(f *Factory) *cobra.Command { return &cobra.Command{Use: "test-group"} })
	got := Groups(&Factory{})
	if len(got) != n+1 || got[len(got)-1].Use != "test-group" {
		t.Errorf("got %d groups, want %d ending with test-group", len(got), n+1)
	}
}

func TestGroupRejectsUnknownVerb(t *testing.T) {
	AddGroup(func(f *Factory) *cobra.Command {
		g := &cobra.Command{Use: "grp"}
		g.AddCommand(&cobra.Command{Use: "verb", RunE: func(*cobra.Command, []string) error { return nil }})
		return g
	})
	var grp *cobra.Command
	for _, c := range Groups(&Factory{}) {
		if c.Name() == "grp" {
			grp = c
		}
	}
	root := &cobra.Command{Use: "jsn", SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(grp)
	root.SetOut(io.Discard)
	for args, wantUsage := range map[string]bool{"grp bogus": true, "grp": false, "grp verb": false} {
		root.SetArgs(strings.Fields(args))
		err := root.Execute()
		if IsUsage(err) != wantUsage {
			t.Errorf("jsn %s: got %v, want usage error %v", args, err, wantUsage)
		}
	}
}
