package video

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// screen is a Device whose snapshot is fixed.
type screen struct {
	png []byte
	err error
}

func (s *screen) Snapshot(ctx context.Context) ([]byte, error) { return s.png, s.err }

func TestMethods(t *testing.T) {
	off := wire.Errorf(wire.FailedPrecondition, "the board is off")
	tests := []struct {
		name string
		dev  *screen
		want []byte
		err  error
	}{
		{"snapshot", &screen{png: []byte("\x89PNG")}, []byte("\x89PNG"), nil},
		{"device error passes through", &screen{err: off}, nil, wire.ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := Methods(tt.dev, Options{})
			if len(ms) != 2 || ms[0].Name != "snapshot" || ms[0].Kind != driver.KindCall || ms[0].Returns != driver.TypeBytes ||
				ms[1].Name != "stream" || ms[1].Kind != driver.KindByteStream {
				t.Fatalf("got method table %+v, want snapshot() -> bytes, stream() <=> bytes", ms)
			}
			got, err := ms[0].Call(context.Background(), nil)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if b, _ := got.([]byte); !bytes.Equal(b, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
