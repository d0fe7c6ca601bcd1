package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ConnectWith dials the bus at url like Connect, authenticating with o.Creds when set.
func ConnectWith(ctx context.Context, url string, o ConnectOptions) (*Conn, error) {
	if url == "" {
		return nil, errors.New("connect: no bus address")
	}
	extra, err := o.natsOptions()
	if err != nil {
		return nil, err
	}
	inbox, err := o.inbox()
	if err != nil {
		return nil, err
	}
	return connect(ctx, url, o.Name, inbox, nil, extra...)
}

// ConnectWith opens an in-process connection authenticating with o.Creds when set.
func (s *Server) ConnectWith(ctx context.Context, o ConnectOptions) (*Conn, error) {
	o.CA = nil // nothing crosses a network
	extra, err := o.natsOptions()
	if err != nil {
		return nil, err
	}
	inbox, err := o.inbox()
	if err != nil {
		return nil, err
	}
	return connect(ctx, "", o.Name, inbox, s.ns, extra...)
}

// inbox is the connection's inbox prefix: o.Inbox, else the one o.Creds may subscribe to.
func (o ConnectOptions) inbox() (string, error) {
	if o.Inbox != "" || len(o.Creds) == 0 {
		return o.Inbox, nil
	}
	in, err := CredsInbox(o.Creds)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	return in, nil
}

func (o ConnectOptions) natsOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if len(o.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CA) {
			return nil, errors.New("connect: the CA is not a PEM certificate")
		}
		opts = append(opts, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	if o.Reconnected != nil {
		opts = append(opts, nats.ReconnectHandler(func(*nats.Conn) { o.Reconnected() }))
	}
	if len(o.Creds) == 0 {
		return opts, nil
	}
	userJWT, err := jwt.ParseDecoratedJWT(o.Creds)
	if err != nil {
		return nil, fmt.Errorf("connect: credentials: %w", err)
	}
	kp, err := jwt.ParseDecoratedNKey(o.Creds)
	if err != nil {
		return nil, fmt.Errorf("connect: credentials: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("connect: credentials: %w", err)
	}
	seed = append([]byte(nil), seed...)
	return append(opts, nats.UserJWT(
		func() (string, error) { return userJWT, nil },
		func(nonce []byte) ([]byte, error) {
			kp, err := nkeys.FromSeed(seed)
			if err != nil {
				return nil, err
			}
			defer kp.Wipe()
			return kp.Sign(nonce)
		},
	)), nil
}

// ConnectedURL is the URL of the server the connection is connected to.
func (c *Conn) ConnectedURL() string { return c.nc.ConnectedUrl() }

// Name is the identity the connection was opened with.
func (c *Conn) Name() string { return c.name }
