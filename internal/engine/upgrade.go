package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
)

// Phase names a phase of an upgrade; the journal records the last one
// entered.
type Phase string

// The phases of an upgrade, in order. Each has a contract:
//   - Stage: while the old task keeps running, resolve the new image to a
//     digest, pull and unpack it, prepare the new read-write snapshot under
//     a lease (or reuse a kept revision's), create the volumes the new image
//     declares and build the new runtime spec. Nothing the old container
//     uses is touched.
//   - Stop: the old task gets its stop signal, then SIGKILL after the stop
//     timeout. A paused task is resumed to be stopped, and ends paused.
//   - Swap: the network moves if its settings changed; rootfs changes are
//     carried over if asked; then one containerd update points the container
//     at the new image, snapshot, spec and labels.
//   - Start: the new task starts if the container is to run.
//   - Verify: the health check passes and/or the task still runs after
//     verify_seconds.
//   - Commit: the old snapshot is removed (or kept as a revision), the
//     lease released, the journal cleared.
//
// A failure before Commit rolls back to the old container; see rollBack.
const (
	PhaseStage  Phase = "stage"
	PhaseStop   Phase = "stop"
	PhaseSwap   Phase = "swap"
	PhaseStart  Phase = "start"
	PhaseVerify Phase = "verify"
	PhaseCommit Phase = "commit"
)

// Update changes a container in place to match spec, keeping its ID.
//
// A change of image runs the phases above. A change of the process,
// mounts, network or security runs the same phases on the same snapshot (a
// restart in place). A change of cgroup limits alone resizes the running
// task. Labels and settings that do not reach the task are rewritten
// without a restart.
//
// When any phase fails, the old image, snapshot and spec are restored, the
// old task is started again if it was running, everything staged is removed,
// and the error wraps ErrRolledBack. An update interrupted by a crash is
// finished or undone by the next Inspect, Update or Delete (see recover).
func (e *Engine) Update(ctx context.Context, id string, spec ContainerSpec) (State, error) {
	spec.Name = id
	if err := e.validateSpec(spec); err != nil {
		return State{}, err
	}
	client, ctx, c, lock, err := e.acquire(ctx, id, "update")
	if err != nil {
		return State{}, err
	}
	defer lock.release()
	u := &upgrade{e: e, client: client, c: c, spec: spec}
	if err := u.run(ctx); err != nil {
		return State{}, err
	}
	return e.inspectChanged(ctx, c, spec)
}

// upgrade is one Update in progress.
type upgrade struct {
	e      *Engine
	client *containerd.Client
	c      containerd.Container
	spec   ContainerSpec

	old    containers.Container // the container record before the update
	oldRec record
	j      journal // what a rollback needs; written to the container

	img          resolvedImage
	imageChanged bool
	fromRevision bool          // the new snapshot is a kept revision's
	newSpec      *oci.Spec     // the staged runtime spec
	volumes      []ImageVolume // every image volume of the new container
	restart      bool          // the task must be recreated for the change to apply
	resize       bool          // only the cgroup limits change: applied to the live task
	done         bool          // a one-shot task that ran to completion: as good as running
	started      time.Time     // when the new task started
	files        []ownFile     // the new task's own files and /etc files
}

func (u *upgrade) run(ctx context.Context) error {
	ctx, _, err := u.client.WithLease(ctx)
	if err != nil {
		return fmt.Errorf("create lease: %w", err)
	}
	u.j.Lease, _ = leases.FromContext(ctx)

	if err := u.stage(ctx); err != nil {
		return u.fail(ctx, PhaseStage, err)
	}
	if !u.restart {
		return u.applyInPlace(ctx)
	}
	for _, p := range []struct {
		phase Phase
		run   func(context.Context) error
	}{
		{PhaseStop, u.stop},
		{PhaseSwap, u.swap},
		{PhaseStart, u.start},
		{PhaseVerify, u.verify},
	} {
		if err := p.run(ctx); err != nil {
			return u.fail(ctx, p.phase, err)
		}
		if err := u.e.hook(p.phase); err != nil {
			return u.fail(ctx, p.phase, err)
		}
	}
	return u.commit(ctx)
}

