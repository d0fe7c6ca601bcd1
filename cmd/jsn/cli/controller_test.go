package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// jsnEnv runs jsn with extra environment variables.
func jsnEnv(t *testing.T, env []string, args ...string) jsntest.Result {
	t.Helper()
	return jsntest.Run(t, jsntest.Options{Env: append(jsntest.Env(), env...), Timeout: 60 * time.Second}, args...)
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestControllerProcess runs `jsn controller init|run` and `jsn admin …` as an operator would.
func TestControllerProcess(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	work := t.TempDir()
	env := []string{"XDG_CONFIG_HOME=" + filepath.Join(work, "config")}
	port, httpPort := freePort(t), freePort(t)
	endpoint := "nats://127.0.0.1:" + port

	// init: a 0700 directory of 0600 files; the admin config imported and current; re-init refused.
	jsnEnv(t, env, "controller", "init", "--data", data, "--endpoint", endpoint).Want(t, 0)
	if m := mode(t, data); m != 0o700 {
		t.Errorf("data directory: got mode %o, want 700", m)
	}
	files, err := os.ReadDir(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if m := mode(t, filepath.Join(data, f.Name())); m != 0o600 {
			t.Errorf("%s: got mode %o, want 600", f.Name(), m)
		}
	}
	if m := mode(t, filepath.Join(work, "config", "jsn", "clients", "admin.yaml")); m != 0o600 {
		t.Errorf("imported admin config: got mode %o, want 600", m)
	}
	r := jsnEnv(t, env, "controller", "init", "--data", data)
	if r.Code == 0 || !strings.Contains(r.Stderr, "already initialised") {
		t.Errorf("re-init: got exit %d, stderr %q; want a failure saying already initialised", r.Code, r.Stderr)
	}

	// run in the background until /healthz answers.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := jsntest.Command(ctx, t, "controller", "run", "--data", data, "--listen", "127.0.0.1:"+port, "--http", "127.0.0.1:"+httpPort)
	run.Env = append(run.Env, env...)
	var runErr bytes.Buffer
	run.Stderr = &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	defer func() {
		if run.ProcessState == nil {
			_ = run.Process.Kill()
			<-exited
		}
	}()
	get := func(path string) (string, bool) {
		resp, err := http.Get("http://127.0.0.1:" + httpPort + path)
		if err != nil {
			return "", false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.StatusCode == http.StatusOK
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		select {
		case err := <-exited: // a port taken since freePort, say
			t.Fatalf("jsn controller run ended before /healthz answered: %v\nstderr:\n%s", err, runErr.String())
		default:
		}
		if _, ok := get("/healthz"); !ok {
			return errors.New("/healthz does not answer 200 yet")
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(data, "admin.identity")); !os.IsNotExist(err) {
		t.Errorf("admin.identity after the first run: got %v, want it removed", err)
	}

	// admin create|list|delete with the current (admin) client config.
	e1 := filepath.Join(work, "e1.yaml")
	jsnEnv(t, env, "admin", "create", "exporter", "e1", "-l", "board=x", "--out", e1).Want(t, 0)
	alice := filepath.Join(work, "alice.yaml")
	// An existing world-readable file is made private; a symbolic link is refused.
	if err := os.WriteFile(alice, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(alice, 0o644); err != nil {
		t.Fatal(err)
	}
	target, link := filepath.Join(work, "target"), filepath.Join(work, "link.yaml")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	r = jsnEnv(t, env, "admin", "create", "client", "mallory", "--out", link)
	r.Want(t, 1)
	if !strings.Contains(r.Stderr, "symbolic link") {
		t.Errorf("create --out a symbolic link: got %q, want it refused", r.Stderr)
	}
	if b, _ := os.ReadFile(target); len(b) != 0 {
		t.Errorf("the symbolic link's target got %d bytes of credentials", len(b))
	}
	jsnEnv(t, env, "admin", "create", "client", "alice", "--allow", "power.*", "--out", alice).Want(t, 0)
	for _, f := range []string{e1, alice} {
		if m := mode(t, f); m != 0o600 {
			t.Errorf("%s: got mode %o, want 600", f, m)
		}
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), endpoint) || !strings.Contains(string(b), "BEGIN NATS USER JWT") {
			t.Errorf("%s: got\n%s\nwant the endpoint %s and credentials", f, b, endpoint)
		}
	}
	r = jsnEnv(t, env, "admin", "list", "client")
	r.Want(t, 0)
	if !strings.Contains(r.Stdout, "alice") || !strings.Contains(r.Stdout, "power.*") {
		t.Errorf("admin list client: got %q, want alice with power.*", r.Stdout)
	}
	r = jsnEnv(t, env, "admin", "list", "exporter")
	r.Want(t, 0)
	if !strings.Contains(r.Stdout, "e1") || !strings.Contains(r.Stdout, "board=x") {
		t.Errorf("admin list exporter: got %q, want e1 with board=x", r.Stdout)
	}

	// alice connects; after delete she is disconnected and refused.
	b, err := os.ReadFile(alice)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := client.ParseConfig(alice, b)
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	conn, err := bus.ConnectWith(cctx, cfg.Endpoint, bus.ConnectOptions{Name: "alice", Creds: []byte(cfg.Credentials), CA: []byte(cfg.CA)})
	if err != nil {
		t.Fatalf("alice connect: %v", err)
	}
	defer conn.Close()
	list := func() error {
		body, _ := wire.Marshal(api.ListExportersRequest{})
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		defer rcancel()
		_, err := conn.Request(rctx, api.ClientSubject("alice", api.VerbExportersList), nil, body)
		return err
	}
	if err := list(); err != nil {
		t.Fatalf("alice list exporters: %v", err)
	}
	jsnEnv(t, env, "admin", "delete", "client", "alice").Want(t, 0)
	testkit.CheckFor(t, 30*time.Second, func() error {
		if list() == nil {
			return errors.New("alice's connection still lists exporters after her deletion")
		}
		return nil
	})
	if c, err := bus.ConnectWith(cctx, cfg.Endpoint, bus.ConnectOptions{Name: "alice", Creds: []byte(cfg.Credentials), CA: []byte(cfg.CA)}); err == nil {
		c.Close()
		t.Error("deleted client alice: new connection accepted")
	}
	r = jsnEnv(t, env, "admin", "list", "client")
	if strings.Contains(r.Stdout, "alice") {
		t.Errorf("admin list client after delete: got %q, want no alice", r.Stdout)
	}

	metrics, ok := get("/metrics")
	if !ok {
		t.Fatal("/metrics failed")
	}
	for _, g := range []string{"jsn_exporters_registered", "jsn_exporters_online", "jsn_leases_active", "jsn_leases_queued", "jsn_controller_leader 1"} {
		if !strings.Contains(metrics, g) {
			t.Errorf("/metrics: no %q in\n%s", g, metrics)
		}
	}

	// SIGTERM: exit 0, promptly.
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("controller after SIGTERM: %v\n%s", err, runErr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("controller still running 15s after SIGTERM\n%s", runErr.String())
	}
}

// TestControllerResetAdminProcess: an operator who lost the admin config stops the controller,
// runs `jsn controller reset-admin`, starts it again, and administers the lab with the new one.
func TestControllerResetAdminProcess(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	work := t.TempDir()
	env := []string{"XDG_CONFIG_HOME=" + filepath.Join(work, "config")}
	port := freePort(t)
	r := jsnEnv(t, env, "controller", "reset-admin", "--data", data)
	if r.Code == 0 || !strings.Contains(r.Stderr, "controller init") {
		t.Errorf("reset-admin before init: got exit %d, stderr %q; want a failure pointing to init", r.Code, r.Stderr)
	}
	jsnEnv(t, env, "controller", "init", "--data", data, "--endpoint", "nats://127.0.0.1:"+port).Want(t, 0)
	imported := filepath.Join(work, "config", "jsn", "clients", "admin.yaml")
	before, _ := os.ReadFile(imported)
	if err := os.Remove(imported); err != nil { // lost
		t.Fatal(err)
	}
	r = jsnEnv(t, env, "controller", "reset-admin", "--data", data)
	r.Want(t, 0)
	if !strings.Contains(r.Stdout, "takes effect when the controller (re)starts") {
		t.Errorf("reset-admin: got %q, want it to say when the config takes effect", r.Stdout)
	}
	after, err := os.ReadFile(imported)
	if err != nil || bytes.Equal(after, before) || !strings.Contains(string(after), "nats://127.0.0.1:"+port) {
		t.Fatalf("imported admin config after reset: %v\n%s\nwant a new config with the same endpoint", err, after)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := jsntest.Command(ctx, t, "controller", "run", "--data", data, "--listen", "127.0.0.1:"+port)
	run.Env = append(run.Env, env...)
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = run.Process.Kill(); _ = run.Wait() }()
	testkit.CheckFor(t, 30*time.Second, func() error {
		if r := jsnEnv(t, env, "admin", "list", "client"); r.Code != 0 {
			return fmt.Errorf("jsn admin list client: exit %d: %s", r.Code, r.Stderr)
		}
		return nil
	})
}
