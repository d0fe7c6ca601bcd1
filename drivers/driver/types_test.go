package driver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Test-only driver types, registered once for the package's tests.

type serialCfg struct {
	Device   string `yaml:"device" jsn:"required"`
	Baudrate int    `yaml:"baudrate"`
}

type Embedded struct {
	Label string `yaml:"label"`
}

// thing has a config field of every supported kind.
type thing struct {
	Embedded
	Name     string            `yaml:"name" jsn:"required"`
	Port     int               `yaml:"port"`
	Small    int8              `yaml:"small"`
	U16      uint16            `yaml:"u16"`
	U64      uint64            `yaml:"u64"`
	I64      int64             `yaml:"i64"`
	Ratio    float64           `yaml:"ratio"`
	F32      float32           `yaml:"f32"`
	On       bool              `yaml:"on,omitempty"`
	Timeout  time.Duration     `yaml:"timeout"`
	Tags     []string          `yaml:"tags"`
	Env      map[string]int    `yaml:"env"`
	Serial   serialCfg         `yaml:"serial"`
	Serials  []serialCfg       `yaml:"serials"`
	Ptr      *int              `yaml:"ptr"`
	Opt      *serialCfg        `yaml:"opt"`
	Free     any               `yaml:"free"`
	Raw      *yaml.Node        `yaml:"raw"`
	Labels   map[string]string `yaml:"labels"`
	NoTag    string            // exported without a yaml tag: not config
	internal string            //nolint:unused // unexported: not config
}

func (*thing) Open(context.Context) error  { return nil }
func (*thing) Reset(context.Context) error { return nil }
func (*thing) Close() error                { return nil }

func (t *thing) Validate() error {
	var errs []error
	if t.Port < 0 {
		errs = append(errs, FieldErrorf("port", "must not be negative, got %d", t.Port))
	}
	if t.Serial.Baudrate == 1 {
		errs = append(errs, FieldErrorf("serial.baudrate", "1 baud is too slow"))
	}
	if t.Name == "invalid" {
		errs = append(errs, errors.New("name and port do not go together"))
	}
	return errors.Join(errs...)
}

func (t *thing) Methods() []Method {
	return []Method{
		{Name: "on", Doc: "switch on", Kind: KindCall, Call: func(context.Context, Args) (any, error) { return nil, nil }},
		{Name: "read", Kind: KindServerStream, Returns: TypeReading,
			Stream: func(context.Context, Args, func(any) error) error { return nil }},
		{Name: "run", Kind: KindCall, Args: []Arg{{Name: "cmd", Type: TypeString}, {Name: "timeout", Type: TypeDuration, Optional: true}},
			Returns: TypeInt, Call: func(context.Context, Args) (any, error) { return int64(0), nil }},
	}
}

// events records life-cycle calls of rec drivers, in order.
var events struct {
	mu   sync.Mutex
	list []string
}

func record(s string) {
	events.mu.Lock()
	defer events.mu.Unlock()
	events.list = append(events.list, s)
}

func takeEvents() []string {
	events.mu.Lock()
	defer events.mu.Unlock()
	out := events.list
	events.list = nil
	return out
}

// rec records Open/Reset/Close as "open path" etc., failing where its config says.
type rec struct {
	path string
	Fail string `yaml:"fail"` // "open", "reset" or "close"
}

func (r *rec) do(op string) error {
	record(op + " " + r.path)
	if r.Fail == op {
		return fmt.Errorf("%s broke", op)
	}
	return nil
}

func (r *rec) Open(context.Context) error  { return r.do("open") }
func (r *rec) Reset(context.Context) error { return r.do("reset") }
func (r *rec) Close() error                { return r.do("close") }

// parent builds two rec children, "a" and "b".
type parent struct {
	rec
	kids []Child
}

func (p *parent) Children() []Child { return p.kids }

type noConfig int

func (*noConfig) Open(context.Context) error  { return nil }
func (*noConfig) Reset(context.Context) error { return nil }
func (*noConfig) Close() error                { return nil }

// badMethods declares a method without its handler and a duplicate.
type badMethods struct{ noConfig }

func (*badMethods) Methods() []Method {
	call := func(context.Context, Args) (any, error) { return nil, nil }
	return []Method{
		{Name: "x", Kind: KindCall},
		{Name: "y", Kind: KindCall, Call: call},
		{Name: "y", Kind: KindCall, Call: call},
	}
}

// envs records the Env of every test.EnvProbe constructed.
var envs struct {
	mu   sync.Mutex
	list []Env
}

func init() {
	MustRegister(Info{Type: "test.Thing", Interface: "jsn.test.v1", Doc: "a thing with every kind of field",
		New: func(Env) Driver { return &thing{} }, Aliases: []string{"jumpstarter_driver_test.driver.Thing"}})
	MustRegister(Info{Type: "test.Rec", Doc: "records its life cycle",
		New: func(env Env) Driver { return &rec{path: env.Path} }})
	MustRegister(Info{Type: "test.Parent", Doc: "builds children a and b",
		New: func(env Env) Driver {
			return &parent{rec: rec{path: env.Path}, kids: []Child{
				{Name: "a", Type: "test.Rec", Driver: &rec{path: env.Path + ".a"}},
				{Name: "b", Type: "test.Rec", Driver: &rec{path: env.Path + ".b"}},
			}}
		}})
	MustRegister(Info{Type: "test.NoConfig", New: func(Env) Driver { return new(noConfig) }})
	MustRegister(Info{Type: "test.BadMethods", New: func(Env) Driver { return new(badMethods) }})
	MustRegister(Info{Type: "test.Reg", New: func(Env) Driver { return new(noConfig) }, Aliases: []string{"reg.driver.Reg"}})
	MustRegister(Info{Type: "test.EnvProbe", New: func(env Env) Driver {
		envs.mu.Lock()
		defer envs.mu.Unlock()
		envs.list = append(envs.list, env)
		return new(noConfig)
	}})
	MustRegister(Info{Type: "test.Proxy", Ref: true, Aliases: []string{"jumpstarter_driver_test.driver.Proxy"}})
}
