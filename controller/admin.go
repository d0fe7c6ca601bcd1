package controller

import (
	"context"
	"fmt"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
)

// Admin calls the admin API with an admin client config.
type Admin struct {
	conn *bus.Conn
	name string
}

// DialAdmin connects with cfg (its role must be admin).
func DialAdmin(ctx context.Context, cfg *client.Config) (*Admin, error) {
	if err := client.CheckCredentials(cfg); err != nil {
		return nil, err
	}
	var ca []byte
	if cfg.CA != "" {
		ca = []byte(cfg.CA)
	}
	c, err := bus.ConnectWith(ctx, cfg.Endpoint, bus.ConnectOptions{Name: cfg.Metadata.Name, Creds: []byte(cfg.Credentials), CA: ca})
	if err != nil {
		return nil, err
	}
	return &Admin{conn: c, name: cfg.Metadata.Name}, nil
}

// Close closes the connection.
func (a *Admin) Close() { a.conn.Close() }

func (a *Admin) call(ctx context.Context, verb string, req, out any) error {
	b, err := bus.Marshal(req)
	if err != nil {
		return err
	}
	m, err := a.conn.Request(ctx, api.AdminSubject(a.name, verb), nil, b)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	if out == nil {
		return nil
	}
	return bus.Unmarshal(m.Data, out)
}

// CreateExporter issues an exporter identity and returns its config file.
func (a *Admin) CreateExporter(ctx context.Context, name string, labels map[string]string) ([]byte, error) {
	var r api.ConfigReply
	err := a.call(ctx, api.VerbCreateExporter, api.CreateExporterRequest{Name: name, Labels: labels}, &r)
	return r.Config, err
}

// CreateClient issues a client identity and returns its config file.
func (a *Admin) CreateClient(ctx context.Context, name string, allow []string, maxDuration time.Duration, admin bool) ([]byte, error) {
	return a.CreateClientWith(ctx, api.CreateClientRequest{Name: name, Allow: allow, MaxDuration: maxDuration, Admin: admin})
}

// CreateClientWith issues the client identity req describes and returns its config file.
func (a *Admin) CreateClientWith(ctx context.Context, req api.CreateClientRequest) ([]byte, error) {
	var r api.ConfigReply
	err := a.call(ctx, api.VerbCreateClient, req, &r)
	return r.Config, err
}

// List lists identities of kind (api.KindExporter or api.KindClient).
func (a *Admin) List(ctx context.Context, kind string) ([]api.Identity, error) {
	verb := api.VerbListClient
	if kind == api.KindExporter {
		verb = api.VerbListExporter
	}
	var out []api.Identity
	err := client.Pages(func(p api.Page) (string, error) {
		var r api.ListIdentitiesReply
		if err := a.call(ctx, verb, api.ListIdentitiesRequest{Page: p}, &r); err != nil {
			return "", err
		}
		out = append(out, r.Identities...)
		return r.Next, nil
	})
	return out, err
}

// Delete deletes and revokes an identity of kind.
func (a *Admin) Delete(ctx context.Context, kind, name string) error {
	verb := api.VerbDeleteClient
	if kind == api.KindExporter {
		verb = api.VerbDeleteExporter
	}
	return a.call(ctx, verb, api.ExporterName{Name: name}, nil)
}

// clientCall calls the client API as this identity.
func (a *Admin) clientCall(ctx context.Context, verb string, req, out any) error {
	b, err := bus.Marshal(req)
	if err != nil {
		return err
	}
	m, err := a.conn.Request(ctx, api.ClientSubject(a.name, verb), nil, b)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	if out == nil {
		return nil
	}
	return bus.Unmarshal(m.Data, out)
}
