package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Named volumes live in <data_root>/volumes/<namespace>/<name>: the data in
// _data, the volume's record in volume.json. The anonymous volumes made for
// images' VOLUMEs live in <data_root>/volumes/<namespace>/_anonymous/<id>/.

const volumeDataDir = "_data"

func (e *Engine) volumesDir() string {
	return filepath.Join(e.opts.DataRoot, "volumes", e.opts.Namespace)
}

func (e *Engine) volumeDir(name string) string { return filepath.Join(e.volumesDir(), name) }

// volumeData is the host directory a named volume mounts.
func (e *Engine) volumeData(name string) string {
	return filepath.Join(e.volumeDir(name), volumeDataDir)
}

func (e *Engine) anonymousVolumesDir(id string) string {
	return filepath.Join(e.volumesDir(), "_anonymous", id)
}

// CreateVolume creates a named volume: a directory under the data root.
// Creating an existing volume keeps its data and updates its labels.
func (e *Engine) CreateVolume(ctx context.Context, spec VolumeSpec) (Volume, error) {
	if err := validVolumeName(spec.Name); err != nil {
		return Volume{}, err
	}
	defer e.locks.lock("volume/" + spec.Name)()
	if err := e.host.MkdirAll(e.volumeData(spec.Name), 0o755); err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", spec.Name, err)
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return Volume{}, err
	}
	if err := e.host.WriteFile(filepath.Join(e.volumeDir(spec.Name), "volume.json"), data, 0o600); err != nil {
		return Volume{}, fmt.Errorf("record volume %s: %w", spec.Name, err)
	}
	e.log.Info(ctx, "volume created", map[string]any{"volume": spec.Name})
	return Volume{Name: spec.Name, Labels: spec.Labels, Mountpoint: e.volumeData(spec.Name)}, nil
}

// InspectVolume reads a named volume back; errors.Is(err, ErrNotFound) when
// it does not exist.
func (e *Engine) InspectVolume(ctx context.Context, name string) (Volume, error) {
	if err := validVolumeName(name); err != nil {
		return Volume{}, err
	}
	data, err := e.host.ReadFile(filepath.Join(e.volumeDir(name), "volume.json"))
	if errors.Is(err, os.ErrNotExist) {
		return Volume{}, fmt.Errorf("%w: volume %s", ErrNotFound, name)
	}
	if err != nil {
		return Volume{}, fmt.Errorf("read volume %s: %w", name, err)
	}
	var spec VolumeSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return Volume{}, fmt.Errorf("decode volume %s: %w", name, err)
	}
	return Volume{Name: name, Labels: spec.Labels, Mountpoint: e.volumeData(name)}, nil
}

// DeleteVolume removes a named volume and its data. It refuses, with an error
// wrapping ErrVolumeInUse that names the containers, while a container
// mounts it. A volume that does not exist is not an error.
func (e *Engine) DeleteVolume(ctx context.Context, name string) error {
	if err := validVolumeName(name); err != nil {
		return err
	}
	defer e.locks.lock("volume/" + name)()
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return err
	}
	users, err := e.volumeUsers(ctx, client, name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("%w: volume %s is mounted by container %s", ErrVolumeInUse, name, strings.Join(users, ", "))
	}
	if err := e.host.RemoveAll(e.volumeDir(name)); err != nil {
		return fmt.Errorf("delete volume %s: %w", name, err)
	}
	e.log.Info(ctx, "volume deleted", map[string]any{"volume": name})
	return nil
}

// volumeUsers lists the containers whose spec mounts volume name.
func (e *Engine) volumeUsers(ctx context.Context, client *containerd.Client, name string) ([]string, error) {
	all, err := client.ContainerService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var users []string
	for _, c := range all {
		rec, _, err := readRecord(c)
		if err != nil {
			return nil, err
		}
		for _, m := range rec.Spec.Mounts {
			if m.Type == MountVolume && m.Source == name {
				users = append(users, c.ID)
				break
			}
		}
	}
	sort.Strings(users)
	return users, nil
}

func validVolumeName(name string) error {
	if !nameRegexp.MatchString(name) {
		return fmt.Errorf("%w: volume name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", ErrInvalidSpec, name)
	}
	return nil
}

