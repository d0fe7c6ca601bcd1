package fileserver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"
)

// TestTFTPWindows reads a file with RFC 7440 windows as a client does, acknowledging once per
// window, and once acknowledging less than a whole window (a lost block): the server must go on
// from the block after the one acknowledged.
func TestTFTPWindows(t *testing.T) {
	d := build(t, "fileserver.TFTP", fmt.Sprintf("{root_dir: %s, host: 127.0.0.1, port: 0, max_windowsize: 4}", t.TempDir())).(*TFTP)
	data := random(t, 100*512+17)
	put(t, d, "w", data)
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte("\x00\x01w\x00octet\x00blksize\x00512\x00windowsize\x008\x00")
	if _, err := c.WriteTo(req, d.Addr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	read := func() ([]byte, net.Addr) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n], from
	}
	ack := func(to net.Addr, block uint16) {
		t.Helper()
		p := []byte{0, opACK, 0, 0}
		binary.BigEndian.PutUint16(p[2:], block)
		if _, err := c.WriteTo(p, to); err != nil {
			t.Fatal(err)
		}
	}
	p, tid := read()
	if got := string(p); got != "\x00\x06blksize\x00512\x00windowsize\x004\x00" {
		t.Fatalf("OACK: got %q, want blksize 512 and the window capped at 4", got)
	}
	ack(tid, 0)
	var got bytes.Buffer
	next := uint16(1)
	lost := false
	for {
		// One window: up to 4 blocks.
		var last uint16
		var short bool
		for i := 0; i < 4; i++ {
			p, _ := read()
			if binary.BigEndian.Uint16(p) != opDATA {
				t.Fatalf("want DATA, got %q", p)
			}
			blk := binary.BigEndian.Uint16(p[2:])
			if blk != next+uint16(i) {
				t.Fatalf("block %d, want %d", blk, next+uint16(i))
			}
			got.Write(p[4:])
			last = blk
			if len(p)-4 < 512 {
				short = true
				break
			}
		}
		if !lost && next == 9 {
			// Pretend blocks 11 and 12 were lost: acknowledge 10 and drop what came after.
			lost = true
			got.Truncate(got.Len() - 2*512)
			ack(tid, 10)
			next = 11
			continue
		}
		ack(tid, last)
		if short {
			break
		}
		next = last + 1
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("got %d bytes, want the %d uploaded", got.Len(), len(data))
	}
}
