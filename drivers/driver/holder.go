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
