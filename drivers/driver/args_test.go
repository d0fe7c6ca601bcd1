package driver

import (
	"bytes"
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
)

var runMethod = Method{Name: "run", Kind: KindCall, path: "shell",
	Args: []Arg{{Name: "cmd", Type: TypeString}, {Name: "timeout", Type: TypeDuration, Optional: true}},
	Call: func(context.Context, Args) (any, error) { return nil, nil }}

var convertTests = []struct {
	name string
	typ  Type
	in   any
	want any // nil: conversion error
}{
	{"string", TypeString, "x", "x"},
	{"string from int", TypeString, 1, nil},
	{"int from int8", TypeInt, int8(-3), int64(-3)},
	{"int from uint16", TypeInt, uint16(65535), int64(65535)},
	{"int from int64", TypeInt, int64(math.MinInt64), int64(math.MinInt64)},
	{"int from max uint64 in range", TypeInt, uint64(math.MaxInt64), int64(math.MaxInt64)},
	{"int from uint64 out of range", TypeInt, uint64(math.MaxInt64) + 1, nil},
	{"int from whole float", TypeInt, 3.0, int64(3)},
	{"int from float32", TypeInt, float32(2), int64(2)},
	{"int from fractional float", TypeInt, 3.5, nil},
	{"int from huge float", TypeInt, 1e19, nil},
	{"int from NaN", TypeInt, math.NaN(), nil},
	{"int from string", TypeInt, "3", nil},
	{"float from float", TypeFloat, 1.5, 1.5},
	{"float from float32", TypeFloat, float32(0.5), 0.5},
	{"float from int", TypeFloat, int32(2), 2.0},
	{"float from big uint64", TypeFloat, uint64(math.MaxUint64), float64(math.MaxUint64)},
	{"float from bool", TypeFloat, true, nil},
	{"bool", TypeBool, true, true},
	{"bool from int", TypeBool, 1, nil},
	{"bytes", TypeBytes, []byte("ab"), []byte("ab")},
	{"bytes from string", TypeBytes, "ab", []byte("ab")},
	{"bytes from int", TypeBytes, 1, nil},
	{"duration from int", TypeDuration, int64(1500), 1500 * time.Nanosecond},
	{"duration from uint8", TypeDuration, uint8(7), 7 * time.Nanosecond},
	{"duration from string", TypeDuration, "2s", 2 * time.Second},
	{"duration from bad string", TypeDuration, "2 sec", nil},
	{"duration from float", TypeDuration, 1.0, nil},
	{"any", TypeAny, map[string]any{"a": 1}, map[string]any{"a": 1}},
}

