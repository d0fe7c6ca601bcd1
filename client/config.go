package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/clientconfig"
)

// Client config files (distributed mode): who the user is on a controller. The file's schema is
// package clientconfig's, which the controller shares.
const (
	ConfigAPIVersion = clientconfig.APIVersion
	ConfigKind       = clientconfig.Kind

	EnvClientConfig = "JSN_CLIENT_CONFIG" // path of the client config file to use
	EnvEndpoint     = "JSN_ENDPOINT"      // overrides the client config's endpoint
	EnvCreds        = "JSN_CREDS"         // path of a .creds file the bus connection authenticates with

	RoleClient = clientconfig.RoleClient
	RoleAdmin  = clientconfig.RoleAdmin
	RoleViewer = clientconfig.RoleViewer
)

// Config is a client config file: the controller's endpoint and the user's own credentials.
type Config = clientconfig.Config

// ConfigMetadata names the client identity.
type ConfigMetadata = clientconfig.Metadata

// ParseConfig strictly decodes a client config read from file (used in error positions); see
// clientconfig.Parse.
func ParseConfig(file string, data []byte) (*Config, error) { return clientconfig.Parse(file, data) }

// ConfigHome is the directory of jsn's user configuration: $XDG_CONFIG_HOME/jsn, by default
// ~/.config/jsn.
func ConfigHome() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "jsn"), nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("config home: %w", err)
	}
	return filepath.Join(h, ".config", "jsn"), nil
}

// userConfig is $XDG_CONFIG_HOME/jsn/config.yaml.
type userConfig struct {
	CurrentClient string `yaml:"currentClient"`
}

func readUserConfig(home string) (userConfig, error) {
	var uc userConfig
	b, err := os.ReadFile(filepath.Join(home, "config.yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		return uc, nil
	}
	if err != nil {
		return uc, fmt.Errorf("read %s: %w", filepath.Join(home, "config.yaml"), err)
	}
	if err := yaml.Unmarshal(b, &uc); err != nil {
		return uc, fmt.Errorf("read %s: %w", filepath.Join(home, "config.yaml"), err)
	}
	return uc, nil
}

func writeUserConfig(home string, uc userConfig) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	b, err := yaml.Marshal(uc)
	if err != nil {
		return err
	}
	return writePrivate(filepath.Join(home, "config.yaml"), b)
}

// writePrivate writes data to path with mode 0600, atomically.
func writePrivate(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ImportConfig checks a client config and stores it as $XDG_CONFIG_HOME/jsn/clients/<name>.yaml
// (0600, directory 0700). With makeCurrent, or when no client config is current yet, it becomes
// the current one. file is only used in error positions.
func ImportConfig(file string, data []byte, makeCurrent bool) (*Config, string, error) {
	c, err := ParseConfig(file, data)
	if err != nil {
		return nil, "", err
	}
	home, err := ConfigHome()
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(home, "clients")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("import client config: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("import client config: %w", err)
	}
	path := filepath.Join(dir, c.Metadata.Name+".yaml")
	if err := writePrivate(path, data); err != nil {
		return nil, "", fmt.Errorf("import client config: %w", err)
	}
	uc, err := readUserConfig(home)
	if err != nil {
		return nil, "", fmt.Errorf("import client config: %w", err)
	}
	if makeCurrent || uc.CurrentClient == "" {
		uc.CurrentClient = c.Metadata.Name
		if err := writeUserConfig(home, uc); err != nil {
			return nil, "", fmt.Errorf("import client config: %w", err)
		}
	}
	c.File = path
	return c, path, nil
}

// UseConfig makes the imported client config name the current one.
func UseConfig(name string) error {
	if !wire.ValidName(name) {
		return fmt.Errorf("use client config: %w: invalid name %q", ErrInvalidArgument, name)
	}
	home, err := ConfigHome()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(home, "clients", name+".yaml")); err != nil {
		return fmt.Errorf("use client config %s: %w: not imported (jsn config client list shows those that are)", name, ErrNotFound)
	}
	uc, err := readUserConfig(home)
	if err != nil {
		return fmt.Errorf("use client config: %w", err)
	}
	uc.CurrentClient = name
	if err := writeUserConfig(home, uc); err != nil {
		return fmt.Errorf("use client config: %w", err)
	}
	return nil
}

// ConfigEntry is one imported client config.
type ConfigEntry struct {
	Name     string `json:"name" yaml:"name"`
	Endpoint string `json:"endpoint" yaml:"endpoint"`
	Role     string `json:"role" yaml:"role"`
	Current  bool   `json:"current" yaml:"current"`
	Path     string `json:"path" yaml:"path"`
	Err      string `json:"error,omitempty" yaml:"error,omitempty"` // why the file does not load
}

// ListConfigs lists the imported client configs by name.
func ListConfigs() ([]ConfigEntry, error) {
	home, err := ConfigHome()
	if err != nil {
		return nil, err
	}
	uc, err := readUserConfig(home)
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(home, "clients", "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []ConfigEntry
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		e := ConfigEntry{Name: name, Path: f, Current: name == uc.CurrentClient}
		if c, err := LoadConfigFile(f); err != nil {
			e.Err = err.Error()
		} else {
			e.Endpoint, e.Role = c.Endpoint, c.Role
		}
		out = append(out, e)
	}
	return out, nil
}

// LoadConfigFile loads the client config file at path.
func LoadConfigFile(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load client config: %w", err)
	}
	return ParseConfig(path, b)
}

// ErrNoClientConfig is returned by LoadConfig when no client config is given, named by
// $JSN_CLIENT_CONFIG or current.
var ErrNoClientConfig = errors.New("no client config: import one with `jsn config client import FILE`, " +
	"or set " + EnvClientConfig)

// LoadConfig loads the client config file, or if "" the one $JSN_CLIENT_CONFIG names, or the
// current one ($XDG_CONFIG_HOME/jsn/config.yaml names it). $JSN_ENDPOINT overrides its endpoint.
func LoadConfig(file string) (*Config, error) {
	if file == "" {
		file = os.Getenv(EnvClientConfig)
	}
	if file == "" {
		home, err := ConfigHome()
		if err != nil {
			return nil, err
		}
		uc, err := readUserConfig(home)
		if err != nil {
			return nil, fmt.Errorf("load client config: %w", err)
		}
		if uc.CurrentClient == "" {
			return nil, ErrNoClientConfig
		}
		if !wire.ValidName(uc.CurrentClient) {
			return nil, fmt.Errorf("load client config: %s: invalid currentClient %q", filepath.Join(home, "config.yaml"), uc.CurrentClient)
		}
		file = filepath.Join(home, "clients", uc.CurrentClient+".yaml")
	}
	c, err := LoadConfigFile(file)
	if err != nil {
		return nil, err
	}
	if e := os.Getenv(EnvEndpoint); e != "" {
		c.Endpoint = e
	}
	return c, nil
}
