package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"

	"github.com/pouch/terraform-provider-pouch/internal/engine/filelock"
)

// Create pulls the image if needed, creates the container with its network
// namespace, network address and image volumes and, when spec.Running,
// starts its task and watches it for the start window
// (spec.Upgrade.VerifySeconds). The container's lock is held throughout, so
// that of two processes creating the same name one fails before it has made
// anything; and a failed create removes what it made, and only that.
func (e *Engine) Create(ctx context.Context, spec ContainerSpec) (_ State, retErr error) {
	if err := e.validateSpec(spec); err != nil {
		return State{}, err
	}
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return State{}, err
	}
	lock, err := e.lockContainer(ctx, spec.Name, "create")
	if err != nil {
		return State{}, err
	}
	if _, err := client.LoadContainer(ctx, spec.Name); err == nil {
		lock.release()
		return State{}, fmt.Errorf("container %q already exists in namespace %q: import it (terraform import) or choose another name",
			spec.Name, e.opts.Namespace)
	}
	defer func() {
		if retErr != nil {
			lock.releaseDeleted() // nothing is left of the container, its lock file included
		} else {
			lock.release()
		}
	}()
	e.log.Info(ctx, "creating container", map[string]any{"container": spec.Name, "image": spec.Image})
	cleanup := context.WithoutCancel(ctx)
	if err := e.clearDebris(ctx, spec.Name); err != nil {
		return State{}, err
	}

	// The lease keeps the new snapshot from garbage collection until the
	// container record refers to it.
	ctx, releaseLease, err := client.WithLease(ctx)
	if err != nil {
		return State{}, fmt.Errorf("create lease: %w", err)
	}
	defer releaseLease(cleanup)

	img, err := e.resolveImage(ctx, client, spec.Image, spec.PullPolicy)
	if err != nil {
		return State{}, err
	}
	if err := checkImageVolumes(img); err != nil {
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
	volumes, err := e.planImageVolumes(spec, img, nil)
	if err != nil {
		return State{}, err
	}
	created, err := e.createImageVolumes(ctx, client, spec.Name, key, volumes)
	defer func() {
		if retErr != nil {
			e.removeImageVolumes(cleanup, spec.Name, created)
			_ = e.host.RemoveEmptyDir(e.anonymousVolumesDir(spec.Name))
		}
	}()
	if err != nil {
		return State{}, err
	}
	mounts, err := e.runtimeMounts(spec, volumes.all)
	if err != nil {
		return State{}, err
	}
	if err := e.checkPortsFree(ctx, client, spec); err != nil {
		return State{}, err
	}
	if err := e.checkAddressFree(ctx, client, spec); err != nil {
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
	files, err := e.ownFiles(spec)
	if err != nil {
		return State{}, err
	}
	var initBinary string
	if spec.Init {
		if initBinary, err = e.initBinary(); err != nil {
			return State{}, err
		}
	}
	runtimeSpec, err := e.buildRuntimeSpec(ctx, client, runtimeInputs{
		spec: spec, proc: proc, snapshotKey: key, netnsPath: network.NetNS, mounts: mounts, files: files, initBinary: initBinary})
	if err != nil {
		return State{}, err
	}
	if err := e.host.MkdirNew(e.containerDir(spec.Name), 0o700); err != nil {
		return State{}, fmt.Errorf("create the container's log directory: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = e.host.RemoveAll(e.containerDir(spec.Name))
		}
	}()
	if err := e.writeOwnFiles(spec.Name, files); err != nil {
		return State{}, err
	}
	rec := record{Spec: withUploadSums(spec), ImageDigest: img.digest(), Network: network, ImageVolumes: volumes.all,
		SecretEnvKeys: sortedKeys(spec.SecretEnv)}
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
			if err := e.killTask(cleanup, c); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("clean up task: %w", err))
			}
			if err := c.Delete(cleanup); err != nil && !errdefs.IsNotFound(err) {
				retErr = errors.Join(retErr, fmt.Errorf("clean up container: %w", err))
			}
		}
	}()
	if spec.Running {
		if err := e.startTask(ctx, c, spec); err != nil {
			return State{}, err
		}
		if err := e.watchStart(ctx, c, spec, time.Now()); err != nil {
			return State{}, err
		}
	}
	return e.inspectChanged(ctx, c, spec)
}

