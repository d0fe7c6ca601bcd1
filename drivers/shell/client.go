package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"

	"jsn.dev/jsn/client/remote"
)

// Output is one decoded item of a shell method's stream (driver.TypeOutput).
type Output struct {
	Stream   string // "stdout" or "stderr"; "" for the exit item
	Data     []byte
	Exited   bool // the last item: ExitCode is set
	ExitCode int
}

// DecodeOutput decodes an output item as received from the bus: {"stream", "data"} with data as
// bytes or string, or {"exit_code"} with any integer kind.
func DecodeOutput(item any) (Output, error) {
	m, ok := item.(map[string]any)
	if !ok {
		return Output{}, fmt.Errorf("decode output: want a map, got %T", item)
	}
	if v, ok := m["exit_code"]; ok {
		rv := reflect.ValueOf(v)
		var code int64
		switch rv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			code = rv.Int()
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if rv.Uint() > 1<<31 {
				return Output{}, fmt.Errorf("decode output: exit_code %d out of range", rv.Uint())
			}
			code = int64(rv.Uint())
		default:
			return Output{}, fmt.Errorf("decode output: exit_code: want an integer, got %T", v)
		}
		if code < -1<<31 || code > 1<<31 {
			return Output{}, fmt.Errorf("decode output: exit_code %d out of range", code)
		}
		return Output{Exited: true, ExitCode: int(code)}, nil
	}
	stream, _ := m["stream"].(string)
	if stream != "stdout" && stream != "stderr" {
		return Output{}, fmt.Errorf("decode output: stream: want \"stdout\" or \"stderr\", got %v", m["stream"])
	}
	switch d := m["data"].(type) {
	case []byte:
		return Output{Stream: stream, Data: d}, nil
	case string:
		return Output{Stream: stream, Data: []byte(d)}, nil
	default:
		return Output{}, fmt.Errorf("decode output: data: want bytes, got %T", d)
	}
}

// Client is the typed client of a jsn.shell.v1 driver.
type Client struct {
	d remote.Driver
}

// NewClient returns a shell client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

// Run calls the configured method with args as $1…, writes the command's output to stdout and
// stderr as it arrives (nil discards), and returns its exit code. A non-zero exit code is not an
// error; a timeout is (matching wire.ErrDeadlineExceeded).
func (c *Client) Run(ctx context.Context, method string, stdout, stderr io.Writer, args ...string) (exitCode int, err error) {
	var callArgs []any
	if len(args) > 0 {
		list := make([]any, len(args))
		for i, a := range args {
			list[i] = a
		}
		callArgs = append(callArgs, list)
	}
	items, err := c.d.Stream(ctx, method, callArgs...)
	if err != nil {
		return -1, err
	}
	defer items.Close()
	return consume(func(out *any) error { return items.Next(out) }, stdout, stderr)
}

// consume reads output items with next until the exit item.
func consume(next func(*any) error, stdout, stderr io.Writer) (int, error) {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	for {
		var item any
		err := next(&item)
		if errors.Is(err, io.EOF) {
			return -1, errors.New("run: stream ended without an exit code")
		}
		if err != nil {
			return -1, err
		}
		o, err := DecodeOutput(item)
		if err != nil {
			return -1, err
		}
		if o.Exited {
			return o.ExitCode, nil
		}
		w := stdout
		if o.Stream == "stderr" {
			w = stderr
		}
		if _, err := w.Write(o.Data); err != nil {
			return -1, fmt.Errorf("run: write %s: %w", o.Stream, err)
		}
	}
}
