// Package yamlconf decodes YAML config files strictly into Go values and reports every problem
// at once, each at its file:line:col with the dotted path of the key (`exporter.yaml:14:5:
// export.power.config: unknown field "baudrat" (did you mean "baudrate"?)`).
//
// Decode is what a config loader calls (exporter and client configs, hook sections); driver.Build
// uses the Collector and Decoder to build a whole driver tree in one pass, and reports a driver's
// Validate errors (FieldErrorf) at the key they name. New decoders of outside YAML (plugin
// manifests, policies, tables) reuse it.
//
// It is a leaf: it knows nothing of drivers, NATS or files on disk, and never panics on input.
package yamlconf
