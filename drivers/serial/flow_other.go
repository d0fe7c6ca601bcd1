//go:build !linux

package serial

import "fmt"

type flowControl struct{}

func openFlow(path, flow string) (*flowControl, error) {
	if flow == "" || flow == "none" {
		return nil, nil
	}
	return nil, fmt.Errorf("flow control %q is only supported on Linux", flow)
}

func (f *flowControl) apply(flow string) error { return nil }

func (f *flowControl) close() {}
