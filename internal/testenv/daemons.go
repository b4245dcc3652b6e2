package testenv

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"sync"
	"testing"
)

// NewDaemon starts another private containerd daemon, with a directory,
// socket, namespace ("<package namespace>-d<N>"), data root, bridge
// ("<package bridge>d<N>") and /24 subnet (in 10.200.0.0-10.254.255.255,
// apart from the package Env's 10.100-199) of its own, and returns it as an
// Env, so that every helper works on it. t.Cleanup removes its containers
// and tasks, stops it, kills its shims, unmounts, deletes the bridge and
// removes the directory; Main does it for a daemon still running after the
// tests, cleanStale for one left by a dead test process.
func (e *Env) NewDaemon(t testing.TB) *Env {
	t.Helper()
	d, err := e.newDaemon(t)
	if err != nil {
		t.Fatalf("testenv.NewDaemon: %v", err)
	}
	return d
}

// newDaemon is NewDaemon returning the error. The daemon is registered for
// cleanup as soon as its directory exists.
func (e *Env) newDaemon(t testing.TB) (*Env, error) {
	root := e.root()
	if err := checkDaemonPrereqs(); err != nil {
		return nil, err
	}
	n := nextSeq(&daemonSeq)
	bridge := fmt.Sprintf("%sd%d", root.Bridge, n)
	if len(bridge) > 15 {
		return nil, fmt.Errorf("bridge name %q longer than 15 characters (too many daemons: %d)", bridge, n)
	}
	subnet, err := daemonSubnet(pkgName, os.Getpid(), n)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", dirPrefix+pkgName+"-d"+strconv.Itoa(n)+"-")
	if err != nil {
		return nil, err
	}
	d := newEnv(dir, fmt.Sprintf("%s-d%d", root.Namespace, n), bridge, subnet)
	d.parent = root
	registerCleanup(t, "containerd "+d.Namespace, d.stop)
	if err := d.startDaemon(); err != nil {
		return nil, err
	}
	return d, nil
}

// root returns the package's Env that e is or belongs to.
func (e *Env) root() *Env {
	if e.parent != nil {
		return e.parent
	}
	return e
}

// daemonSubnet is the /24 of the n-th extra daemon of a test process: the
// second octet in 200..254 (the package Envs use 100..199), from the package
// name and n, the third from the pid, as for the package Env. The daemons of
// one process never share a subnet (n <= 55).
func daemonSubnet(pkg string, pid, n int) (string, error) {
	if n < 1 || n > 55 {
		return "", fmt.Errorf("no subnet for daemon %d: at most 55 daemons per test process", n)
	}
	h := fnv.New32a()
	h.Write([]byte(pkg))
	return fmt.Sprintf("10.%d.%d.0/24", 200+(int(h.Sum32()%55)+n-1)%55, pid%256), nil
}

var (
	seqMu     sync.Mutex
	daemonSeq int // NewDaemon's counter
	hostSeq   int // NewSSHHost's counter
)

func nextSeq(p *int) int {
	seqMu.Lock()
	defer seqMu.Unlock()
	*p++
	return *p
}

// An extra is a daemon or host to stop by t.Cleanup, or by Main if it is
// still registered when the tests are done.
type extra struct {
	name string
	once sync.Once
	stop func() error
	err  error
}

var (
	extrasMu sync.Mutex
	extras   []*extra // in the order of registration
)

// registerCleanup registers stop to run once, by t.Cleanup or by Main,
// whichever comes first. A failing stop fails the test.
func registerCleanup(t testing.TB, name string, stop func() error) {
	x := &extra{name: name, stop: stop}
	extrasMu.Lock()
	extras = append(extras, x)
	extrasMu.Unlock()
	t.Cleanup(func() {
		if err := x.run(); err != nil {
			t.Errorf("testenv: cleanup: %v", err)
		}
	})
}

func (x *extra) run() error {
	x.once.Do(func() {
		x.err = x.stop()
		extrasMu.Lock()
		for i, y := range extras {
			if y == x {
				extras = append(extras[:i], extras[i+1:]...)
				break
			}
		}
		extrasMu.Unlock()
	})
	if x.err != nil {
		return fmt.Errorf("stop %s: %w", x.name, x.err)
	}
	return nil
}

// stopExtras stops the daemons and hosts still registered, newest first.
func stopExtras() error {
	extrasMu.Lock()
	left := append([]*extra(nil), extras...)
	extrasMu.Unlock()
	var errs []error
	for i := len(left) - 1; i >= 0; i-- {
		if err := left[i].run(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
