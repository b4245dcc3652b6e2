package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
)

// Update changes a container in place to match spec, keeping its ID.
//
// A change of image runs the upgrade: stage a new read-write snapshot from
// the new image and the new runtime spec while the old task still runs; stop
// the task; swap image, snapshot, spec and record in one containerd update;
// start the task if spec.Running; then remove the old snapshot. A change of
// the process or network only restarts the task on the same snapshot. Labels
// and settings that do not reach the task are updated without a restart.
//
// When any step fails, the old image, snapshot and spec are restored, the
// old task is started again if it was running, everything staged is removed,
// and the error wraps ErrRolledBack.
func (e *Engine) Update(ctx context.Context, id string, spec ContainerSpec) (State, error) {
	spec.Name = id
	if err := validateSpec(spec); err != nil {
		return State{}, err
	}
	defer e.locks.lock(id)()
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return State{}, err
	}
	c, err := loadContainer(ctx, client, id)
	if err != nil {
		return State{}, err
	}
	u := &upgrade{e: e, client: client, c: c, spec: spec}
	if err := u.run(ctx); err != nil {
		return State{}, err
	}
	return e.inspect(ctx, c)
}

// upgrade is one Update in progress: what it started from and what it has
// done so far, so that a rollback undoes exactly that.
type upgrade struct {
	e      *Engine
	client *containerd.Client
	c      containerd.Container
	spec   ContainerSpec

	old        containers.Container // the container record before the update
	oldRec     record
	wasRunning bool

	img          resolvedImage
	newKey       string    // the staged snapshot; equals old.SnapshotKey when the rootfs is kept
	newSpec      *oci.Spec // the staged runtime spec
	newNet       networkState
	volumes      []ImageVolume // every image volume of the new container
	newVolumes   []ImageVolume // the image volumes this update created
	restart      bool          // the task must be recreated for the change to apply
	resize       bool          // only the cgroup limits change: applied to the live task
	releaseLease func(context.Context) error

	stopped, netApplied, swapped bool
}

func (u *upgrade) run(ctx context.Context) error {
	ctx, release, err := u.client.WithLease(ctx)
	if err != nil {
		return fmt.Errorf("create lease: %w", err)
	}
	u.releaseLease = release
	defer func() { _ = u.releaseLease(context.WithoutCancel(ctx)) }()

	if err := u.stage(ctx); err != nil {
		return u.rollback(ctx, "stage", err)
	}
	if !u.restart {
		return u.applyInPlace(ctx)
	}
	if err := u.stop(ctx); err != nil {
		return u.rollback(ctx, "stop", err)
	}
	if err := u.swap(ctx); err != nil {
		return u.rollback(ctx, "swap", err)
	}
	if err := u.start(ctx); err != nil {
		return u.rollback(ctx, "start", err)
	}
	u.commit(ctx)
	return nil
}

// stage resolves the new image and, while the old task keeps running,
// prepares everything the new container needs: the snapshot (only for a new
// image) and the runtime spec. The old snapshot is added to the lease so that
// garbage collection cannot take it once the swap stops referring to it.
func (u *upgrade) stage(ctx context.Context) error {
	var err error
	if u.old, err = u.c.Info(ctx); err != nil {
		return fmt.Errorf("read container: %w", err)
	}
	if u.oldRec, err = u.e.recordOf(ctx, u.c, u.old); err != nil {
		return err
	}
	oldRec := u.oldRec
	status, err := taskStatus(ctx, u.c)
	if err != nil {
		return err
	}
	u.wasRunning = status == StatusRunning || status == StatusPaused

	if u.img, err = u.e.resolveImage(ctx, u.client, u.spec.Image); err != nil {
		return err
	}
	proc, err := MergeProcess(u.spec, u.img.config)
	if err != nil {
		return err
	}
	imageChanged := u.img.digest() != oldRec.ImageDigest || u.img.image.Name() != u.old.Image
	u.newKey = u.old.SnapshotKey
	if imageChanged {
		u.e.log.Info(ctx, "upgrade: staging new image", map[string]any{
			"container": u.spec.Name, "from": u.old.Image, "to": u.img.image.Name(), "digest": u.img.digest()})
		lease, _ := leases.FromContext(ctx)
		if err := u.client.LeasesService().AddResource(ctx, leases.Lease{ID: lease}, leases.Resource{
			ID: u.old.SnapshotKey, Type: "snapshots/" + u.e.opts.Snapshotter,
		}); err != nil {
			return fmt.Errorf("protect old snapshot: %w", err)
		}
		if u.newKey, err = u.e.prepareSnapshot(ctx, u.client, u.spec.Name, u.img); err != nil {
			return err
		}
	}
	if u.volumes, u.newVolumes, err = u.e.ensureImageVolumes(ctx, u.client, u.spec, u.img, u.newKey, oldRec.ImageVolumes); err != nil {
		return err
	}
	mounts, err := u.e.runtimeMounts(u.spec, u.volumes)
	if err != nil {
		return err
	}
	if u.newNet, err = u.e.planNetwork(u.spec, oldRec.Network); err != nil {
		return err
	}
	if u.newSpec, err = u.e.buildRuntimeSpec(ctx, u.client, runtimeInputs{
		spec: u.spec, proc: proc, snapshotKey: u.newKey, netnsPath: u.newNet.NetNS, mounts: mounts}); err != nil {
		return err
	}
	diff, err := compareSpecs(u.old.Spec, u.newSpec)
	if err != nil {
		return err
	}
	networkChanged := u.newNet.Mode != oldRec.Network.Mode || u.newNet.NetNS != oldRec.Network.NetNS ||
		!reflect.DeepEqual(u.newNet.Ports, oldRec.Network.Ports)
	u.restart = imageChanged || diff == specDiffers || networkChanged
	u.resize = diff == resourcesDiffer
	return nil
}

