package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/controller/api"
)

type adminOptions struct {
	config, endpoint, out string
	labels, allow, watch  []string
	maxDuration           time.Duration
	maxPriority           int
	admin                 bool
	group                 string
}

func newAdminCmd(f *cmdutil.Factory) *cobra.Command {
	o := &adminOptions{}
	cmd := &cobra.Command{Use: "admin", Short: "Issue, list and revoke exporter and client identities",
		Long: `Manage the lab's identities. Uses the current client config (which must have the admin role,
as the one made by 'jsn controller init' has), or --config FILE.`,
		Example: `  $ jsn admin create exporter rack1-rpi4 -l board=rpi4 -l site=lab1 --out rack1-rpi4.yaml
  $ jsn admin create client alice --allow 'power.*' --allow 'serial.*' --out alice.yaml
  $ jsn admin create viewer wall --watch rack1-rpi4,rack2 --out wall.yaml
  $ jsn admin list client
  $ jsn admin delete client alice`}
	cmd.PersistentFlags().StringVar(&o.config, "config", "", "admin client config (default the current one)")
	cmd.PersistentFlags().StringVar(&o.endpoint, "endpoint", "", "controller URL (default the config's endpoint)")
	dial := func(cmd *cobra.Command) (*client.Controller, error) {
		if o.out != "" && o.out != "-" {
			// Before issuing anything: an identity whose config cannot be written is wasted.
			if fi, err := os.Lstat(o.out); err == nil && !fi.Mode().IsRegular() {
				what := "not a regular file"
				if fi.Mode()&os.ModeSymlink != 0 {
					what = "a symbolic link"
				}
				return nil, fmt.Errorf("--out %s: it is %s; refusing to write credentials there", o.out, what)
			}
		}
		cfg, err := client.LoadConfig(o.config)
		if err != nil {
			return nil, err
		}
		if o.endpoint != "" {
			cfg.Endpoint = o.endpoint
		}
		return client.DialController(cmd.Context(), cfg)
	}
	write := func(cmd *cobra.Command, data []byte) error {
		if o.out == "" || o.out == "-" {
			_, err := cmd.OutOrStdout().Write(data)
			return err
		}
		if err := writeSecret(o.out, data); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", o.out)
		return nil
	}
	kind := func(s string) (string, error) {
		switch s {
		case "exporter", "exporters":
			return api.KindExporter, nil
		case "client", "clients":
			return api.KindClient, nil
		case "viewer", "viewers":
			return api.KindViewer, nil
		}
		return "", cmdutil.Usagef("unknown kind %q: want exporter, client or viewer", s)
	}
	create := &cobra.Command{Use: "create", Short: "Issue an identity as a config file",
		Example: `  $ jsn admin create exporter rack1-rpi4 -l board=rpi4 --out rack1-rpi4.yaml
  $ jsn admin create client alice --out alice.yaml`}
	createExporter := &cobra.Command{
		Use: "exporter NAME", Short: "Issue an exporter identity (exporter config with credentials)", Args: cobra.ExactArgs(1),
		Example: `  # then fill in its export: section and run it on the lab host
  $ jsn admin create exporter rack1-rpi4 -l board=rpi4 -l site=lab1 --out rack1-rpi4.yaml
  $ jsn exporter run -c rack1-rpi4.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			labels := map[string]string{}
			for _, l := range o.labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return cmdutil.Usagef("label %q: want key=value", l)
				}
				labels[k] = v
			}
			a, err := dial(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			cfg, err := a.CreateExporter(cmd.Context(), args[0], labels)
			if err != nil {
				return err
			}
			return write(cmd, cfg)
		},
	}
	createExporter.Flags().StringArrayVarP(&o.labels, "label", "l", nil, "label key=value (repeatable)")
	createExporter.Flags().StringVar(&o.out, "out", "", "write the config here (0600) instead of stdout")
	createClient := &cobra.Command{
		Use: "client NAME", Short: "Issue a client identity (client config with credentials)", Args: cobra.ExactArgs(1),
		Example: `  # alice may only touch power and serial drivers, for at most 2h per lease
  $ jsn admin create client alice --allow 'power.*' --allow 'serial.*' --max-duration 2h --out alice.yaml
  # the CI robot may jump the queue (jsn lease request --priority up to 10)
  $ jsn admin create client ci --max-priority 10 --out ci.yaml
  # bob may watch the consoles of rack1 and rack2 without a lease (jsn tap rack1/console)
  $ jsn admin create client bob --watch rack1,rack2 --out bob.yaml
  # on alice's machine
  $ jsn config client import alice.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := dial(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			cfg, err := a.CreateClientWith(cmd.Context(), api.CreateClientRequest{Name: args[0], Allow: o.allow,
				MaxDuration: o.maxDuration, MaxPriority: o.maxPriority, Admin: o.admin, Watch: splitWatch(o.watch), Group: o.group})
			if err != nil {
				return err
			}
			return write(cmd, cfg)
		},
	}
	createClient.Flags().StringArrayVar(&o.allow, "allow", nil, "driver or method the client may call (power.*, serial.write); repeatable; none = all")
	createClient.Flags().DurationVar(&o.maxDuration, "max-duration", 0, "cap on this client's lease durations")
	createClient.Flags().IntVar(&o.maxPriority, "max-priority", 0, "highest queue priority this client's lease requests may ask for (admins: any)")
	createClient.Flags().BoolVar(&o.admin, "admin", false, "the client may use the admin API")
	createClient.Flags().StringVar(&o.group, "group", "", "the client's group, which policies may name (jsn admin policy set --group)")
	createClient.Flags().StringVar(&o.out, "out", "", "write the config here (0600) instead of stdout")
	createClient.Flags().StringArrayVar(&o.watch, "watch", nil, watchHelp+"; none = only the taps of its leases' exporters")
	createViewer := &cobra.Command{
		Use: "viewer NAME", Short: "Issue a read-only identity for wall screens and dashboards", Args: cobra.ExactArgs(1),
		Long: `Issue a viewer: a read-only identity that may list exporters and leases, describe exporters
and watch the taps (console output and its history) of the exporters of --watch. Nothing else:
no lease, no call, no admin. NATS permissions enforce it; 'jsn admin delete viewer NAME' revokes it.
Viewers and clients share one name space.`,
		Example: `  $ jsn admin create viewer wall --out wall.yaml                  # every exporter
  $ jsn admin create viewer rack1-screen --watch rack1 --out rack1-screen.yaml
  # on the wall screen's machine
  $ jsn config client import wall.yaml && jsn tap -l site=lab1 console`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := dial(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			cfg, err := a.CreateViewer(cmd.Context(), args[0], splitWatch(o.watch))
			if err != nil {
				return err
			}
			return write(cmd, cfg)
		},
	}
	createViewer.Flags().StringArrayVar(&o.watch, "watch", nil, watchHelp+"; none = * (every exporter)")
	createViewer.Flags().StringVar(&o.out, "out", "", "write the config here (0600) instead of stdout")
	create.AddCommand(createExporter, createClient, createViewer)
	list := &cobra.Command{
		Use: "list exporter|client|viewer", Short: "List identities", Args: cobra.ExactArgs(1),
		Example: `  $ jsn admin list exporter
  $ jsn admin list client`,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := kind(args[0])
			if err != nil {
				return err
			}
			a, err := dial(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			ids, err := a.ListIdentities(cmd.Context(), k)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tLABELS/ALLOW\tADMIN\tCREATED")
			for _, id := range ids {
				var extra []string
				for k, v := range id.Labels {
					extra = append(extra, k+"="+v)
				}
				extra = append(extra, id.Allow...)
				for _, w := range id.Watch {
					extra = append(extra, "watch:"+w)
				}
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", cmdutil.Printable(id.Name), cmdutil.Printable(strings.Join(extra, ",")), id.Admin,
					id.Created.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	del := &cobra.Command{
		Use: "delete exporter|client|viewer NAME", Short: "Delete an identity and revoke it at once", Args: cobra.ExactArgs(2),
		Example: `  $ jsn admin delete client alice        # alice's connections are closed now
  $ jsn admin delete exporter rack1-rpi4`,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := kind(args[0])
			if err != nil {
				return err
			}
			a, err := dial(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			return a.DeleteIdentity(cmd.Context(), k, args[1])
		},
	}
	cmd.AddCommand(create, list, del, newAdminExporterCmd(dial), newAdminPolicyCmd(dial))
	return cmd
}

const watchHelp = "exporters whose taps it may watch without a lease: names, comma-separated or repeated, or * for every exporter (label selectors are not supported: permissions name subjects)"

// splitWatch flattens --watch a,b --watch c into [a b c].
func splitWatch(in []string) []string {
	var out []string
	for _, s := range in {
		for _, w := range strings.Split(s, ",") {
			if w = strings.TrimSpace(w); w != "" {
				out = append(out, w)
			}
		}
	}
	return out
}

// writeSecret writes data (a config with credentials) to path, readable by the user only: it
// refuses a symbolic link or anything but a regular file there (O_NOFOLLOW: no writing where a
// link points), and makes an existing file 0600 before writing into it.
func writeSecret(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("write %s: it is a symbolic link; refusing to write credentials through it", path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("write %s: not a regular file (%s); refusing to write credentials there", path, fi.Mode().Type())
	}
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