// stage resolves the new image and, while the old task keeps running,
// prepares everything the new container needs. Inputs that cannot work (an
// image with a VOLUME it must not have, a port another container
// publishes) are refused before the journal is written, so that nothing is
// touched; the journal is written before anything is created, so that a
// crash in this phase leaves nothing that recovery cannot find.
func (u *upgrade) stage(ctx context.Context) error {
	var err error
	if u.old, err = u.c.Info(ctx); err != nil {
		return fmt.Errorf("read container: %w", err)
	}
	if u.oldRec, err = u.e.recordOf(ctx, u.c, u.old); err != nil {
		return err
	}
	_, managed, err := readRecord(u.old)
	if err != nil {
		return err
	}
	oldRec := u.oldRec
	status, exitCode, err := taskState(ctx, u.client, u.c.ID())
	if err != nil {
		return err
	}
	u.done = status == StatusStopped && exitCode == 0 && oldRec.Spec.Upgrade.VerifySeconds == 0
	if u.img, err = u.e.resolveImage(ctx, u.client, u.spec.Image, u.spec.PullPolicy); err != nil {
		return err
	}
	if err := checkImageVolumes(u.img); err != nil {
		return err
	}
	u.spec.SecretEnv, err = u.secretEnv()
	if err != nil {
		return err
	}
	proc, err := MergeProcess(u.spec, u.img.config)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(u.spec.Ports, oldRec.Spec.Ports) {
		if err := u.e.checkPortsFree(ctx, u.client, u.spec); err != nil {
			return err
		}
	}
	if u.spec.IPv4Address != oldRec.Network.IP {
		if err := u.e.checkAddressFree(ctx, u.client, u.spec); err != nil {
			return err
		}
	}
	u.imageChanged = u.img.digest() != oldRec.ImageDigest || u.img.image.Name() != u.old.Image
	u.j = journal{
		Phase: PhaseStage, Lease: u.j.Lease,
		WasRunning: status == StatusRunning || status == StatusPaused, WasPaused: status == StatusPaused,
		OldImage: u.old.Image, OldSnapshot: u.old.SnapshotKey, OldLabels: u.old.Labels, OldRecord: oldRec,
		NewSnapshot: u.old.SnapshotKey,
	}
	if u.old.Spec != nil {
		u.j.OldSpecType, u.j.OldSpec = u.old.Spec.GetTypeUrl(), u.old.Spec.GetValue()
	}
	if u.imageChanged {
		if rev, ok := findRevision(oldRec, u.img.digest()); ok {
			u.j.NewSnapshot, u.fromRevision = rev.Snapshot, true
		} else {
			u.j.NewSnapshot = u.spec.Name + "-" + randomSuffix()
		}
	}
	volumes, err := u.e.planImageVolumes(u.spec, u.img, oldRec.ImageVolumes)
	if err != nil {
		return err
	}
	u.volumes, u.j.NewVolumes = volumes.all, volumes.toCreate
	if u.j.NewNetwork, err = u.e.planNetwork(u.spec, oldRec.Network); err != nil {
		return err
	}
	// A container that pouch did not create gets its derived record with
	// the journal: recovery acts only on containers with a pouch record.
	if err := u.c.Update(ctx, func(_ context.Context, _ *containerd.Client, c *containers.Container) error {
		if !managed {
			if err := withRecord(c, oldRec); err != nil {
				return err
			}
		}
		return withJournal(c, u.j)
	}); err != nil {
		return fmt.Errorf("write the upgrade journal: %w", err)
	}
	if u.imageChanged {
		u.e.log.Info(ctx, "upgrade: staging new image", map[string]any{
			"container": u.spec.Name, "from": u.old.Image, "to": u.img.image.Name(), "digest": u.img.digest()})
		if err := u.client.LeasesService().AddResource(ctx, leases.Lease{ID: u.j.Lease}, leases.Resource{
			ID: u.old.SnapshotKey, Type: "snapshots/" + u.e.opts.Snapshotter,
		}); err != nil {
			return fmt.Errorf("protect old snapshot: %w", err)
		}
		if !u.fromRevision {
			if err := u.e.prepareSnapshotAt(ctx, u.client, u.j.NewSnapshot, u.img); err != nil {
				return err
			}
		}
	}
	created, err := u.e.createImageVolumes(ctx, u.client, u.spec.Name, u.j.NewSnapshot, volumes)
	if err != nil {
		// Only what was made is undone; the journal in memory, which the
		// rollback reads, says so.
		u.j.NewVolumes = created
		return err
	}
	mounts, err := u.e.runtimeMounts(u.spec, u.volumes)
	if err != nil {
		return err
	}
	if u.files, err = u.e.ownFiles(u.spec); err != nil {
		return err
	}
	u.files = u.e.keepEtcFiles(u.spec.Name, u.files, oldRec.Spec, u.spec, u.old.Spec)
	// New files of their own names: the old task keeps its own.
	if err := u.e.writeOwnFiles(u.spec.Name, u.files); err != nil {
		return err
	}
	var initBinary string
	if u.spec.Init {
		if initBinary, err = u.e.initBinary(); err != nil {
			return err
		}
	}
	if u.newSpec, err = u.e.buildRuntimeSpec(ctx, u.client, runtimeInputs{
		spec: u.spec, proc: proc, snapshotKey: u.j.NewSnapshot, netnsPath: u.j.NewNetwork.NetNS, mounts: mounts,
		files: u.files, initBinary: initBinary}); err != nil {
		return err
	}
	diff, err := compareSpecs(u.old.Spec, u.newSpec)
	if err != nil {
		return err
	}
	networkChanged := u.j.NewNetwork.Mode != oldRec.Network.Mode || u.j.NewNetwork.NetNS != oldRec.Network.NetNS ||
		!reflect.DeepEqual(u.j.NewNetwork.Ports, oldRec.Network.Ports) || u.j.NewNetwork.IP != oldRec.Network.IP ||
		u.j.NewNetwork.Fixed != oldRec.Network.Fixed
	logChanged := u.spec.Log.withDefaults() != oldRec.Spec.Log.withDefaults()
	// What the plan said (Classify) restarts too: a change the runtime
	// spec shows only as resources (device rules, a lifted soft limit)
	// cannot be applied live.
	u.restart = u.imageChanged || diff == specDiffers || networkChanged || logChanged ||
		Classify(oldRec.Spec, u.spec) == ChangeRestart
	u.resize = diff == resourcesDiffer
	if u.imageChanged && u.j.WasRunning {
		u.writeOutImage(ctx)
	}
	return u.e.hook(PhaseStage)
}

