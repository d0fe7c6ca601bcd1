package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Controller is a connection to the lab controller with an identity's own client config: the
// client API (request, extend, release and list leases, list and describe exporters) and, with
// an admin's config, the admin API (issue, list and revoke identities). A granted lease's
// credential then reaches the exporter through Dial, exactly like a local session.
//
// Every call goes through one request helper, so every call fails the same way: UNAVAILABLE
// with a hint to start the controller when nobody answers, PERMISSION_DENIED when the bus
// refuses the identity, the controller's own code and message otherwise.
type Controller struct {
	conn     *bus.Conn
	name     string // the identity
	role     string // RoleClient or RoleAdmin
	endpoint string
	ca       []byte // PEM CA of the endpoint's TLS certificate; nil for the system's roots
}

// DialController connects to cfg's endpoint with its credentials.
func DialController(ctx context.Context, cfg *Config) (*Controller, error) {
	if err := CheckCredentials(cfg); err != nil {
		return nil, err
	}
	var ca []byte
	if cfg.CA != "" {
		ca = []byte(cfg.CA)
	}
	conn, err := bus.ConnectWith(ctx, cfg.Endpoint, bus.ConnectOptions{Name: cfg.Metadata.Name, Creds: []byte(cfg.Credentials), CA: ca})
	if err != nil {
		return nil, authError(fmt.Errorf("connect to controller: %w", err))
	}
	role := cfg.Role
	if role == "" {
		role = RoleClient
	}
	return &Controller{conn: conn, name: cfg.Metadata.Name, role: role, endpoint: cfg.Endpoint, ca: ca}, nil
}

// CheckCredentials checks that cfg's credentials are a client identity's of the current
// scheme: they receive on the client's own inbox prefix (_INBOX_c.<name>), where the controller
// answers. Credentials issued by an older controller are refused with a hint to re-issue them.
func CheckCredentials(cfg *Config) error {
	in, err := bus.CredsInbox([]byte(cfg.Credentials))
	if err != nil {
		return fmt.Errorf("client config %s: %w", cfg.File, err)
	}
	if want := bus.InboxPrefix(bus.KindClient, cfg.Metadata.Name); in != want {
		return wire.Errorf(wire.PermissionDenied, "client config %s: its credentials receive on %s.>, not %s.> as credentials of client %s do now "+
			"(issued by an older jsn?): ask an admin to issue them again (jsn admin delete client %s; jsn admin create client %s)",
			cfg.File, in, want, cfg.Metadata.Name, cfg.Metadata.Name, cfg.Metadata.Name)
	}
	return nil
}

// authError gives an error of the bus refusing the identity the PermissionDenied code.
func authError(err error) error {
	s := strings.ToLower(err.Error())
	for _, w := range []string{"authorization violation", "authentication expired", "authentication revoked", "permissions violation", "user authentication"} {
		if strings.Contains(s, w) {
			return wire.NewError(wire.PermissionDenied, err.Error(), nil)
		}
	}
	return err
}

// Name returns the identity's name.
func (c *Controller) Name() string { return c.name }

// Endpoint returns the controller's address.
func (c *Controller) Endpoint() string { return c.endpoint }

// CA returns the PEM of the CA the controller's TLS certificate chains to, nil if the client
// config names none.
func (c *Controller) CA() []byte { return c.ca }

// Close closes the connection.
func (c *Controller) Close() error {
	c.conn.Close()
	return nil
}

// request sends req as verb of the controller API on subject and decodes the reply into out
// (nil to discard it): the one way this package calls the controller.
func (c *Controller) request(ctx context.Context, subject, verb string, req, out any) error {
	b, err := wire.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	m, err := c.conn.Request(ctx, subject, nil, b)
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) && we.Code == wire.Unavailable && strings.Contains(we.Message, "nobody is serving") {
			return wire.Errorf(wire.Unavailable, "%s: the controller is not answering (is `jsn controller run` up?)", verb)
		}
		return authError(err)
	}
	if out == nil || len(m.Data) == 0 {
		return nil
	}
	if err := wire.Unmarshal(m.Data, out); err != nil {
		return fmt.Errorf("%s: reply: %w", verb, err)
	}
	return nil
}

// call calls verb of the client API (jsn.ctl.c.<identity>.<verb>).
func (c *Controller) call(ctx context.Context, verb string, req, out any) error {
	return c.request(ctx, api.ClientSubject(c.name, verb), verb, req, out)
}

// admin calls verb of the admin API (jsn.ctl.a.<identity>.<verb>), which only an admin's
// identity may publish to.
func (c *Controller) admin(ctx context.Context, verb string, req, out any) error {
	if c.role != RoleAdmin {
		return wire.Errorf(wire.PermissionDenied, "%s: %s is a %s identity; the admin API needs an admin's client config "+
			"(jsn controller init makes the first one; jsn admin create client NAME --admin more)", verb, c.name, c.role)
	}
	return c.request(ctx, api.AdminSubject(c.name, verb), verb, req, out)
}

// CreateExporter issues an exporter identity and returns its config file (admin API).
func (c *Controller) CreateExporter(ctx context.Context, name string, labels map[string]string) ([]byte, error) {
	var r api.ConfigReply
	err := c.admin(ctx, api.VerbCreateExporter, api.CreateExporterRequest{Name: name, Labels: labels}, &r)
	return r.Config, err
}

// CreateClient issues a client identity (an admin one with admin) and returns its client config
// file (admin API).
func (c *Controller) CreateClient(ctx context.Context, name string, allow []string, maxDuration time.Duration, admin bool) ([]byte, error) {
	return c.CreateClientWith(ctx, api.CreateClientRequest{Name: name, Allow: allow, MaxDuration: maxDuration, Admin: admin})
}

// CreateClientWith issues the client identity req describes and returns its client config file
// (admin API).
func (c *Controller) CreateClientWith(ctx context.Context, req api.CreateClientRequest) ([]byte, error) {
	var r api.ConfigReply
	err := c.admin(ctx, api.VerbCreateClient, req, &r)
	return r.Config, err
}

// ListIdentities lists the identities of kind, api.KindExporter or api.KindClient (admin API).
func (c *Controller) ListIdentities(ctx context.Context, kind string) ([]api.Identity, error) {
	verb := api.VerbListClient
	if kind == api.KindExporter {
		verb = api.VerbListExporter
	}
	var out []api.Identity
	err := Pages(func(p api.Page) (string, error) {
		var r api.ListIdentitiesReply
		if err := c.admin(ctx, verb, api.ListIdentitiesRequest{Page: p}, &r); err != nil {
			return "", err
		}
		out = append(out, r.Identities...)
		return r.Next, nil
	})
	return out, err
}

// DeleteIdentity deletes identity name of kind and revokes its credentials (admin API).
func (c *Controller) DeleteIdentity(ctx context.Context, kind, name string) error {
	verb := api.VerbDeleteClient
	if kind == api.KindExporter {
		verb = api.VerbDeleteExporter
	}
	return c.admin(ctx, verb, api.ExporterName{Name: name}, nil)
}
