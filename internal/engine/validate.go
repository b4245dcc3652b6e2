package engine

import (
	"fmt"
	"path"
	"strings"
)

// validateSpec refuses a spec that cannot run, naming the field and the
// fix. The provider checks the same at plan time; this guards other
// callers of the engine.
func validateSpec(spec ContainerSpec) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, args...)...)
	}
	if !nameRegexp.MatchString(spec.Name) {
		return bad("name %q: use up to 128 letters, digits, '_', '.' and '-', starting with a letter or digit", spec.Name)
	}
	if _, err := NormalizeImage(spec.Image); err != nil {
		return bad("image: %v", err)
	}
	switch spec.NetworkMode {
	case "", NetworkBridge, NetworkHost, NetworkNone:
	default:
		return bad("network_mode %q: use bridge, host or none", spec.NetworkMode)
	}
	switch spec.Restart {
	case "", RestartNo, RestartAlways, RestartUnlessStopped:
	default:
		return bad("restart %q: use no, always or unless-stopped", spec.Restart)
	}
	targets := map[string]bool{}
	for _, m := range spec.Mounts {
		if !path.IsAbs(m.Target) {
			return bad("mounts: target %q must be an absolute path", m.Target)
		}
		t := path.Clean(m.Target)
		if targets[t] {
			return bad("mounts: target %q is mounted twice", m.Target)
		}
		targets[t] = true
		switch m.Type {
		case MountVolume:
			if err := validVolumeName(m.Source); err != nil {
				return err
			}
		case MountBind:
			if !path.IsAbs(m.Source) {
				return bad("mounts: bind source %q must be an absolute host path", m.Source)
			}
		case MountTmpfs:
			if m.Source != "" {
				return bad("mounts: a tmpfs mount at %q takes no source", m.Target)
			}
		default:
			return bad("mounts: unknown type %q: use volume, bind or tmpfs", m.Type)
		}
	}
	for _, p := range spec.Ports {
		if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
			return bad("ports: %d:%d: ports must be between 1 and 65535", p.HostPort, p.ContainerPort)
		}
		if proto := strings.ToLower(p.Protocol); proto != "" && proto != "tcp" && proto != "udp" {
			return bad("ports: protocol %q: use tcp or udp", p.Protocol)
		}
	}
	r := spec.Resources
	if r.MemoryMiB < 0 || r.CPUs < 0 || r.CPUShares < 0 || r.PidsLimit < 0 || r.MemorySwapMiB < -1 {
		return bad("resources must not be negative (memory_swap may be -1 for unlimited swap)")
	}
	if r.MemorySwapMiB != 0 && r.MemoryMiB == 0 {
		return bad("memory_swap needs memory")
	}
	if r.MemorySwapMiB > 0 && r.MemorySwapMiB < r.MemoryMiB {
		return bad("memory_swap (%d MiB) is memory plus swap: it cannot be less than memory (%d MiB)", r.MemorySwapMiB, r.MemoryMiB)
	}
	if _, err := stopSignal(spec); err != nil {
		return err
	}
	if _, err := securityOpts(spec.Security); err != nil {
		return err
	}
	return nil
}
