package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// CreateVolume creates a named volume: a directory under the data root.
// Creating an existing volume keeps its data and updates its labels.
func (e *Engine) CreateVolume(ctx context.Context, spec VolumeSpec) (Volume, error) {
	if err := validVolumeName(spec.Name); err != nil {
		return Volume{}, err
	}
	defer e.locks.lock("volume/" + spec.Name)()
	if _, _, err := e.connect(ctx); err != nil {
		return Volume{}, err
	}
	// The volume's directory is private; its data directory is what
	// containers see as the mount's root, so it is traversable.
	if err := e.host.MkdirAll(e.volumeDir(spec.Name), 0o700); err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", spec.Name, err)
	}
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
		return Volume{}, fmt.Errorf("volume %s: %w", name, ErrNotFound)
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
	if err := CheckName(name); err != nil {
		return fmt.Errorf("%w: volume name %v", ErrInvalidSpec, err)
	}
	return nil
}

// checkImageVolumes refuses an image whose VOLUMEs cannot be made safely,
// naming the image and the key, before anything is created.
func checkImageVolumes(img resolvedImage) error {
	for _, key := range img.config.Volumes {
		if err := CheckImageVolume(key); err != nil {
			return fmt.Errorf("%w: image %s declares VOLUME %q, which %v: pouch makes no volume for it. "+
				"Fix the image, or cover the path with a mount of your own", ErrInvalidSpec, img.image.Name(), key, err)
		}
	}
	return nil
}

// imageVolumePlan is what a container's image volumes will be.
type imageVolumePlan struct {
	all []ImageVolume // every image volume of the container
	// toCreate are new directories, to be made empty and populated from
	// the image; a failed change removes them, and only them.
	toCreate []ImageVolume
	// adopted are directories that exist already without being the
	// container's (kept by a container of the same name that was destroyed
	// with keep_image_volumes): they keep their data and are never
	// populated, nor removed by a failed change.
	adopted []ImageVolume
}

// planImageVolumes plans the anonymous volumes of a container: one for
// every VOLUME that img declares (checked by checkImageVolumes) and no user
// mount covers. The container's existing volumes are kept, across upgrades
// too, even when the new image no longer declares them.
func (e *Engine) planImageVolumes(spec ContainerSpec, img resolvedImage, existing []ImageVolume) (imageVolumePlan, error) {
	p := imageVolumePlan{all: slices.Clone(existing)}
	have := map[string]bool{}
	for _, v := range existing {
		have[v.Target] = true
	}
	for _, m := range spec.Mounts {
		have[path.Clean(m.Target)] = true
	}
	for _, key := range img.config.Volumes {
		target := path.Clean(key)
		if have[target] {
			continue
		}
		have[target] = true
		v := ImageVolume{Target: target, Path: e.imageVolumePath(spec.Name, target)}
		p.all = append(p.all, v)
		exists, err := e.host.Exists(v.Path)
		if err != nil {
			return imageVolumePlan{}, fmt.Errorf("image volume %s: %w", target, err)
		}
		if exists {
			p.adopted = append(p.adopted, v)
		} else {
			p.toCreate = append(p.toCreate, v)
		}
	}
	return p, nil
}

// createImageVolumes creates the planned new volumes (plan.toCreate), each as a directory
// the engine makes exclusively (it fails if one appeared meanwhile) and
// populates from the image's files at its target (as Docker does), reading
// them from the snapshot snapshotKey. The copy never follows a symlink,
// drops setuid and setgid bits, and skips device nodes (see
// host.CopyTree). It returns the volumes it created, which are all of
// them unless it failed: the caller removes those.
func (e *Engine) createImageVolumes(ctx context.Context, client *containerd.Client, id, snapshotKey string, plan imageVolumePlan) (created []ImageVolume, err error) {
	for _, v := range plan.adopted {
		e.log.Info(ctx, "image volume kept from an earlier container: its data is kept, not populated again",
			map[string]any{"container": id, "target": v.Target, "path": v.Path})
	}
	vols := plan.toCreate
	if len(vols) == 0 {
		return nil, nil
	}
	mounts, err := client.SnapshotService(e.opts.Snapshotter).Mounts(ctx, snapshotKey)
	if err != nil {
		return nil, fmt.Errorf("mount image for its volumes: %w", err)
	}
	if err := e.host.MkdirAll(e.anonymousVolumesDir(id), 0o700); err != nil {
		return nil, fmt.Errorf("create the image volumes' directory: %w", err)
	}
	for _, v := range vols {
		if err := e.host.MkdirNew(v.Path, 0o700); err != nil {
			return created, fmt.Errorf("create image volume %s: %w", v.Target, err)
		}
		created = append(created, v)
		report, err := e.host.CopyFromRootfs(ctx, mounts, v.Target, v.Path)
		if err != nil {
			return created, fmt.Errorf("populate image volume %s from the image: %w", v.Target, err)
		}
		fields := map[string]any{"container": id, "target": v.Target, "files": report.Files}
		if len(report.StrippedSetID) > 0 {
			fields["setid_stripped"] = report.StrippedSetID
		}
		if len(report.Skipped) > 0 {
			fields["skipped"] = report.Skipped
		}
		e.log.Debug(ctx, "image volume created", fields)
	}
	return created, nil
}

// removeImageVolumes removes image volumes a failed change created, each
// checked to be container id's; it logs rather than fails, on clean-up
// paths.
func (e *Engine) removeImageVolumes(ctx context.Context, id string, vols []ImageVolume) {
	for _, v := range vols {
		if err := e.removeImageVolume(id, v); err != nil {
			e.log.Info(ctx, "could not remove image volume", map[string]any{"path": v.Path, "error": err.Error()})
		}
	}
}

// removeImageVolume removes one of container id's image volumes, once its
// recorded path is checked to be inside the container's directory.
func (e *Engine) removeImageVolume(id string, v ImageVolume) error {
	if err := contained(e.anonymousVolumesDir(id), v.Path); err != nil {
		return err
	}
	return e.host.RemoveAll(v.Path)
}

// deleteImageVolumes removes a deleted container's image volumes (those of
// its record), then its volumes' directory if nothing else is left in it.
func (e *Engine) deleteImageVolumes(id string, vols []ImageVolume) error {
	var errs []error
	for _, v := range vols {
		if err := e.removeImageVolume(id, v); err != nil {
			errs = append(errs, err)
		}
	}
	if err := e.host.RemoveEmptyDir(e.anonymousVolumesDir(id)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
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
