package driver

import "context"

type holderKey struct{}

// WithHolder returns ctx carrying holder, the identity of the client whose lease a call is made
// for. The exporter sets it on the context of every call of a lease; drivers that keep data
// across leases (an image cache) use it to keep one holder's data from another.
func WithHolder(ctx context.Context, holder string) context.Context {
	return context.WithValue(ctx, holderKey{}, holder)
}

// Holder returns the identity of the lease holder a call is made for: "" in a local session
// (one user), for the lab's own hooks, and outside a call.
func Holder(ctx context.Context) string {
	h, _ := ctx.Value(holderKey{}).(string)
	return h
}

// Forgetter is a driver that records what the device said or was told (a console's output
// buffer) and can forget it. The exporter calls Forget at every lease boundary, after Reset,
// so that nothing of one lease's session is left for the next holder.
type Forgetter interface {
	Forget(ctx context.Context) error
}

// TapHistorian is a driver whose tap output has a history (a console's ring buffer): the
// exporter serves it to watchers that attach, before the live bytes (docs/protocol.md "Taps
// and their history").
type TapHistorian interface {
	// TapHistory returns the newest output still kept, at most limit bytes, and end: the number
	// of bytes the driver has passed to Env.Tap since it was built (the offset just past the
	// history's last byte). The driver records each chunk before tapping it, and Forget drops
	// the history (end keeps counting).
	TapHistory(limit int) (data []byte, end int64)
}
