package process

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Shared memory for byte streams out of the process. The exporter creates one memory file per
// process run, shmSlots slots of window bytes, and hands it to the program as fd 4 (INIT says
// so). A program that maps it says "shm": true in its HELLO; the exporter then gives each byte
// stream a free slot (a SHM frame before the stream's first CREDIT) and the program writes the
// stream's bytes into the slot, as a ring, announcing each write with a small SHMDATA frame
// instead of sending the bytes through the socket: one copy in the program instead of two
// through the kernel. Credit keeps its meaning: the program never has more than window bytes
// unconsumed, which is exactly the slot, so it never overwrites bytes the exporter has not
// delivered. A slot is free again once the program has ended its stream (RESULT or ERROR), so a
// late write of a cancelled stream never lands in another stream's slot.

// shmSlots is how many byte streams of one process use shared memory at once; more go through
// the socket as DATA frames.
const shmSlots = 4

// newShm creates the memory file, sealed at its size, and maps it for reading; nil, nil when
// the kernel cannot (the program then gets no shared memory and everything goes through the
// socket).
func newShm() ([]byte, *os.File) {
	fd, err := unix.MemfdCreate("jsn-driver-streams", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, nil
	}
	// Sealed at its size: a program that shrank it would make the exporter's reads fault.
	if err := unix.Ftruncate(fd, shmSlots*window); err != nil {
		unix.Close(fd)
		return nil, nil
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, nil
	}
	mem, err := unix.Mmap(fd, 0, shmSlots*window, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, nil
	}
	return mem, os.NewFile(uintptr(fd), "jsn-driver-streams")
}

// unmapShm releases the mapping and the file once nothing reads them.
func (c *conn) unmapShm() {
	if c.shm != nil {
		_ = unix.Munmap(c.shm)
		c.shm = nil
	}
	if c.shmFile != nil {
		_ = c.shmFile.Close()
	}
}

// slot is a shared memory slot's owner: a stream id (0 = free) and how many of its two users
// (the program's writes, the exporter's reads) are not done with it yet.
type slot struct {
	id   uint32
	refs int
}

// releaseSlot says one user of stream id's slot, if it has one, is done with it: the program
// (it ended the stream) or the exporter (it delivered the stream's last bytes or gave up). The
// second frees the slot. Its pages stay mapped on both sides for the next stream (a page fault
// costs more than the copy of the page it brings). c.mu is held.
func (c *conn) releaseSlot(id uint32) {
	for i := range c.slots {
		if sl := &c.slots[i]; sl.id == id && id != 0 {
			if sl.refs--; sl.refs == 0 {
				sl.id = 0
			}
			return
		}
	}
}

// slotsHeld reports whether a slot is still held (c.mu is held).
func (c *conn) slotsHeld() bool {
	for _, sl := range c.slots {
		if sl.id != 0 {
			return true
		}
	}
	return false
}

// receiveShm queues the n bytes the program wrote at the stream's cursor in its slot as a DATA
// frame whose body is the slot's memory (valid until the stream re-grants their credit).
func (s *stream) receiveShm(n uint64) error {
	if s.slot == 0 {
		return fmt.Errorf("SHMDATA frame on stream %d, which has no shared memory slot", s.id)
	}
	if n == 0 || n > uint64(window-s.shmPos) {
		return fmt.Errorf("SHMDATA frame of %d bytes on stream %d: its slot has %d bytes left before its end (a write must not wrap)", n, s.id, window-s.shmPos)
	}
	base := (s.slot-1)*window + s.shmPos
	s.shmPos = (s.shmPos + int(n)) % window
	return s.receive(frame{typ: frameData, id: s.id, body: s.c.shm[base : base+int(n) : base+int(n)], shm: true})
}
