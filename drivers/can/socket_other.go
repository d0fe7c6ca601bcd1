//go:build !linux

package can

import (
	"context"

	"jsn.dev/jsn/bus/wire"
)

// SocketCAN is a Linux interface; elsewhere only the virtual bus works.
type sock struct{}

type isotpParams struct {
	rxid, txid                       uint32
	flags                            uint32
	txpad, rxpad, extAddr, rxExtAddr uint8
	bs, stmin, wftmax                uint8
	fd                               bool
	txDL                             uint8
}

const (
	isotpListenMode = 0x001
	isotpExtendAddr = 0x002
	isotpTxPadding  = 0x004
	isotpRxPadding  = 0x008
	isotpRxExtAddr  = 0x200
	isotpWaitTxDone = 0x400
)

var errNoSocketCAN = wire.Errorf(wire.Unavailable, "SocketCAN needs Linux")

func openRaw(string, bool, bool, []Filter) (*sock, error) { return nil, errNoSocketCAN }
func openIsoTP(string, isotpParams) (*sock, error)        { return nil, errNoSocketCAN }
func (s *sock) read(context.Context, []byte) (int, error) { return 0, errNoSocketCAN }
func (s *sock) write(context.Context, []byte) error       { return errNoSocketCAN }
func (s *sock) close() error                              { return nil }
func (s *sock) Recv(context.Context) (Frame, error)       { return Frame{}, errNoSocketCAN }
func (s *sock) Close() error                              { return nil }
