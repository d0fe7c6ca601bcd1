package driver

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

var registry struct {
	mu     sync.RWMutex
	types  map[string]Info   // by Type
	byName map[string]string // Type and every alias → Type
}

// MustRegister adds a driver type to the registry. It is meant to be called from init and panics
// on programmer errors: an empty Type, a nil New (except for Ref types), or a Type or alias that
// is already registered.
func MustRegister(info Info) {
	if info.Type == "" {
		panic("driver: MustRegister with empty Type")
	}
	if info.New == nil && !info.Ref {
		panic(fmt.Sprintf("driver: MustRegister %q with nil New", info.Type))
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.types == nil {
		registry.types = map[string]Info{}
		registry.byName = map[string]string{}
	}
	names := append([]string{info.Type}, info.Aliases...)
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" {
			panic(fmt.Sprintf("driver: MustRegister %q with an empty alias", info.Type))
		}
		if t, ok := registry.byName[n]; ok || seen[n] {
			panic(fmt.Sprintf("driver: MustRegister %q: name %q already registered by %q", info.Type, n, t))
		}
		seen[n] = true
	}
	info.Aliases = append([]string(nil), info.Aliases...)
	registry.types[info.Type] = info
	for _, n := range names {
		registry.byName[n] = info.Type
	}
}

// Lookup returns the registered type with the given Type or alias.
func Lookup(name string) (Info, bool) {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	t, ok := registry.byName[name]
	if !ok {
		return Info{}, false
	}
	return registry.types[t], true
}

// Registered returns every registered type, sorted by Type.
func Registered() []Info {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	out := make([]Info, 0, len(registry.types))
	for _, info := range registry.types {
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// Aliases returns the registered aliases starting with prefix, sorted. Aliases("jumpstarter_")
// lists the Jumpstarter driver classes jsn can load.
func Aliases(prefix string) []string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	var out []string
	for _, info := range registry.types {
		for _, a := range info.Aliases {
			if strings.HasPrefix(a, prefix) {
				out = append(out, a)
			}
		}
	}
	sort.Strings(out)
	return out
}

// names returns every registered Type and alias, for suggestions.
func names() []string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	out := make([]string, 0, len(registry.byName))
	for n := range registry.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
