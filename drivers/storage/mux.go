package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// muxGate refuses storage access unless m is switched to the host.
func muxGate(m Mux) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		side, err := m.Status(ctx)
		if err != nil {
			return err
		}
		switch side {
		case Host:
			return nil
		case DUT:
			return wire.Errorf(wire.FailedPrecondition, "storage is switched to the DUT; run `jsn storage host` first")
		}
		return wire.Errorf(wire.FailedPrecondition, "storage is switched %s; run `jsn storage host` first", side)
	}
}

func init() {
	driver.MustRegister(driver.Info{
		Type:      "storage.MockMux",
		Interface: MuxInterface,
		Doc:       "file-backed storage mux with no hardware",
		New:       NewMockMux,
		Aliases:   []string{"jumpstarter_driver_opendal.driver.MockStorageMux"},
	})
}

// MockMux is a storage mux without hardware: the "card" is a file, and host/dut/off only change
// the state that gates storage access.
//
// Config:
//
//	path: card.img     # the card (default: a file in a fresh temporary directory, removed on close)
//	size: 64MiB        # create the card sparse with this size if absent
//	cache_dir: ...     # image cache (default DefaultCacheDir())
//	cache_max: 10GiB   # most bytes the cache keeps, least recently used evicted; 0 = unlimited
//	url_allow: [...]   # where write_url may download from (see storage.File)
type MockMux struct {
	Path     string   `yaml:"path"`
	CacheDir string   `yaml:"cache_dir"`
	CacheMax string   `yaml:"cache_max"`
	Size     string   `yaml:"size"`
	URLAllow []string `yaml:"url_allow"`

	dir    string
	tmpDir string // made by Open when Path is empty
	st     store

	mu   sync.Mutex
	side Side // guarded by mu
}

// NewMockMux is the storage.MockMux constructor: defaults only, no side effects.
func NewMockMux(env driver.Env) driver.Driver {
	m := &MockMux{dir: env.Dir, st: store{log: env.Log}, side: Off}
	m.st.gate = muxGate(m)
	return m
}

// Validate checks the config.
func (m *MockMux) Validate() error {
	path := m.Path
	if path == "" {
		path = "-" // placeholder until Open makes the temporary card
	}
	return configure(&m.st, m.dir, path, m.CacheDir, m.CacheMax, m.Size, m.URLAllow)
}

// Open makes the card file and trims the image cache to cache_max.
func (m *MockMux) Open(ctx context.Context) error {
	if err := m.Validate(); err != nil {
		return err
	}
	m.st.trimCache()
	if m.Path == "" {
		d, err := os.MkdirTemp("", "jsn-mockmux-")
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		m.tmpDir = d
		m.st.path = filepath.Join(d, "card.img")
	}
	if err := m.st.ensure(); err != nil {
		return fmt.Errorf("open %s: %w", m.st.path, err)
	}
	return nil
}

// Reset stops a running transfer and switches the mux off.
func (m *MockMux) Reset(ctx context.Context) error {
	err := m.st.cancel(ctx)
	return errors.Join(err, m.set(Off))
}

// Close stops a running transfer and removes a temporary card.
func (m *MockMux) Close() error {
	err := m.st.cancel(context.Background())
	if m.tmpDir != "" {
		err = errors.Join(err, os.RemoveAll(m.tmpDir))
	}
	return err
}

// Methods returns the jsn.storagemux.v1 method table.
func (m *MockMux) Methods() []driver.Method {
	return append(MuxMethods(m, Options{}), Methods(&m.st, Options{})...)
}

func (m *MockMux) set(s Side) error {
	m.mu.Lock()
	old := m.side
	m.side = s
	m.mu.Unlock()
	if old != s {
		m.st.log.Info("storage switched", "from", string(old), "to", string(s))
	}
	return nil
}

// Host connects the card to the exporter.
func (m *MockMux) Host(ctx context.Context) error { return m.switchTo("host", Host) }

// DUT connects the card to the device under test.
func (m *MockMux) DUT(ctx context.Context) error { return m.switchTo("dut", DUT) }

// Off disconnects the card.
func (m *MockMux) Off(ctx context.Context) error { return m.switchTo("off", Off) }

// switchTo switches the card to side unless a transfer runs.
func (m *MockMux) switchTo(op string, side Side) error {
	return m.st.exclusive(op, func() error { return m.set(side) })
}

// Status returns the side the card is on.
func (m *MockMux) Status(ctx context.Context) (Side, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.side, nil
}

var (
	_ Device           = (*store)(nil)
	_ Mux              = (*MockMux)(nil)
	_ driver.Driver    = (*MockMux)(nil)
	_ driver.Validator = (*MockMux)(nil)
	_ driver.Methoder  = (*MockMux)(nil)
)