// secretEnv returns the secret variables the new task gets: the spec's
// when secret_env_version changes (or the old container had none), else
// the values the old task has, so that only a version change restarts a
// task for its secrets, as the plan says.
func (u *upgrade) secretEnv() (map[string]string, error) {
	old := u.oldRec
	if u.spec.SecretEnvVersion != old.Spec.SecretEnvVersion || len(old.SecretEnvKeys) == 0 {
		return u.spec.SecretEnv, nil
	}
	if u.old.Spec == nil {
		return nil, nil
	}
	p, err := specProcess(u.old.Spec.GetValue())
	if err != nil || p == nil {
		return nil, fmt.Errorf("read the secret environment of the running task: %v", err)
	}
	env := map[string]string{}
	for _, kv := range p.Env {
		k, v, _ := strings.Cut(kv, "=")
		if slices.Contains(old.SecretEnvKeys, k) {
			env[k] = v
		}
	}
	return env, nil
}

// writeOutImage writes the new image's files out to disk while the old task
// still serves. A pull leaves the unpacked layers in the page cache; written
// back during the outage, hundreds of MB of them would slow the task stop
// and start queued behind them (the outage of a 500 MB upgrade was twice
// the restart floor's). It is only an optimisation: a failure is logged.
func (u *upgrade) writeOutImage(ctx context.Context) {
	start := time.Now()
	mounts, err := u.client.SnapshotService(u.e.opts.Snapshotter).Mounts(ctx, u.j.NewSnapshot)
	if err == nil {
		if dir := snapshotDir(mounts); dir != "" {
			err = u.e.host.SyncFS(dir)
		}
	}
	if err != nil {
		u.e.log.Info(ctx, "could not write the new image out", map[string]any{"container": u.spec.Name, "error": err.Error()})
		return
	}
	u.e.log.Debug(ctx, "new image written out", map[string]any{"container": u.spec.Name, "took": time.Since(start).String()})
}

