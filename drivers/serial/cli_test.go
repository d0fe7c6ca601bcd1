package serial

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/internal/testkit"
)

// These tests run the jsn commands in-process (clitest) against a lab whose serial driver opens
// a pty with a board behind it; the console test runs the jsn binary on a terminal of its own.

// session starts a lab with one serial driver on a new board.
func session(t *testing.T) *clitest.Session {
	t.Helper()
	return clitest.Start(t, labConfig(newDevice(t, "board").Path, ""))
}

// feed runs jsn args with stdin.
func feed(s *clitest.Session, stdin string, args ...string) jsntest.Result {
	return s.RunWith(clitest.Options{Stdin: stdin}, args...)
}

func TestCLIExpect(t *testing.T) {
	s := session(t)
	r := s.Run("serial", "expect", "login:", "--send", `\r`)
	r.Want(t, 0)
	if r.Stdout != "login:\n" {
		t.Fatalf("got %q, want %q", r.Stdout, "login:\n")
	}
	r = s.Run("serial", "expect", "-v", `Lin\w+`, "--send", `uname\r`)
	r.Want(t, 0)
	if r.Stdout != "uname\r\nLinux\n" {
		t.Fatalf("-v: got %q, want %q", r.Stdout, "uname\r\nLinux\n")
	}
	// --since also matches what was printed before the command started.
	s.Run("serial", "expect", "# ", "--send", `echo one\r`).Want(t, 0)
	r = s.Run("serial", "expect", "e[a-z]+ one", "--since", "1h", "--timeout", "5s")
	r.Want(t, 0)
	if r.Stdout != "echo one\n" {
		t.Fatalf("--since: got %q", r.Stdout)
	}
}

func TestCLIExpectTimeout(t *testing.T) {
	s := session(t)
	r := s.Run("serial", "expect", "never-printed", "--send", `echo marker-123\r`, "--timeout", "700ms")
	r.Want(t, 1)
	if !strings.Contains(r.Stderr, `no match within 700ms`) || !strings.Contains(r.Stderr, "  | marker-123") {
		t.Fatalf("got stderr %q, want the timeout and the last output", r.Stderr)
	}
	r = s.Run("serial", "expect", "(")
	r.Want(t, 2)
	r = s.Run("serial", "expect", "x", "--send", `\q`)
	r.Want(t, 2)
}

// pipeUntil feeds stdin to `jsn serial pipe --linger D` until its output holds every want: the
// linger is how long the pipe waits for the device's answers after its input ends, and on a
// loaded machine the answers can come later than a short linger, so it doubles on each try.
func pipeUntil(t *testing.T, s *clitest.Session, stdin string, want ...string) {
	t.Helper()
	var r jsntest.Result
	for linger := 500 * time.Millisecond; linger <= 16*time.Second; linger *= 2 {
		r = feed(s, stdin, "serial", "pipe", "--linger", linger.String())
		r.Want(t, 0)
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(r.Stdout, w)
		}
		if !missing {
			return
		}
	}
	t.Fatalf("pipe: got %q, want %q", r.Stdout, want)
}

func TestCLIPipeAndLog(t *testing.T) {
	s := session(t)
	pipeUntil(t, s, `echo logged`+"\r", "logged\r\n# ")
	r := s.Run("serial", "log")
	r.Want(t, 0)
	if !strings.HasPrefix(r.Stdout, "U-Boot 2026.01") || !strings.Contains(r.Stdout, "logged\r\n# ") {
		t.Fatalf("log: got %q, want the banner and the command", r.Stdout)
	}
	s.Run("serial", "log", "--since", "1h").Want(t, 0)
	pipeUntil(t, s, "uname\recho two\r", "uname\r\nLinux\r\n# ", "two\r\n# ")
	// The non-terminal console is a pipe, and ends cleanly on Ctrl-C.
	p := s.Background(clitest.Options{Stdin: "uname\r"}, "serial", "console")
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !strings.Contains(p.Stdout.String(), "Linux") {
			return fmt.Errorf("console on a pipe: got %q, stderr %q", p.Stdout.String(), p.Stderr.String())
		}
		return nil
	})
	if code := p.Stop(); code != 0 {
		t.Fatalf("console on a pipe: exit %d after Ctrl-C, want 0; stderr %q", code, p.Stderr.String())
	}
}

