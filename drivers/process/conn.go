package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"jsn.dev/jsn/bus/wire"
)

// conn is one run of the program: its process, its end of the socket, the calls in flight.
type conn struct {
	p       *Process
	cmd     *exec.Cmd
	sock    net.Conn
	r       *bufio.Reader
	started time.Time
	hello   *hello

	wmu     sync.Mutex // serialises writes; one frame per system call
	scratch []byte

	mu      sync.Mutex
	next    uint32
	pending map[uint32]*waiter
	streams map[uint32]*stream
	pings   map[uint32]chan struct{}
	dead    bool
	why     string // first reason the connection failed
	whyCode wire.Code

	// rtok is the reading token: whoever holds it is the one reader of the socket. A call made
	// while nothing else is in flight takes it and reads its own answer (no goroutine hand-off);
	// otherwise a background reader (read) holds it until nothing is in flight.
	rtok      chan struct{}
	helloSeen bool // guarded by mu

	// Shared memory for byte streams out of the process (shm.go): nil if the kernel gave none.
	shm      []byte
	shmFile  *os.File
	slots    [shmSlots]slot // guarded by mu
	shmUsers sync.WaitGroup // byte streams that may still read shm; guarded by mu for Add

	helloCh chan frame    // the HELLO frame
	broken  chan struct{} // closed when the connection fails (reader error, kill)
	waited  chan struct{} // closed when cmd.Wait has returned (exitErr is set)
	exited  chan struct{} // closed when the process has exited and the reader is done
	exitErr error         // cmd.Wait's error; valid after exited
	stderr  *tail
}

// waiter is a call waiting for its RESULT or ERROR.
type waiter struct {
	ch       chan frame
	deadline time.Time // guarded by conn.mu while pending
}

var waiters = sync.Pool{New: func() any { return &waiter{ch: make(chan frame, 1)} }}

// spawn starts the program with one end of a socket pair as fd 3.
func spawn(p *Process) (*conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("driver process: socketpair: %w", err)
	}
	// Big socket buffers: a DATA frame of 512 KiB then crosses in one or two wake-ups. The
	// FORCE options work for root and are capped otherwise; either may fail harmlessly.
	for _, fd := range fds {
		for _, o := range [][2]int{{syscall.SO_SNDBUFFORCE, syscall.SO_SNDBUF}, {syscall.SO_RCVBUFFORCE, syscall.SO_RCVBUF}} {
			if syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, o[0], 4<<20) != nil {
				_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, o[1], 4<<20)
			}
		}
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "jsn-driver"), os.NewFile(uintptr(fds[1]), "jsn-driver-peer")
	defer theirs.Close()
	sock, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, fmt.Errorf("driver process: %w", err)
	}
	env, err := p.childEnv()
	if err != nil {
		sock.Close()
		return nil, err
	}
	dir := p.Dir
	if dir == "" {
		dir = p.env.Dir
	} else if !strings.HasPrefix(dir, "/") && p.env.Dir != "" {
		dir = p.env.Dir + "/" + dir
	}
	cmd := exec.Command(resolveProgram(p.Command[0], p.env.Dir), p.Command[1:]...)
	cmd.Args[0] = p.Command[0]
	cmd.Dir, cmd.Env = dir, env
	cmd.ExtraFiles = []*os.File{theirs}
	shm, shmFile := newShm()
	if shmFile != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, shmFile) // fd 4
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c := &conn{p: p, cmd: cmd, sock: sock, r: bufio.NewReaderSize(sock, 256<<10),
		pending: map[uint32]*waiter{}, streams: map[uint32]*stream{}, pings: map[uint32]chan struct{}{},
		shm: shm, shmFile: shmFile,
		rtok: make(chan struct{}, 1), helloCh: make(chan frame, 1), broken: make(chan struct{}), waited: make(chan struct{}), exited: make(chan struct{}), stderr: &tail{}}
	outR, outW, err := os.Pipe()
	if err != nil {
		sock.Close()
		c.unmapShm()
		return nil, fmt.Errorf("driver process: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, outW
	if err := cmd.Start(); err != nil {
		sock.Close()
		c.unmapShm()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("start driver process %q: %w", strings.Join(p.Command, " "), err)
	}
	outW.Close()
	c.started = time.Now()
	p.env.Log.Info("driver process started", "pid", cmd.Process.Pid, "command", strings.Join(p.Command, " "))
	logDone := make(chan struct{})
	go func() { defer close(logDone); c.logOutput(outR) }()
	go c.read() // holds the token (rtok starts empty) until the HELLO is in
	go c.sweep()
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		c.exitErr = err
		c.mu.Unlock()
		close(c.waited)
		c.fail(wire.Unavailable, "driver process exited ("+exitText(err)+")")
		<-c.rtok // the last reader is done
		<-logDone
		close(c.exited)
		c.shmUsers.Wait() // no byte stream reads the mapping any more (dead: none starts)
		c.unmapShm()
	}()
	return c, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// cleanExit reports whether the process exited with status 0 on its own.
func (c *conn) cleanExit() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exitErr == nil && c.whyCode == wire.Unavailable
}

