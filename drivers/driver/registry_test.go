package driver

import (
	"slices"
	"sort"
	"strings"
	"testing"
)

func newNoConfig(Env) Driver { return new(noConfig) }

func TestMustRegisterPanics(t *testing.T) {
	for _, tt := range []struct {
		name string
		info Info
		want string
	}{
		{"empty type", Info{New: newNoConfig}, "empty Type"},
		{"nil new", Info{Type: "test.NilNew"}, "nil New"},
		{"duplicate type", Info{Type: "test.Reg", New: newNoConfig}, `"test.Reg" already registered`},
		{"duplicate alias", Info{Type: "test.Reg2", New: newNoConfig, Aliases: []string{"reg.driver.Reg"}},
			`"reg.driver.Reg" already registered by "test.Reg"`},
		{"alias equal to a type", Info{Type: "test.Reg3", New: newNoConfig, Aliases: []string{"test.Reg"}}, "already registered"},
		{"alias twice", Info{Type: "test.Reg4", New: newNoConfig, Aliases: []string{"x.y", "x.y"}}, "already registered"},
		{"empty alias", Info{Type: "test.Reg5", New: newNoConfig, Aliases: []string{""}}, "empty alias"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				s, _ := r.(string)
				if !strings.Contains(s, tt.want) {
					t.Errorf("got panic %v, want one containing %q", r, tt.want)
				}
			}()
			MustRegister(tt.info)
		})
	}
	// A failed registration leaves nothing behind.
	for _, n := range []string{"test.Reg2", "test.Reg3", "test.Reg4", "x.y", "test.NilNew"} {
		if _, ok := Lookup(n); ok {
			t.Errorf("Lookup(%q) found a type whose registration panicked", n)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, name := range []string{"test.Thing", "jumpstarter_driver_test.driver.Thing"} {
		info, ok := Lookup(name)
		if !ok || info.Type != "test.Thing" || info.Interface != "jsn.test.v1" {
			t.Errorf("Lookup(%q) = %+v, %v", name, info, ok)
		}
	}
	if _, ok := Lookup("test.thing"); ok {
		t.Error("Lookup is case-insensitive; want exact")
	}
}

func TestRegisteredAndAliases(t *testing.T) {
	reg := Registered()
	if !sort.SliceIsSorted(reg, func(i, j int) bool { return reg[i].Type < reg[j].Type }) {
		t.Error("Registered not sorted")
	}
	var types []string
	for _, i := range reg {
		types = append(types, i.Type)
	}
	for _, want := range []string{"test.Thing", "test.Rec", "test.Parent", "test.Proxy"} {
		if !slices.Contains(types, want) {
			t.Errorf("Registered lacks %s: %v", want, types)
		}
	}
	got := Aliases("jumpstarter_driver_test.")
	want := []string{"jumpstarter_driver_test.driver.Proxy", "jumpstarter_driver_test.driver.Thing"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
