package engine

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
)

// lockLeasePrefix names the leases that lock a container across processes:
// two terraform runs (two states, two workspaces) changing the same
// container must not interleave their upgrades. A lease ID is unique in a
// namespace, so creating it is an atomic test-and-set; its expiry frees the
// lock of a process that died holding it.
const lockLeasePrefix = "pouch-lock-"

// lockTTL bounds how long the lock of a process on another machine, which
// cannot be checked, blocks the container after that process died.
const lockTTL = 15 * time.Minute

// Labels naming a lock's holder, so that a lock left by a dead process on
// this machine (a killed provider) is taken over at once.
const (
	lockHostLabel  = "io.pouch.lock.host"
	lockPIDLabel   = "io.pouch.lock.pid"
	lockStartLabel = "io.pouch.lock.start"
)

// lockContainer takes the cross-process lock of container id, in addition
// to the in-process one the caller holds. unlock releases it.
func (e *Engine) lockContainer(ctx context.Context, client *containerd.Client, id string) (unlock func(), err error) {
	ls := client.LeasesService()
	leaseID := lockLeasePrefix + id
	for attempt := 0; ; attempt++ {
		_, err := ls.Create(ctx, leases.WithID(leaseID), leases.WithExpiration(lockTTL), leases.WithLabels(lockHolder()))
		if err == nil {
			return func() {
				if err := ls.Delete(context.WithoutCancel(ctx), leases.Lease{ID: leaseID}); err != nil && !errdefs.IsNotFound(err) {
					e.log.Info(ctx, "could not release the container lock", map[string]any{"lease": leaseID, "error": err.Error()})
				}
			}, nil
		}
		if !errdefs.IsAlreadyExists(err) {
			return nil, fmt.Errorf("lock container %s: %w", id, err)
		}
		held, err := ls.List(ctx, "id=="+leaseID)
		if err != nil {
			return nil, fmt.Errorf("lock container %s: %w", id, err)
		}
		if attempt == 0 && len(held) == 1 && (lockExpired(held[0]) || !holderAlive(held[0].Labels)) {
			_ = ls.Delete(ctx, held[0])
			continue
		}
		return nil, fmt.Errorf("container %s is being changed by another pouch process (lease %s in namespace %s); "+
			"retry when it is done, or, if that process died, wait for the lock to expire or delete the lease "+
			"(ctr -n %s leases delete %s)", id, leaseID, e.opts.Namespace, e.opts.Namespace, leaseID)
	}
}

func lockExpired(l leases.Lease) bool {
	t, err := time.Parse(time.RFC3339, l.Labels["containerd.io/gc.expire"])
	return err == nil && time.Now().After(t)
}

// lockHolder labels a lock with this process: host name, pid and the
// process's start time (so that a reused pid is not taken for it).
func lockHolder() map[string]string {
	host, _ := os.Hostname()
	return map[string]string{
		lockHostLabel:  host,
		lockPIDLabel:   strconv.Itoa(os.Getpid()),
		lockStartLabel: processStart(os.Getpid()),
	}
}

// holderAlive tells whether the process holding a lock may still run: true
// unless it was on this machine and is gone.
func holderAlive(labels map[string]string) bool {
	host, _ := os.Hostname()
	if labels[lockHostLabel] != host {
		return true
	}
	pid, err := strconv.Atoi(labels[lockPIDLabel])
	if err != nil {
		return true
	}
	start := processStart(pid)
	return start != "" && start == labels[lockStartLabel]
}

// processStart is the start time of a process (field 22 of
// /proc/<pid>/stat), "" when there is no such process.
func processStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces: count from its end.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}
