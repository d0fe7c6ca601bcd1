package cmdutil

import (
	"fmt"
	"sync"

	"github.com/spf13/cobra"
)

var (
	groupsMu sync.Mutex
	groups   []func(f *Factory) *cobra.Command
)

// AddGroup registers a verb group (`jsn power …`) built from a Factory. Interface packages call
// it from init; the root command adds every registered group.
func AddGroup(fn func(f *Factory) *cobra.Command) {
	if fn == nil {
		panic("cmdutil: AddGroup with nil constructor")
	}
	groupsMu.Lock()
	defer groupsMu.Unlock()
	groups = append(groups, fn)
}

// Groups builds every registered verb group for f, in registration order.
func Groups(f *Factory) []*cobra.Command {
	groupsMu.Lock()
	fns := append([]func(*Factory) *cobra.Command(nil), groups...)
	groupsMu.Unlock()
	cmds := make([]*cobra.Command, 0, len(fns))
	for _, fn := range fns {
		cmd := fn(f)
		if cmd.Run == nil && cmd.RunE == nil {
			cmd.Args = cobra.ArbitraryArgs
			cmd.RunE = runGroup
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// runGroup runs a verb group given without a verb: help, or a usage error for an unknown verb
// (cobra would print help and succeed).
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &UsageError{Err: fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()), ShowHelp: true}
	}
	return cmd.Help()
}
