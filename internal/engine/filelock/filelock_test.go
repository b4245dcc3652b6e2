package filelock

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Environment of the helper process (TestHelperProcess).
const (
	helperPathEnv = "FILELOCK_HELPER_PATH"
	helperOpEnv   = "FILELOCK_HELPER_OP"
)

// TestHelperProcess is not a test: run by startHelper in a child process, it
// takes the lock, says "locked" on stdout and holds the lock until killed or
// until its stdin closes (so that no helper outlives a failed test).
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperPathEnv)
	if path == "" {
		return
	}
	l, err := Acquire(context.Background(), path, os.Getenv(helperOpEnv), 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = l.Release()
	os.Exit(0)
}

type helper struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	stderr bytes.Buffer
	done   bool
}

// startHelper starts a process that holds the lock at path for operation and
// returns once it holds it.
func startHelper(t *testing.T, path, operation string, newPIDNamespace bool) *helper {
	t.Helper()
	h := &helper{cmd: exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")}
	h.cmd.Env = append(os.Environ(), helperPathEnv+"="+path, helperOpEnv+"="+operation)
	h.cmd.Stderr = &h.stderr
	if newPIDNamespace {
		h.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	}
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		if newPIDNamespace {
			t.Fatalf("cannot start a process in a new PID namespace (CLONE_NEWPID; needs root or CAP_SYS_ADMIN): %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(h.kill)
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if line != "locked\n" {
			h.kill()
			t.Fatalf("helper did not take the lock: %q, stderr %q", line, h.stderr.String())
		}
	case <-time.After(10 * time.Second):
		h.kill()
		t.Fatalf("helper did not take the lock within 10s; stderr %q", h.stderr.String())
	}
	return h
}

// kill SIGKILLs the helper and reaps it.
func (h *helper) kill() {
	if h.done {
		return
	}
	h.done = true
	_ = h.cmd.Process.Kill()
	_ = h.cmd.Wait()
	_ = h.stdin.Close()
}

func lockPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "locks", "web.lock")
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// ourHolder is what a lock taken by this process records (but the time).
func ourHolder(t *testing.T, operation string) Holder {
	t.Helper()
	l, err := Acquire(context.Background(), lockPath(t), operation, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	return readHolder(l.fd)
}

func TestMutualExclusionUnderContention(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "locks", "web.lock")
	counter, inside := filepath.Join(dir, "counter"), filepath.Join(dir, "inside")
	if err := os.WriteFile(counter, []byte("0"), 0o600); err != nil {
		t.Fatal(err)
	}
	const workers, iterations, removeEvery = 8, 500, 10
	var overlaps, removes, failures, longest atomic.Int64
	staleBefore := staleLocks.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range iterations {
				began := time.Now()
				// Polling is unfair: a worker that releases retakes the lock
				// before sleeping waiters poll, so a waiter may wait seconds
				// on 2 busy cores. The wait only bounds a failure.
				l, err := Acquire(context.Background(), path, "worker "+strconv.Itoa(w), 30*time.Second)
				for d := int64(time.Since(began)); d > longest.Load() && !longest.CompareAndSwap(longest.Load(), d); {
				}
				if err != nil {
					failures.Add(1)
					t.Errorf("worker %d, acquisition %d: %v", w, i, err)
					return
				}
				// Nobody else may be inside, and an unprotected
				// read-modify-write of the counter must not lose updates.
				f, err := os.OpenFile(inside, os.O_CREATE|os.O_EXCL, 0o600)
				entered := err == nil
				if entered {
					f.Close()
				} else {
					overlaps.Add(1)
				}
				b, _ := os.ReadFile(counter)
				n, err := strconv.Atoi(string(b))
				if err != nil {
					overlaps.Add(1) // read while another wrote it
				}
				if err := os.WriteFile(counter, []byte(strconv.Itoa(n+1)), 0o600); err != nil {
					t.Error(err)
				}
				if entered {
					os.Remove(inside)
				}
				if (w*iterations+i)%removeEvery == 0 {
					removes.Add(1)
					err = l.Remove()
				} else {
					err = l.Release()
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	b, _ := os.ReadFile(counter)
	t.Logf("%d acquisitions by %d workers (%d with Remove) in %v, longest wait %v; %d locks on a removed inode retried",
		workers*iterations, workers, removes.Load(), time.Since(start).Round(time.Millisecond),
		time.Duration(longest.Load()).Round(time.Millisecond), staleLocks.Load()-staleBefore)
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d critical sections overlapped", n)
	}
	if got, want := string(b), strconv.Itoa(workers*iterations); failures.Load() == 0 && got != want {
		t.Errorf("counter = %s after %s acquisitions: updates were lost", got, want)
	}
}

func TestDeadHolderIsTakenOverAtOnce(t *testing.T) {
	path := lockPath(t)
	const cycles, takers = 500, 2
	var wins [takers]int
	start := time.Now()
	for c := range cycles {
		h := startHelper(t, path, "doomed", false)
		ctx, cancel := context.WithCancel(context.Background())
		type result struct {
			l   *Lock
			err error
		}
		results := make([]chan result, takers)
		for i := range takers {
			results[i] = make(chan result, 1)
			go func() {
				l, err := Acquire(ctx, path, "taker "+strconv.Itoa(i), 5*time.Second)
				if err == nil {
					cancel() // stop the others waiting: they must now find us holding it
				}
				results[i] <- result{l, err}
			}()
		}
		// The takers race each other for the lock of the killed holder.
		h.kill()
		var got [takers]result
		winner := -1
		for i := range takers {
			got[i] = <-results[i]
			if got[i].err == nil {
				if winner >= 0 {
					t.Fatalf("cycle %d: takers %d and %d both got the lock", c, winner, i)
				}
				winner = i
			}
		}
		cancel()
		if winner < 0 {
			t.Fatalf("cycle %d: no taker got the lock of a killed holder within 5s: %v", c, got[0].err)
		}
		wins[winner]++
		for i, r := range got {
			if i == winner {
				continue
			}
			var held *HeldError
			if !errors.As(r.err, &held) || !errors.Is(r.err, ErrHeld) {
				t.Fatalf("cycle %d: losing taker: want a HeldError, got %v", c, r.err)
			}
			if want := "taker " + strconv.Itoa(winner); held.Holder.Operation != want {
				t.Fatalf("cycle %d: losing taker names %q as the holder, want %q (the dead holder's record survived?)",
					c, held.Holder, want)
			}
		}
		if err := got[winner].l.Release(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d killed holders taken over, each contended by %d takers (wins per taker %v), in %v",
		cycles, takers, wins, time.Since(start).Round(time.Millisecond))
}

func TestHeldErrorNamesTheHolder(t *testing.T) {
	path := lockPath(t)
	h := startHelper(t, path, "update web", false)
	_, err := Acquire(context.Background(), path, "delete web", 0)
	var held *HeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrHeld) {
		t.Fatalf("want a HeldError, got %v", err)
	}
	us := ourHolder(t, "")
	got := held.Holder
	if got.PID != h.cmd.Process.Pid || got.BootID != us.BootID || got.BootID == "" || got.Host != us.Host ||
		got.PIDNamespace != us.PIDNamespace || got.Operation != "update web" || got.Start == "" ||
		time.Since(got.Since) > time.Minute {
		t.Errorf("holder = %+v, want pid %d, our host, boot id and pid namespace (%+v), operation \"update web\"",
			got, h.cmd.Process.Pid, us)
	}
	msg := err.Error()
	for _, want := range []string{path, "pid " + strconv.Itoa(h.cmd.Process.Pid) + " ", "update web"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	t.Log(msg)
}

func TestHolderInAnotherPIDNamespace(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("needs root to make a PID namespace (CLONE_NEWPID): run `make test`")
	}
	path := lockPath(t)
	h := startHelper(t, path, "update web", true)
	_, err := Acquire(context.Background(), path, "delete web", 0)
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("a holder in another PID namespace does not exclude us: got %v", err)
	}
	us := ourHolder(t, "")
	if held.Holder.PID != 1 || held.Holder.PIDNamespace == "" || held.Holder.PIDNamespace == us.PIDNamespace {
		t.Errorf("holder = %+v, want pid 1 in a pid namespace other than ours (%s)", held.Holder, us.PIDNamespace)
	}
	if msg := err.Error(); !strings.Contains(msg, "pid 1 ") || !strings.Contains(msg, held.Holder.PIDNamespace) {
		t.Errorf("error %q does not name pid 1 and its namespace", msg)
	}
	t.Log(err)
	h.kill()
	l, err := Acquire(context.Background(), path, "delete web", 2*time.Second)
	if err != nil {
		t.Fatalf("lock of a killed holder in another PID namespace: %v", err)
	}
	l.Release()
}

func TestSymlinksAreRefused(t *testing.T) {
	dir := t.TempDir()
	canary := filepath.Join(dir, "canary")
	if err := os.WriteFile(canary, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(canary, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	locks := filepath.Join(dir, "locks")
	if err := os.Mkdir(locks, 0o700); err != nil {
		t.Fatal(err)
	}
	realDir := filepath.Join(dir, "real")
	if err := os.Mkdir(realDir, 0o700); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{ // link -> target
		filepath.Join(locks, "web.lock"):      canary,
		filepath.Join(locks, "dangling.lock"): filepath.Join(dir, "created-through-link"),
		filepath.Join(dir, "linkdir"):         realDir,
	}
	for link, target := range links {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{
		filepath.Join(locks, "web.lock"), filepath.Join(locks, "dangling.lock"), filepath.Join(dir, "linkdir", "web.lock"),
	} {
		l, err := Acquire(context.Background(), path, "update web", 0)
		if err == nil {
			l.Release()
			t.Errorf("%s: a lock through a symbolic link was taken", path)
		} else if !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s: error %q does not say why", path, err)
		}
	}
	if b, err := os.ReadFile(canary); err != nil || string(b) != "precious" {
		t.Errorf("canary now holds %q (%v)", b, err)
	}
	if fi, err := os.Stat(canary); err != nil || fi.Mode() != 0o644 {
		t.Errorf("canary mode now %v (%v)", fi.Mode(), err)
	}
	for _, p := range []string{filepath.Join(dir, "created-through-link"), filepath.Join(realDir, "web.lock")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s was created through a symbolic link", p)
		}
	}
}

func TestRemove(t *testing.T) {
	path := lockPath(t)
	ctx := context.Background()
	l, err := Acquire(ctx, path, "delete web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("lock file still there after Remove: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("Release after Remove: %v", err)
	}

	// A waiter blocked on the file that Remove unlinks must end up on a new file.
	a, err := Acquire(ctx, path, "delete web", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the file open, so that its inode number is not reused for the
	// new file and the inodes can be told apart.
	oldFile, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer oldFile.Close()
	var old unix.Stat_t
	if err := unix.Fstat(int(oldFile.Fd()), &old); err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *Lock
		err error
	}
	waiter := make(chan result, 1)
	go func() {
		l, err := Acquire(ctx, path, "create web", 10*time.Second)
		waiter <- result{l, err}
	}()
	// Open thrice: by a, oldFile and the waiter.
	waitFor(t, 5*time.Second, "the waiter to open the lock file", func() bool { return openCount(old) >= 3 })
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	var b result
	select {
	case b = <-waiter:
	case <-time.After(10 * time.Second):
		t.Fatal("waiter did not get the lock after Remove")
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	defer b.l.Release()
	var st unix.Stat_t
	if err := unix.Fstat(b.l.fd, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino == old.Ino || st.Nlink == 0 || st.Ino != inode(t, path) {
		t.Fatalf("waiter holds inode %d (links %d); removed inode %d, inode at the path %d",
			st.Ino, st.Nlink, old.Ino, inode(t, path))
	}
	_, err = Acquire(ctx, path, "update web", 0)
	var held *HeldError
	if !errors.As(err, &held) || held.Holder.Operation != "create web" {
		t.Fatalf("lock taken by the waiter does not exclude: %v", err)
	}
}

// openCount counts this process's fds open on the file of f.
func openCount(f unix.Stat_t) int {
	entries, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, e := range entries {
		var st unix.Stat_t
		if unix.Stat("/proc/self/fd/"+e.Name(), &st) == nil && st.Dev == f.Dev && st.Ino == f.Ino {
			n++
		}
	}
	return n
}
