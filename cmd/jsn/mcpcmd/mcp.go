// Package mcpcmd is `jsn mcp`: jsn's MCP server (package client/mcp) for AI agents. It lives
// apart from package cli because the server links the typed clients of the serial, storage and
// video drivers, and cli links no driver; the binary (cmd/jsn) imports it, and it registers
// itself with cmdutil.AddGroup like a driver's verbs.
package mcpcmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/client/mcp"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/exporter"
)

func init() { cmdutil.AddGroup(newCmd) }

// EnvToken, when set, is the bearer token of `jsn mcp --http` (instead of a random one).
const EnvToken = "JSN_MCP_TOKEN"

type options struct {
	lab, clientConfig, http string
}

func newCmd(f *cmdutil.Factory) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "mcp [-c lab.yaml | --config client.yaml] [--http 127.0.0.1:PORT]",
		Short: "Serve an MCP server so that AI agents can lease boards, call drivers, read consoles, flash and take screenshots",
		Long: `Serve jsn's Model Context Protocol server, on stdin/stdout (what agents launch) or, with --http,
as streamable HTTP on a loopback address with a bearer token.

The lab it drives, first found of:
  -c lab.yaml       a local session of its own (an embedded bus and the exporter of lab.yaml)
  $JSN_HOST …       the session jsn mcp runs in (jsn shell -c lab.yaml -- jsn mcp)
  --config FILE     a controller, with a client config (default $JSN_CLIENT_CONFIG or the current one)

Tools: list_exporters, request_lease, release_lease, describe, call, console_expect,
console_log, flash, screenshot. Leases requested through the server are released when it ends.

To wire it into an agent (Claude Code, Cursor, …), add to its MCP config:
  {"mcpServers": {"jsn": {"command": "jsn", "args": ["mcp", "-c", "/path/to/lab.yaml"]}}}
See docs/operations.md, "MCP server".`,
		Example: `  $ jsn mcp -c lab.yaml                        # stdio, a local session
  $ jsn shell -c lab.yaml -- jsn mcp            # stdio, inside a session
  $ jsn mcp --config alice.yaml                 # stdio, leases from the controller
  $ JSN_MCP_TOKEN=s3cret jsn mcp --http 127.0.0.1:8765 -c lab.yaml
  jsn mcp: serving http://127.0.0.1:8765/ (Authorization: Bearer $JSN_MCP_TOKEN)`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return run(cmd, f, o) },
	}
	cmd.Flags().StringVarP(&o.lab, "lab", "c", "", "exporter config of a local session to start and drive")
	cmd.Flags().StringVar(&o.clientConfig, "config", "", "client config of a controller (default $JSN_CLIENT_CONFIG or the current one)")
	cmd.Flags().StringVar(&o.http, "http", "", "serve streamable HTTP on this loopback address (127.0.0.1:PORT) instead of stdio")
	return cmd
}

func run(cmd *cobra.Command, f *cmdutil.Factory, o options) error {
	ctx, stop := cmdutil.Interruptible(cmd.Context())
	defer stop()
	var token string
	var ln net.Listener
	if o.http != "" {
		host, _, err := net.SplitHostPort(o.http)
		if err != nil {
			return cmdutil.Usagef("--http %q: want HOST:PORT on loopback, like 127.0.0.1:8765", o.http)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return cmdutil.Usagef("--http %q: only a loopback address (127.0.0.1, ::1, localhost) is allowed: the server acts with your leases", o.http)
		}
		if token = f.Env(EnvToken); token == "" {
			b := make([]byte, 16)
			_, _ = rand.Read(b)
			token = hex.EncodeToString(b)
		}
		if ln, err = net.Listen("tcp", o.http); err != nil {
			return fmt.Errorf("jsn mcp: %w", err)
		}
		defer ln.Close()
	}
	lab, closeLab, err := openLab(ctx, f, o)
	if err != nil {
		return err
	}
	defer closeLab()
	s := mcp.New(lab, version())
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.Close(cctx); err != nil {
			fmt.Fprintf(f.ErrOut, "jsn mcp: release leases: %v\n", err)
		}
	}()
	if ln == nil {
		return s.Serve(ctx, f.In, f.Out)
	}
	srv := &http.Server{Handler: s.Handler(token), ReadHeaderTimeout: 10 * time.Second}
	if f.Env(EnvToken) != "" {
		fmt.Fprintf(f.ErrOut, "jsn mcp: serving http://%s/ (Authorization: Bearer $%s)\n", ln.Addr(), EnvToken)
	} else {
		fmt.Fprintf(f.ErrOut, "jsn mcp: serving http://%s/ (Authorization: Bearer %s)\n", ln.Addr(), token)
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("jsn mcp: %w", err)
	}
	return nil
}

// openLab opens the lab the flags and environment name (see the command's help).
func openLab(ctx context.Context, f *cmdutil.Factory, o options) (mcp.Lab, func(), error) {
	if o.lab != "" {
		cfg, err := exporter.LoadConfig(o.lab)
		if err != nil {
			return nil, nil, &cmdutil.UsageError{Err: err}
		}
		l, err := exporter.StartLocal(ctx, cfg, exporter.LocalOptions{Log: slog.New(slog.NewTextHandler(f.ErrOut, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			return nil, nil, fmt.Errorf("start session: %w", err)
		}
		return &mcp.Session{Options: client.Options{Host: l.URL, Exporter: l.Exporter, Lease: l.Lease, Name: "mcp"}}, func() { _ = l.Close() }, nil
	}
	if host := firstNonEmpty(f.Host, f.Env(client.EnvHost)); host != "" {
		co := client.Options{Host: host, Exporter: firstNonEmpty(f.ExporterName, f.Env(client.EnvExporter)),
			Lease: firstNonEmpty(f.Lease, f.Env(client.EnvLease)), Name: "mcp", Creds: f.Env(client.EnvCreds), CAFile: f.Env(client.EnvCA),
			NoDirectStreams: f.Env(client.EnvDirectStreams) == "off"}
		if err := co.Validate(); err != nil {
			return nil, nil, &cmdutil.UsageError{Err: err}
		}
		return &mcp.Session{Options: co}, func() {}, nil
	}
	path := firstNonEmpty(o.clientConfig, f.ClientConfig)
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return nil, nil, &cmdutil.UsageError{Err: fmt.Errorf("%w\n(jsn mcp drives a local session with -c lab.yaml, the session it runs in, or a controller with a client config)", err)}
	}
	ctl, err := client.DialControllerWith(ctx, cfg, client.Retry{For: -1})
	if err != nil {
		return nil, nil, err
	}
	return &mcp.Controller{Ctl: ctl}, func() { _ = ctl.Close() }, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
