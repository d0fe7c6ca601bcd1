package api

// The dashboard (browser path): see docs/protocol.md, "The browser credential".

// VerbDashboard asks for a one-time dashboard login token (client API; reply DashboardToken).
const VerbDashboard = "dashboard"

// Subjects of the dashboard's lab state.
const (
	// DashSubject carries the lab's state (JSON DashState), published by the scheduling
	// controller replica on every change and when asked on DashRefreshSubject.
	DashSubject = "jsn.ctl.dash.lab"
	// DashRefreshSubject: publish anything and the state is published again (at most every
	// 100 ms): a page that just subscribed asks for it.
	DashRefreshSubject = "jsn.ctl.dash.refresh"
)

// DashboardRequest is the body of VerbDashboard (every field optional; an empty map asks for a
// read-only login).
type DashboardRequest struct {
	// Lease, when set, asks for a login that may also type into the consoles of that lease's
	// exporter: the requester must hold the lease or have it shared with it (clients only).
	Lease string `msgpack:"lease,omitempty" json:"lease,omitempty"`
}

// DashboardToken is the reply to VerbDashboard: a one-time token for the controller's HTTP
// listener (POST /api/exchange), and the URL that carries it.
type DashboardToken struct {
	Token   string `msgpack:"token" json:"token"`
	URL     string `msgpack:"url,omitempty" json:"url,omitempty"` // "" when the controller serves no dashboard
	Expires string `msgpack:"expires" json:"expires"`             // RFC 3339
}

// BrowserSession is what POST /api/exchange answers (JSON): how the page connects.
type BrowserSession struct {
	Mode    string        `json:"mode"`            // "controller" or "local"
	Name    string        `json:"name"`            // whose rights the page has
	WS      string        `json:"ws"`              // NATS WebSocket URL (ws:// or wss://)
	JWT     string        `json:"jwt,omitempty"`   // the browser credential: a NATS user JWT …
	Seed    string        `json:"seed,omitempty"`  // … and its nkey seed
	Token   string        `json:"token,omitempty"` // local mode: the WebSocket listener's token
	Inbox   string        `json:"inbox,omitempty"` // inbox prefix the credential may receive on
	Expires string        `json:"expires,omitempty"`
	Watch   []string      `json:"watch,omitempty"` // exporters whose taps it may watch ("*": all)
	Write   *BrowserWrite `json:"write,omitempty"` // the consoles it may type into; absent = read-only
	State   DashState     `json:"state"`
}

// BrowserWrite is what a page may type into: the consoles of one lease's exporter, through
// their byte streams (docs/protocol.md "Typing into a console from the browser").
type BrowserWrite struct {
	Exporter string   `json:"exporter"`
	Lease    string   `json:"lease"`    // the id to send in Jsn-Lease
	Inbox    string   `json:"inbox"`    // reply subjects of its stream openings: Inbox + "." + token
	Stream   string   `json:"stream"`   // the token of its stream subjects (jsn.x.E.stream.<Stream>.<id>, …out.<Stream>.<id>)
	Consoles []string `json:"consoles"` // driver paths whose connect stream it may open
	Method   string   `json:"method"`   // the byte-stream method that opens a console ("connect")
	Expires  string   `json:"expires,omitempty"`
}

// DashState is the lab as the dashboard shows it.
type DashState struct {
	Epoch     string         `json:"epoch"` // the publishing replica's run; Seq restarts with it
	Seq       uint64         `json:"seq"`
	Exporters []DashExporter `json:"exporters"`
	Leases    []DashLease    `json:"leases"`
}

// DashExporter is one exporter's line.
type DashExporter struct {
	Name     string            `json:"name"`
	Online   bool              `json:"online"`
	Labels   map[string]string `json:"labels,omitempty"`
	Holder   string            `json:"holder,omitempty"`
	End      string            `json:"end,omitempty"` // the lease's end, RFC 3339
	Queue    int               `json:"queue"`         // requests queued on it by name
	Describe any               `json:"describe,omitempty"`
}

// DashLease is one active or queued lease (ids are never shown).
type DashLease struct {
	Exporter string `json:"exporter,omitempty"`
	Selector string `json:"selector,omitempty"`
	Client   string `json:"client"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	End      string `json:"end,omitempty"`
	Position int    `json:"position,omitempty"` // 1 = next among those queued on the same exporter or selector
}
