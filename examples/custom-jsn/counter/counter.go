// Package counter is a lab's own jsn driver, built into its own jsn binary (see ../main.go).
package counter

import (
	"context"
	"sync"

	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type: "mylab.Counter",
		Doc:  "a counter that a lease starts from zero",
		New:  func(env driver.Env) driver.Driver { return &Counter{Step: 1} },
	})
}

// Counter counts. Its exported, yaml-tagged fields are its config.
type Counter struct {
	Step int64 `yaml:"step"` // what inc adds

	mu sync.Mutex
	n  int64
}

// Validate checks the config; FieldErrorf points at the key in the config file.
func (c *Counter) Validate() error {
	if c.Step <= 0 {
		return driver.FieldErrorf("step", "%d: want a positive step", c.Step)
	}
	return nil
}

func (c *Counter) Open(ctx context.Context) error { return nil }

// Reset runs at the start and end of every lease: the next holder starts from zero.
func (c *Counter) Reset(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = 0
	return nil
}

func (c *Counter) Close() error { return nil }

// Methods is what clients call; `jsn describe` shows it.
func (c *Counter) Methods() []driver.Method {
	return []driver.Method{
		{Name: "inc", Doc: "add step, return the count", Kind: driver.KindCall, Returns: driver.TypeInt,
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return c.add(c.Step), nil }},
		{Name: "add", Doc: "add n, return the count", Kind: driver.KindCall, Returns: driver.TypeInt,
			Args: []driver.Arg{{Name: "n", Type: driver.TypeInt, Doc: "how much to add"}},
			Call: func(ctx context.Context, a driver.Args) (any, error) { return c.add(a.Int(0)), nil }},
	}
}

func (c *Counter) add(n int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += n
	return c.n
}
