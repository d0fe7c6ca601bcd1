package exporter

import (
	"context"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/drivers/driver"
)

// AuditCalls makes the exporter (before Start) append an event for every driver call it serves
// to the controller's audit log (api.AuditStream): who (the client whose inbox the reply goes
// to: the lease's holder or one it shared the lease with, see Exporter.caller), the lease, the
// driver path and method, the result code and the duration, never arguments or results. The
// events are plain publishes on api.AuditCallSubject(exporter, holder), which only this
// exporter's identity may publish to: a call never waits for its audit entry. Distributed mode
// only: a local session has no controller and keeps no audit log.
func (e *Exporter) AuditCalls() { e.audit = true }

// auditCall appends the event of call m of path.method, begun at start and ended with err.
func (e *Exporter) auditCall(ctx context.Context, m *bus.Msg, path, method string, start time.Time, err error) {
	conn := e.tapConn.Load()
	if conn == nil {
		return
	}
	var holder string
	if ctx != nil {
		holder = driver.Holder(ctx)
	} else {
		holder = e.caller(m, m.Header.Get(wire.HeaderLease)) // refused before it ran
	}
	code := "OK"
	if err != nil {
		code = string(wire.CodeOf(err))
	}
	ev := api.AuditEvent{Time: start.UTC(), Kind: api.AuditKindCall, Event: api.AuditCall, Client: holder,
		Exporter: e.name, Lease: m.Header.Get(wire.HeaderLease), Call: path + "." + method, Code: code,
		Duration: time.Since(start)}
	if len(ev.Lease) > 64 || !wire.ValidName(ev.Lease) {
		ev.Lease = "" // not a lease id: do not copy what a caller made up into the log
	}
	b, merr := wire.Marshal(&ev)
	if merr != nil {
		return
	}
	if perr := conn.Publish(api.AuditCallSubject(e.name, holder), nil, b); perr != nil {
		e.log.Debug("audit", "call", ev.Call, "err", perr)
	}
}
