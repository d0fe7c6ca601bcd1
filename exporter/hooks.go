package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/yamlconf"
)

// Hook failure policies.
const (
	OnFailureWarn     = "warn"     // log the failure, go on with the lease
	OnFailureEndLease = "endLease" // end the lease (tell the controller)
	OnFailureExit     = "exit"     // end the lease and stop the exporter (it goes offline)
)

// Hook names, as in the config and in api.HookOutput.
const (
	HookBeforeLease = "beforeLease"
	HookAfterLease  = "afterLease"
)

// DefaultHookTimeout bounds a hook without a timeout.
const DefaultHookTimeout = 120 * time.Second

// Hooks are the scripts an exporter runs around each lease (Jumpstarter's hooks: key).
type Hooks struct {
	BeforeLease *Hook `yaml:"beforeLease"` // before the lease's first call, after a reset
	AfterLease  *Hook `yaml:"afterLease"`  // after the lease ended, before the final reset
}

// Hook is one lease hook: a script run with /bin/sh -c, or with Exec.
type Hook struct {
	// Exec is the interpreter (Jumpstarter's exec: /bin/bash, python3). An inline script is run
	// as `EXEC -c SCRIPT`, a script that names a file as `EXEC FILE`. Without it: a .py file runs
	// with python3, anything else with /bin/sh.
	Exec      string        `yaml:"exec"`
	Script    string        `yaml:"script" jsn:"required"`
	Timeout   time.Duration `yaml:"timeout"`   // "30s" or seconds; default DefaultHookTimeout
	OnFailure string        `yaml:"onFailure"` // OnFailureWarn (default), OnFailureEndLease or OnFailureExit
}

// argv returns the command line of the hook; dir resolves a relative script file.
func (h *Hook) argv(dir string) []string {
	s := strings.TrimSpace(h.Script)
	file := ""
	if !strings.ContainsAny(s, " \t\n;|&$") && s != "" {
		p := s
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			file = p
		}
	}
	interp := h.Exec
	if interp == "" {
		interp = "/bin/sh"
		if file != "" && strings.HasSuffix(file, ".py") {
			interp = "python3"
		}
	}
	if file != "" {
		return []string{interp, file}
	}
	return []string{interp, "-c", h.Script}
}

// decodeHooks decodes the hooks: mapping strictly, adding its problems to errs.
func decodeHooks(file string, n *yaml.Node, errs yamlconf.Errors) (Hooks, yamlconf.Errors) {
	var h Hooks
	var derrs yamlconf.Errors
	if err := yamlconf.Decode(file, n, "hooks", &h); errors.As(err, &derrs) {
		errs = append(errs, derrs...)
	} else if err != nil {
		errs.Add(file, n, "hooks", "%v", err)
	}
	for _, x := range []struct {
		name string
		h    *Hook
	}{{HookBeforeLease, h.BeforeLease}, {HookAfterLease, h.AfterLease}} {
		if x.h == nil {
			continue
		}
		hn := yamlconf.ValueNode(n, x.name)
		path := "hooks." + x.name
		if strings.TrimSpace(x.h.Script) == "" && key(hn, "script") != nil {
			errs.Add(file, yamlconf.ValueNode(hn, "script"), path+".script", "empty script")
		}
		if x.h.Timeout < 0 {
			errs.Add(file, yamlconf.ValueNode(hn, "timeout"), path+".timeout", "timeout must not be negative")
		}
		if x.h.Timeout == 0 {
			x.h.Timeout = DefaultHookTimeout
		}
		switch x.h.OnFailure {
		case "":
			x.h.OnFailure = OnFailureWarn
		case OnFailureWarn, OnFailureEndLease, OnFailureExit:
		default:
			errs.Add(file, yamlconf.ValueNode(hn, "onFailure"), path+".onFailure",
				"onFailure is %q; want %q, %q or %q", x.h.OnFailure, OnFailureWarn, OnFailureEndLease, OnFailureExit)
		}
		if strings.ContainsRune(x.h.Exec, 0) || key(hn, "exec") != nil && strings.TrimSpace(x.h.Exec) == "" {
			errs.Add(file, yamlconf.ValueNode(hn, "exec"), path+".exec", "want an interpreter such as /bin/bash or python3, got %q", x.h.Exec)
		}
	}
	return h, errs
}

