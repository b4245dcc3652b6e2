// Package filelock is the cross-process lock of one container: flock(2) on a
// file per container under the engine's data directory.
//
// It replaces a containerd lease used as a lock. A lease had to expire to
// free the lock of a dead holder, so a waiter had to decide the holder was
// dead (from a pid that means nothing in another PID namespace) and take the
// lease over, which races with other waiters doing the same. The kernel
// drops a flock the moment its holder dies, whatever its PID namespace, and
// never drops a live one, so there is no takeover to race and nothing to
// renew. Every pouch process managing a containerd namespace sees the same
// data directory (runc resolves the paths pouch hands it in the host's mount
// namespace), so they all lock the same files. nerdctl does the same
// (pkg/lockutil).
//
// A flock belongs to an open file description, and every Acquire opens its
// own, so two Acquire calls in one process exclude each other as two
// processes do.
package filelock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Holder identifies the process holding a lock, for error messages and for
// operators. It is written into the lock file by the holder after it
// acquires the lock.
type Holder struct {
	Host         string    `json:"host"`
	BootID       string    `json:"boot_id"`       // /proc/sys/kernel/random/boot_id
	PIDNamespace string    `json:"pid_namespace"` // readlink /proc/self/ns/pid, e.g. "pid:[4026531836]"
	PID          int       `json:"pid"`           // as seen in PIDNamespace
	Start        string    `json:"start"`         // field 22 of /proc/self/stat (so a reused pid is not mistaken)
	Since        time.Time `json:"since"`
	Operation    string    `json:"operation"` // what the holder is doing, e.g. "update web"
}

// String describes the holder for a person, e.g. "pid 1234 on host x (pid
// namespace pid:[4026531836]) since 12:00:01 UTC, update web".
func (h Holder) String() string {
	if h.PID == 0 {
		return "holder unknown"
	}
	s := fmt.Sprintf("pid %d on host %s (pid namespace %s) since %s", h.PID, h.Host, h.PIDNamespace,
		h.Since.UTC().Format("15:04:05 MST"))
	if h.Operation != "" {
		s += ", " + h.Operation
	}
	return s
}

// ErrHeld is returned (wrapped in *HeldError) when another process holds the lock.
var ErrHeld = errors.New("lock is held by another process")

// HeldError reports a lock that stayed held for as long as Acquire waited.
type HeldError struct {
	Path   string
	Holder Holder // zero when unreadable (e.g. read while the holder was writing it)
}

// Error names the lock file and its holder.
func (e *HeldError) Error() string {
	return fmt.Sprintf("lock %s is held by another process: %s", e.Path, e.Holder)
}

// Unwrap makes errors.Is(err, ErrHeld) hold.
func (e *HeldError) Unwrap() error { return ErrHeld }

// Lock is a held lock. It is not for concurrent use.
type Lock struct {
	path string
	fd   int // -1 once released
}

// maxDelay caps the polling interval: a waiter notices a freed lock within
// about this long.
const maxDelay = 50 * time.Millisecond

// maxStale bounds the retries of one Acquire after locking a file that was
// no longer at the path. Each retry but the first needs another Remove
// between our open and our lock, so only a path that never names the file
// we open (a bug, or meddling) comes near it.
const maxStale = 1000

