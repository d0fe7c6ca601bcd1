package network

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/internal/testkit"
)

// inCI reports whether the run is CI's, where a missing tool is a failure, not a skip.
func inCI() bool { return os.Getenv("CI") == "true" || os.Getenv("JSN_CI") == "1" }

// needFor skips (or, in CI, fails) with why.
func needFor(t *testing.T, why string) {
	t.Helper()
	if inCI() {
		t.Fatalf("CI: %s", why)
	}
	t.Skip(why)
}

// opensshd is a real OpenSSH sshd (Debian's /usr/sbin/sshd) on a free loopback port, run as a
// process with its own host key, config and authorized_keys in a temp dir.
type opensshd struct {
	port    int
	keyFile string // the authorized client key
	badKey  string // a key sshd does not know
}

func startOpenSSHD(t *testing.T) *opensshd {
	t.Helper()
	const sshd = "/usr/sbin/sshd"
	if os.Geteuid() != 0 {
		needFor(t, "sshd needs root (it changes user and uses /run/sshd)")
	}
	if _, err := os.Stat(sshd); err != nil {
		needFor(t, "no "+sshd+" (Debian: openssh-server)")
	}
	for _, tool := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			needFor(t, "no "+tool+" on PATH (Debian: openssh-client)")
		}
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation dir
		t.Fatal(err)
	}
	dir := t.TempDir()
	keygen := func(name string) string {
		p := filepath.Join(dir, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		return p
	}
	hostKey, userKey, badKey := keygen("host"), keygen("user"), keygen("bad")
	pub, err := os.ReadFile(userKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authKeys, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s
AuthorizedKeysFile %s
PidFile %s
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AcceptEnv LANG
`, port, hostKey, authKeys, filepath.Join(dir, "sshd.pid"))), 0o600); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	cmd := exec.Command(sshd, "-D", "-e", "-f", conf)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("sshd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("sshd log:\n%s", log.String())
		}
	})
	testkit.CheckFor(t, 10*time.Second, func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("sshd exited: %v", err)
		default:
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		return c.Close()
	})
	return &opensshd{port: port, keyFile: userKey, badKey: badKey}
}

// TestSSHWrapperOpenSSH: `jsn ssh` through a network.SSH node (its tcp child → exporter → NATS)
// runs a command on a real OpenSSH sshd with the node's key; a wrong key is refused.
func TestSSHWrapperOpenSSH(t *testing.T) {
	srv := startOpenSSHD(t)
	conf := func(key string) string {
		return fmt.Sprintf(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: sshdlab}
export:
  ssh:
    type: jumpstarter_driver_ssh.driver.SSHWrapper
    config:
      default_username: root
      ssh_command: ssh -F /dev/null -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
      ssh_identity_file: %s
    children:
      tcp:
        type: jumpstarter_driver_network.driver.TcpNetwork
        config: {host: 127.0.0.1, port: %d}
`, key, srv.port)
	}
	s := clitest.Start(t, conf(srv.keyFile))
	r := s.Run("ssh", "--", "echo", "hello from $(id -un)", ";", "exit", "3")
	r.Want(t, 3)
	if r.Stdout != "hello from root\n" {
		t.Fatalf("stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
	r = s.Run("ssh", "--", "true")
	r.Want(t, 0)

	bad := clitest.Start(t, conf(srv.badKey))
	r = bad.Run("ssh", "--", "echo", "should not run")
	r.Want(t, 255)
	if r.Stdout != "" || !strings.Contains(r.Stderr, "Permission denied (publickey)") {
		t.Fatalf("wrong key: stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
}