// applyInPlace handles an update that does not need a new task: new cgroup
// limits are applied to the running task, the spec, record and labels are
// rewritten, and the task is started or stopped as asked.
func (u *upgrade) applyInPlace(ctx context.Context) error {
	if u.resize && u.wasRunning {
		if err := u.resizeTask(ctx, u.spec.Resources); err != nil {
			if rerr := u.resizeTask(context.WithoutCancel(ctx), u.oldRec.Spec.Resources); rerr != nil {
				return fmt.Errorf("resize container %s: %w; restoring the old limits failed too: %w", u.spec.Name, err, rerr)
			}
			return fmt.Errorf("%w: container %s keeps its old limits: resize failed: %w", ErrRolledBack, u.spec.Name, err)
		}
	}
	if u.spec.Running != u.wasRunning || !u.spec.Running {
		// Stopping on purpose, or restarting an exited task: not the
		// restart monitor's business.
		if err := u.e.unsuperviseTask(ctx, u.c); err != nil {
			return err
		}
	}
	err := u.c.Update(ctx, func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
		spec, err := typeurl.MarshalAny(u.newSpec)
		if err != nil {
			return fmt.Errorf("encode runtime spec: %w", err)
		}
		c.Spec = spec
		return u.withNewRecord(ctx, client, c)
	})
	if err != nil {
		return fmt.Errorf("update container %s: %w", u.spec.Name, err)
	}
	switch {
	case u.spec.Running && !u.wasRunning:
		u.e.log.Info(ctx, "starting stopped container", map[string]any{"container": u.spec.Name})
		if err := u.e.killTask(ctx, u.c); err != nil { // delete the exited task
			return err
		}
		return u.e.startTask(ctx, u.c, u.spec)
	case !u.spec.Running && u.wasRunning:
		u.e.log.Info(ctx, "stopping container", map[string]any{"container": u.spec.Name})
		return u.e.stopTask(ctx, u.c, u.spec)
	case u.spec.Running:
		// The labels were rewritten: hand the task back to the monitor.
		return u.e.superviseTask(ctx, u.c, u.spec)
	}
	return nil
}

// resizeTask applies cgroup limits to the running task, in place.
func (u *upgrade) resizeTask(ctx context.Context, r Resources) error {
	task, err := u.c.Task(ctx, nil)
	if err != nil {
		return fmt.Errorf("load task: %w", err)
	}
	u.e.log.Info(ctx, "resizing running task", map[string]any{"container": u.spec.Name})
	return task.Update(ctx, containerd.WithResources(liveResources(r)))
}

// stop stops the old task with the container's stop timeout and deletes it.
func (u *upgrade) stop(ctx context.Context) error {
	u.e.log.Info(ctx, "upgrade: stopping task", map[string]any{"container": u.spec.Name, "running": u.wasRunning})
	u.stopped = true
	if err := u.e.unsuperviseTask(ctx, u.c); err != nil {
		return err
	}
	return u.e.stopTask(ctx, u.c, u.oldRec.Spec)
}

// swap moves the network to its new state (for most updates: nothing to
// do, the namespace and its address are kept), then points the container
// at the new image, snapshot and spec in one containerd update.
func (u *upgrade) swap(ctx context.Context) error {
	u.e.log.Info(ctx, "upgrade: swapping container to the new configuration", map[string]any{
		"container": u.spec.Name, "snapshot": u.newKey})
	u.netApplied = true
	net, err := u.e.applyNetwork(ctx, u.spec.Name, u.oldRec.Network, u.newNet)
	if err != nil {
		return err
	}
	u.newNet = net
	err = u.c.Update(ctx, func(_ context.Context, _ *containerd.Client, c *containers.Container) error {
		spec, err := typeurl.MarshalAny(u.newSpec)
		if err != nil {
			return fmt.Errorf("encode runtime spec: %w", err)
		}
		c.Image = u.img.image.Name()
		c.SnapshotKey = u.newKey
		c.Spec = spec
		return u.withNewRecord(ctx, nil, c)
	})
	if err != nil {
		return fmt.Errorf("update container: %w", err)
	}
	u.swapped = true
	return nil
}

