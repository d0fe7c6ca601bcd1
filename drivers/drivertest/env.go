package drivertest

import (
	"log/slog"

	"jsn.dev/jsn/drivers/driver"
)

// Env returns the driver.Env that driver.Build would give the driver at path, for tests that call
// a constructor directly: a Log that discards (set Log to watch it), a Tap that drops what it is
// given, and Child for built-in children (their Envs have no Dir). Set Dir for drivers that
// resolve relative paths.
func Env(path string) driver.Env {
	return driver.Env{
		Path:  path,
		Log:   slog.New(slog.DiscardHandler).With("driver", path),
		Tap:   func([]byte) {},
		Child: func(name string) driver.Env { return Env(path + "." + name) },
	}
}