// Acquire takes the lock at path, creating the file (0600) and its directory
// (0700) as needed. It waits for a held lock until ctx is done or wait has
// passed (wait 0: try once), polling with backoff (flock LOCK_EX|LOCK_NB),
// and then returns a *HeldError naming the holder (also when ctx is done:
// check ctx.Err to tell). It always tries at least once, and once more when
// the wait ends. operation is recorded in Holder.
func Acquire(ctx context.Context, path, operation string, wait time.Duration) (*Lock, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(dir); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("lock directory %s is a symbolic link or not a directory: refusing it", dir)
	}
	deadline := time.Now().Add(wait)
	delay := time.Millisecond
	fd, stale := -1, 0
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	for {
		// The fd stays open across polls; it is reopened only after the
		// inode it names was unlinked.
		if fd < 0 {
			var err error
			if fd, err = open(path); err != nil {
				return nil, err
			}
		}
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			// A holder's Remove unlinks the file before unlocking, so we may
			// have locked an inode that is no longer at path, while another
			// process locks the new file there. Only the inode at path counts.
			ok, err := atPath(fd, path)
			if err != nil {
				return nil, err
			}
			if ok {
				l := &Lock{path: path, fd: fd}
				fd = -1
				l.writeHolder(operation)
				return l, nil
			}
			// The lock was just freed: take the new file at once, without
			// waiting.
			staleLocks.Add(1)
			if stale++; stale > maxStale {
				return nil, fmt.Errorf("lock file %s keeps being replaced under us", path)
			}
			unix.Close(fd)
			fd = -1
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err != unix.EWOULDBLOCK {
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		remaining := time.Until(deadline)
		if remaining <= 0 || ctx.Err() != nil {
			// Read last, so that a holder found held after the wait is named.
			return nil, &HeldError{Path: path, Holder: readHolder(fd)}
		}
		// Jitter keeps waiters that found the lock held together from
		// polling in step.
		t := time.NewTimer(min(delay/2+rand.N(delay), remaining))
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		delay = min(2*delay, maxDelay)
	}
}

// open opens (creating) the lock file. O_NOFOLLOW: a symbolic link planted
// at path must not make us truncate and write to its target.
func open(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err == unix.ELOOP {
		return -1, fmt.Errorf("lock file %s is a symbolic link: refusing to follow it", path)
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// atPath tells whether fd is the file at path (same device and inode).
func atPath(fd int, path string) (bool, error) {
	var f, p unix.Stat_t
	if err := unix.Fstat(fd, &f); err != nil {
		return false, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if err := unix.Lstat(path, &p); err == unix.ENOENT {
		return false, nil
	} else if err != nil {
		return false, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return f.Dev == p.Dev && f.Ino == p.Ino, nil
}

// staleLocks counts locks taken on an unlinked inode and retried (for tests).
var staleLocks atomic.Int64

// writeHolder records this process in the lock file. Best effort: the record
// only serves error messages, and a full disk must not stop pouch from
// locking (and deleting) a container.
func (l *Lock) writeHolder(operation string) {
	host, _ := os.Hostname()
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	ns, _ := os.Readlink("/proc/self/ns/pid")
	b, err := json.Marshal(Holder{Host: host, BootID: strings.TrimSpace(string(boot)), PIDNamespace: ns,
		PID: os.Getpid(), Start: selfStart(), Since: time.Now().UTC(), Operation: operation})
	if err == nil && unix.Ftruncate(l.fd, 0) == nil {
		_, _ = unix.Pwrite(l.fd, b, 0)
	}
}

// readHolder reads the holder record; anything unreadable (empty, partly
// written) is a zero Holder.
func readHolder(fd int) Holder {
	b := make([]byte, 64<<10)
	n, err := unix.Pread(fd, b, 0)
	var h Holder
	if err != nil || json.Unmarshal(b[:n], &h) != nil {
		return Holder{}
	}
	return h
}

// selfStart is this process's start time, field 22 of /proc/self/stat.
func selfStart() string {
	b, err := os.ReadFile("/proc/self/stat")
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

// Release unlocks. It is a no-op on a released lock.
func (l *Lock) Release() error { return l.release(false) }

// Remove unlinks the lock file while still holding it, then unlocks (for a
// deleted container). A waiter that had the old file open locks it, finds it
// gone from the path and locks a new file there. It is a no-op on a released
// lock.
func (l *Lock) Remove() error { return l.release(true) }

func (l *Lock) release(remove bool) error {
	if l.fd < 0 {
		return nil
	}
	var err error
	if remove {
		err = unix.Unlink(l.path)
		if err != nil {
			err = &os.PathError{Op: "unlink", Path: l.path, Err: err}
		}
	} else {
		// Clear our record so that no waiter names us after we are gone.
		_ = unix.Ftruncate(l.fd, 0)
	}
	// Unlock explicitly rather than by closing: a child being forked
	// elsewhere in this process holds a copy of the fd until it execs (the
	// fd is close-on-exec), and the lock would stay held until then.
	if uerr := unix.Flock(l.fd, unix.LOCK_UN); err == nil && uerr != nil {
		err = &os.PathError{Op: "flock", Path: l.path, Err: uerr}
	}
	unix.Close(l.fd)
	l.fd = -1
	return err
}
