package network

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/drivers/drivertest"
)

// sshServer is a real SSH server on loopback, built with x/crypto/ssh: it accepts one client
// key and runs exec requests with sh -c, with JSN_SSH_USER set to the login name.
type sshServer struct {
	port    int
	keyFile string // the client's private key, OpenSSH format, 0600
}

func startSSHServer(t *testing.T) *sshServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	allowed, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(allowed.Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("unknown key")
		},
	}
	cfg.AddHostKey(hostSigner)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	drivertest.Serve(t, ln, func(c net.Conn) { serveSSH(c, cfg) })
	return &sshServer{port: ln.Addr().(*net.TCPAddr).Port, keyFile: keyFile}
}

// serveSSH serves one client connection: session channels with exec requests.
func serveSSH(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		ssh.DiscardRequests(reqs)
	}()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			for req := range creqs {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				var p struct{ Command string }
				if err := ssh.Unmarshal(req.Payload, &p); err != nil {
					req.Reply(false, nil)
					continue
				}
				req.Reply(true, nil)
				cmd := exec.Command("sh", "-c", p.Command)
				cmd.Env = append(os.Environ(), "JSN_SSH_USER="+sc.User())
				cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
				code := 0
				if err := cmd.Run(); err != nil {
					code = 255
					if ee, ok := err.(*exec.ExitError); ok {
						code = ee.ExitCode()
					}
				}
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
				return
			}
		}()
	}
}

func TestCLISSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client on PATH (Debian: openssh-client)")
	}
	srv := startSSHServer(t)
	s := clitest.Start(t, labConfig(fmt.Sprintf("  network: {type: network.TCP, config: {host: 127.0.0.1, port: %d}}\n", srv.port)))
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	sshArgs := []string{"-F", "/dev/null", "-i", srv.keyFile, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=" + knownHosts}

	r := s.Run(append([]string{"ssh", "network", "--"}, append(sshArgs, "echo", "hello")...)...)
	r.Want(t, 0)
	if r.Stdout != "hello\n" {
		t.Fatalf("stdout: got %q, want %q", r.Stdout, "hello\n")
	}
	kh, err := os.ReadFile(knownHosts)
	if err != nil || !strings.HasPrefix(string(kh), "jsn-netlab-network ") {
		t.Fatalf("known_hosts: got %q, %v, want an entry for jsn-netlab-network", kh, err)
	}

	// Second run: the key is known under the alias though the local port is a new one; the
	// user comes from USER@, the exit code from the remote command.
	r = s.Run(append([]string{"ssh", "root@network", "--"}, append(sshArgs, "echo", "user=$JSN_SSH_USER;", "exit", "3")...)...)
	r.Want(t, 3)
	if r.Stdout != "user=root\n" {
		t.Fatalf("stdout: got %q, want %q", r.Stdout, "user=root\n")
	}

	// A changed host key under the same alias is refused (accept-new is not "no").
	otherPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ssh.NewPublicKey(otherPub)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(knownHosts, append([]byte("jsn-netlab-network "), ssh.MarshalAuthorizedKey(other)...), 0o600)
	r = s.Run(append([]string{"ssh", "network", "--"}, append(sshArgs, "echo", "hello")...)...)
	if r.Code != 255 || r.Stdout != "" {
		t.Fatalf("changed host key: got exit %d, stdout %q, want 255 and nothing\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestCLISSHBadInput(t *testing.T) {
	dir := t.TempDir()
	s := clitest.Start(t, labConfig(fmt.Sprintf("  network: {type: network.TCP, config: {host: 127.0.0.1, port: 22}}\n  dns: {type: network.UDP, config: {host: 127.0.0.1, port: 53}}\n  qmp: {type: network.Unix, config: {path: %s/q.sock}}\n", dir)))
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dns"}, 4, "driver dns is udp, want a tcp network driver"},
		{[]string{"a", "b", "--", "x"}, 2, "at most one [USER@]DRIVER"},
		{[]string{"--ssh-command", "/nonexistent/ssh", "network"}, 127, "/nonexistent/ssh"},
		{nil, 4, "several network drivers"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := s.Run(append([]string{"ssh"}, tt.args...)...)
			r.Want(t, tt.code)
			if !strings.Contains(r.Stderr, tt.want) {
				t.Fatalf("stderr: got %q, want it to contain %q", r.Stderr, tt.want)
			}
		})
	}
}

func TestSSHArgv(t *testing.T) {
	tests := []struct {
		user  string
		extra []string
		want  []string
	}{
		{"", nil, []string{"-p", "2200", "-o", "HostKeyAlias=jsn-lab-net", "-o", "StrictHostKeyChecking=accept-new", "-o", "CheckHostIP=no", "127.0.0.1"}},
		{"root", []string{"uname", "-a"}, []string{"-p", "2200", "-o", "HostKeyAlias=jsn-lab-net", "-o", "StrictHostKeyChecking=accept-new", "-o", "CheckHostIP=no", "-l", "root", "127.0.0.1", "uname", "-a"}},
		{"", []string{"-o", "StrictHostKeyChecking=yes", "-oHostKeyAlias=board", "-o", "checkhostip yes"}, []string{"-p", "2200", "127.0.0.1", "-o", "StrictHostKeyChecking=yes", "-oHostKeyAlias=board", "-o", "checkhostip yes"}},
	}
	for _, tt := range tests {
		if got := sshArgv(2200, "jsn-lab-net", tt.user, tt.extra); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("sshArgv(%q, %q): got %q, want %q", tt.user, tt.extra, got, tt.want)
		}
	}
	for _, tt := range []struct{ in, user, drv string }{{"root@dut.net", "root", "dut.net"}, {"net", "", "net"}, {"root@", "root", ""}} {
		if u, d := splitUserDriver(tt.in); u != tt.user || d != tt.drv {
			t.Errorf("splitUserDriver(%q): got %q, %q, want %q, %q", tt.in, u, d, tt.user, tt.drv)
		}
	}
}
