package engine

import (
	"path/filepath"

	"github.com/pouch/terraform-provider-pouch/internal/engine/host"
)

var _ Host = (*host.Local)(nil)

// localHost is the host work on this machine, the containerd host.
func (e *Engine) localHost() (Host, error) {
	opts := e.opts
	return &host.Local{
		NetNSDir:  e.netnsDir(),
		LogDriver: opts.LogDriver,
		Network: host.NetworkConfig{
			Name:     networkName(opts.Network.Bridge),
			Bridge:   opts.Network.Bridge,
			Subnet:   opts.Network.Subnet,
			ConfFile: opts.Network.ConfFile,
			StateDir: filepath.Join(opts.DataRoot, networkStateDir),
		},
	}, nil
}
