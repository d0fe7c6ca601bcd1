package cli

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/client/web"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/controller"
)

type controllerOptions struct {
	data, listen, http, natsURL, creds, endpoint string
	tlsCert, tlsKey, tlsCA                       string
	tlsHosts                                     []string
	noTLS                                        bool
	maxDuration                                  time.Duration
	replicas, maxQueued, maxConns, maxPendingMiB int
	keepaliveWindow                              time.Duration // lease features (keepalive leases)
	hookFailures                                 int           // afterLease failures in a row before maintenance
	maxConnsPerCred                              int
	maxSubs                                      int64
	noImport                                     bool
	websocket, websocketURL, dashboardURL        string
	websocketNoTLS, httpTLS                      bool
	audit                                        controller.AuditOptions
}

// importAdmin makes the admin config written to the data directory the current client config,
// unless --no-import.
func (o *controllerOptions) importAdmin(cmd *cobra.Command, cfg []byte) error {
	if o.noImport {
		return nil
	}
	_, path, err := client.ImportConfig(o.data+"/admin.yaml", cfg, true)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "imported as the current client config: %s\n", path)
	return nil
}

func newControllerCmd(f *cmdutil.Factory) *cobra.Command {
	o := &controllerOptions{}
	cmd := &cobra.Command{Use: "controller", Short: "Run the lab controller (distributed mode)",
		Example: `  $ jsn controller init --data /var/lib/jsn --endpoint nats://lab.example:4222
  $ jsn controller run --data /var/lib/jsn --listen 0.0.0.0:4222 --http 127.0.0.1:8080`}
	cmd.PersistentFlags().StringVar(&o.data, "data", "/var/lib/jsn", "controller data directory (keys, JetStream store)")
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create the operator, accounts, signing key and an admin client config",
		Example: `  # the admin config is imported and made current, so 'jsn admin' works at once
  $ jsn controller init --data /var/lib/jsn --endpoint nats://lab.example:4222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			io := controller.InitOptions{Endpoint: o.endpoint, NoTLS: o.noTLS}
			if o.tlsCA != "" {
				b, err := os.ReadFile(o.tlsCA)
				if err != nil {
					return err
				}
				io.CA = b
			}
			cfg, err := controller.Init(o.data, io)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "initialised %s; admin client config in %s\n", o.data, o.data+"/admin.yaml")
			return o.importAdmin(cmd, cfg)
		},
	}
	initCmd.Flags().StringVar(&o.endpoint, "endpoint", "", "URL clients and exporters connect to (default nats://127.0.0.1:4222)")
	initCmd.Flags().BoolVar(&o.noImport, "no-import", false, "do not import the admin config as the current client config")
	initCmd.Flags().StringVar(&o.tlsCA, "tls-ca", "", "PEM CA to write into the admin config, for a controller run with --tls-cert (default: make the data directory's own CA)")
	initCmd.Flags().BoolVar(&o.noTLS, "no-tls", false, "make no CA and write none (a controller run with --no-tls, or with a certificate clients' systems trust)")
	runCmd := &cobra.Command{
		Use:   "run",
		Short: "Run the controller (embedded NATS with JetStream, or --nats-url)",
		Example: `  # TLS with the data directory's own CA, which every issued config carries
  $ jsn controller run --data /var/lib/jsn --listen 0.0.0.0:4222 --http 127.0.0.1:8080
  # TLS with a certificate of your own (--tls-ca: the CA issued configs carry, if not a public one)
  $ jsn controller run --data /var/lib/jsn --listen 0.0.0.0:4222 --tls-cert lab.pem --tls-key lab.key --tls-ca ca.pem
  # the web dashboard ('jsn dashboard' prints a login URL): page on :8080, NATS WebSocket on :8443 (TLS)
  $ jsn controller run --data /var/lib/jsn --listen 0.0.0.0:4222 --http 0.0.0.0:8080 --http-tls --websocket 0.0.0.0:8443
  # against an existing NATS cluster configured with 'jsn controller nats-config'
  $ jsn controller run --data /var/lib/jsn --nats-url tls://n1:4222,tls://n2:4222 --tls-ca nats-ca.pem --replicas 3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := cmdutil.Interruptible(cmd.Context())
			defer stop()
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			return controller.Run(ctx, controller.Options{Data: o.data, Listen: o.listen, HTTP: o.http,
				NatsURL: o.natsURL, CredsFile: o.creds, Endpoint: o.endpoint, MaxDuration: o.maxDuration,
				HTTPTLS: o.httpTLS, Replicas: o.replicas, Log: log, TLSCert: o.tlsCert, TLSKey: o.tlsKey, TLSCA: o.tlsCA,
				TLSHosts: o.tlsHosts, NoTLS: o.noTLS, MaxQueued: o.maxQueued,
				KeepaliveWindow: o.keepaliveWindow, HookFailures: o.hookFailures,
				MaxConnections: o.maxConns, MaxSubscriptions: o.maxSubs, MaxPending: int64(o.maxPendingMiB) << 20,
				MaxConnsPerCredential: o.maxConnsPerCred,
				WebSocket:             o.websocket, WebSocketNoTLS: o.websocketNoTLS, WebSocketURL: o.websocketURL,
				Dashboard: web.Static(), DashboardURL: o.dashboardURL, Audit: o.audit})
		},
	}
	runCmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:4222", "client address of the embedded NATS server")
	runCmd.Flags().StringVar(&o.http, "http", "", "address of the web dashboard (with --websocket), /healthz and /metrics (e.g. 127.0.0.1:8080)")
	runCmd.Flags().BoolVar(&o.httpTLS, "http-tls", false, "serve --http over TLS (https://) with the NATS listener's certificate (--tls-cert, or the data directory's CA)")
	runCmd.Flags().StringVar(&o.websocket, "websocket", "", "NATS WebSocket address for browsers (the dashboard): wss:// with the listener's certificate (e.g. 0.0.0.0:8443)")
	runCmd.Flags().BoolVar(&o.websocketNoTLS, "websocket-no-tls", false, "plain ws:// on a loopback --websocket, behind a reverse proxy that terminates TLS")
	runCmd.Flags().StringVar(&o.websocketURL, "websocket-url", "", "WebSocket URL browsers use (behind a reverse proxy, e.g. wss://lab.example/nats; default the listener's)")
	runCmd.Flags().StringVar(&o.dashboardURL, "dashboard-url", "", "public URL of the dashboard that 'jsn dashboard' prints (behind a reverse proxy; default http://<--http>/)")
	runCmd.Flags().StringVar(&o.natsURL, "nats-url", "", "use an existing NATS deployment (see nats-config) instead of the embedded server")
	runCmd.Flags().StringVar(&o.creds, "creds", "", "no longer used: the controller mints its own users")
	_ = runCmd.Flags().MarkDeprecated("creds", "the controller mints its own users from the signing key")
	runCmd.Flags().StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate of the NATS listener (default: one signed at start by the data directory's CA)")
	runCmd.Flags().StringVar(&o.tlsKey, "tls-key", "", "PEM key of --tls-cert")
	runCmd.Flags().StringVar(&o.tlsCA, "tls-ca", "", "PEM CA written into issued configs with --tls-cert; with --nats-url, the CA of the NATS servers' certificates")
	runCmd.Flags().StringArrayVar(&o.tlsHosts, "tls-host", nil, "further name or address the controller is reached by, for its own certificate (repeatable)")
	runCmd.Flags().BoolVar(&o.noTLS, "no-tls", false, "plain NATS listener: credentials and lease data cross the network in clear (not recommended)")
	runCmd.Flags().StringVar(&o.endpoint, "endpoint", "", "URL written into issued configs (default the server's URL)")
	runCmd.Flags().DurationVar(&o.maxDuration, "max-duration", 24*time.Hour, "longest lease")
	runCmd.Flags().IntVar(&o.maxQueued, "max-queued", 16, "most queued lease requests per client")
	runCmd.Flags().DurationVar(&o.keepaliveWindow, "keepalive-window", 5*time.Second, "how long a keepalive lease outlives its holder's last renewal")
	runCmd.Flags().IntVar(&o.hookFailures, "hook-failures", 3, "afterLease hook failures in a row that put an exporter in maintenance (-1: never)")
	runCmd.Flags().IntVar(&o.maxConns, "max-connections", 10000, "most connections of all users of the lab together")
	runCmd.Flags().IntVar(&o.maxConnsPerCred, "max-connections-per-credential", 256, "most connections of one identity or lease credential (the newest beyond are closed)")
	runCmd.Flags().Int64Var(&o.maxSubs, "max-subscriptions", controller.DefaultMaxSubscriptions,
		"most subscriptions of one connection of each identity and lease credential issued from now on")
	runCmd.Flags().IntVar(&o.maxPendingMiB, "max-pending-mib", 64, "MiB the server buffers for a connection that does not read before dropping it")
	runCmd.Flags().IntVar(&o.replicas, "replicas", 1, "JetStream replicas of the controller's KV buckets (3 on a 3-node --nats-url cluster); "+
		"any number of controller processes may run against one --nats-url deployment")
	addAuditFlags(runCmd, &o.audit)
	natsCmd := &cobra.Command{
		Use:   "nats-config",
		Short: "Print the nats-server config that trusts this controller's operator and accounts",
		Example: `  $ jsn controller nats-config --data /var/lib/jsn > /etc/nats/jsn-auth.conf
  # then in nats-server.conf:  include jsn-auth.conf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := controller.NatsConfig(o.data)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), s)
			return err
		},
	}
	resetCmd := &cobra.Command{
		Use:   "reset-admin",
		Short: "Issue a new admin client config, revoking the old one (lost admin config or store)",
		Long: `Issue a new admin client config from the keys in the data directory, for when the admin
config is lost or leaked, or the JetStream store holding the admin identity was lost. It writes
DATA/admin.yaml (and imports it as the current client config unless --no-import); the controller
applies it when it next starts: the new key becomes the admin and the previous admin key is
revoked, closing its connections.`,
		Example: `  $ sudo systemctl stop jsn-controller
  $ jsn controller reset-admin --data /var/lib/jsn
  $ sudo systemctl start jsn-controller
  $ jsn admin list client`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := controller.ResetAdmin(o.data, o.endpoint)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new admin client config in %s; it takes effect when the controller (re)starts\n", o.data+"/admin.yaml")
			return o.importAdmin(cmd, cfg)
		},
	}
	resetCmd.Flags().StringVar(&o.endpoint, "endpoint", "", "URL written into the config (default the one of the existing admin.yaml)")
	resetCmd.Flags().BoolVar(&o.noImport, "no-import", false, "do not import the admin config as the current client config")
	cmd.AddCommand(initCmd, runCmd, natsCmd, resetCmd)
	return cmd
}

// addAuditFlags binds the audit log's flags of `jsn controller run` (docs/operations.md, "Audit log").
func addAuditFlags(cmd *cobra.Command, a *controller.AuditOptions) {
	var on bool
	var mib int64
	cmd.Flags().BoolVar(&on, "audit", true, "keep the audit log (every lease event and driver call, in the JetStream stream jsn-audit; jsn audit reads it)")
	cmd.Flags().DurationVar(&a.MaxAge, "audit-max-age", controller.DefaultAuditMaxAge, "oldest audit event kept")
	cmd.Flags().Int64Var(&mib, "audit-max-mib", controller.DefaultAuditMaxBytes>>20, "MiB of audit events kept (the oldest go first)")
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if a.MaxAge <= 0 {
			return cmdutil.Usagef("--audit-max-age %v: want a positive duration like 720h", a.MaxAge)
		}
		if mib <= 0 {
			return cmdutil.Usagef("--audit-max-mib %d: want a positive number of MiB", mib)
		}
		a.Off, a.MaxBytes = !on, mib<<20
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
}
