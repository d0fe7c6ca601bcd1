package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"jsn.dev/jsn/client/remote"
)

// Client is the typed client of a jsn.serial.v1 driver.
type Client struct {
	d remote.Driver
}

// NewClient returns a serial client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

// Connect opens the console: what the device prints from now on arrives on the stream, what is
// written to it goes to the device. Several consoles may be open at once; each sees all output.
// CloseWrite stops input but keeps the output coming.
func (c *Client) Connect(ctx context.Context) (remote.ByteStream, error) {
	return c.d.Open(ctx, "connect")
}

// SetBaudrate changes the baud rate until the next lease boundary.
func (c *Client) SetBaudrate(ctx context.Context, rate int) error {
	_, err := c.d.Call(ctx, "set_baudrate", int64(rate))
	return err
}

// SetDTR sets the DTR line.
func (c *Client) SetDTR(ctx context.Context, on bool) error {
	_, err := c.d.Call(ctx, "set_dtr", on)
	return err
}

// SetRTS sets the RTS line.
func (c *Client) SetRTS(ctx context.Context, on bool) error {
	_, err := c.d.Call(ctx, "set_rts", on)
	return err
}

// SendBreak holds the line in break for d; 0 uses the driver's default (250ms).
func (c *Client) SendBreak(ctx context.Context, d time.Duration) error {
	var err error
	if d == 0 {
		_, err = c.d.Call(ctx, "send_break")
	} else {
		_, err = c.d.Call(ctx, "send_break", int64(d))
	}
	return err
}

// Log returns the recorded output of the last since (everything recorded when since is 0), at
// most the newest MaxLog bytes.
func (c *Client) Log(ctx context.Context, since time.Duration) ([]byte, error) {
	var b []byte
	var err error
	if since == 0 {
		err = c.d.CallInto(ctx, "log", &b)
	} else {
		err = c.d.CallInto(ctx, "log", &b, int64(since))
	}
	return b, err
}

// Info returns the port's state.
func (c *Client) Info(ctx context.Context) (Status, error) {
	var s Status
	err := c.d.CallInto(ctx, "info", &s)
	return s, err
}

// MaxExpect is how much output Expect keeps to match against: the newest bytes.
const MaxExpect = 1 << 20

// Expect writes send (if not empty) to stream, then reads until re matches the output read so
// far. It returns the matching bytes and tail, the output read up to the end of the match (the
// newest MaxExpect bytes of it); bytes read past the match are discarded. When ctx ends first it
// closes the stream (if it is an io.Closer) and returns ctx's error with tail holding what was
// read; a stream that ends first gives io.ErrUnexpectedEOF, a reset its error.
func (c *Client) Expect(ctx context.Context, stream io.ReadWriter, re *regexp.Regexp, send []byte) (match, tail []byte, err error) {
	return expect(ctx, stream, re, send)
}

func expect(ctx context.Context, stream io.ReadWriter, re *regexp.Regexp, send []byte) (match, tail []byte, err error) {
	if cl, ok := stream.(io.Closer); ok {
		stop := context.AfterFunc(ctx, func() { cl.Close() })
		defer stop()
	}
	if len(send) > 0 {
		if _, err := stream.Write(send); err != nil {
			return nil, nil, ctxErr(ctx, fmt.Errorf("expect: send: %w", err))
		}
	}
	var out []byte
	buf := make([]byte, 32<<10)
	for {
		n, rerr := stream.Read(buf)
		if n > 0 {
			out = append(out, buf[:n]...)
			if len(out) > MaxExpect {
				out = out[len(out)-MaxExpect:]
			}
			if loc := re.FindIndex(out); loc != nil {
				return append([]byte(nil), out[loc[0]:loc[1]]...), out[:loc[1]], nil
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			return nil, out, ctxErr(ctx, fmt.Errorf("expect %q: %w", re, rerr))
		}
	}
}

// ctxErr prefers ctx's error when ctx has ended: the stream failed because Expect closed it.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("expect: %w", ctx.Err())
	}
	return err
}
