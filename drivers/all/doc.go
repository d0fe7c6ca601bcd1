// Package all links every driver, and the CLI verbs of their interfaces, into the jsn binary by
// blank-importing the driver packages. It has no API and must not hold code of its own; a
// program that wants only some drivers imports those packages instead.
package all
