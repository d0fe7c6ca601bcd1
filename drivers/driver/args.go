package driver

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"jsn.dev/jsn/bus/wire"
)

// qualified names the method in errors: "power.on" when the method came from a Tree.
func (m *Method) qualified() string {
	if m.path == "" {
		return m.Name
	}
	return m.path + "." + m.Name
}

// Convert checks raw, the msgpack-decoded positional arguments of a call, against the method's
// Arg list and converts each to the Go type of its Type (see the Args accessors). An absent
// trailing optional argument, or a nil one, stays nil. Errors are INVALID_ARGUMENT bus errors
// naming the method, the argument and the types.
func (m *Method) Convert(raw []any) (Args, error) {
	minN := 0
	for i, a := range m.Args {
		if !a.Optional {
			minN = i + 1
		}
	}
	maxN := len(m.Args)
	if len(raw) < minN || len(raw) > maxN {
		return nil, wire.Errorf(wire.InvalidArgument, "%s takes %s, got %d", m.qualified(), m.arity(minN, maxN), len(raw))
	}
	out := make(Args, len(raw))
	for i, v := range raw {
		a := m.Args[i]
		if v == nil {
			if a.Optional {
				continue
			}
			return nil, wire.Errorf(wire.InvalidArgument, "%s: argument %d (%s): want %s, got nil", m.qualified(), i+1, a.Name, a.Type)
		}
		c, ok := convert(a.Type, v)
		if !ok {
			return nil, wire.Errorf(wire.InvalidArgument, "%s: argument %d (%s): want %s, got %T", m.qualified(), i+1, a.Name, a.Type, v)
		}
		out[i] = c
	}
	return out, nil
}

// arity says how many arguments the method takes: "no arguments", "1 argument (cmd)",
// "1 to 2 arguments (cmd, timeout)".
func (m *Method) arity(minN, maxN int) string {
	names := make([]string, len(m.Args))
	for i, a := range m.Args {
		names[i] = a.Name
	}
	list := " (" + strings.Join(names, ", ") + ")"
	switch {
	case maxN == 0:
		return "no arguments"
	case minN == maxN && maxN == 1:
		return "1 argument" + list
	case minN == maxN:
		return fmt.Sprintf("%d arguments%s", maxN, list)
	}
	return fmt.Sprintf("%d to %d arguments%s", minN, maxN, list)
}

// convert converts one msgpack value to the Go type of t.
func convert(t Type, v any) (any, bool) {
	switch t {
	case TypeString:
		s, ok := v.(string)
		return s, ok
	case TypeInt:
		return toInt64(v)
	case TypeFloat:
		switch x := v.(type) {
		case float64:
			return x, true
		case float32:
			return float64(x), true
		}
		if i, ok := toInt64(v); ok {
			return float64(i.(int64)), true
		}
		if u, ok := v.(uint64); ok {
			return float64(u), true
		}
		return nil, false
	case TypeBool:
		b, ok := v.(bool)
		return b, ok
	case TypeBytes:
		switch x := v.(type) {
		case []byte:
			return x, true
		case string:
			return []byte(x), true
		}
		return nil, false
	case TypeDuration:
		switch x := v.(type) {
		case time.Duration:
			return x, true
		case string:
			d, err := time.ParseDuration(x)
			return d, err == nil
		}
		if _, isFloat := v.(float64); isFloat {
			return nil, false // nanoseconds are integers
		}
		if _, isFloat := v.(float32); isFloat {
			return nil, false
		}
		i, ok := toInt64(v)
		if !ok {
			return nil, false
		}
		return time.Duration(i.(int64)), true
	}
	return v, true // TypeAny and result-only types pass as they are
}

// toInt64 accepts every integer kind in range and floats without a fraction.
func toInt64(v any) (any, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return int64(x), uint64(x) <= math.MaxInt64
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), x <= math.MaxInt64
	case float32:
		return floatInt(float64(x))
	case float64:
		return floatInt(x)
	}
	return nil, false
}

func floatInt(f float64) (any, bool) {
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return nil, false
	}
	return int64(f), true
}

// ParseArg converts a command-line string to the Go type of t (`jsn call net.connect 8080 true
// 2s`). For TypeAny (and result-only types) it tries int, float and bool, else keeps the string.
func ParseArg(t Type, s string) (any, error) {
	switch t {
	case TypeString:
		return s, nil
	case TypeInt:
		i, err := strconv.ParseInt(s, 10, 64) // "010" is ten, not eight
		if err != nil {
			i, err = strconv.ParseInt(s, 0, 64) // 0x1f, 0b101, 1_000
		}
		if err != nil {
			return nil, fmt.Errorf("%q is not an int", s)
		}
		return i, nil
	case TypeFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a float", s)
		}
		return f, nil
	case TypeBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a bool", s)
		}
		return b, nil
	case TypeBytes:
		return []byte(s), nil
	case TypeDuration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (like 1.5s or 2m)", s)
		}
		return d, nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	if strings.ContainsAny(s, "0123456789") { // not "nan" or "inf"
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f, nil
		}
	}
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return s, nil
}