// reason says why the connection ended.
func (c *conn) reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.why
}

// logOutput sends the program's stdout and stderr to the exporter log, line by line.
func (c *conn) logOutput(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		c.stderr.add(line)
		c.p.env.Log.Info(line, "from", "driver process")
	}
}

// tail keeps the last lines a program printed, for error messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	t.lines = append(t.lines, s)
	if len(t.lines) > 8 {
		t.lines = t.lines[1:]
	}
}

func (c *conn) stderrTail() string {
	c.stderr.mu.Lock()
	defer c.stderr.mu.Unlock()
	if len(c.stderr.lines) == 0 {
		return ""
	}
	return "; its last output: " + strings.Join(c.stderr.lines, " | ")
}

// fail marks the connection broken (the first reason wins), kills the process, and wakes every
// call and stream in flight with the error.
func (c *conn) fail(code wire.Code, why string) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.dead, c.why, c.whyCode = true, why, code
	pending, streams := c.pending, c.streams
	c.pending, c.streams = map[uint32]*waiter{}, map[uint32]*stream{}
	c.mu.Unlock()
	close(c.broken)
	_ = c.sock.Close()
	if c.cmd.Process != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, w := range pending {
		w.ch <- frame{typ: frameError, body: errBody(code, why)}
	}
	for _, s := range streams {
		s.push(frame{typ: frameError, body: errBody(code, why)})
	}
}

// kill ends the process: a protocol violation, a hang, a failed start.
func (c *conn) kill(why string) { c.fail(wire.Internal, why) }

// shutdown closes the socket and waits up to grace for the process to exit, then kills it.
func (c *conn) shutdown(grace time.Duration) {
	_ = c.sock.(interface{ CloseWrite() error }).CloseWrite()
	select {
	case <-c.exited:
		return
	case <-time.After(grace):
	}
	c.kill("driver process did not exit within " + grace.String() + " of CLOSE; killed")
	<-c.exited
}

// read is the background reader: it holds the reading token and routes every frame to its
// call or stream until nothing is in flight, then gives the token back.
func (c *conn) read() {
	for {
		f, err := c.readFrame()
		if err == errInterrupted { // a wake-up meant for a call reading its own answer
			if c.release() {
				return
			}
			continue
		}
		if err == nil {
			err = c.route(f)
			if err == nil {
				if c.release() {
					return
				}
				continue
			}
			err = &protoError{err.Error()}
		}
		c.readFailed(err)
		c.rtok <- struct{}{}
		return
	}
}

// errInterrupted: a read deadline set by wake ended a read at a frame boundary.
var errInterrupted = errors.New("read interrupted")

// readFrame reads the next frame as the token holder. A wake-up (read deadline) at a frame
// boundary returns errInterrupted; one in the middle of a frame is ignored (the frame is read to
// its end).
func (c *conn) readFrame() (frame, error) {
	var hdr [headerLen]byte
	got := 0
	for {
		n, err := io.ReadFull(c.r, hdr[got:])
		got += n
		if err == nil {
			break
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			_ = c.sock.SetReadDeadline(time.Time{})
			if got == 0 {
				return frame{}, errInterrupted
			}
			continue
		}
		if err == io.ErrUnexpectedEOF {
			return frame{}, &protoError{"frame header cut short by end of stream"}
		}
		return frame{}, err
	}
	return parseHeader(hdr[:], deadlineProof{c})
}

