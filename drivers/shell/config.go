package shell

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"sync"
	"time"

	"jsn.dev/jsn/drivers/driver"
)

// validName is what a configured method may be called.
var validName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z_][a-z0-9_]*$`) })

// command is one configured method.
type command struct {
	name    string
	script  string
	doc     string
	timeout time.Duration
}

// parseMethods turns the `methods:` mapping into commands sorted by name. Each value is a
// command string, or a mapping {command: string, description: string, timeout: seconds or
// duration string} (Jumpstarter's two formats). Errors are FieldErrors on "methods" or
// "methods.<name>".
func parseMethods(raw map[string]any, defTimeout time.Duration) ([]command, error) {
	if len(raw) == 0 {
		return nil, driver.FieldErrorf("methods", "must define at least one method")
	}
	var cmds []command
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		field := "methods." + name
		if !validName().MatchString(name) {
			errs = append(errs, driver.FieldErrorf(field, "invalid method name %q: must match %s", name, validName()))
			continue
		}
		c, err := parseMethod(name, raw[name], defTimeout)
		if err != nil {
			errs = append(errs, driver.FieldErrorf(field, "%v", err))
			continue
		}
		cmds = append(cmds, c)
	}
	return cmds, errors.Join(errs...)
}

func parseMethod(name string, v any, defTimeout time.Duration) (command, error) {
	c := command{name: name, timeout: defTimeout}
	switch v := v.(type) {
	case string:
		c.script = v
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			switch val := v[k]; k {
			case "command":
				s, ok := val.(string)
				if !ok {
					return c, fmt.Errorf("command: want a string, got %T", val)
				}
				c.script = s
			case "description":
				s, ok := val.(string)
				if !ok {
					return c, fmt.Errorf("description: want a string, got %T", val)
				}
				c.doc = s
			case "timeout":
				d, err := parseTimeout(val)
				if err != nil {
					return c, fmt.Errorf("timeout: %w", err)
				}
				c.timeout = d
			default:
				return c, fmt.Errorf("unknown key %q (want command, description, timeout)", k)
			}
		}
	default:
		return c, fmt.Errorf("want a command string or a mapping with command, got %T", v)
	}
	if c.script == "" {
		return c, errors.New("command must not be empty")
	}
	if c.doc == "" {
		c.doc = "runs: " + firstLine(c.script)
	}
	return c, nil
}

// parseTimeout accepts a number of seconds (Jumpstarter's int) or a Go duration string.
func parseTimeout(v any) (time.Duration, error) {
	var d time.Duration
	switch v := v.(type) {
	case int:
		d = secs(float64(v))
	case int64:
		d = secs(float64(v))
	case uint64:
		d = secs(float64(v))
	case float64:
		d = secs(v)
	case string:
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, err
		}
	case time.Duration:
		d = v
	default:
		return 0, fmt.Errorf("want seconds or a duration string, got %T", v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive, got %v", v)
	}
	return d, nil
}

func secs(f float64) time.Duration {
	if math.IsNaN(f) || f <= 0 || f*float64(time.Second) > math.MaxInt64 {
		return -1 // rejected by the caller as not positive
	}
	return time.Duration(f * float64(time.Second))
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i] + " …"
		}
	}
	return s
}
