package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/engine/filelock"
)

// A container is changed by one pouch process at a time: two terraform runs
// (two states, two workspaces, two pipelines) changing the same container
// must not interleave their creates, upgrades or deletes. The lock is an
// flock(2) lock on <data_root>/locks/<namespace>/<id>.lock (see filelock):
// the kernel frees it the moment its holder dies, in whatever PID namespace
// that holder ran, so a killed provider never blocks the container and no
// takeover can race; a live holder's lock never expires mid-operation, so
// nothing needs renewing. Every pouch process that manages a namespace
// shares its data root (runc reads the volume, log and network namespace
// paths pouch hands it on the host, so it must), hence its lock files.

// DefaultLockWait is how long a change waits for another process's change
// of the same container before it gives up, naming that process: long
// enough to ride over a refresh's recovery or a short update, short enough
// that a second pipeline fails rather than hangs behind a long upgrade.
const DefaultLockWait = 30 * time.Second

// containerLock is a container's lock, in this process and across
// processes.
type containerLock struct {
	unlockLocal func()
	file        *filelock.Lock
}

// release gives the lock back.
func (l containerLock) release() {
	_ = l.file.Release()
	l.unlockLocal()
}

// releaseDeleted gives the lock of a deleted container back and removes its
// lock file.
func (l containerLock) releaseDeleted() {
	_ = l.file.Remove()
	l.unlockLocal()
}

// lockContainer takes container id's lock for operation ("create",
// "update", ...), waiting up to the LockWait option for another pouch
// process.
func (e *Engine) lockContainer(ctx context.Context, id, operation string) (containerLock, error) {
	unlockLocal := e.locks.lock(id)
	f, err := filelock.Acquire(ctx, e.lockPath(id), operation+" "+id, e.opts.LockWait)
	if err != nil {
		unlockLocal()
		var held *filelock.HeldError
		if errors.As(err, &held) {
			return containerLock{}, fmt.Errorf("container %s is being changed by another pouch process (%s): "+
				"retry when it is done; its lock %s is freed as soon as that process exits", id, held.Holder, held.Path)
		}
		return containerLock{}, fmt.Errorf("lock container %s: %w", id, err)
	}
	return containerLock{unlockLocal: unlockLocal, file: f}, nil
}
