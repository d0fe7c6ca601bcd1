package driver

import (
	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/internal/yamlconf"
)

// Configs are decoded by package yamlconf; these are its names as drivers use them.
type (
	// ConfigError is one problem in a config file, at a position.
	ConfigError = yamlconf.Error
	// ConfigErrors are all the problems found in a config file, sorted by position. Every error
	// Build returns for a bad config is of this type; use errors.As to get it.
	ConfigErrors = yamlconf.Errors
	// FieldError is an error about one config key, made by FieldErrorf.
	FieldError = yamlconf.FieldError
)

// FieldErrorf returns an error about the config key field (its yaml name; dotted for nested
// keys). A Validator returns it, or several joined with errors.Join, and Build reports it at the
// position of that key in the config file.
func FieldErrorf(field string, format string, args ...any) error {
	return yamlconf.FieldErrorf(field, format, args...)
}

// DecodeConfig strictly decodes the YAML node n into out the way driver configs are decoded
// (see yamlconf.Decode), for drivers with config of their own shape (a mode or a mapping).
func DecodeConfig(file string, n *yaml.Node, path string, out any) error {
	return yamlconf.Decode(file, n, path, out)
}
