package controller

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"jsn.dev/jsn/bus"
)

// Connections per credential. NATS limits the connections of an account, not of one user, so a
// single credential could take every connection of the lab. The controller follows the LAB
// account's connect and disconnect events (published in the system account) and closes a
// credential's connections beyond Options.MaxConnsPerCredential, the newest first. Counting
// starts with the controller: connections made while no controller ran are not counted.

// connID names one client connection of a cluster.
type connID struct {
	server string
	cid    uint64
}

// connEvent is the part of nats-server's client connect/disconnect advisory the controller uses.
type connEvent struct {
	Server struct {
		ID string `json:"id"`
	} `json:"server"`
	Client struct {
		ID      uint64   `json:"id"`
		User    string   `json:"user"` // the user's public key
		NameTag string   `json:"name_tag"`
		Tags    []string `json:"tags"`
	} `json:"client"`
}

// trackConnections subscribes to the LAB account's connection events.
func (c *Controller) trackConnections() error {
	sub, err := c.sys.Subscribe("$SYS.ACCOUNT."+c.auth.LabPub+".*", "", c.onConnEvent)
	if err != nil {
		return fmt.Errorf("controller: connection events: %w", err)
	}
	c.connSub = sub
	return nil
}

func (c *Controller) onConnEvent(m *bus.Msg) {
	var connect bool
	switch {
	case len(m.Subject) > 8 && m.Subject[len(m.Subject)-8:] == ".CONNECT":
		connect = true
	case len(m.Subject) > 11 && m.Subject[len(m.Subject)-11:] == ".DISCONNECT":
	default:
		return
	}
	var ev connEvent
	if err := json.Unmarshal(m.Data, &ev); err != nil || ev.Client.User == "" {
		return
	}
	if slices.Contains(ev.Client.Tags, "jsn-controller") || ev.Client.NameTag == ControllerName {
		return // the controller's own users, and the operator's full user
	}
	id := connID{server: ev.Server.ID, cid: ev.Client.ID}
	c.connMu.Lock()
	set := c.conns[ev.Client.User]
	if !connect {
		delete(set, id)
		if len(set) == 0 {
			delete(c.conns, ev.Client.User)
		}
		c.connMu.Unlock()
		return
	}
	if set == nil {
		set = map[connID]struct{}{}
		c.conns[ev.Client.User] = set
	}
	set[id] = struct{}{}
	over := len(set) > c.o.MaxConnsPerCredential
	if over {
		delete(set, id)
	}
	c.connMu.Unlock()
	if !over {
		return
	}
	// Close the newest: nats-server's kick request, answered by the server the client is on.
	b, _ := json.Marshal(map[string]uint64{"cid": ev.Client.ID})
	// The server acts only on a request with a reply subject; nobody needs the answer.
	if err := c.sys.PublishRequest("$SYS.REQ.SERVER."+ev.Server.ID+".KICK", c.sys.InboxPrefix()+".kick", b); err != nil {
		c.log.Warn("close a connection beyond the per-credential limit", "user", ev.Client.User, "err", err)
		return
	}
	now := time.Now()
	c.connMu.Lock()
	c.kicked++
	log := now.Sub(c.kickLogAt) >= refusalLogEvery
	n := c.kicked
	if log {
		c.kicked, c.kickLogAt = 0, now
	}
	c.connMu.Unlock()
	if log {
		c.log.Warn("connections closed: a credential opened more than --max-connections-per-credential",
			"user", ev.Client.User, "name", ev.Client.NameTag, "limit", c.o.MaxConnsPerCredential, "closed", n)
	}
}