// snapshotDir is a directory on the snapshotter's filesystem, from a
// snapshot's mounts: an overlay's upper or first lower directory, or a bind
// mount's source.
func snapshotDir(mounts []mount.Mount) string {
	for _, m := range mounts {
		if m.Type == "bind" || m.Type == "rbind" {
			return m.Source
		}
		for _, o := range m.Options {
			if dir, ok := strings.CutPrefix(o, "upperdir="); ok {
				return dir
			}
			if dirs, ok := strings.CutPrefix(o, "lowerdir="); ok {
				return strings.Split(dirs, ":")[0]
			}
		}
	}
	return ""
}

// applyInPlace handles an update that does not need a new task: new cgroup
// limits are applied to the running task, the spec, record and labels are
// rewritten (clearing the journal in the same update), and the task is
// started or stopped as asked.
func (u *upgrade) applyInPlace(ctx context.Context) error {
	if u.resize && u.j.WasRunning {
		if err := u.resizeTask(ctx, u.spec.Resources, u.oldRec.Spec.Resources); err != nil {
			if rerr := u.resizeTask(context.WithoutCancel(ctx), u.oldRec.Spec.Resources, u.spec.Resources); rerr != nil {
				return fmt.Errorf("resize container %s: %w; restoring the old limits failed too: %w", u.spec.Name, err, rerr)
			}
			return u.fail(ctx, PhaseStage, fmt.Errorf("resize: %w", err))
		}
	}
	wasRunning := u.j.WasRunning && !u.j.WasPaused || u.done
	if u.spec.Running != wasRunning || !u.spec.Running {
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
		if err := u.withNewRecord(c, u.oldRec.Revisions); err != nil {
			return err
		}
		return withJournal(c, journal{})
	})
	if err != nil {
		return fmt.Errorf("update container %s: %w", u.spec.Name, err)
	}
	u.releaseLease(ctx)
	switch {
	case u.j.WasPaused:
		// A paused container stays paused; its new settings apply when it
		// is resumed or restarted.
		return nil
	case u.spec.Running && !wasRunning:
		u.e.log.Info(ctx, "starting stopped container", map[string]any{"container": u.spec.Name})
		if err := u.e.killTask(ctx, u.c); err != nil { // delete the exited task
			return err
		}
		if err := u.e.startTask(ctx, u.c, u.spec); err != nil {
			return err
		}
		// Nothing to roll back to: the container stays stopped if its
		// task exits at once, and the error says why.
		return u.e.watchStart(ctx, u.c, u.spec, time.Now())
	case !u.spec.Running && wasRunning:
		u.e.log.Info(ctx, "stopping container", map[string]any{"container": u.spec.Name})
		return u.e.stopTask(ctx, u.c, u.spec)
	case u.spec.Running && !u.done:
		// The labels were rewritten: hand the task back to the monitor.
		return u.e.superviseTask(ctx, u.c, u.spec)
	}
	return nil
}

