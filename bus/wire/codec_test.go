package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeArgs(t *testing.T) {
	must := func(v any) []byte {
		b, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		body    []byte
		want    int    // number of args
		wantErr string // substring; "" = ok
	}{
		{"empty body", nil, 0, ""},
		{"nil", must(nil), 0, ""},
		{"two args", must([]any{"a", 3}), 2, ""},
		{"not an array", must(map[string]any{"a": 1}), 0, "must be a msgpack array"},
		{"garbage", []byte{0xc1, 0xff, 0x00}, 0, "decode msgpack"},
		{"truncated", must([]any{"hello", "world"})[:5], 0, "decode msgpack"},
		{"trailing bytes", append(must([]any{1}), 0x01), 0, "trailing bytes"},
		{"oversized", bytes.Repeat([]byte{0x90}, MaxBody+1), 0, "exceeds"},
		{"huge declared array", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, 0, "decode msgpack"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeArgs(tt.body)
			if tt.wantErr == "" {
				if err != nil || len(got) != tt.want {
					t.Fatalf("got %v, %v; want %d args", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want INVALID_ARGUMENT containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLooseDecoding(t *testing.T) {
	b, _ := Marshal(map[string]any{"n": 7, "f": 1.5, "s": "x", "b": []byte{1}, "d": time.Second})
	var v any
	if err := Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if _, ok := m["n"].(int64); !ok {
		t.Errorf("got %T for an int, want int64", m["n"])
	}
	if _, ok := m["f"].(float64); !ok {
		t.Errorf("got %T for a float, want float64", m["f"])
	}
}

func TestFrames(t *testing.T) {
	tests := []struct {
		in      []byte
		want    Frame
		wantErr string
	}{
		{AppendFrame(nil, Frame{Type: FrameData, Offset: 7, Data: []byte("abc")}), Frame{Type: FrameData, Offset: 7, Data: []byte("abc")}, ""},
		{AppendFrame(nil, Frame{Type: FrameCredit, Offset: 1 << 40}), Frame{Type: FrameCredit, Offset: 1 << 40}, ""},
		{AppendFrame(nil, Frame{Type: FrameFin, Offset: 3}), Frame{Type: FrameFin, Offset: 3}, ""},
		{AppendFrame(nil, Frame{Type: FrameReset, Code: Unavailable, Message: "gone"}), Frame{Type: FrameReset, Code: Unavailable, Message: "gone"}, ""},
		{[]byte{1, 2, 3}, Frame{}, "shorter than"},
		{append([]byte{9}, make([]byte, 8)...), Frame{}, "unknown stream frame type 9"},
		{append(AppendFrame(nil, Frame{Type: FrameCredit}), 1), Frame{}, "unexpected payload"},
		{append([]byte{4}, make([]byte, 8)...), Frame{}, "no code separator"},
	}
	for i, tt := range tests {
		got, err := DecodeFrame(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%d: got %v, want error %q", i, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.Type != tt.want.Type || got.Offset != tt.want.Offset || !bytes.Equal(got.Data, tt.want.Data) || got.Code != tt.want.Code || got.Message != tt.want.Message {
			t.Errorf("%d: got %+v, %v; want %+v", i, got, err, tt.want)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendFrame(nil, Frame{Type: FrameData, Offset: 7, Data: []byte("abc")}))
	f.Add(AppendFrame(nil, Frame{Type: FrameReset, Code: Internal, Message: "x"}))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("error %v is not INVALID_ARGUMENT", err)
			}
			return
		}
		again, err := DecodeFrame(AppendFrame(nil, fr))
		if err != nil || again.Type != fr.Type || again.Offset != fr.Offset || !bytes.Equal(again.Data, fr.Data) {
			t.Fatalf("round trip of %+v gave %+v, %v", fr, again, err)
		}
	})
}

func FuzzDecodeArgs(f *testing.F) {
	for _, v := range []any{nil, []any{1, "a", true, 1.5, []byte{1}}, map[string]any{"x": 1}, []any{[]any{map[string]any{}}}} {
		b, _ := Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		args, err := DecodeArgs(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("error %v is not INVALID_ARGUMENT", err)
			}
			return
		}
		if _, err := EncodeArgs(args); err != nil {
			t.Fatalf("decoded args do not encode again: %v", err)
		}
	})
}

func TestDeepNestingRejected(t *testing.T) {
	b := bytes.Repeat([]byte{0x91}, 1000)
	b = append(b, 0xc0)
	if _, err := DecodeArgs(b); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("got %v, want a nesting error", err)
	}
}