func TestCLITap(t *testing.T) {
	s := session(t)
	tap := s.Background(clitest.Options{}, "tap", "console")
	testkit.CheckFor(t, 30*time.Second, func() error {
		feed(s, "uname\r", "serial", "pipe", "--linger", "100ms").Want(t, 0)
		if !strings.Contains(tap.Stdout.String(), "Linux") {
			return fmt.Errorf("the tap shows %q, want the answer to uname", tap.Stdout.String())
		}
		return nil
	})
	if code := tap.Stop(); code != 0 {
		t.Fatalf("tap: exit %d after Ctrl-C, want 0; stderr %q", code, tap.Stderr.String())
	}
	r := s.Run("tap", "nope")
	r.Want(t, 3)
	if !strings.Contains(r.Stderr, `no driver "nope"`) {
		t.Fatalf("got stderr %q, want no driver \"nope\"", r.Stderr)
	}
}

// TestCLIConsole runs the console on a real terminal: raw mode, Ctrl-] q, terminal restored.
func TestCLIConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the jsn binary")
	}
	config := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(config, []byte(labConfig(newDevice(t, "board").Path, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := jsntest.Binary(t)
	master, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	defer master.Close()
	defer tty.Close()
	before, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "shell", "-c", config, "--", "jsn", "serial", "console")
	cmd.Env = jsntest.Env()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	rd := readAll(master)
	rd.waitContains(t, "Connected to console (Ctrl-] q to quit)")
	testkit.CheckFor(t, 30*time.Second, func() error {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			return err
		}
		if tio.Lflag&(unix.ICANON|unix.ECHO) != 0 {
			return fmt.Errorf("the terminal is not in raw mode yet (lflag %#x)", tio.Lflag)
		}
		return nil
	})
	master.Write([]byte("uname\r"))
	rd.waitContains(t, "Linux\r\n# ")
	master.Write([]byte("\x03")) // Ctrl-C goes to the board, not to jsn
	master.Write([]byte("echo still here\r"))
	rd.waitContains(t, "still here\r\n")
	master.Write([]byte{escapeByte, 'q'})
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("console: got %v, want exit 0; output %q", err, rd.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("console did not quit on Ctrl-] q; output %q", rd.String())
	}
	after, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Fatalf("terminal not restored: got lflag %#x iflag %#x oflag %#x, want %#x %#x %#x",
			after.Lflag, after.Iflag, after.Oflag, before.Lflag, before.Iflag, before.Oflag)
	}
}

func TestFilterEscape(t *testing.T) {
	tests := []struct {
		in       string
		esc      bool // pending from before
		want     string
		wantQuit bool
		wantEsc  bool
	}{
		{"abc", false, "abc", false, false},
		{"ab\x1dq", false, "ab", true, false},
		{"ab\x1d", false, "ab", false, true},
		{"q", true, "", true, false},
		{"\x1d\x1dx", false, "\x1dx", false, false},
		{"\x1dx", false, "\x1dx", false, false},
		{"\x1d.", false, "", true, false},
	}
	for _, tt := range tests {
		esc := tt.esc
		got, quit := filterEscape([]byte(tt.in), &esc)
		if string(got) != tt.want || quit != tt.wantQuit || esc != tt.wantEsc {
			t.Errorf("filterEscape(%q, %v): got %q, %v, esc %v, want %q, %v, esc %v", tt.in, tt.esc, got, quit, esc, tt.want, tt.wantQuit, tt.wantEsc)
		}
	}
}

func TestUnescape(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{`root\r`, "root\r", ""},
		{`a\nb\tc\\d\x1b\e`, "a\nb\tc\\d\x1b\x1b", ""},
		{`plain`, "plain", ""},
		{`bad\`, "", "trailing backslash"},
		{`\q`, "", `unknown escape \q`},
		{`\x4`, "", "two hex digits"},
		{`\xzz`, "", "two hex digits"},
	}
	for _, tt := range tests {
		got, err := Unescape(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Unescape(%q): got %q, %v, want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("Unescape(%q): got %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}
