package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"
)

// Create pulls the image if needed, creates the container with its network
// namespace, network address and image volumes and, when spec.Running,
// starts its task. Nothing is left behind when it fails.
func (e *Engine) Create(ctx context.Context, spec ContainerSpec) (_ State, retErr error) {
	if err := validateSpec(spec); err != nil {
		return State{}, err
	}
	defer e.locks.lock(spec.Name)()
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return State{}, err
	}
	e.log.Info(ctx, "creating container", map[string]any{"container": spec.Name, "image": spec.Image})
	if _, err := client.LoadContainer(ctx, spec.Name); err == nil {
		return State{}, fmt.Errorf("container %q already exists in namespace %q: import it or choose another name", spec.Name, e.opts.Namespace)
	}
	cleanup := context.WithoutCancel(ctx)

	// The lease keeps the new snapshot from garbage collection until the
	// container record refers to it.
	ctx, releaseLease, err := client.WithLease(ctx)
	if err != nil {
		return State{}, fmt.Errorf("create lease: %w", err)
	}
	defer releaseLease(cleanup)

	img, err := e.resolveImage(ctx, client, spec.Image)
	if err != nil {
		return State{}, err
	}
	proc, err := MergeProcess(spec, img.config)
	if err != nil {
		return State{}, err
	}
	key, err := e.prepareSnapshot(ctx, client, spec.Name, img)
	if err != nil {
		return State{}, err
	}
	defer func() {
		if retErr != nil {
			e.removeSnapshot(cleanup, client, key)
		}
	}()
	imageVolumes, _ := e.planImageVolumes(spec, img, nil)
	if err := e.createImageVolumes(ctx, client, spec.Name, key, imageVolumes); err != nil {
		return State{}, err
	}
	defer func() {
		if retErr != nil {
			_ = e.host.RemoveAll(e.anonymousVolumesDir(spec.Name))
		}
	}()
	mounts, err := e.runtimeMounts(spec, imageVolumes)
	if err != nil {
		return State{}, err
	}
	network, err := e.planNetwork(spec, networkState{})
	if err != nil {
		return State{}, err
	}
	defer func() {
		if retErr != nil {
			if err := e.releaseNetwork(cleanup, spec.Name, network); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("clean up network: %w", err))
			}
		}
	}()
	if network, err = e.applyNetwork(ctx, spec.Name, networkState{}, network); err != nil {
		return State{}, err
	}
	runtimeSpec, err := e.buildRuntimeSpec(ctx, client, runtimeInputs{
		spec: spec, proc: proc, snapshotKey: key, netnsPath: network.NetNS, mounts: mounts})
	if err != nil {
		return State{}, err
	}
	rec := record{Spec: spec, ImageDigest: img.digest(), Network: network, ImageVolumes: imageVolumes}
	c, err := client.NewContainer(ctx, spec.Name,
		containerd.WithSnapshotter(e.opts.Snapshotter),
		containerd.WithSnapshot(key),
		containerd.WithImageName(img.image.Name()),
		containerd.WithRuntime(e.opts.Runtime, nil),
		containerd.WithSpec(runtimeSpec),
		containerd.WithContainerLabels(spec.Labels),
		func(_ context.Context, _ *containerd.Client, c *containers.Container) error {
			return withRecord(c, rec)
		},
	)
	if err != nil {
		return State{}, fmt.Errorf("create container: %w", err)
	}
	defer func() {
		if retErr != nil {
			if err := c.Delete(cleanup); err != nil && !errdefs.IsNotFound(err) {
				retErr = errors.Join(retErr, fmt.Errorf("clean up container: %w", err))
			}
		}
	}()
	if spec.Running {
		if err := e.startTask(ctx, c, spec); err != nil {
			return State{}, err
		}
	}
	return e.inspect(ctx, c)
}

// Inspect reads a container back, first finishing or undoing an update
// that a crash interrupted. errors.Is(err, ErrNotFound) when it is gone.
// It is what every refresh calls: two requests to containerd (the
// container record and its task) unless there is an update to recover.
func (e *Engine) Inspect(ctx context.Context, id string) (State, error) {
	defer e.locks.lock(id)()
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return State{}, err
	}
	c, err := loadContainer(ctx, client, id)
	if err != nil {
		return State{}, err
	}
	// The record was just loaded: no need to fetch it again.
	info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return State{}, err
	}
	j, err := readJournal(info)
	if err != nil {
		return State{}, err
	}
	if j.Phase != "" {
		unlock, err := e.lockContainer(ctx, client, id)
		if err != nil {
			return State{}, err
		}
		defer unlock()
		if err := e.recover(ctx, client, c); err != nil {
			return State{}, fmt.Errorf("recover container %s: %w", id, err)
		}
		if info, err = c.Info(ctx); err != nil {
			return State{}, fmt.Errorf("read container %s: %w", id, err)
		}
	}
	return e.stateOf(ctx, client, c, info)
}

// inspect reads back a container the engine has just changed.
func (e *Engine) inspect(ctx context.Context, c containerd.Container) (State, error) {
	info, err := c.Info(ctx)
	if errdefs.IsNotFound(err) {
		return State{}, fmt.Errorf("%w: %s", ErrNotFound, c.ID())
	}
	if err != nil {
		return State{}, fmt.Errorf("read container %s: %w", c.ID(), err)
	}
	client, _, err := e.connect(ctx)
	if err != nil {
		return State{}, err
	}
	return e.stateOf(ctx, client, c, info)
}

