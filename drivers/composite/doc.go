// Package composite registers the drivers that only shape the tree: "composite", a node that
// groups child drivers, and Jumpstarter's Proxy class, a node that answers with another driver.
//
// The framework (package driver) handles children and refs; this package must not open, reset or
// close children itself, and exports no methods.
package composite