// deadlineProof reads a frame's body, going on through wake-ups.
type deadlineProof struct{ c *conn }

func (d deadlineProof) Read(b []byte) (int, error) {
	for {
		n, err := d.c.r.Read(b)
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		_ = d.c.sock.SetReadDeadline(time.Time{})
	}
}

// wake interrupts the token holder's read, so a call reading its own answer sees its deadline
// or cancellation.
func (c *conn) wake() { _ = c.sock.SetReadDeadline(time.Unix(1, 0)) }

// readFailed ends the connection after a read error.
func (c *conn) readFailed(err error) {
	var fe *protoError
	if errors.As(err, &fe) {
		c.p.env.Log.Error("driver process broke the protocol; killing it", "err", err)
		c.fail(wire.Internal, "driver process broke the protocol: "+fe.msg)
		return
	}
	// End of stream: the process exited or closed fd 3. Wait briefly for its exit status,
	// which makes the better message.
	select {
	case <-c.waited:
		c.mu.Lock()
		e := c.exitErr
		c.mu.Unlock()
		c.fail(wire.Unavailable, "driver process exited ("+exitText(e)+")")
	case <-time.After(2 * time.Second):
		c.fail(wire.Unavailable, "driver process closed its protocol socket (fd 3)")
	}
}

// release gives the reading token back if nothing is in flight and reports whether it did;
// otherwise the caller keeps it (the background reader) and must go on reading. A shared memory
// slot still held counts: the end of its cancelled stream frees it.
func (c *conn) release() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dead && (!c.helloSeen || len(c.pending) > 0 || len(c.streams) > 0 || len(c.pings) > 0 || c.slotsHeld()) {
		return false
	}
	c.rtok <- struct{}{}
	return true
}

// handOff is release for a call that read its own answer: what is still in flight gets the
// background reader.
func (c *conn) handOff() {
	if !c.release() {
		go c.read()
	}
}

// takeToken takes the reading token if it is free; c.mu is held.
func (c *conn) takeToken() bool {
	select {
	case <-c.rtok:
		return true
	default:
		return false
	}
}

func (c *conn) route(f frame) error {
	switch f.typ {
	case frameHello:
		c.mu.Lock()
		c.helloSeen = true
		c.mu.Unlock()
		select {
		case c.helloCh <- f:
		default:
			return errors.New("second HELLO frame")
		}
	case frameResult, frameError:
		c.mu.Lock()
		c.releaseSlot(f.id) // the program writes no more into it
		if w := c.pending[f.id]; w != nil {
			delete(c.pending, f.id)
			c.mu.Unlock()
			w.ch <- f
			return nil
		}
		s := c.streams[f.id]
		delete(c.streams, f.id)
		c.mu.Unlock()
		if s != nil {
			s.push(f)
		}
	case frameItem, frameData, frameFin:
		c.mu.Lock()
		s := c.streams[f.id]
		c.mu.Unlock()
		if s != nil {
			return s.receive(f)
		}
	case frameShmData:
		n, err := decodeUint(f.body)
		if err != nil {
			return fmt.Errorf("SHMDATA frame: %v", err)
		}
		c.mu.Lock()
		s := c.streams[f.id]
		c.mu.Unlock()
		if s != nil {
			return s.receiveShm(n)
		}
	case frameCredit:
		n, err := decodeUint(f.body)
		if err != nil {
			return fmt.Errorf("CREDIT frame: %v", err)
		}
		c.mu.Lock()
		s := c.streams[f.id]
		c.mu.Unlock()
		if s != nil {
			s.addCredit(n)
		}
	case framePong:
		c.mu.Lock()
		ch := c.pings[f.id]
		delete(c.pings, f.id)
		c.mu.Unlock()
		if ch != nil {
			close(ch)
		}
	default:
		return fmt.Errorf("unexpected %s frame from the process", f.typ)
	}
	return nil
}

// send writes one frame.
func (c *conn) send(t frameType, id uint32, body []byte) error {
	c.wmu.Lock()
	var err error
	c.scratch, err = writeFrame(c.sock, c.scratch, t, id, body)
	c.wmu.Unlock()
	return err
}

