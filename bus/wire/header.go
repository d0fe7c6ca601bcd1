package wire

import "strings"

// Header names used on the wire.
const (
	HeaderLease        = "Jsn-Lease"               // the lease id the caller holds
	HeaderErrorCode    = "Nats-Service-Error-Code" // error code from the catalogue
	HeaderError        = "Nats-Service-Error"      // human error message
	HeaderStream       = "Jsn-Stream"              // id of the stream a call opens
	HeaderStreamWindow = "Jsn-Stream-Window"       // initial credit in bytes granted to the peer
	// HeaderTapOffset on a tap message is the offset of its first byte in the driver's output
	// (bytes produced since the exporter started); on a history reply, the offset just past its
	// last byte.
	HeaderTapOffset = "Jsn-Tap-Offset"
	// HeaderState marks a state message (on StateSubject) and a history reply that carries a
	// state instead of output: its value names the kind of state ("power").
	HeaderState = "Jsn-State"
)

// Header is a message's header map.
type Header map[string][]string

// Get returns the first value of key.
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces key's values with v.
func (h Header) Set(key, v string) { h[key] = []string{v} }

// ReplyError returns the *Error a reply's headers carry, or nil. A code outside the catalogue
// reads as Internal.
func ReplyError(h Header) error {
	code := h.Get(HeaderErrorCode)
	if code == "" {
		return nil
	}
	c := Code(code)
	if !ValidCode(c) {
		c = Internal
	}
	return &Error{Code: c, Message: h.Get(HeaderError)}
}

// ErrorHeader encodes err as reply headers: its code (see CodeOf) and its message, cut to 4 KiB
// and on one line.
func ErrorHeader(err error) Header {
	msg := err.Error()
	if len(msg) > 4096 {
		msg = msg[:4096] + "…"
	}
	// Header values cannot hold line breaks.
	msg = strings.NewReplacer("\r\n", " | ", "\n", " | ", "\r", " ").Replace(msg)
	return Header{HeaderErrorCode: {string(CodeOf(err))}, HeaderError: {msg}}
}
