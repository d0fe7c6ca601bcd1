package bus

import (
	"fmt"

	"github.com/nats-io/nats.go/micro"

	"jsn.dev/jsn/bus/wire"
)

// ServiceConfig describes a nats.go micro service, which standard NATS tooling lists through
// $SRV.PING, $SRV.INFO and $SRV.STATS.
type ServiceConfig struct {
	Name        string // e.g. "jsn-controller"
	Version     string // semantic version, e.g. "0.1.0"
	Description string
	QueueGroup  string // "" means the micro default ("q")
}

// Service is a running micro service.
type Service struct {
	svc  micro.Service
	conn *Conn
}

// AddService starts a micro service on the connection. Add endpoints with Handle; Stop ends it.
func (c *Conn) AddService(cfg ServiceConfig) (*Service, error) {
	if cfg.Version == "" {
		cfg.Version = "0.1.0"
	}
	svc, err := micro.AddService(c.nc, micro.Config{
		Name:        cfg.Name,
		Version:     cfg.Version,
		Description: cfg.Description,
		QueueGroup:  cfg.QueueGroup,
	})
	if err != nil {
		return nil, fmt.Errorf("add service %s: %w", cfg.Name, err)
	}
	return &Service{svc: svc, conn: c}, nil
}

// Handle adds an endpoint named name serving subject (wildcards allowed). h is called for each
// request, one at a time per endpoint; it answers with m.Respond or m.RespondError. On a
// connection that guards its replies (GuardReplies), requests whose reply subject is outside
// their requester's inbox never reach h.
func (s *Service) Handle(name, subject string, h func(*Msg)) error {
	err := s.svc.AddEndpoint(name, micro.HandlerFunc(func(r micro.Request) {
		m := &Msg{Subject: r.Subject(), Reply: r.Reply(), Header: wire.Header(r.Headers()), Data: r.Data(), conn: s.conn}
		if s.conn.replyAllowed(m) {
			h(m)
		}
	}), micro.WithEndpointSubject(subject))
	if err != nil {
		return fmt.Errorf("add endpoint %s: %w", subject, err)
	}
	return nil
}

// Stop drains the service's subscriptions.
func (s *Service) Stop() error { return s.svc.Stop() }
