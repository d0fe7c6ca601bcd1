// Package layering holds no code: its test reads the import graph with `go list -deps` and fails
// when a package reaches what its doc comment says it must not (see layering_test.go for the
// rules). Tailscale's depaware keeps its walls the same way.
package layering
