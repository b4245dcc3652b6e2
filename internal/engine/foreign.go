package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// recordOf returns the record of a container: the one pouch wrote, or, for
// a container created by other means (ctr run, nerdctl), one derived from
// its runtime spec and image, so that it can be imported and then managed
// like any other.
func (e *Engine) recordOf(ctx context.Context, c containerd.Container, info containers.Container) (record, error) {
	rec, ok, err := readRecord(info)
	if err != nil || ok {
		return rec, err
	}
	var s oci.Spec
	if info.Spec == nil {
		return record{}, fmt.Errorf("container %s has no runtime spec", info.ID)
	}
	if err := json.Unmarshal(info.Spec.GetValue(), &s); err != nil {
		return record{}, fmt.Errorf("decode runtime spec of %s: %w", info.ID, err)
	}
	var imgCfg ImageConfig
	if img, err := c.Image(ctx); err == nil {
		rec.ImageDigest = img.Target().Digest.String()
		if cfg, err := img.Spec(ctx); err == nil {
			imgCfg = imageConfigOf(cfg.Config)
		}
	}
	rec.Spec = deriveSpec(info, &s, imgCfg)
	rec.Network = networkState{Mode: rec.Spec.NetworkMode}
	return rec, nil
}

// defaultMounts are the mounts every runtime spec has; they are not the
// user's.
var defaultMounts = []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/run",
	"/sys/fs/cgroup", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}

// deriveSpec reconstructs what a user asked for from a container that pouch
// did not create: whatever differs from its image's defaults is taken as
// set by the user (the provenance is unknown, so this is the only guess
// that reproduces the same process).
func deriveSpec(info containers.Container, s *oci.Spec, img ImageConfig) ContainerSpec {
	spec := ContainerSpec{
		Name:        info.ID,
		Image:       info.Image,
		StopTimeout: DefaultStopTimeout,
		NetworkMode: NetworkHost,
		Labels:      map[string]string{},
	}
	for k, v := range info.Labels {
		if !strings.HasPrefix(k, "containerd.io/") && !strings.HasPrefix(k, "io.containerd.") {
			spec.Labels[k] = v
		}
	}
	if p := s.Process; p != nil {
		defaults := append(slices.Clone(img.Entrypoint), img.Cmd...)
		switch {
		case slices.Equal(p.Args, defaults):
		case len(img.Entrypoint) > 0 && len(p.Args) >= len(img.Entrypoint) && slices.Equal(p.Args[:len(img.Entrypoint)], img.Entrypoint):
			spec.Command = slices.Clone(p.Args[len(img.Entrypoint):])
		case len(img.Entrypoint) == 0:
			spec.Command = slices.Clone(p.Args)
		default:
			spec.Entrypoint = slices.Clone(p.Args)
		}
		imageEnv := map[string]string{}
		for _, kv := range img.Env {
			k, v, _ := strings.Cut(kv, "=")
			imageEnv[k] = v
		}
		spec.Env = map[string]string{}
		for _, kv := range p.Env {
			k, v, _ := strings.Cut(kv, "=")
			if iv, ok := imageEnv[k]; !ok || iv != v {
				spec.Env[k] = v
			}
		}
		delete(spec.Env, "PATH") // the runtime's default PATH, when the image has none
		if p.Cwd != firstNonEmpty(img.WorkingDir, "/") {
			spec.WorkingDir = p.Cwd
		}
		if img.User == "" && (p.User.UID != 0 || p.User.GID != 0) {
			spec.User = fmt.Sprintf("%d:%d", p.User.UID, p.User.GID)
		}
	}
	if s.Hostname != "" && s.Hostname != info.ID {
		spec.Hostname = s.Hostname
	}
	if s.Linux != nil {
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				spec.NetworkMode = NetworkNone
			}
		}
		if r := s.Linux.Resources; r != nil {
			if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
				spec.Resources.MemoryMiB = *r.Memory.Limit >> 20
			}
			if r.CPU != nil && r.CPU.Quota != nil && *r.CPU.Quota > 0 && r.CPU.Period != nil && *r.CPU.Period > 0 {
				spec.Resources.CPUs = float64(*r.CPU.Quota) / float64(*r.CPU.Period)
			}
			if r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit > 0 {
				spec.Resources.PidsLimit = *r.Pids.Limit
			}
		}
	}
	for _, m := range s.Mounts {
		if slices.Contains(defaultMounts, path.Clean(m.Destination)) {
			continue
		}
		ro := slices.Contains(m.Options, "ro")
		switch m.Type {
		case "tmpfs":
			spec.Mounts = append(spec.Mounts, Mount{Type: MountTmpfs, Target: m.Destination, ReadOnly: ro})
		case "bind", "":
			if slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind") || m.Type == "bind" {
				spec.Mounts = append(spec.Mounts, Mount{Type: MountBind, Source: m.Source, Target: m.Destination, ReadOnly: ro})
			}
		}
	}
	return spec
}