// resizeTask applies cgroup limits r to the running task, in place, from
// the limits from.
func (u *upgrade) resizeTask(ctx context.Context, r, from Resources) error {
	task, err := u.c.Task(ctx, nil)
	if err != nil {
		return fmt.Errorf("load task: %w", err)
	}
	u.e.log.Info(ctx, "resizing running task", map[string]any{"container": u.spec.Name})
	return task.Update(ctx, containerd.WithResources(liveResources(r, from)))
}

// stop records the phase, then stops the old task with the old container's
// stop signal and timeout and deletes it.
func (u *upgrade) stop(ctx context.Context) error {
	u.e.log.Info(ctx, "upgrade: stopping task", map[string]any{"container": u.spec.Name, "running": u.j.WasRunning})
	u.j.Phase = PhaseStop
	if err := u.e.writeJournal(ctx, u.c, u.j); err != nil {
		return err
	}
	if err := u.e.unsuperviseTask(ctx, u.c); err != nil {
		return err
	}
	return u.e.stopTask(ctx, u.c, u.oldRec.Spec)
}

// swap moves the network to its new state (for most updates: nothing to
// do, the namespace and its address are kept), carries the old rootfs
// changes over if asked, then points the container at the new image,
// snapshot, spec and labels in one containerd update, which also records
// the Swap phase.
func (u *upgrade) swap(ctx context.Context) error {
	u.e.log.Info(ctx, "upgrade: swapping container to the new configuration", map[string]any{
		"container": u.spec.Name, "snapshot": u.j.NewSnapshot})
	net, err := u.e.applyNetwork(ctx, u.spec.Name, u.oldRec.Network, u.j.NewNetwork)
	if err != nil {
		return err
	}
	u.j.NewNetwork = net
	if u.spec.Upgrade.KeepRootfsChanges && u.imageChanged && !u.fromRevision {
		if err := u.e.carryRootfsChanges(ctx, u.client, u.old.SnapshotKey, u.j.NewSnapshot); err != nil {
			return err
		}
	}
	u.j.Phase = PhaseSwap
	return u.c.Update(ctx, func(_ context.Context, _ *containerd.Client, c *containers.Container) error {
		spec, err := typeurl.MarshalAny(u.newSpec)
		if err != nil {
			return fmt.Errorf("encode runtime spec: %w", err)
		}
		c.Image = u.img.image.Name()
		c.SnapshotKey = u.j.NewSnapshot
		c.Spec = spec
		if err := u.withNewRecord(c, u.oldRec.Revisions); err != nil {
			return err
		}
		return withJournal(c, u.j)
	})
}

// start starts the new task when the container is to run; a container that
// was paused ends paused.
func (u *upgrade) start(ctx context.Context) error {
	if !u.spec.Running {
		return nil
	}
	u.e.log.Info(ctx, "upgrade: starting task", map[string]any{"container": u.spec.Name})
	u.started = time.Now()
	if err := u.e.startTask(ctx, u.c, u.spec); err != nil {
		return err
	}
	if u.j.WasPaused {
		return u.e.pauseTask(ctx, u.c)
	}
	return nil
}

// verify checks the new task as the spec asks: its health check passes,
// and it still runs at the end of its start window (verify_seconds).
func (u *upgrade) verify(ctx context.Context) error {
	if !u.spec.Running || u.j.WasPaused {
		return nil
	}
	return u.e.verifyTask(ctx, u.c, u.spec, u.started)
}