// clearDebris removes what an interrupted create or delete of container id
// left behind on the host: its network namespace (with its CNI address)
// and its log directory. The caller holds the container's lock and has
// seen that the container does not exist, so nothing of this is in use.
// Image volumes are not debris: a container destroyed with
// keep_image_volumes leaves them for the next one of its name.
func (e *Engine) clearDebris(ctx context.Context, id string) error {
	ns, err := e.host.FindNetNS(id)
	if err != nil {
		return fmt.Errorf("look for a leftover network namespace of %s: %w", id, err)
	}
	if ns != "" {
		e.log.Info(ctx, "removing the network namespace an interrupted create or delete left", map[string]any{"container": id})
		if err := e.host.Detach(ctx, e.cniID(id), ns, nil); err != nil {
			// A namespace that never joined the bridge (network_mode none,
			// or no CNI plugins) has nothing to release.
			e.log.Info(ctx, "could not detach the leftover network namespace", map[string]any{"container": id, "error": err.Error()})
		}
		if err := e.removeNetNS(ns); err != nil {
			return err
		}
	}
	if err := e.host.RemoveAll(e.containerDir(id)); err != nil {
		return fmt.Errorf("remove the files an interrupted create or delete of %s left: %w", id, err)
	}
	return nil
}

// Inspect reads a container back, first finishing or undoing an update
// that a crash interrupted. errors.Is(err, ErrNotFound) when it is gone.
// It is what every refresh calls: two requests to containerd (the
// container record and its task) unless there is an update to recover.
// An update that another live pouch process is running is left to it: the
// container is read as it is.
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
		if info, err = e.recoverIfIdle(ctx, client, c); err != nil {
			return State{}, err
		}
	}
	return e.stateOf(ctx, client, c, info)
}

// recoverIfIdle recovers container c's interrupted update, unless another
// process holds the container's lock (its update is not interrupted but
// running). It returns the container's record as it is then. The caller
// holds the in-process lock.
func (e *Engine) recoverIfIdle(ctx context.Context, client *containerd.Client, c containerd.Container) (containers.Container, error) {
	f, err := filelock.Acquire(ctx, e.lockPath(c.ID()), "recover "+c.ID(), 0)
	switch {
	case errors.Is(err, filelock.ErrHeld):
		e.log.Info(ctx, "another pouch process is changing the container; reading it as it is", map[string]any{"container": c.ID()})
	case err != nil:
		return containers.Container{}, fmt.Errorf("lock container %s: %w", c.ID(), err)
	default:
		defer f.Release()
		if err := e.recover(ctx, client, c); err != nil {
			return containers.Container{}, fmt.Errorf("recover container %s: %w", c.ID(), err)
		}
	}
	info, err := c.Info(ctx)
	if err != nil {
		return containers.Container{}, fmt.Errorf("read container %s: %w", c.ID(), err)
	}
	return info, nil
}

// inspectChanged reads back a container the engine has just created or
// updated to spec, and verified. It reports the task as the spec wants it
// (Spec.Running), so that what a successful change returns never
// contradicts what was asked for; Status says what the task is now.
func (e *Engine) inspectChanged(ctx context.Context, c containerd.Container, spec ContainerSpec) (State, error) {
	info, err := c.Info(ctx)
	if errdefs.IsNotFound(err) {
		return State{}, fmt.Errorf("container %s: %w", c.ID(), ErrNotFound)
	}
	if err != nil {
		return State{}, fmt.Errorf("read container %s: %w", c.ID(), err)
	}
	client, _, err := e.connect(ctx)
	if err != nil {
		return State{}, err
	}
	st, err := e.stateOf(ctx, client, c, info)
	if err != nil {
		return State{}, err
	}
	st.Spec.Running = spec.Running
	return st, nil
}

// InspectAll reads, as Inspect does, every container of the namespace that
// pouch made, but for those with an update to finish or undo: Inspect
// recovers those, InspectAll changes nothing. It takes two requests to
// containerd for all the containers (the records, the tasks), and one more
// for each whose task the listing left out or whose image changed outside
// pouch: a remote provider reads all the containers of a plan's refresh
// with it, in one round trip.
func (e *Engine) InspectAll(ctx context.Context) ([]State, error) {
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return nil, err
	}
	all, err := client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	exits, err := taskStates(ctx, client)
	if err != nil {
		return nil, err
	}
	var out []State
	for _, c := range all {
		info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if err != nil {
			return nil, err
		}
		if _, ok, err := readRecord(info); !ok || err != nil {
			continue // not pouch's, or for Inspect to report
		}
		if j, err := readJournal(info); err != nil || j.Phase != "" {
			continue
		}
		t, ok := exits[info.ID]
		if !ok {
			// No task, or one whose state containerd could not read
			// (the listing leaves those out): ask for it alone.
			if t.status, t.code, err = taskState(ctx, client, info.ID); err != nil {
				continue // for Inspect to report
			}
		}
		st, err := e.stateFrom(ctx, c, info, t)
		if err != nil {
			continue // for Inspect to report
		}
		out = append(out, st)
	}
	return out, nil
}

