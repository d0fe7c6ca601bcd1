package exporter

import (
	"context"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Power state (docs/protocol.md "Power state"): the exporter keeps the last known state of each
// power driver (interface jsn.power.v1) — "on", "off" or "unknown" — learnt from the results of
// its on, off, cycle and status calls and read with status at start and after each reset of the
// drivers; it publishes every change on the driver's state subject in its tap namespace
// (wire.StateSubject) and answers a history request for the driver with the state. Watchers of
// the exporter (those who may subscribe to jsn.tap.E.>) thus see it live, with no new right.

// PowerInterface is the interface whose drivers' state is published.
const PowerInterface = "jsn.power.v1"

// Power states.
const (
	PowerOn      = "on"
	PowerOff     = "off"
	PowerUnknown = "unknown"
)

// powerReadTimeout bounds one status read at start or after a reset.
const powerReadTimeout = 5 * time.Second

// powerStates is the exporter's record of its power drivers' states.
type powerStates struct {
	mu    sync.Mutex
	state map[string]string // resolved driver path → state; only power drivers have a key
}

// initPower records every power driver of the tree, state unknown.
func (e *Exporter) initPower() {
	e.power.state = map[string]string{}
	e.tree.Walk(func(n *driver.Node) {
		if r := n.Resolve(); r.Driver != nil && r.Info.Interface == PowerInterface {
			e.power.state[r.Path] = PowerUnknown
		}
	})
}

// powerNode returns the path whose state a node's calls change (a ref resolved), and whether
// it is a power driver.
func (e *Exporter) powerNode(n *driver.Node) (string, bool) {
	r := n.Resolve()
	e.power.mu.Lock()
	defer e.power.mu.Unlock()
	_, ok := e.power.state[r.Path]
	return r.Path, ok
}

// setPower records state for the power driver at path and publishes it when it changed. The
// publication happens under the lock, as do history replies (powerHistory), so that a watcher
// reading both on one subscription sees them in the order the state changed.
func (e *Exporter) setPower(path, state string) {
	e.power.mu.Lock()
	defer e.power.mu.Unlock()
	old, ok := e.power.state[path]
	if !ok || old == state {
		return
	}
	e.power.state[path] = state
	if c := e.tapConn.Load(); c != nil {
		_ = c.Publish(wire.StateSubject(e.name, path), wire.Header{wire.HeaderState: {"power"}}, []byte(state))
	}
}

// PowerState returns the last known state of the power driver at path ("" if it is none).
func (e *Exporter) PowerState(path string) string {
	e.power.mu.Lock()
	defer e.power.mu.Unlock()
	return e.power.state[path]
}

// powerCalled records what a successful call of method on the power driver at path says of its
// state (res: the call's result).
func (e *Exporter) powerCalled(path, method string, res any) {
	switch method {
	case "on", "cycle":
		e.setPower(path, PowerOn)
	case "off":
		e.setPower(path, PowerOff)
	case "status":
		if s, ok := res.(string); ok && (s == PowerOn || s == PowerOff) {
			e.setPower(path, s)
		}
	}
}

// readPower reads every power driver's state with its status method, in the background (the
// exporter's Stop waits for it): at start and after the drivers were reset, which may switch
// them. A driver whose status fails is "unknown".
func (e *Exporter) readPower() {
	e.mu.Lock()
	stopped := e.stopped
	e.mu.Unlock()
	if stopped {
		return
	}
	e.power.mu.Lock()
	paths := make([]string, 0, len(e.power.state))
	for p := range e.power.state {
		paths = append(paths, p)
	}
	e.power.mu.Unlock()
	for _, p := range paths {
		n := e.tree.Find(p)
		if n == nil {
			continue
		}
		m := n.Method("status")
		if m == nil || m.Call == nil {
			continue
		}
		e.calls.Add(1)
		go func() {
			defer e.calls.Done()
			ctx, cancel := context.WithTimeout(context.Background(), powerReadTimeout)
			defer cancel()
			state := PowerUnknown
			if n.Unavailable() == "" {
				res, err := e.invoke(ctx, p, "status", func() (any, error) { return m.Call(ctx, nil) })
				if s, ok := res.(string); err == nil && ok && (s == PowerOn || s == PowerOff) {
					state = s
				}
			}
			e.setPower(p, state)
		}()
	}
}

// powerHistory answers a history request for a power driver: its state, raw ("on", "off" or
// "unknown"). It reports false when path is not a power driver.
func (e *Exporter) powerHistory(m interface {
	Respond(wire.Header, []byte) error
}, path string) bool {
	e.power.mu.Lock()
	defer e.power.mu.Unlock()
	s, ok := e.power.state[path]
	if !ok {
		return false
	}
	_ = m.Respond(wire.Header{wire.HeaderState: {"power"}}, []byte(s))
	return true
}