// commit makes the update final: it records the Commit phase with the
// revisions kept, then removes what the old container used and no one needs
// any more, releases the lease and clears the journal.
func (u *upgrade) commit(ctx context.Context) error {
	revs := u.oldRec.Revisions
	var dropped []string
	if u.imageChanged {
		revs, dropped = nextRevisions(u.oldRec.Revisions,
			revision{Image: u.old.Image, Digest: u.oldRec.ImageDigest, Snapshot: u.old.SnapshotKey},
			u.img.digest(), u.spec.Upgrade.KeepRevisions)
		u.j.KeepOldSnapshot = isRevision(record{Revisions: revs}, u.old.SnapshotKey)
	}
	u.j.Phase = PhaseCommit
	err := u.c.Update(ctx, func(_ context.Context, _ *containerd.Client, c *containers.Container) error {
		if err := u.withNewRecord(c, revs); err != nil {
			return err
		}
		return withJournal(c, u.j)
	})
	if err != nil {
		return u.fail(ctx, PhaseCommit, err)
	}
	if err := u.e.hook(PhaseCommit); err != nil {
		return err
	}
	for _, key := range dropped {
		if key != u.old.SnapshotKey {
			u.e.removeSnapshot(ctx, u.client, key)
		}
	}
	if err := u.e.finishCommit(ctx, u.client, u.c, u.j); err != nil {
		return err
	}
	u.e.pruneOwnFiles(u.spec.Name, ownFilePaths(u.files))
	u.e.log.Info(ctx, "upgrade: done", map[string]any{"container": u.spec.Name, "image": u.img.image.Name()})
	return nil
}

// fail ends an update that failed in phase: it rolls back, or, when the
// spec asks for no rollback and the new container exists, leaves it in
// place and says so.
func (u *upgrade) fail(ctx context.Context, phase Phase, cause error) error {
	u.e.log.Info(ctx, "upgrade failed", map[string]any{"container": u.spec.Name, "phase": string(phase), "error": cause.Error()})
	if u.spec.Upgrade.NoRollback && (phase == PhaseStart || phase == PhaseVerify) {
		if err := u.commit(ctx); err != nil {
			return fmt.Errorf("update of container %s failed during %s: %w; keeping the new container failed too: %w",
				u.spec.Name, phase, cause, err)
		}
		return fmt.Errorf("update of container %s failed during %s: %w; the new container was left in place "+
			"for debugging because upgrade.rollback is false", u.spec.Name, phase, cause)
	}
	if u.j.Phase == "" {
		// Failed before the journal was written: nothing to undo but the lease.
		u.releaseLease(ctx)
		return fmt.Errorf("%w: container %s was not changed: %s failed: %w", ErrRolledBack, u.spec.Name, phase, cause)
	}
	if err := u.e.rollBack(ctx, u.client, u.c, u.j); err != nil {
		return fmt.Errorf("update of container %s failed during %s: %w; rolling back failed too: %w",
			u.spec.Name, phase, cause, err)
	}
	return fmt.Errorf("%w: container %s is back on image %s: %s failed: %w", ErrRolledBack, u.spec.Name, u.old.Image, phase, cause)
}

// releaseLease deletes the update's lease.
func (u *upgrade) releaseLease(ctx context.Context) {
	if err := u.client.LeasesService().Delete(context.WithoutCancel(ctx), leases.Lease{ID: u.j.Lease}); err != nil && !errdefs.IsNotFound(err) {
		u.e.log.Info(ctx, "could not release lease", map[string]any{"lease": u.j.Lease, "error": err.Error()})
	}
}

// withNewRecord writes the user's spec, the labels, the revisions and the
// image digest onto a container record.
func (u *upgrade) withNewRecord(c *containers.Container, revs []revision) error {
	c.Labels = u.e.containerLabels(u.spec.Labels, revs, c.Labels)
	return withRecord(c, record{Spec: withUploadSums(u.spec), ImageDigest: u.img.digest(), Network: u.j.NewNetwork,
		ImageVolumes: u.volumes, Revisions: revs, SecretEnvKeys: sortedKeys(u.spec.SecretEnv)})
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
