package network

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/exporter"
)

// TestSSHWrapper: a Jumpstarter SSHWrapper node gives `jsn ssh` its user, ssh command and key;
// ssh reaches a real SSH server through the node's tcp child, the exporter and NATS.
func TestSSHWrapper(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client on PATH (Debian: openssh-client)")
	}
	srv := startSSHServer(t)
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: sshlab}
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
`, srv.keyFile, srv.port))
	r := s.Run("ssh", "--", "echo", "user=$JSN_SSH_USER")
	r.Want(t, 0)
	if r.Stdout != "user=root\n" {
		t.Fatalf("stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
	r = s.Run("ssh", "admin@ssh", "--", "echo", "user=$JSN_SSH_USER;", "exit", "4")
	r.Want(t, 4)
	if r.Stdout != "user=admin\n" {
		t.Fatalf("stdout %q", r.Stdout)
	}
}

func TestSSHWrapperNeedsTCP(t *testing.T) {
	_, err := exporter.ParseConfig("x.yaml", []byte(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
export:
  ssh:
    type: jumpstarter_driver_ssh.driver.SSHWrapper
    config: {ssh_identity: k, ssh_identity_file: f}
  ssh2:
    type: jumpstarter_driver_ssh.driver.SSHWrapper
    children:
      tcp: {type: network.Unix, config: {path: /tmp/x.sock}}
`))
	got := fmt.Sprint(err)
	for _, want := range []string{"give ssh_identity or ssh_identity_file, not both", `child "tcp" must be a tcp network driver`} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
}
