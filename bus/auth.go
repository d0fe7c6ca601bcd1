package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
)

// apply sets operator mode and JetStream on the server options.
func (o ServerOptions) apply(opts *server.Options) error {
	if o.Name != "" {
		opts.ServerName = o.Name
	}
	if o.JetStreamDir != "" {
		opts.JetStream = true
		opts.StoreDir = o.JetStreamDir
	}
	if o.Operator == "" {
		return nil
	}
	oc, err := jwt.DecodeOperatorClaims(o.Operator)
	if err != nil {
		return fmt.Errorf("operator jwt: %w", err)
	}
	opts.TrustedOperators = []*jwt.OperatorClaims{oc}
	opts.SystemAccount = o.SystemAccount
	res := &server.MemAccResolver{}
	for pub, j := range o.Accounts {
		if err := res.Store(pub, j); err != nil {
			return fmt.Errorf("preload account %s: %w", pub, err)
		}
	}
	opts.AccountResolver = res
	return nil
}

// UpdateAccountJWT replaces an account's JWT on this server (for example after adding a
// revocation): connections of users the new claims revoke are closed at once.
func (s *Server) UpdateAccountJWT(accountJWT string) error {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return fmt.Errorf("update account: %w", err)
	}
	if res := s.ns.AccountResolver(); res != nil {
		if err := res.Store(ac.Subject, accountJWT); err != nil {
			return fmt.Errorf("update account %s: %w", ac.Subject, err)
		}
	}
	acc, err := s.ns.LookupAccount(ac.Subject)
	if err != nil {
		return fmt.Errorf("update account %s: %w", ac.Subject, err)
	}
	s.ns.UpdateAccountClaims(acc, ac)
	return nil
}

// StartServerFromConfig starts a server from a nats-server configuration file (as written for an
// existing NATS deployment) and waits until it accepts connections.
func StartServerFromConfig(ctx context.Context, file string, log *slog.Logger) (*Server, error) {
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		return nil, fmt.Errorf("start bus: %w", err)
	}
	opts.NoSigs = true
	return startOptions(ctx, opts, log)
}

func startOptions(ctx context.Context, opts *server.Options, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start bus: %w", err)
	}
	sl := &serverLogger{log: log.With("part", "nats-server")}
	ns.SetLoggerV2(sl, false, false, false)
	s := &Server{ns: ns, log: log, bridged: map[net.Conn]struct{}{}}
	go ns.Start()
	deadline := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		deadline = time.Until(d)
	}
	for end := time.Now().Add(deadline); !ns.ReadyForConnections(20 * time.Millisecond); {
		err := sl.fatal()
		if err == nil && time.Now().After(end) {
			err = errors.New("server not ready in time")
		}
		if err != nil {
			ns.Shutdown()
			return nil, fmt.Errorf("start bus: %w", err)
		}
	}
	return s, nil
}