func TestConvertTypes(t *testing.T) {
	for _, tt := range convertTests {
		t.Run(tt.name, func(t *testing.T) {
			m := Method{Name: "m", path: "d", Args: []Arg{{Name: "x", Type: tt.typ}}}
			got, err := m.Convert([]any{tt.in})
			if tt.want == nil {
				if err == nil {
					t.Fatalf("got %#v, want an error", got)
				}
				if !errors.Is(err, wire.ErrInvalidArgument) {
					t.Errorf("got error %v, want INVALID_ARGUMENT", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("got %#v (%T), want %#v (%T)", got[0], got[0], tt.want, tt.want)
			}
		})
	}
}

func TestConvertErrors(t *testing.T) {
	on := Method{Name: "on", path: "power"}
	noPath := Method{Name: "on"}
	two := Method{Name: "connect", path: "net", Args: []Arg{{Name: "port", Type: TypeInt}, {Name: "tls", Type: TypeBool}}}
	one := Method{Name: "write", path: "serial", Args: []Arg{{Name: "data", Type: TypeBytes}}}
	for _, tt := range []struct {
		m    *Method
		raw  []any
		want string
	}{
		{&on, []any{1}, "power.on takes no arguments, got 1"},
		{&noPath, []any{1}, "on takes no arguments, got 1"},
		{&runMethod, []any{"a", "1s", 3}, "shell.run takes 1 to 2 arguments (cmd, timeout), got 3"},
		{&runMethod, nil, "shell.run takes 1 to 2 arguments (cmd, timeout), got 0"},
		{&two, []any{1}, "net.connect takes 2 arguments (port, tls), got 1"},
		{&one, []any{}, "serial.write takes 1 argument (data), got 0"},
		{&runMethod, []any{nil}, "shell.run: argument 1 (cmd): want string, got nil"},
		{&runMethod, []any{"ls", 1.5}, "shell.run: argument 2 (timeout): want duration, got float64"},
		{&two, []any{8080, "yes"}, "net.connect: argument 2 (tls): want bool, got string"},
	} {
		_, err := tt.m.Convert(tt.raw)
		if err == nil || err.Error() != tt.want {
			t.Errorf("got %v, want %s", err, tt.want)
		}
		if !errors.Is(err, wire.ErrInvalidArgument) {
			t.Errorf("%s: got code %s, want INVALID_ARGUMENT", tt.want, wire.CodeOf(err))
		}
	}
}

func TestConvertOptional(t *testing.T) {
	for _, tt := range []struct {
		raw  []any
		want Args
	}{
		{[]any{"ls"}, Args{"ls"}},
		{[]any{"ls", nil}, Args{"ls", nil}},
		{[]any{"ls", "1s"}, Args{"ls", time.Second}},
	} {
		got, err := runMethod.Convert(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("got %#v, want %#v", got, tt.want)
		}
		if got.Has(1) != (tt.want.Any(1) != nil) || got.String(0) != "ls" {
			t.Errorf("accessors on %#v", got)
		}
	}
}

var parseArgTests = []struct {
	typ     Type
	in      string
	want    any
	wantErr string
}{
	{TypeString, "hello", "hello", ""},
	{TypeInt, "8080", int64(8080), ""},
	{TypeInt, "010", int64(10), ""},
	{TypeInt, "0x1f", int64(31), ""},
	{TypeInt, "-5", int64(-5), ""},
	{TypeInt, "abc", nil, `"abc" is not an int`},
	{TypeInt, "99999999999999999999", nil, `"99999999999999999999" is not an int`},
	{TypeFloat, "1.5", 1.5, ""},
	{TypeFloat, "x", nil, `"x" is not a float`},
	{TypeBool, "true", true, ""},
	{TypeBool, "0", false, ""},
	{TypeBool, "yes", nil, `"yes" is not a bool`},
	{TypeBytes, "ab", []byte("ab"), ""},
	{TypeDuration, "2s", 2 * time.Second, ""},
	{TypeDuration, "2", nil, `"2" is not a duration (like 1.5s or 2m)`},
	{TypeAny, "42", int64(42), ""},
	{TypeAny, "4.5", 4.5, ""},
	{TypeAny, "true", true, ""},
	{TypeAny, "nan", "nan", ""},
	{TypeAny, "t", "t", ""},
	{TypeAny, "hi there", "hi there", ""},
}

func TestParseArg(t *testing.T) {
	for _, tt := range parseArgTests {
		got, err := ParseArg(tt.typ, tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseArg(%s, %q): got %#v, %v; want error %s", tt.typ, tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseArg(%s, %q): got %#v, %v; want %#v", tt.typ, tt.in, got, err, tt.want)
		}
	}
}

var allTypes = []Type{TypeString, TypeInt, TypeFloat, TypeBool, TypeBytes, TypeDuration, TypeAny}

func FuzzParseArg(f *testing.F) {
	for _, tt := range parseArgTests {
		f.Add(string(tt.typ), tt.in)
	}
	f.Fuzz(func(t *testing.T, typ, s string) {
		v, err := ParseArg(Type(typ), s)
		if err != nil {
			return
		}
		// A parsed value must be accepted by Convert for the same type.
		for _, at := range allTypes {
			if Type(typ) != at {
				continue
			}
			m := Method{Name: "m", Args: []Arg{{Name: "x", Type: at}}}
			if _, err := m.Convert([]any{v}); err != nil {
				t.Fatalf("ParseArg(%s, %q) = %#v, which Convert rejects: %v", typ, s, v, err)
			}
		}
	})
}

func FuzzConvertArgs(f *testing.F) {
	for i, tt := range convertTests {
		var b []byte
		switch v := tt.in.(type) {
		case string:
			b = []byte(v)
		case []byte:
			b = v
		}
		f.Add(uint8(i), int64(i), 1.5, b, string(tt.typ))
	}
	f.Fuzz(func(t *testing.T, sel uint8, i int64, fl float64, b []byte, typ string) {
		vals := []any{i, uint64(i), fl, float32(fl), string(b), b, i%2 == 0, int8(i), nil, []any{i}}
		v := vals[int(sel)%len(vals)]
		m := Method{Name: "m", Args: []Arg{{Name: "x", Type: Type(typ)}, {Name: "y", Type: TypeAny, Optional: true}}}
		args, err := m.Convert([]any{v})
		if err != nil {
			if !errors.Is(err, wire.ErrInvalidArgument) {
				t.Fatalf("got %v, want INVALID_ARGUMENT", err)
			}
			return
		}
		// The converted value has the Go type of its Type.
		var ok bool
		switch Type(typ) {
		case TypeString:
			_, ok = args[0].(string)
		case TypeInt:
			_, ok = args[0].(int64)
		case TypeFloat:
			_, ok = args[0].(float64)
		case TypeBool:
			_, ok = args[0].(bool)
		case TypeBytes:
			_, ok = args[0].([]byte)
			ok = ok && (len(b) == 0 || bytes.Equal(args.Bytes(0), b))
		case TypeDuration:
			_, ok = args[0].(time.Duration)
		default:
			ok = true
		}
		if !ok {
			t.Fatalf("Convert(%s, %#v) = %#v", typ, v, args[0])
		}
	})
}
