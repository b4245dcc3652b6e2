// Package testenv gives the tests of a package a private containerd daemon
// (started lazily on the first Get, stopped by Main) plus helpers to import
// locally built images, exec into tasks, inspect snapshots and leases, and a
// private image registry.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m, "engine")) }
//
// Every package gets its own namespace ("pouch-test-<pkg>-<pid>") because the
// runc state directory and the cgroup paths are shared by every containerd on
// the machine.
//
// A test that needs more than one daemon gets further ones with
// Env.NewDaemon, and "remote hosts" (an sshd on a loopback port serving a
// daemon of its own) with Env.NewSSHHost; both are stopped by t.Cleanup, or
// by Main when a test left them behind.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/vishvananda/netlink"

	"github.com/pouch/terraform-provider-pouch/internal/childproc"
	"github.com/pouch/terraform-provider-pouch/internal/containerlog"
	"github.com/pouch/terraform-provider-pouch/internal/registry"
	"github.com/pouch/terraform-provider-pouch/internal/sshd"
)

// Env is one private containerd daemon shared by the tests of one package.
type Env struct {
	Address     string             // unix socket path of the private daemon
	Namespace   string             // "pouch-test-<pkgname>-<pid>", unique per process
	Snapshotter string             // "overlayfs"
	DataRoot    string             // a temp dir for the provider's own files
	Client      *containerd.Client // connected, default namespace = Namespace
	Dir         string             // the temp dir holding everything of this Env
	// Bridge and Subnet are a CNI bridge network of this process's own, so
	// that test packages running at once never share addresses. Main
	// deletes the bridge.
	Bridge string
	Subnet string

	daemon *exec.Cmd
	exited <-chan struct{} // closed when the daemon process has exited
	parent *Env            // the package's Env, for the daemons of NewDaemon

	regOnce sync.Once
	reg     *registry.Server
	regErr  error

	mu       sync.Mutex
	imported map[string]string // name + "@" + manifest digest -> digest
	seq      int
}

const (
	// Snapshotter is the snapshotter every Env uses.
	Snapshotter = "overlayfs"
	// StartTimeout bounds how long Get waits for the daemon.
	StartTimeout = 30 * time.Second

	dirPrefix = "pouch-testenv-"
)

var (
	pkgName  string // set by Main
	once     sync.Once
	theEnv   *Env  // set as soon as a directory exists, so Main can clean up
	startErr error // non-nil when the daemon failed to come up
)

var nameRe = regexp.MustCompile(`[^a-z0-9]+`)