// sendCall writes a CALL or STREAM frame, [method, args], without re-encoding args (a msgpack
// array as received, or nil for none).
func (c *conn) sendCall(t frameType, id uint32, method string, args []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.scratch[:0]
	b = append(b, make([]byte, headerLen)...)
	b = append(b, 0x92)
	b = appendStr(b, method)
	if len(args) == 0 {
		b = append(b, 0x90)
	} else {
		b = append(b, args...)
	}
	putHeader(b, t, id, len(b)-headerLen)
	c.scratch = b
	_, err := c.sock.Write(b)
	return err
}

// register allocates a call id. A call that finds the reading token free takes it (lead
// reports so) and reads its own answer; a stream that does starts the background reader.
func (c *conn) register(w *waiter, s *stream) (id uint32, lead bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return 0, false, wire.Errorf(c.whyCode, "%s", c.why)
	}
	c.next++
	if c.next == 0 {
		c.next = 1
	}
	id = c.next
	if w != nil {
		c.pending[id] = w
	} else {
		c.streams[id] = s
		if s.wantShm && c.hello != nil && c.hello.Shm && c.shm != nil {
			for i, owner := range c.slots {
				if owner.id == 0 {
					c.slots[i] = slot{id: id, refs: 2}
					s.slot = i + 1
					c.shmUsers.Add(1)
					break
				}
			}
		}
	}
	if c.takeToken() {
		if w != nil {
			return id, true, nil
		}
		go c.read()
	}
	return id, false, nil
}

// forget drops call id; it reports false if its answer is already on the way.
func (c *conn) forget(id uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; ok {
		delete(c.pending, id)
		return true
	}
	return false
}

// roundTrip sends a frame and waits for its RESULT or ERROR, at most timeout.
func (c *conn) roundTrip(ctx context.Context, what string, timeout time.Duration, send func(id uint32) error) ([]byte, error) {
	w := waiters.Get().(*waiter)
	w.deadline = time.Now().Add(timeout)
	id, lead, err := c.register(w, nil)
	if err != nil {
		waiters.Put(w)
		return nil, c.p.callErr(what, err)
	}
	if err := send(id); err != nil {
		if lead {
			c.handOff()
		}
		if !c.forget(id) {
			<-w.ch
		}
		waiters.Put(w)
		c.fail(wire.Unavailable, "driver process: write: "+err.Error())
		return nil, c.p.callErr(what, wire.Errorf(wire.Unavailable, "%s", c.reason()))
	}
	if lead {
		c.lead(ctx, w)
	}
	var f frame
	select {
	case f = <-w.ch:
	case <-ctx.Done():
		if c.forget(id) {
			waiters.Put(w)
			_ = c.send(frameCancel, id, nil)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, wire.Errorf(wire.DeadlineExceeded, "%s.%s: %v", c.p.env.Path, what, ctx.Err())
			}
			return nil, ctx.Err()
		}
		f = <-w.ch
	}
	waiters.Put(w)
	switch f.typ {
	case frameError:
		return nil, c.p.callErr(what, decodeErr(f.body))
	case frameTimeout:
		c.abandoned(id, what)
		return nil, wire.Errorf(wire.DeadlineExceeded, "%s.%s: no answer from the driver process within %v (call_timeout)", c.p.env.Path, what, timeout)
	}
	return f.body, nil
}

// lead reads frames as the token holder, routing each, until w has its answer, ctx is done or
// the connection fails; then it hands the token on.
func (c *conn) lead(ctx context.Context, w *waiter) {
	if done := ctx.Done(); done != nil {
		stop := context.AfterFunc(ctx, c.wake)
		defer stop()
	}
	defer c.handOff()
	for {
		f, err := c.readFrame()
		switch {
		case err == errInterrupted:
		case err != nil:
			c.readFailed(err)
			return
		default:
			if err := c.route(f); err != nil {
				c.readFailed(&protoError{err.Error()})
				return
			}
		}
		if len(w.ch) > 0 || ctx.Err() != nil {
			return
		}
	}
}

// frameTimeout is what the sweeper hands a call that passed its deadline (never on the wire).
const frameTimeout frameType = 0

