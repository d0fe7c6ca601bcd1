package network

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// SSHInterface is the interface of ssh.Wrapper nodes: the ssh settings of a board whose `tcp`
// child reaches its ssh port. `jsn ssh NODE` uses them.
const SSHInterface = "jsn.ssh.v1"

// DefaultSSHCommand is Jumpstarter's default ssh_command.
const DefaultSSHCommand = "ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"

func init() {
	driver.MustRegister(driver.Info{
		Type:      "network.SSH",
		Interface: SSHInterface,
		Doc:       "ssh to the board: the user, command and key `jsn ssh` uses, through the tcp child",
		New:       NewSSHWrapper,
		Aliases:   []string{"jumpstarter_driver_ssh.driver.SSHWrapper"},
	})
}

// SSHWrapper is the network.SSH driver (Jumpstarter's SSHWrapper): it holds how to ssh to the
// board, and its `tcp` child (a network.TCP node or a ref to one) reaches the board's port 22.
// `jsn ssh NODE` forwards a local port to the tcp child and runs ssh_command there as
// default_username with the identity.
//
// Config (Jumpstarter's keys):
//
//	default_username: root   # the user when the command line names none
//	ssh_command: ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
//	ssh_identity: ""         # a private key (PEM text), given to ssh as -i
//	ssh_identity_file: ""    # or a file holding it, read when a client asks
//
// children: tcp (required).
type SSHWrapper struct {
	DefaultUsername string `yaml:"default_username"`
	SSHCommand      string `yaml:"ssh_command"`
	SSHIdentity     string `yaml:"ssh_identity"`
	SSHIdentityFile string `yaml:"ssh_identity_file"`

	dir string
	tcp Device
}

// NewSSHWrapper is the network.SSH constructor: defaults only, no side effects.
func NewSSHWrapper(env driver.Env) driver.Driver {
	return &SSHWrapper{SSHCommand: DefaultSSHCommand, dir: env.Dir}
}

// Validate checks the config.
func (s *SSHWrapper) Validate() error {
	var errs []error
	if s.SSHIdentity != "" && s.SSHIdentityFile != "" {
		errs = append(errs, driver.FieldErrorf("ssh_identity_file", "give ssh_identity or ssh_identity_file, not both"))
	}
	if len(strings.Fields(s.SSHCommand)) == 0 {
		errs = append(errs, driver.FieldErrorf("ssh_command", "must not be empty"))
	}
	if strings.ContainsAny(s.DefaultUsername, " \t\n@\x00") {
		errs = append(errs, driver.FieldErrorf("default_username", "not a user name: %q", s.DefaultUsername))
	}
	return errors.Join(errs...)
}

// UseChildren takes the tcp child.
func (s *SSHWrapper) UseChildren(children map[string]driver.Driver) error {
	c, ok := children["tcp"]
	if !ok {
		return fmt.Errorf(`a "tcp" child is required: a network.TCP node (or a ref to one) reaching the board's ssh port`)
	}
	d, ok := c.(Device)
	if !ok || d.Kind() != KindTCP {
		return fmt.Errorf(`child "tcp" must be a tcp network driver (network.TCP), got %T`, c)
	}
	s.tcp = d
	return nil
}

func (s *SSHWrapper) Open(ctx context.Context) error  { return nil }
func (s *SSHWrapper) Reset(ctx context.Context) error { return nil }
func (s *SSHWrapper) Close() error                    { return nil }

// Identity returns the private key: ssh_identity, or the content of ssh_identity_file.
func (s *SSHWrapper) Identity() (string, error) {
	if s.SSHIdentityFile == "" {
		return s.SSHIdentity, nil
	}
	p := s.SSHIdentityFile
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.dir, p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", wire.Errorf(wire.FailedPrecondition, "ssh_identity_file: %v", err)
	}
	return string(b), nil
}

// Methods returns the jsn.ssh.v1 method table.
func (s *SSHWrapper) Methods() []driver.Method {
	str := func(name, doc string, f func() (string, error)) driver.Method {
		return driver.Method{Name: name, Doc: doc, Kind: driver.KindCall, Returns: driver.TypeString,
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return f() }}
	}
	return []driver.Method{
		str("default_username", "the user ssh logs in as when none is given", func() (string, error) { return s.DefaultUsername, nil }),
		str("ssh_command", "the ssh program and its options", func() (string, error) { return s.SSHCommand, nil }),
		str("ssh_identity", "the private key ssh uses (empty: the user's own)", s.Identity),
	}
}

var (
	_ driver.ChildUser = (*SSHWrapper)(nil)
	_ driver.Validator = (*SSHWrapper)(nil)
)