// hookRun is one run of a hook for a lease.
type hookRun struct {
	name  string // HookBeforeLease or HookAfterLease
	hook  *Hook
	lease *api.Lease
	env   []string                    // extra environment (JSN_*)
	out   func(h api.HookOutput)      // each chunk of output, and the final Done record
	log   *slog.Logger                // the exporter's log
	dir   string                      // working directory; "" = the exporter's
	onPID func(pid int, running bool) // optional, for tests
}

// hookEnv returns the environment of a hook: the exporter's own without JSN_* session
// variables, then set (KEY=value), with the directory of a binary named jsn first on PATH so
// scripts can call `jsn power off`, and jBin (a directory holding a `j`, see JCommand) before it
// unless "", so that Jumpstarter's `j power off` works too.
func hookEnv(set []string, jBin string) []string {
	var out []string
	path := os.Getenv("PATH")
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "JSN_") || strings.HasPrefix(kv, "PATH=") {
			continue
		}
		out = append(out, kv)
	}
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "jsn" {
		path = filepath.Dir(exe) + string(os.PathListSeparator) + path
	}
	if jBin != "" {
		path = jBin + string(os.PathListSeparator) + path
	}
	out = append(out, "PATH="+path)
	return append(out, set...)
}

// maxHookChunk bounds one HookOutput message.
const maxHookChunk = 16 << 10

// run runs the hook to its end or timeout (its process group is killed then) and returns an
// error describing a failure: a non-zero exit, a signal or the timeout.
func (r *hookRun) run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.hook.Timeout)
	defer cancel()
	argv := r.hook.argv(r.dir)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = r.env
	cmd.Dir = r.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("%s hook: %w", r.name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("%s hook: %w", r.name, err)
	}
	log := r.log.With("hook", r.name, "lease", r.lease.ID)
	log.Info("hook started")
	if err := cmd.Start(); err != nil {
		r.done(-1)
		return fmt.Errorf("%s hook: %w", r.name, err)
	}
	if r.onPID != nil {
		r.onPID(cmd.Process.Pid, true)
	}
	var wg sync.WaitGroup
	for _, p := range []struct {
		name string
		rd   io.Reader
	}{{"stdout", stdout}, {"stderr", stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.pump(log, p.name, p.rd)
		}()
	}
	// Kill the whole process group on timeout: the script's children too, so the pipes close.
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	wg.Wait()
	err = cmd.Wait()
	stop()
	if r.onPID != nil {
		r.onPID(cmd.Process.Pid, false)
	}
	code := cmd.ProcessState.ExitCode()
	r.done(code)
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("%s hook: timed out after %v", r.name, r.hook.Timeout)
	case ctx.Err() != nil:
		err = fmt.Errorf("%s hook: %w", r.name, context.Cause(ctx))
	case err != nil:
		err = fmt.Errorf("%s hook: %w", r.name, err)
	}
	if err != nil {
		log.Warn("hook failed", "err", err, "exit_code", code)
		return err
	}
	log.Info("hook done")
	return nil
}

// pump forwards one output stream of the hook, line by line where lines are short, to the log
// and to out.
func (r *hookRun) pump(log *slog.Logger, stream string, rd io.Reader) {
	buf := make([]byte, maxHookChunk)
	var pending []byte
	flush := func(b []byte) {
		if len(b) == 0 {
			return
		}
		log.Info("hook output", "stream", stream, "line", string(bytes.TrimRight(b, "\n")))
		r.out(api.HookOutput{Lease: r.lease.ID, Hook: r.name, Stream: stream, Data: append([]byte(nil), b...)})
	}
	for {
		n, err := rd.Read(buf)
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			flush(pending[:i+1])
			pending = pending[i+1:]
		}
		if len(pending) >= maxHookChunk {
			flush(pending)
			pending = nil
		}
		if err != nil {
			flush(pending)
			return
		}
	}
}

func (r *hookRun) done(code int) {
	c := code
	r.out(api.HookOutput{Lease: r.lease.ID, Hook: r.name, Done: true, ExitCode: &c})
}
