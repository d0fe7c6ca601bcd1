//go:build !linux

package serial

import "fmt"

type flowControl struct{}

func openFlow(path, flow string, noHupcl bool) (*flowControl, error) {
	if flow == "" || flow == "none" {
		return nil, nil
	}
	return nil, fmt.Errorf("flow control %q is only supported on Linux", flow)
}

func (f *flowControl) apply(flow string, noHupcl bool) error { return nil }

func (f *flowControl) close() {}
