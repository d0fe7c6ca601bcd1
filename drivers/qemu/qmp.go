package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// maxQMPMessage bounds one QMP message read from QEMU.
const maxQMPMessage = 1 << 20

// qmpTimeout bounds a QMP exchange when the caller's context has no deadline.
const qmpTimeout = 10 * time.Second

// qmpError is an error reply of QEMU's machine protocol.
type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpError) Error() string { return e.Class + ": " + e.Desc }

// qmpMessage is one message from QEMU: a greeting, a reply or an asynchronous event.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *qmpError       `json:"error"`
	Event  string          `json:"event"`
}

// qmpReader decodes QMP messages: one JSON object per line.
type qmpReader struct{ r *bufio.Reader }

func newQMPReader(r io.Reader) *qmpReader { return &qmpReader{r: bufio.NewReaderSize(r, 64<<10)} }

// next returns the next message.
func (q *qmpReader) next() (*qmpMessage, error) {
	var line []byte
	for {
		chunk, isPrefix, err := q.r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > maxQMPMessage {
			return nil, fmt.Errorf("qmp: message longer than %d bytes", maxQMPMessage)
		}
		if !isPrefix {
			break
		}
	}
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, fmt.Errorf("qmp: bad message: %w", err)
	}
	return &m, nil
}

// reply returns the next reply, skipping events: its "return" value, or its error.
func (q *qmpReader) reply() (json.RawMessage, error) {
	for {
		m, err := q.next()
		if err != nil {
			return nil, err
		}
		switch {
		case m.Error != nil:
			return nil, m.Error
		case m.Return != nil:
			return m.Return, nil
		case m.Event != "" || m.QMP != nil:
			continue
		default:
			return nil, errors.New("qmp: message is neither a reply nor an event")
		}
	}
}

// qmpConn is one QMP session with a running QEMU.
type qmpConn struct {
	c    net.Conn
	r    *qmpReader
	stop func() bool // unregisters the context watch
}

// dialQMP connects to the QMP socket at path and leaves capabilities negotiation mode. The
// connection's deadline is ctx's, or qmpTimeout from now.
func dialQMP(ctx context.Context, path string) (*qmpConn, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(qmpTimeout)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	q := &qmpConn{c: c, r: newQMPReader(c)}
	greet, err := q.r.next()
	if err == nil && greet.QMP == nil {
		err = errors.New("qmp: no greeting")
	}
	if err == nil {
		_, err = q.execute("qmp_capabilities", nil)
	}
	if !stop() || err != nil {
		c.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("qmp: handshake: %w", err)
	}
	q.stop = context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	return q, nil
}

// execute runs one command and returns its "return" value.
func (q *qmpConn) execute(cmd string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := q.c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	ret, err := q.r.reply()
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	return ret, nil
}

func (q *qmpConn) Close() error {
	if q.stop != nil {
		q.stop()
	}
	return q.c.Close()
}