// stateOf builds a container's State from its record and its task.
func (e *Engine) stateOf(ctx context.Context, client *containerd.Client, c containerd.Container, info containers.Container) (State, error) {
	var t taskExit
	var err error
	if t.status, t.code, err = taskState(ctx, client, info.ID); err != nil {
		return State{}, err
	}
	return e.stateFrom(ctx, c, info, t)
}

// stateFrom builds a container's State from its record and its task's
// status t.
func (e *Engine) stateFrom(ctx context.Context, c containerd.Container, info containers.Container, t taskExit) (State, error) {
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
	st.Status = t.status
	// A one-shot container (no start window) that ran to completion has
	// done what it was asked: that is not drift.
	done := st.Status == StatusStopped && t.code == 0 && rec.Spec.Upgrade.VerifySeconds == 0
	st.Spec.Running = st.Status == StatusRunning || done
	if info.Spec != nil {
		if p, err := specProcess(info.Spec.GetValue()); err == nil && p != nil {
			st.Process = Process{Args: withoutInit(p.Args), Env: redactEnv(p.Env, rec.SecretEnvKeys), WorkingDir: p.Cwd}
		}
	}
	return st, nil
}

// redactEnv hides the values of the secret variables of an environment.
func redactEnv(env, secret []string) []string {
	if len(secret) == 0 {
		return env
	}
	out := make([]string, len(env))
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(secret, k) {
			kv = k + "=(secret)"
		}
		out[i] = kv
	}
	return out
}

// Delete stops and removes the container's task, its network namespace and
// address, its log and (unless it asked to keep them) its image volumes,
// then the container, its snapshot and kept revisions. Named volumes and
// bind sources are left alone. The host's files go first, so that a delete
// that fails half-way leaves the container to be deleted again rather than
// files that a new container of the same name would take for its own. A
// container that is already gone is not an error.
func (e *Engine) Delete(ctx context.Context, id string) error {
	client, ctx, c, lock, err := e.acquire(ctx, id, "delete")
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	deleted := false
	defer func() {
		if deleted {
			lock.releaseDeleted()
		} else {
			lock.release()
		}
	}()
	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("read container %s: %w", id, err)
	}
	// A container pouch cannot manage can still be deleted.
	rec, err := e.recordOf(ctx, c, info)
	if err != nil && !errors.Is(err, ErrUnrepresentable) {
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
	if !rec.Spec.KeepImageVolumes {
		if err := e.deleteImageVolumes(id, rec.ImageVolumes); err != nil {
			return fmt.Errorf("remove image volumes of container %s: %w", id, err)
		}
	}
	if err := e.host.RemoveAll(e.containerDir(id)); err != nil {
		return fmt.Errorf("remove the log of container %s: %w", id, err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	for _, r := range rec.Revisions {
		e.removeSnapshot(ctx, client, r.Snapshot)
	}
	deleted = true
	return nil
}

// acquire loads container id for a change (operation names it in the
// lock): it takes the container's lock, in this process and across
// processes, and first finishes or undoes an update that a crash
// interrupted.
func (e *Engine) acquire(ctx context.Context, id, operation string) (*containerd.Client, context.Context, containerd.Container, containerLock, error) {
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return nil, nil, nil, containerLock{}, err
	}
	lock, err := e.lockContainer(ctx, id, operation)
	if err != nil {
		return nil, nil, nil, containerLock{}, err
	}
	c, err := loadContainer(ctx, client, id)
	if errors.Is(err, ErrNotFound) {
		lock.releaseDeleted()
		return nil, nil, nil, containerLock{}, err
	}
	if err != nil {
		lock.release()
		return nil, nil, nil, containerLock{}, err
	}
	if err := e.recover(ctx, client, c); err != nil {
		lock.release()
		return nil, nil, nil, containerLock{}, fmt.Errorf("recover container %s: %w", id, err)
	}
	return client, ctx, c, lock, nil
}

func loadContainer(ctx context.Context, client *containerd.Client, id string) (containerd.Container, error) {
	c, err := client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("container %s: %w", id, ErrNotFound)
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