// start starts the new task when the container is to run.
func (u *upgrade) start(ctx context.Context) error {
	if !u.spec.Running {
		return nil
	}
	u.e.log.Info(ctx, "upgrade: starting task", map[string]any{"container": u.spec.Name})
	return u.e.startTask(ctx, u.c, u.spec)
}

// commit removes the old snapshot once the new container is in place.
func (u *upgrade) commit(ctx context.Context) {
	if u.newKey != u.old.SnapshotKey {
		u.e.removeSnapshot(ctx, u.client, u.old.SnapshotKey)
	}
	if old := u.oldRec.Network.NetNS; old != "" && u.newNet.NetNS == "" {
		if err := u.e.host.RemoveNetNS(old); err != nil {
			u.e.log.Info(ctx, "could not remove the old network namespace", map[string]any{"path": old, "error": err.Error()})
		}
	}
	u.e.log.Info(ctx, "upgrade: done", map[string]any{"container": u.spec.Name, "image": u.img.image.Name()})
}

// rollback undoes what the update did before it failed in phase, and
// returns the error to report.
func (u *upgrade) rollback(ctx context.Context, phase string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	u.e.log.Info(ctx, "upgrade failed, rolling back", map[string]any{"container": u.spec.Name, "phase": phase, "error": cause.Error()})
	var errs []error
	if u.swapped {
		if err := u.e.killTask(ctx, u.c); err != nil {
			errs = append(errs, fmt.Errorf("stop new task: %w", err))
		}
		err := u.c.Update(ctx, func(_ context.Context, _ *containerd.Client, c *containers.Container) error {
			c.Image, c.SnapshotKey, c.Spec, c.Labels = u.old.Image, u.old.SnapshotKey, u.old.Spec, u.old.Labels
			return withRecord(c, u.oldRec)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("restore container record: %w", err))
		}
	}
	if u.netApplied {
		if _, err := u.e.applyNetwork(ctx, u.spec.Name, u.newNet, u.oldRec.Network); err != nil {
			errs = append(errs, fmt.Errorf("restore network: %w", err))
		}
	}
	if u.stopped && u.wasRunning && len(errs) == 0 {
		if err := u.e.killTask(ctx, u.c); err != nil { // a half-created task
			errs = append(errs, err)
		} else if err := u.e.startTask(ctx, u.c, u.oldRec.Spec); err != nil {
			errs = append(errs, fmt.Errorf("restart old task: %w", err))
		}
	}
	if len(errs) == 0 {
		if u.newKey != "" && u.newKey != u.old.SnapshotKey {
			u.e.removeSnapshot(ctx, u.client, u.newKey)
		}
		u.e.removeImageVolumes(ctx, u.newVolumes)
		if u.newNet.NetNS != "" && u.oldRec.Network.NetNS == "" {
			_ = u.e.host.RemoveNetNS(u.newNet.NetNS)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("update of container %s failed during %s: %w; rolling back failed too: %w",
			u.spec.Name, phase, cause, errors.Join(errs...))
	}
	return fmt.Errorf("%w: container %s is back on image %s: %s failed: %w", ErrRolledBack, u.spec.Name, u.old.Image, phase, cause)
}

// withNewRecord writes the user's spec, the labels and the image digest onto
// a container record.
func (u *upgrade) withNewRecord(_ context.Context, _ *containerd.Client, c *containers.Container) error {
	c.Labels = u.spec.Labels
	return withRecord(c, record{Spec: u.spec, ImageDigest: u.img.digest(), Network: u.newNet, ImageVolumes: u.volumes})
}

// specDiff says how a generated runtime spec differs from a stored one.
type specDiff int

const (
	specsEqual      specDiff = iota
	resourcesDiffer          // only the cgroup limits differ
	specDiffers              // the task must be recreated
)

// compareSpecs compares a stored runtime spec with a generated one.
func compareSpecs(stored typeurl.Any, generated *oci.Spec) (specDiff, error) {
	if stored == nil {
		return specDiffers, nil
	}
	var old oci.Spec
	if err := json.Unmarshal(stored.GetValue(), &old); err != nil {
		return specDiffers, fmt.Errorf("decode stored runtime spec: %w", err)
	}
	equal := func(a, b *oci.Spec) bool {
		ja, errA := json.Marshal(a)
		jb, errB := json.Marshal(b)
		return errA == nil && errB == nil && bytes.Equal(ja, jb)
	}
	if equal(&old, generated) {
		return specsEqual, nil
	}
	if old.Linux != nil && generated.Linux != nil {
		oldLinux := *old.Linux
		oldLinux.Resources = generated.Linux.Resources
		old.Linux = &oldLinux
		if equal(&old, generated) {
			return resourcesDiffer, nil
		}
	}
	return specDiffers, nil
}