// stateOf builds a container's State from its record and its task.
func (e *Engine) stateOf(ctx context.Context, client *containerd.Client, c containerd.Container, info containers.Container) (State, error) {
	rec, err := e.recordOf(ctx, c, info)
	if err != nil {
		return State{}, err
	}
	st := State{ID: info.ID, Spec: rec.Spec, ImageDigest: rec.ImageDigest,
		IPAddress: rec.Network.IP, MACAddress: rec.Network.MAC, LogPath: e.logPath(info.ID), ImageVolumes: rec.ImageVolumes}
	st.Spec.Name = info.ID
	// The container's image changed outside pouch: report the image it
	// really runs, so that the difference shows up as drift.
	if name, err := NormalizeImage(rec.Spec.Image); err != nil || name != info.Image {
		st.Spec.Image = info.Image
		st.ImageDigest = ""
		if img, err := c.Image(ctx); err == nil {
			st.ImageDigest = img.Target().Digest.String()
		}
	}
	if st.Status, err = taskStatus(ctx, client, info.ID); err != nil {
		return State{}, err
	}
	st.Spec.Running = st.Status == StatusRunning
	if info.Spec != nil {
		if p, err := specProcess(info.Spec.GetValue()); err == nil && p != nil {
			st.Process = Process{Args: p.Args, Env: p.Env, WorkingDir: p.Cwd}
		}
	}
	return st, nil
}

// Delete stops and removes the container's task, the container, its
// snapshot and kept revisions, its network namespace and address, its log
// and (unless it asked to keep them) its image volumes. Named volumes and
// bind sources are left alone. A container that is already gone is not an
// error.
func (e *Engine) Delete(ctx context.Context, id string) error {
	client, ctx, c, release, err := e.acquire(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer release()
	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("read container %s: %w", id, err)
	}
	rec, err := e.recordOf(ctx, c, info)
	if err != nil {
		return err
	}
	e.log.Info(ctx, "deleting container", map[string]any{"container": id})
	if err := e.unsuperviseTask(ctx, c); err != nil {
		return err
	}
	if err := e.stopTask(ctx, c, rec.Spec); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	if err := e.releaseNetwork(ctx, id, rec.Network); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	for _, r := range rec.Revisions {
		e.removeSnapshot(ctx, client, r.Snapshot)
	}
	if !rec.Spec.KeepImageVolumes {
		if err := e.host.RemoveAll(e.anonymousVolumesDir(id)); err != nil {
			return fmt.Errorf("remove image volumes of container %s: %w", id, err)
		}
	}
	if err := e.host.RemoveAll(filepath.Dir(e.logPath(id))); err != nil {
		return fmt.Errorf("remove files of container %s: %w", id, err)
	}
	return nil
}

// acquire loads container id for a change: it takes the container's locks,
// in this process and across processes, and first finishes or undoes an
// update that a crash interrupted. release gives the locks back.
func (e *Engine) acquire(ctx context.Context, id string) (_ *containerd.Client, _ context.Context, _ containerd.Container, release func(), err error) {
	unlockLocal := e.locks.lock(id)
	defer func() {
		if err != nil {
			unlockLocal()
		}
	}()
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c, err := loadContainer(ctx, client, id)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	unlock, err := e.lockContainer(ctx, client, id)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if err := e.recover(ctx, client, c); err != nil {
		unlock()
		return nil, nil, nil, nil, fmt.Errorf("recover container %s: %w", id, err)
	}
	return client, ctx, c, func() { unlock(); unlockLocal() }, nil
}

func loadContainer(ctx context.Context, client *containerd.Client, id string) (containerd.Container, error) {
	c, err := client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("load container %s: %w", id, err)
	}
	return c, nil
}

// prepareSnapshot prepares a new read-write snapshot on top of img's root
// filesystem, with a new key. Call it under a lease.
func (e *Engine) prepareSnapshot(ctx context.Context, client *containerd.Client, id string, img resolvedImage) (string, error) {
	key := id + "-" + randomSuffix()
	return key, e.prepareSnapshotAt(ctx, client, key, img)
}

// prepareSnapshotAt prepares the read-write snapshot key on top of img's
// root filesystem. Call it under a lease.
func (e *Engine) prepareSnapshotAt(ctx context.Context, client *containerd.Client, key string, img resolvedImage) error {
	diffIDs, err := img.image.RootFS(ctx)
	if err != nil {
		return fmt.Errorf("read image layers: %w", err)
	}
	parent := identity.ChainID(diffIDs).String()
	if _, err := client.SnapshotService(e.opts.Snapshotter).Prepare(ctx, key, parent); err != nil {
		return fmt.Errorf("prepare snapshot from image %s: %w", img.image.Name(), err)
	}
	e.log.Debug(ctx, "snapshot prepared", map[string]any{"snapshot": key})
	return nil
}

// removeSnapshot removes a snapshot, logging rather than failing: it runs on
// clean-up paths.
func (e *Engine) removeSnapshot(ctx context.Context, client *containerd.Client, key string) {
	if err := client.SnapshotService(e.opts.Snapshotter).Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
		e.log.Info(ctx, "could not remove snapshot", map[string]any{"snapshot": key, "error": err.Error()})
	}
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