// Main runs the package's tests and then stops the daemon (if one was
// started) and removes its directories. It also removes leftovers of earlier
// runs of this package whose test process is gone.
//
// The test binary is also the containers' log driver (the engine installs
// the running executable as that): started as the driver by a shim, it
// serves the log and exits before any test runs.
func Main(m *testing.M, pkg string) int {
	containerlog.ServeIfLogger()
	flag.Parse() // for testing.Short
	pkgName = strings.Trim(nameRe.ReplaceAllString(strings.ToLower(pkg), "-"), "-")
	if pkgName == "" {
		pkgName = "pkg"
	}
	if !testing.Short() {
		cleanStale()
	}
	code := m.Run()
	// Daemons and hosts whose t.Cleanup did not run (newest first, so that
	// an sshd stops before its daemon).
	if err := stopExtras(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: cleanup: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if theEnv != nil {
		if err := theEnv.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: cleanup: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Get returns the package's Env, starting the daemon on the first call. If
// containerd or runc is missing or the daemon does not come up, the test
// fails; it skips only in -short mode (`make unit`), which runs the tests
// that need neither root nor a daemon.
func Get(t testing.TB) *Env {
	t.Helper()
	if pkgName == "" {
		t.Fatal("testenv.Get: the package has no TestMain calling testenv.Main(m, pkg); add one so the daemon is stopped")
	}
	if testing.Short() {
		t.Skip("needs a private containerd, and root: run `make test` (this is `make unit`, -short)")
	}
	once.Do(func() { startErr = start() })
	if startErr != nil {
		t.Fatalf("testenv: private containerd daemon not available: %v", startErr)
	}
	return theEnv
}

// Context returns a context in the Env's namespace.
func (e *Env) Context() context.Context {
	return namespaces.WithNamespace(context.Background(), e.Namespace)
}

func start() error {
	if err := checkDaemonPrereqs(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", dirPrefix+pkgName+"-")
	if err != nil {
		return err
	}
	e := newEnv(dir, fmt.Sprintf("pouch-test-%s-%d", pkgName, os.Getpid()),
		fmt.Sprintf("pt%.6s%d", pkgName, os.Getpid()%10000), testSubnet(pkgName, os.Getpid()))
	theEnv = e // Main cleans up from now on
	return e.startDaemon()
}

// checkDaemonPrereqs tells why no private containerd can run here.
func checkDaemonPrereqs() error {
	for _, bin := range []string{"containerd", "runc", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found in PATH (install Debian's containerd and runc packages): %w", bin, err)
		}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("containerd needs root; run the tests as root (euid is %d)", os.Geteuid())
	}
	return nil
}

// newEnv returns the Env of a daemon living in dir (not started yet).
func newEnv(dir, namespace, bridge, subnet string) *Env {
	return &Env{
		Address:     filepath.Join(dir, "containerd.sock"),
		Namespace:   namespace,
		Snapshotter: Snapshotter,
		DataRoot:    filepath.Join(dir, "data"),
		Dir:         dir,
		Bridge:      bridge,
		Subnet:      subnet,
		imported:    map[string]string{},
	}
}

// startDaemon writes the files of e.Dir (those cleanStale reads included)
// and starts the daemon and waits for it. On an error, stop still cleans up
// whatever was started.
func (e *Env) startDaemon() error {
	dir := e.Dir
	if len(e.Address)+len(".ttrpc") >= 100 {
		return fmt.Errorf("socket path %q too long; set TMPDIR to a shorter directory", e.Address)
	}
	if err := os.MkdirAll(e.DataRoot, 0o755); err != nil {
		return err
	}
	// Files read by cleanStale when this process dies without cleaning up.
	if err := writeOwnerFiles(dir, e.Namespace, e.Bridge); err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %q
  [plugins."io.containerd.snapshotter.v1.overlayfs"]
    root_path = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), e.Address, e.Address+".ttrpc", filepath.Join(dir, "opt"))
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("containerd", "--config", configPath)
	cmd.Stdout = logf
	cmd.Stderr = logf
	exited, err := childproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	e.daemon = cmd
	e.exited = exited
	_ = os.WriteFile(filepath.Join(dir, "containerd.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)

	if err := e.waitReady(); err != nil {
		return fmt.Errorf("%w\ncontainerd log (%s), last lines:\n%s", err, logf.Name(), childproc.LogTail(logf.Name(), 30))
	}
	return nil
}

// writeOwnerFiles records in dir who owns it (this process) and what to
// clean besides the directory, for cleanStale. namespace and bridge may be
// empty.
func writeOwnerFiles(dir, namespace, bridge string) error {
	files := [][2]string{
		{"namespace", namespace},
		{"bridge", bridge},
		{"owner.pid", strconv.Itoa(os.Getpid())}, // last: it makes the directory stale-cleanable
	}
	for _, f := range files {
		if f[1] == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (e *Env) waitReady() error {
	deadline := time.Now().Add(StartTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	wait := func() error {
		select {
		case <-e.exited:
			return fmt.Errorf("containerd exited during startup (%v)", e.daemon.ProcessState)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not come up within %v", StartTimeout)
		}
		return nil
	}
	for {
		if _, err := os.Stat(e.Address); err == nil {
			break
		}
		if err := wait(); err != nil {
			return err
		}
	}
	client, err := containerd.New(e.Address, containerd.WithDefaultNamespace(e.Namespace))
	if err != nil {
		return err
	}
	e.Client = client
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Version(ctx)
		cancel()
		if err == nil {
			break
		}
		if werr := wait(); werr != nil {
			return fmt.Errorf("%w (last error: %v)", werr, err)
		}
	}
	// Make the namespace exist, with overlayfs as its default snapshotter.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.NamespaceService().Create(ctx, e.Namespace, map[string]string{
		"containerd.io/defaults/snapshotter": e.Snapshotter,
	}); err != nil {
		return fmt.Errorf("create namespace %s: %w", e.Namespace, err)
	}
	return nil
}

// stop removes every task and container of the daemon, stops the daemon and
// the registry, kills leftover shims, unmounts, deletes the bridge and
// removes the directory. It serves the package's Env (from Main) and the
// daemons of NewDaemon (from t.Cleanup, or Main) alike, and copes with a
// daemon that failed to start or is already gone.
func (e *Env) stop() error {
	var errs []error
	if e.Client != nil {
		if e.daemon != nil && !childproc.Exited(e.exited) {
			if err := e.removeAll(); err != nil {
				errs = append(errs, err)
			}
		}
		e.Client.Close()
	}
	if e.reg != nil {
		e.reg.Stop()
	}
	if e.daemon != nil {
		childproc.Stop(e.daemon, e.exited, 10*time.Second)
	}
	if err := cleanDir(e.Dir, e.Namespace, e.Bridge); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// testSubnet is a /24 for one test process: the second octet from the
// package name, the third from the pid, so that packages running at once
// (go test -p) get different subnets.
func testSubnet(pkg string, pid int) string {
	h := fnv.New32a()
	h.Write([]byte(pkg))
	return fmt.Sprintf("10.%d.%d.0/24", 100+h.Sum32()%100, pid%256)
}

// removeAll kills and deletes every task and deletes every container (with
// its snapshot) in every namespace of the private daemon.
func (e *Env) removeAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nss, err := e.Client.NamespaceService().List(ctx)
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	var errs []error
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		containers, err := e.Client.Containers(nctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range containers {
			if task, err := c.Task(nctx, nil); err == nil {
				if st, err := task.Wait(nctx); err == nil {
					_ = task.Kill(nctx, syscall.SIGKILL, containerd.WithKillAll)
					select {
					case <-st:
					case <-time.After(10 * time.Second):
					}
				}
				if _, err := task.Delete(nctx, containerd.WithProcessKill); err != nil {
					errs = append(errs, fmt.Errorf("delete task %s/%s: %w", ns, c.ID(), err))
				}
			}
			if err := c.Delete(nctx, containerd.WithSnapshotCleanup); err != nil {
				// The snapshot may already be gone.
				if err2 := c.Delete(nctx); err2 != nil {
					errs = append(errs, fmt.Errorf("delete container %s/%s: %w", ns, c.ID(), err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// cleanDir makes sure nothing of an Env (or SSHHost) directory is left: it
// force-deletes runc containers of the namespace, kills the shims, daemons
// and sshd started from the directory and the processes started in the sshd
// sessions, unmounts everything below it, deletes the bridge and removes the
// directory. ns and bridge may be empty.
func cleanDir(dir, ns, bridge string) error {
	if dir == "" {
		return nil
	}
	address := filepath.Join(dir, "containerd.sock")
	// runc containers whose shim is gone would otherwise keep running.
	if ns != "" {
		root := filepath.Join("/run/containerd/runc", ns)
		if ents, err := os.ReadDir(root); err == nil {
			for _, ent := range ents {
				_ = exec.Command("runc", "--root", root, "delete", "--force", ent.Name()).Run()
			}
			_ = os.Remove(root)
		}
	}
	// Shims of this daemon (they run in their own process groups), the
	// daemon, registry and sshd if still there, and what the sshd's sessions
	// started (marked by their environment).
	for _, pid := range findProcs(func(cmdline string) bool {
		return strings.Contains(cmdline, "containerd-shim") && strings.Contains(cmdline, address+"\x00") ||
			strings.Contains(cmdline, filepath.Join(dir, "config.toml")) ||
			strings.Contains(cmdline, filepath.Join(dir, "registry.yml")) ||
			strings.Contains(cmdline, filepath.Join(dir, sshdConfigName))
	}) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	var errs []error
	if err := sshd.KillMarked(dir, 10*time.Second); err != nil {
		errs = append(errs, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := findProcs(func(cmdline string) bool {
			return strings.Contains(cmdline, "containerd-shim") && strings.Contains(cmdline, address+"\x00")
		})
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling for exit, bounded by deadline
	}
	if ns != "" {
		removeCgroups(ns)
	}
	if err := unmountUnder(dir); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	if bridge != "" {
		if link, err := netlink.LinkByName(bridge); err == nil {
			if err := netlink.LinkDel(link); err != nil {
				errs = append(errs, fmt.Errorf("delete bridge %s: %w", bridge, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeCgroups removes the (empty) cgroups runc created for the namespace:
// the containers' cgroups are /<ns>/<id>, and runc removes only the leaves.
func removeCgroups(ns string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}
		nsDir := filepath.Join(unescapeMount(f[4]), ns)
		ents, err := os.ReadDir(nsDir)
		if err != nil {
			continue
		}
		for _, ent := range ents {
			if ent.IsDir() {
				_ = syscall.Rmdir(filepath.Join(nsDir, ent.Name()))
			}
		}
		_ = syscall.Rmdir(nsDir)
	}
}

// findProcs returns the pids (this process aside) whose command line
// (/proc/PID/cmdline: NUL-separated, given with a trailing NUL) matches.
// Zombies have an empty one and never match.
func findProcs(match func(cmdline string) bool) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if b[len(b)-1] != 0 {
			b = append(b, 0)
		}
		if match(string(b)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder unmounts every mount point at or below dir, deepest first.
func unmountUnder(dir string) error {
	var errs []error
	for range 5 {
		data, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		var points []string
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 {
				continue
			}
			mp := unescapeMount(f[4])
			if mp == dir || strings.HasPrefix(mp, dir+"/") {
				points = append(points, mp)
			}
		}
		if len(points) == 0 {
			return nil
		}
		errs = errs[:0]
		// Deeper paths first.
		for i := len(points) - 1; i >= 0; i-- {
			if err := syscall.Unmount(points[i], 0); err != nil {
				if err2 := syscall.Unmount(points[i], syscall.MNT_DETACH); err2 != nil {
					errs = append(errs, fmt.Errorf("unmount %s: %w", points[i], err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// unescapeMount decodes the octal escapes (\040 etc.) of /proc/self/mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cleanStale removes the directories (and daemons, shims, mounts, bridges,
// sshd and what their sessions started) left by earlier test processes of
// this package that died without cleaning up: the package's Env, the daemons
// of NewDaemon and the hosts of NewSSHHost all live in directories named
// dirPrefix+pkgName+"-*" holding owner.pid.
func cleanStale() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+pkgName+"-*"))
	for _, dir := range matches {
		b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) == nil {
			continue // owner still alive (or unknown)
		}
		ns, _ := os.ReadFile(filepath.Join(dir, "namespace"))
		bridge, _ := os.ReadFile(filepath.Join(dir, "bridge"))
		if err := cleanDir(dir, strings.TrimSpace(string(ns)), strings.TrimSpace(string(bridge))); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: removing stale %s: %v\n", dir, err)
		}
	}
}
