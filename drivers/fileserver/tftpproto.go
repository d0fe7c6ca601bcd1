package fileserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TFTP opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// TFTP error codes.
const (
	errUndefined     = 0
	errNotFound      = 1
	errAccess        = 2
	errIllegalOp     = 4
	errUnknownTID    = 5
	errOptionRefused = 8
)

// Limits of the options this server accepts.
const (
	tftpMinBlksize = 8
	tftpMaxBlksize = 65464
	tftpMaxWindow  = 64
)

// tftpRequest is a read or write request.
type tftpRequest struct {
	op       uint16
	filename string
	mode     string            // lower case: octet or netascii
	options  map[string]string // lower-case names, in any order
	order    []string          // option names as they came, for the OACK
}

// parseRequest decodes an RRQ or WRQ packet. Errors name what is wrong.
func parseRequest(p []byte) (tftpRequest, error) {
	if len(p) < 4 {
		return tftpRequest{}, errors.New("packet shorter than 4 bytes")
	}
	r := tftpRequest{op: binary.BigEndian.Uint16(p), options: map[string]string{}}
	if r.op != opRRQ && r.op != opWRQ {
		return r, fmt.Errorf("opcode %d is not a request", r.op)
	}
	fields := bytes.Split(p[2:], []byte{0})
	if len(fields) < 3 || len(fields[len(fields)-1]) != 0 {
		return r, errors.New("request not terminated by a zero byte")
	}
	fields = fields[:len(fields)-1]
	r.filename = string(fields[0])
	r.mode = strings.ToLower(string(fields[1]))
	if r.filename == "" {
		return r, errors.New("empty file name")
	}
	switch r.mode {
	case "octet", "netascii":
	default:
		return r, fmt.Errorf("transfer mode %q: want octet or netascii", r.mode)
	}
	opts := fields[2:]
	if len(opts)%2 != 0 {
		return r, errors.New("option without a value")
	}
	for i := 0; i < len(opts); i += 2 {
		name := strings.ToLower(string(opts[i]))
		if name == "" {
			return r, errors.New("empty option name")
		}
		if _, dup := r.options[name]; dup {
			return r, fmt.Errorf("option %q given twice", name)
		}
		r.options[name] = string(opts[i+1])
		r.order = append(r.order, name)
	}
	return r, nil
}

// tftpParams are the negotiated transfer parameters.
type tftpParams struct {
	blksize int
	window  int
	timeout int // seconds; 0 = the server's
	tsize   bool
}

// negotiate reads the options of an RRQ (RFC 2348 blksize, 2349 timeout and tsize, and RFC 7440
// windowsize up to maxWindow); unknown options and out-of-range values are left out of the OACK,
// as RFC 2347 asks.
func negotiate(r tftpRequest, maxBlksize, maxWindow int) (tftpParams, []string) {
	p := tftpParams{blksize: 512, window: 1}
	var acked []string
	for _, name := range r.order {
		v := r.options[name]
		n, err := strconv.Atoi(v)
		switch name {
		case "blksize":
			if err != nil || n < tftpMinBlksize {
				continue
			}
			p.blksize = min(n, maxBlksize)
			acked = append(acked, name)
		case "windowsize":
			if err != nil || n < 1 || maxWindow <= 1 {
				continue
			}
			p.window = min(n, maxWindow)
			acked = append(acked, name)
		case "timeout":
			if err != nil || n < 1 || n > 255 {
				continue
			}
			p.timeout = n
			acked = append(acked, name)
		case "tsize":
			if err != nil || n != 0 {
				continue
			}
			p.tsize = true
			acked = append(acked, name)
		}
	}
	return p, acked
}

func oack(p tftpParams, acked []string, size int64) []byte {
	b := []byte{0, opOACK}
	for _, name := range acked {
		var v string
		switch name {
		case "blksize":
			v = strconv.Itoa(p.blksize)
		case "windowsize":
			v = strconv.Itoa(p.window)
		case "timeout":
			v = strconv.Itoa(p.timeout)
		case "tsize":
			v = strconv.FormatInt(size, 10)
		}
		b = append(b, name...)
		b = append(b, 0)
		b = append(b, v...)
		b = append(b, 0)
	}
	return b
}

func errorPacket(code uint16, msg string) []byte {
	b := []byte{0, opERROR, byte(code >> 8), byte(code)}
	if len(msg) > 500 {
		msg = msg[:500]
	}
	b = append(b, msg...)
	return append(b, 0)
}

// parseReply decodes what a reader sends during a transfer: an ACK (block number) or an ERROR.
func parseReply(p []byte) (op uint16, block uint16, msg string, err error) {
	if len(p) < 4 {
		return 0, 0, "", errors.New("packet shorter than 4 bytes")
	}
	op = binary.BigEndian.Uint16(p)
	switch op {
	case opACK:
		return op, binary.BigEndian.Uint16(p[2:]), "", nil
	case opERROR:
		m := p[4:]
		if i := bytes.IndexByte(m, 0); i >= 0 {
			m = m[:i]
		}
		return op, binary.BigEndian.Uint16(p[2:]), string(m), nil
	}
	return op, 0, "", fmt.Errorf("unexpected opcode %d", op)
}