// sweep fails the calls that passed their deadline, every sweepEvery, until the connection
// breaks: one timer per process instead of one per call.
func (c *conn) sweep() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	late := false
	for {
		select {
		case <-c.broken:
			return
		case now := <-t.C:
			c.mu.Lock()
			for id, w := range c.pending {
				if now.After(w.deadline) {
					delete(c.pending, id)
					w.ch <- frame{typ: frameTimeout}
					late = true
				}
			}
			c.mu.Unlock()
			if late {
				c.wake() // the call may be reading its own answer
				late = false
			}
		}
	}
}

// sweepEvery is how often deadlines are checked: a call times out up to this late.
const sweepEvery = 50 * time.Millisecond

// abandoned handles a call that passed its deadline: CANCEL, then a PING; a process that does
// not answer the PING in time is hung and is killed (and restarted as the policy says).
func (c *conn) abandoned(id uint32, what string) {
	_ = c.send(frameCancel, id, nil)
	grace := min(c.p.CallTimeout, 5*time.Second)
	go func() {
		if !c.ping(grace) {
			c.fail(wire.Unavailable, fmt.Sprintf("driver process hung: %s passed its %v deadline and the process did not answer a ping within %v; killed", what, c.p.CallTimeout, grace))
		}
	}()
}

// ping reports whether the process answers a PING within d.
func (c *conn) ping(d time.Duration) bool {
	ch := make(chan struct{})
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return true // already being dealt with
	}
	c.next++
	id := c.next
	c.pings[id] = ch
	if c.takeToken() {
		go c.read()
	}
	c.mu.Unlock()
	if err := c.send(framePing, id, nil); err != nil {
		return false
	}
	select {
	case <-ch:
		return true
	case <-c.broken:
		return true
	case <-time.After(d):
		return false
	}
}

// callErr makes err a wire error naming the driver and method.
func (p *Process) callErr(what string, err error) error {
	var we *wire.Error
	if errors.As(err, &we) {
		return &wire.Error{Code: we.Code, Message: p.env.Path + "." + what + ": " + we.Message}
	}
	return wire.Errorf(wire.Internal, "%s.%s: %v", p.env.Path, what, err)
}

// lifecycle sends OPEN, RESET or CLOSE and waits for the answer.
func (c *conn) lifecycle(ctx context.Context, t frameType, what string) ([]byte, error) {
	return c.roundTrip(ctx, what, c.p.CallTimeout, func(id uint32) error { return c.send(t, id, nil) })
}

// handshake sends INIT and waits for HELLO.
func (c *conn) handshake(ctx context.Context, timeout time.Duration) error {
	init := map[string]any{"version": 1, "path": c.p.env.Path, "config": c.p.Options}
	if c.shm != nil {
		init["shm"] = map[string]any{"fd": 4, "slots": shmSlots, "size": window}
	}
	body, err := wire.Marshal(init)
	if err != nil {
		return fmt.Errorf("driver process: options: %v", err)
	}
	if err := c.send(frameInit, 0, body); err != nil {
		return fmt.Errorf("driver process %q: write INIT: %v", strings.Join(c.p.Command, " "), err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case f := <-c.helloCh:
		h, err := decodeHello(f.body)
		if err != nil {
			return fmt.Errorf("driver process %q: %v", strings.Join(c.p.Command, " "), err)
		}
		c.hello = h
		return nil
	case <-c.broken:
		<-c.exited
		return fmt.Errorf("driver process %q ended before its HELLO: %s", strings.Join(c.p.Command, " "), c.reason())
	case <-t.C:
		return fmt.Errorf("driver process %q sent no HELLO within %v (start_timeout)", strings.Join(c.p.Command, " "), timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func errBody(code wire.Code, msg string) []byte {
	b, _ := wire.Marshal([]any{string(code), msg})
	return b
}

// decodeErr decodes an ERROR body, [code, message]. A malformed one is still an error.
func decodeErr(body []byte) error {
	var v []any
	if err := wire.Unmarshal(body, &v); err != nil || len(v) != 2 {
		return wire.Errorf(wire.Internal, "driver process sent a malformed ERROR frame")
	}
	code, _ := v[0].(string)
	msg, _ := v[1].(string)
	if !wire.ValidCode(wire.Code(code)) {
		code = string(wire.Internal)
	}
	return &wire.Error{Code: wire.Code(code), Message: msg}
}
