package serial

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// These tests build the real jsn binary and run it inside `jsn shell -c lab.yaml -- …` sessions
// whose serial driver opens a pty with a board behind it.

var (
	buildOnce sync.Once
	jsnBin    string
	buildErr  error
	buildOut  []byte
)

// jsnBinary builds jsn once per test run.
func jsnBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the jsn binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jsn-serial-test-")
		if err != nil {
			buildErr = err
			return
		}
		jsnBin = filepath.Join(dir, "jsn")
		buildOut, buildErr = exec.Command("go", "build", "-o", jsnBin, "jsn.dev/jsn/cmd/jsn").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build jsn: %v\n%s", buildErr, buildOut)
	}
	return jsnBin
}

type result struct {
	stdout, stderr string
	code           int
}

// cleanEnv is the environment without session variables.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JSN_") {
			out = append(out, kv)
		}
	}
	return out
}

// session writes an exporter config with one serial driver on a new board and returns its path.
func session(t *testing.T) (config string, dev *device) {
	t.Helper()
	dev = newDevice(t, "board")
	config = filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(config, []byte(labConfig(dev.Path, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	return config, dev
}

// inSession runs `jsn shell -c config -- argv…` with stdin.
func inSession(t *testing.T, config, stdin string, argv ...string) result {
	t.Helper()
	bin := jsnBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"shell", "-c", config, "--"}, argv...)...)
	cmd.Env = cleanEnv()
	cmd.Dir = filepath.Dir(config)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run jsn %q: %v", argv, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("jsn %q: timed out; stdout:\n%s\nstderr:\n%s", argv, r.stdout, r.stderr)
	}
	return r
}

func (r result) want(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("got exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

func TestCLIExpect(t *testing.T) {
	config, _ := session(t)
	r := inSession(t, config, "", "jsn", "serial", "expect", "login:", "--send", `\r`)
	r.want(t, 0)
	if r.stdout != "login:\n" {
		t.Fatalf("got %q, want %q", r.stdout, "login:\n")
	}
	r = inSession(t, config, "", "jsn", "serial", "expect", "-v", `Lin\w+`, "--send", `uname\r`)
	r.want(t, 0)
	if r.stdout != "uname\r\nLinux\n" {
		t.Fatalf("-v: got %q, want %q", r.stdout, "uname\r\nLinux\n")
	}
	// --since also matches what was printed before the command started.
	r = inSession(t, config, "", "sh", "-c", `jsn serial expect '# ' --send 'echo one\r' >/dev/null && jsn serial expect 'e[a-z]+ one' --since 1h --timeout 5s`)
	r.want(t, 0)
	if r.stdout != "echo one\n" {
		t.Fatalf("--since: got %q", r.stdout)
	}
}

func TestCLIExpectTimeout(t *testing.T) {
	config, _ := session(t)
	r := inSession(t, config, "", "jsn", "serial", "expect", "never-printed", "--send", `echo marker-123\r`, "--timeout", "700ms")
	r.want(t, 1)
	if !strings.Contains(r.stderr, `no match within 700ms`) || !strings.Contains(r.stderr, "  | marker-123") {
		t.Fatalf("got stderr %q, want the timeout and the last output", r.stderr)
	}
	r = inSession(t, config, "", "jsn", "serial", "expect", "(")
	r.want(t, 2)
	r = inSession(t, config, "", "jsn", "serial", "expect", "x", "--send", `\q`)
	r.want(t, 2)
}

func TestCLIPipeAndLog(t *testing.T) {
	config, _ := session(t)
	// Each session opens the device anew: the banner is in the first session's log.
	r := inSession(t, config, "", "sh", "-c", `printf 'echo logged\r' | jsn serial pipe --linger 500ms >/dev/null && jsn serial log && jsn serial log --since 1h | wc -c`)
	r.want(t, 0)
	if !strings.HasPrefix(r.stdout, "U-Boot 2026.01") || !strings.Contains(r.stdout, "logged\r\n# ") {
		t.Fatalf("log: got %q, want the banner and the command", r.stdout)
	}
	r = inSession(t, config, "uname\recho two\r", "jsn", "serial", "pipe", "--linger", "1s")
	r.want(t, 0)
	if !strings.Contains(r.stdout, "uname\r\nLinux\r\n# ") || !strings.Contains(r.stdout, "two\r\n# ") {
		t.Fatalf("pipe: got %q, want the answers", r.stdout)
	}
	// The non-terminal console is a pipe.
	r = inSession(t, config, "uname\r", "sh", "-c", `timeout --preserve-status -s INT 2 jsn serial console; echo "exit $?"`)
	if !strings.Contains(r.stdout, "Linux") || !strings.Contains(r.stdout, "exit 0") {
		t.Fatalf("console on a pipe: got %q, stderr %q", r.stdout, r.stderr)
	}
}

func TestCLITap(t *testing.T) {
	config, _ := session(t)
	script := `jsn tap console > tap.out & p=$!
i=0
until grep -q Linux tap.out; do
  printf 'uname\r' | jsn serial pipe --linger 100ms > /dev/null
  i=$((i+1)); [ $i -gt 100 ] && exit 9
done
kill -TERM $p; wait $p; echo "tap exit $?"
jsn tap nope; echo "nope exit $?"`
	r := inSession(t, config, "", "sh", "-c", script)
	r.want(t, 0)
	if !strings.Contains(r.stdout, "tap exit 0") || !strings.Contains(r.stdout, "nope exit 3") {
		t.Fatalf("got %q, stderr %q", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, `no driver "nope"`) {
		t.Fatalf("got stderr %q, want no driver \"nope\"", r.stderr)
	}
}

// TestCLIConsole runs the console on a real terminal: raw mode, Ctrl-] q, terminal restored.
func TestCLIConsole(t *testing.T) {
	config, _ := session(t)
	bin := jsnBinary(t)
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
	cmd.Env = cleanEnv()
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
	waitFor(t, "raw mode", func() bool {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		return err == nil && tio.Lflag&(unix.ICANON|unix.ECHO) == 0
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
