package controller

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

const fileLock = "controller.lock"

// ErrDataInUse is returned by Start when another controller with an embedded server already
// runs on the data directory.
var ErrDataInUse = errors.New("data directory in use by another controller")

// lockDir takes an exclusive lock on dir (released when the file is closed or the process ends).
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, fileLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("controller: lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("controller: %s: %w (run more replicas with --nats-url against a shared NATS deployment)", dir, ErrDataInUse)
		}
		return nil, fmt.Errorf("controller: lock %s: %w", dir, err)
	}
	return f, nil
}
