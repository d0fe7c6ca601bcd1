package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/internal/yamlconf"
)

// Exit codes; see the package documentation.
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitNotFound   = 3
	exitInvalidArg = 4
	exitPermission = 5
)

const rootLong = `jsn drives lab hardware (power switches, serial consoles, network ports) over a NATS bus.

Start a local lab session from an exporter config, then call its drivers from inside it:

  jsn shell -c examples/local.yaml
  jsn describe
  jsn power on
  jsn call shell.build_info

Exit codes:
  0  success
  1  device or other error (internal, unavailable, failed precondition, deadline exceeded,
     unimplemented)
  2  usage error: bad flags or arguments, no session, a bad config file
  3  not found: no such driver, method or exporter
  4  invalid argument: wrong argument count or type
  5  permission denied
  N  for methods that run a command, that command's own exit code; for jsn shell, the
     child's exit code (128+signal if it was killed)
  124  jsn shell -l/--exporter: the lease ended (expired, or released elsewhere) while the
     shell ran; jsn ended it (SIGHUP, then SIGTERM)

Environment (set by jsn shell unless noted):
  JSN_HOST, JSN_EXPORTER, JSN_LEASE   the bus address, exporter and lease the commands use
  JSN_CREDS                           the lease credential (distributed mode)
  JSN_CA                              the CA the controller's TLS certificate chains to
                                      (distributed mode)
  JSN_DIRECT_STREAMS=off              (yours to set) keep byte streams on the bus instead of
                                      the exporter's direct connection`

// Main runs jsn with os.Args and returns the exit code.
// Run as j (Jumpstarter's in-shell command name: jsn shell and hooks put a j on PATH) it is the
// same jsn, so `j power on` in a Jumpstarter script is `jsn power on`.
func Main() int {
	return Run(context.Background(), cmdutil.New(), os.Args[1:])
}

// Run runs jsn with args on f's streams and returns the exit code. Errors are printed to
// f.ErrOut as `jsn: <message>`.
func Run(ctx context.Context, f *cmdutil.Factory, args []string) int {
	root := NewRootCmd(f)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	code := ExitCode(err)
	if err != nil {
		var ee *cmdutil.ExitError
		if !errors.As(err, &ee) || ee.Message != "" {
			fmt.Fprintf(f.ErrOut, "jsn: %s\n", err)
		}
		if isCobraUsage(err) {
			fmt.Fprintf(f.ErrOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}

// NewRootCmd builds the whole command tree on f.
func NewRootCmd(f *cmdutil.Factory) *cobra.Command {
	root := &cobra.Command{
		Use:           "jsn <command>",
		Short:         "Drive lab hardware over NATS",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
		Args:          cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	root.SetIn(f.In)
	root.SetOut(f.Out)
	root.SetErr(f.ErrOut)
	root.SetVersionTemplate("jsn {{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &cmdutil.UsageError{Err: err, ShowHelp: true}
	})
	addConnectionFlags(f, root)
	if f.Exporter == nil {
		f.Exporter = func(ctx context.Context) (remote.Exporter, error) {
			ex, err := connectExporter(ctx, f)
			if err != nil {
				return nil, err
			}
			return remoteExporter{ex}, nil
		}
	}

	root.AddCommand(
		newShellCmd(f),
		newCallCmd(f),
		newDescribeCmd(f),
		newVersionCmd(f),
		newControllerCmd(f),
		newAdminCmd(f),
		newExporterCmd(f),
		newConfigCmd(f),
		newGetCmd(f),
		newLeaseCmd(f),
		newTapCmd(f),
		newAuditCmd(f),
		newDashboardCmd(f),
	)
	root.AddCommand(cmdutil.Groups(f)...)
	return root
}

// ExitCode maps an error returned by a command to jsn's exit code.
func ExitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *cmdutil.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ce yamlconf.Errors
	if cmdutil.IsUsage(err) || errors.Is(err, client.ErrNoSession) || errors.As(err, &ce) || isCobraUsage(err) {
		return exitUsage
	}
	switch {
	case errors.Is(err, client.ErrNotFound):
		return exitNotFound
	case errors.Is(err, client.ErrInvalidArgument):
		return exitInvalidArg
	case errors.Is(err, client.ErrPermissionDenied):
		return exitPermission
	}
	return exitError
}

// isCobraUsage recognises errors in the command line itself: bad flags or argument counts, an
// unknown command. The user is pointed to --help for those.
func isCobraUsage(err error) bool {
	var u *cmdutil.UsageError
	if errors.As(err, &u) {
		return u.ShowHelp
	}
	s := err.Error()
	for _, p := range []string{"unknown command ", "unknown flag: ", "unknown shorthand flag: ", "required flag(s) "} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