// planImageVolumes lists the anonymous volumes of a container: one for
// every VOLUME that img declares and no user mount covers. Existing ones are
// kept (across upgrades too, even when the new image no longer declares
// them); toCreate are those the container does not have yet.
func (e *Engine) planImageVolumes(spec ContainerSpec, img resolvedImage, existing []ImageVolume) (all, toCreate []ImageVolume) {
	all = append(all, existing...)
	have := map[string]bool{}
	for _, v := range existing {
		have[v.Target] = true
	}
	for _, m := range spec.Mounts {
		have[path.Clean(m.Target)] = true
	}
	for _, target := range img.config.Volumes {
		target = path.Clean(target)
		if have[target] {
			continue
		}
		have[target] = true
		v := ImageVolume{Target: target, Path: filepath.Join(e.anonymousVolumesDir(spec.Name), volumeDirName(target))}
		all = append(all, v)
		toCreate = append(toCreate, v)
	}
	return all, toCreate
}

// createImageVolumes creates anonymous volumes populated from the image's
// files at their paths (as Docker does), reading them from the snapshot
// snapshotKey. On failure it removes what it created.
func (e *Engine) createImageVolumes(ctx context.Context, client *containerd.Client, id, snapshotKey string, vols []ImageVolume) (err error) {
	defer func() {
		if err != nil {
			e.removeImageVolumes(ctx, vols)
		}
	}()
	if len(vols) == 0 {
		return nil
	}
	mounts, err := client.SnapshotService(e.opts.Snapshotter).Mounts(ctx, snapshotKey)
	if err != nil {
		return fmt.Errorf("mount image for its volumes: %w", err)
	}
	for _, v := range vols {
		if err := e.host.MkdirAll(v.Path, 0o755); err != nil {
			return fmt.Errorf("create volume for %s: %w", v.Target, err)
		}
		if err := e.host.CopyFromRootfs(ctx, mounts, v.Target, v.Path); err != nil {
			return fmt.Errorf("populate volume %s from the image: %w", v.Target, err)
		}
		e.log.Debug(ctx, "image volume created", map[string]any{"container": id, "target": v.Target})
	}
	return nil
}

func (e *Engine) removeImageVolumes(ctx context.Context, vols []ImageVolume) {
	for _, v := range vols {
		if err := e.host.RemoveAll(v.Path); err != nil {
			e.log.Info(ctx, "could not remove image volume", map[string]any{"path": v.Path, "error": err.Error()})
		}
	}
}

// volumeDirName turns a container path into one directory name.
func volumeDirName(target string) string {
	name := strings.ReplaceAll(strings.Trim(target, "/"), "/", "_")
	if name == "" {
		return "root"
	}
	return name
}

// runtimeMounts resolves the user's mounts and the image volumes into
// runtime spec mounts, checking that what they name exists.
func (e *Engine) runtimeMounts(spec ContainerSpec, imageVolumes []ImageVolume) ([]specs.Mount, error) {
	var out []specs.Mount
	covered := map[string]bool{}
	for _, m := range spec.Mounts {
		target := path.Clean(m.Target)
		covered[target] = true
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		switch m.Type {
		case MountVolume:
			src := e.volumeData(m.Source)
			if ok, err := e.host.Exists(src); err != nil || !ok {
				return nil, fmt.Errorf("%w: mounts: volume %q does not exist: create it first (a pouch_volume resource)", ErrInvalidSpec, m.Source)
			}
			out = append(out, specs.Mount{Type: "bind", Source: src, Destination: target, Options: []string{"rbind", "rprivate", mode}})
		case MountBind:
			if ok, err := e.host.Exists(m.Source); err != nil || !ok {
				return nil, fmt.Errorf("%w: mounts: bind source %q does not exist on the host: create it first", ErrInvalidSpec, m.Source)
			}
			out = append(out, specs.Mount{Type: "bind", Source: m.Source, Destination: target, Options: []string{"rbind", "rprivate", mode}})
		case MountTmpfs:
			opts := []string{"nosuid", "nodev", mode}
			if m.TmpfsSizeMiB > 0 {
				opts = append(opts, fmt.Sprintf("size=%dm", m.TmpfsSizeMiB))
			}
			out = append(out, specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: target, Options: opts})
		default:
			return nil, fmt.Errorf("%w: mounts: unknown type %q: use volume, bind or tmpfs", ErrInvalidSpec, m.Type)
		}
	}
	for _, v := range imageVolumes {
		if covered[v.Target] {
			continue
		}
		out = append(out, specs.Mount{Type: "bind", Source: v.Path, Destination: v.Target, Options: []string{"rbind", "rprivate", "rw"}})
	}
	return out, nil
}
