//go:build !linux

package engine

import (
	"fmt"
	"runtime"
)

// localHost refuses: containers run on Linux, and the engine's host work
// (network namespaces, CNI, mounts) is Linux's. The provider builds for
// other systems to drive a Linux host from afar.
func (e *Engine) localHost() (Host, error) {
	return nil, fmt.Errorf("pouch runs containers on Linux: this provider runs on %s, and the local mode "+
		"(Terraform on the containerd host) is Linux-only", runtime.GOOS)
}
