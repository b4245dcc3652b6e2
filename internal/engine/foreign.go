package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
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
	var lost []string
	rec.Spec, lost = deriveSpec(info, &s, imgCfg)
	sec, lostSec, err := deriveSecurity(ctx, info.ID, &s)
	if err != nil {
		return record{}, err
	}
	rec.Spec.Security = sec
	rec.Network = networkState{Mode: rec.Spec.NetworkMode}
	if lost = append(lost, lostSec...); len(lost) > 0 {
		// The record is returned too: Delete needs no more than this.
		return rec, fmt.Errorf("%w: container %s was not made by pouch, and pouch cannot represent these of its "+
			"settings: %s. Managing it would change them at its next restart; recreate it with pouch instead, "+
			"with the settings pouch has for what it needs", ErrUnrepresentable, info.ID, strings.Join(lost, "; "))
	}
	return rec, nil
}

// defaultMounts are the mounts every runtime spec has; they are not the
// user's.
var defaultMounts = []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/run",
	"/sys/fs/cgroup", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}

// deriveSpec reconstructs what a user asked for from a container that pouch
// did not create: whatever differs from its image's defaults is taken as
// set by the user (the provenance is unknown, so this is the only guess
// that reproduces the same process). lost lists what pouch cannot
// represent.
func deriveSpec(info containers.Container, s *oci.Spec, img ImageConfig) (spec ContainerSpec, lost []string) {
	spec = ContainerSpec{
		Name:        info.ID,
		Image:       info.Image,
		StopTimeout: DefaultStopTimeout,
		NetworkMode: NetworkHost,
		Labels:      map[string]string{},
		// How pouch upgrades it is pouch's own policy, not the
		// container's: the defaults.
		Upgrade: UpgradePolicy{VerifySeconds: DefaultVerifySeconds},
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
		// The user, unless it is surely the image's: root for an image
		// without USER, or the image's numeric USER. A named USER would
		// need the image's /etc/passwd to tell: the numeric form
		// reproduces the same process either way.
		uidgid := fmt.Sprintf("%d:%d", p.User.UID, p.User.GID)
		imageRoot := img.User == "" && uidgid == "0:0"
		if !imageRoot && img.User != uidgid && img.User != fmt.Sprint(p.User.UID) {
			spec.User = uidgid
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
		mt, extra, ok := deriveMount(m)
		if !ok {
			lost = append(lost, fmt.Sprintf("the %s mount on %s", m.Type, m.Destination))
			continue
		}
		if len(extra) > 0 {
			lost = append(lost, fmt.Sprintf("the mount options %s on %s", strings.Join(extra, ","), m.Destination))
		}
		spec.Mounts = append(spec.Mounts, mt)
	}
	return spec, lost
}

// deriveMount reads a foreign mount as pouch's, with the options pouch's
// runtime spec for it would not have (so that managing the container
// would drop them: nosuid, noexec, ...). ok is false for a kind of mount
// pouch does not make.
func deriveMount(m specs.Mount) (mt Mount, extra []string, ok bool) {
	mt = Mount{Target: m.Destination, ReadOnly: slices.Contains(m.Options, "ro")}
	// What pouch writes for each kind (see runtimeMounts), and what only
	// loosens if it goes: those are the options managing it keeps.
	var keep []string
	switch {
	case m.Type == "tmpfs":
		mt.Type = MountTmpfs
		keep = []string{"nosuid", "nodev", "rw", "ro"}
	case m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind"):
		mt.Type, mt.Source = MountBind, m.Source
		keep = []string{"bind", "rbind", "rprivate", "private", "rw", "ro"}
	default:
		return Mount{}, nil, false
	}
	for _, o := range m.Options {
		if size, found := strings.CutPrefix(o, "size="); found && mt.Type == MountTmpfs {
			if mib, ok := tmpfsSizeMiB(size); ok {
				mt.TmpfsSizeMiB = mib
				continue
			}
		}
		if !slices.Contains(keep, o) {
			extra = append(extra, o)
		}
	}
	return mt, extra, true
}

// tmpfsSizeMiB reads a tmpfs size option ("64m", "8192k", "1g" or bytes)
// that is a whole number of MiB.
func tmpfsSizeMiB(s string) (int64, bool) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1<<10, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "g"):
		mult, s = 1<<30, strings.TrimSuffix(s, "g")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (MaxMemoryMiB<<20)/mult || n*mult%(1<<20) != 0 {
		return 0, false
	}
	return n * mult >> 20, true
}
