package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

var phases = []engine.Phase{engine.PhaseStage, engine.PhaseStop, engine.PhaseSwap, engine.PhaseStart, engine.PhaseVerify, engine.PhaseCommit}

// statefulImage is a long-running image with a VOLUME at /var/lib/app; v2
// also declares /var/lib/extra, which an upgrade must create (and a
// rollback remove).
func statefulImage(repo, version string) imagebuild.Image {
	img := versionImage(repo, version)
	img.Volumes = []string{"/var/lib/app"}
	if version != "v1" {
		img.Volumes = append(img.Volumes, "/var/lib/extra")
	}
	return img
}

// statefulContainer creates a bridge container with a named volume and an
// image volume holding known bytes; it returns the spec, its IP and the
// bytes' checksum.
func statefulContainer(t *testing.T, e *engine.Engine, env *testenv.Env, name, repo string) (engine.ContainerSpec, string, string) {
	t.Helper()
	env.ImportImage(t, statefulImage(repo, "v1"))
	env.ImportImage(t, statefulImage(repo, "v2"))
	if _, err := e.CreateVolume(context.Background(), engine.VolumeSpec{Name: name + "-data"}); err != nil {
		t.Fatal(err)
	}
	spec := engine.ContainerSpec{
		Name: name, Image: "pouchtest/" + repo + ":v1", Running: true,
		Mounts: []engine.Mount{{Type: engine.MountVolume, Source: name + "-data", Target: "/data"}},
	}
	st := create(t, e, spec)
	t.Cleanup(func() { _ = e.DeleteVolume(context.Background(), name+"-data") })
	mustExec(t, env, name, "sh", "-c", "dd if=/dev/urandom of=/data/blob bs=1k count=32 2>/dev/null && cp /data/blob /var/lib/app/blob")
	return spec, st.IPAddress, sha(t, env, name, "/data/blob")
}

// assertOldContainer checks that the container is the old one, whole: v1
// running, same IP, same bytes in both volumes, and nothing left of the
// update (snapshot, lease, new volume, journal).
func assertOldContainer(t *testing.T, e *engine.Engine, env *testenv.Env, name, ip, sum string) {
	t.Helper()
	st, err := e.Inspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != engine.StatusRunning || !strings.HasSuffix(st.Spec.Image, ":v1") || st.IPAddress != ip {
		t.Fatalf("not the old container: %+v", st)
	}
	if got := mustExec(t, env, name, "cat", "/version"); got != "v1" {
		t.Fatalf("/version = %q", got)
	}
	for _, f := range []string{"/data/blob", "/var/lib/app/blob"} {
		if got := sha(t, env, name, f); got != sum {
			t.Fatalf("%s changed", f)
		}
	}
	if got := mustExec(t, env, name, "sh", "-c", "ip -4 -o addr show eth0 | grep -c "+ip); got != "1" {
		t.Fatalf("eth0 lacks %s", ip)
	}
	assertNothingLeaked(t, e, env, name, 1)
	if _, err := os.Stat(filepath.Join(env.DataRoot, "volumes", env.Namespace, "_anonymous", name, "var_lib_extra")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the volume staged for the new image was left behind: %v", err)
	}
}

// A failure injected at the end of each phase before Commit rolls back to
// the old container, whole; one at Commit leaves the new container, and the
// next Inspect finishes the clean-up.
func TestFaultInjectionAtEveryPhase(t *testing.T) {
	for _, phase := range phases {
		t.Run(string(phase), func(t *testing.T) {
			e, env := newEngine(t)
			name := "eng-fault-" + string(phase)
			spec, ip, sum := statefulContainer(t, e, env, name, "fault")
			engine.SetFaultHook(e, func(p engine.Phase) error {
				if p == phase {
					return fmt.Errorf("injected fault at %s", p)
				}
				return nil
			})
			spec.Image = "pouchtest/fault:v2"
			_, err := e.Update(context.Background(), name, spec)
			if err == nil || !strings.Contains(err.Error(), "injected fault") {
				t.Fatalf("err = %v, want the injected fault", err)
			}
			engine.SetFaultHook(e, nil)
			if phase != engine.PhaseCommit {
				if !errors.Is(err, engine.ErrRolledBack) {
					t.Fatalf("err = %v, want ErrRolledBack", err)
				}
				assertOldContainer(t, e, env, name, ip, sum)
				return
			}
			st, err := e.Inspect(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(st.Spec.Image, ":v2") || st.Status != engine.StatusRunning || st.IPAddress != ip {
				t.Fatalf("after a fault at commit: %+v", st)
			}
			if got := sha(t, env, name, "/var/lib/app/blob"); got != sum {
				t.Fatal("image volume bytes changed")
			}
			assertNothingLeaked(t, e, env, name, 1)
		})
	}
}

// crashEnv names what the crash helper needs to reach the parent's daemon.
const crashEnv = "POUCH_TEST_CRASH"

// TestCrashHelper runs in a child process: it upgrades a container and
// kills itself with SIGKILL at the end of one phase. It does nothing in a
// normal run.
func TestCrashHelper(t *testing.T) {
	cfg := os.Getenv(crashEnv)
	if cfg == "" {
		t.Skip("runs only as the child of TestCrashAtEveryPhase")
	}
	var c struct {
		Options engine.Options
		Spec    engine.ContainerSpec
		Phase   engine.Phase
	}
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
	}
	c.Spec.Running = true // not part of the spec's JSON
	e := mustNew(t, c.Options)
	engine.SetFaultHook(e, func(p engine.Phase) error {
		if p == c.Phase {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		return nil
	})
	_, err := e.Update(context.Background(), c.Spec.Name, c.Spec)
	t.Fatalf("the update ended without being killed: %v", err)
}

// An upgrade killed at the end of each phase converges on the next Inspect
// by a fresh engine: the old container before Commit, the new one from
// Commit on; never a half state, nothing leaked.
func TestCrashAtEveryPhase(t *testing.T) {
	for _, phase := range phases {
		t.Run(string(phase), func(t *testing.T) {
			e, env := newEngine(t)
			name := "eng-crash-" + string(phase)
			spec, ip, sum := statefulContainer(t, e, env, name, "crash")
			spec.Image = "pouchtest/crash:v2"
			cfg, _ := json.Marshal(map[string]any{
				"Options": engine.Options{Address: env.Address, Namespace: env.Namespace, DataRoot: env.DataRoot,
					Network: engine.NetworkOptions{Bridge: env.Bridge, Subnet: env.Subnet}},
				"Spec":  spec,
				"Phase": phase,
			})
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashEnv+"="+string(cfg))
			out, err := cmd.CombinedOutput()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the child was not killed at %s: %v\n%s", phase, err, out)
			}

			fresh, _ := newEngine(t)
			st, err := fresh.Inspect(context.Background(), name)
			if err != nil {
				t.Fatalf("inspect after the crash: %v", err)
			}
			if phase != engine.PhaseCommit {
				assertOldContainer(t, fresh, env, name, ip, sum)
				return
			}
			if !strings.HasSuffix(st.Spec.Image, ":v2") || st.Status != engine.StatusRunning || st.IPAddress != ip {
				t.Fatalf("after a crash at commit: %+v", st)
			}
			if got := mustExec(t, env, name, "cat", "/version"); got != "v2" {
				t.Fatalf("/version = %q", got)
			}
			assertNothingLeaked(t, fresh, env, name, 1)
		})
	}
}

func TestVerifySecondsRollsBackAProcessThatExits(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("verify", "v1"))
	env.ImportImage(t, imagebuild.Image{Name: "docker.io/pouchtest/verify:v2", Cmd: []string{"sh", "-c", "exit 3"}})
	spec := engine.ContainerSpec{Name: "eng-verify", Image: "pouchtest/verify:v1", Running: true, NetworkMode: engine.NetworkNone,
		Upgrade: engine.UpgradePolicy{VerifySeconds: 2}}
	create(t, e, spec)
	spec.Image = "pouchtest/verify:v2"
	_, err := e.Update(context.Background(), "eng-verify", spec)
	if !errors.Is(err, engine.ErrRolledBack) || !strings.Contains(err.Error(), "exited with code 3") {
		t.Fatalf("err = %v, want a rollback saying the process exited", err)
	}
	if got := mustExec(t, env, "eng-verify", "cat", "/version"); got != "v1" {
		t.Fatalf("/version = %q", got)
	}
	assertNothingLeaked(t, e, env, "eng-verify", 1)
}

func healthImage(version string, healthy bool) imagebuild.Image {
	img := versionImage("health", version)
	if healthy {
		img.Files["/healthy"] = "ok"
	}
	return img
}

func TestHealthcheckGatesTheUpgrade(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, healthImage("v1", true))
	env.ImportImage(t, healthImage("v2", false))
	env.ImportImage(t, healthImage("v3", true))
	spec := engine.ContainerSpec{Name: "eng-health", Image: "pouchtest/health:v1", Running: true, NetworkMode: engine.NetworkNone,
		Healthcheck: &engine.Healthcheck{Command: []string{"cat", "/healthy"}, Interval: 100 * time.Millisecond, Timeout: 5 * time.Second, Retries: 3}}
	create(t, e, spec)

	spec.Image = "pouchtest/health:v2"
	_, err := e.Update(context.Background(), "eng-health", spec)
	if !errors.Is(err, engine.ErrRolledBack) || !strings.Contains(err.Error(), "health check failed 3 times") {
		t.Fatalf("err = %v, want a rollback for the failed health check", err)
	}
	if got := mustExec(t, env, "eng-health", "cat", "/version"); got != "v1" {
		t.Fatalf("/version = %q after the rollback", got)
	}

	spec.Image = "pouchtest/health:v3"
	if _, err := e.Update(context.Background(), "eng-health", spec); err != nil {
		t.Fatalf("healthy upgrade: %v", err)
	}
	if got := mustExec(t, env, "eng-health", "cat", "/version"); got != "v3" {
		t.Fatalf("/version = %q", got)
	}
	assertNothingLeaked(t, e, env, "eng-health", 1)
}

func TestNoRollbackLeavesTheNewContainer(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, healthImage("v1", true))
	env.ImportImage(t, healthImage("v2", false))
	spec := engine.ContainerSpec{Name: "eng-norollback", Image: "pouchtest/health:v1", Running: true, NetworkMode: engine.NetworkNone,
		Healthcheck: &engine.Healthcheck{Command: []string{"cat", "/healthy"}, Interval: 50 * time.Millisecond, Retries: 1},
		Upgrade:     engine.UpgradePolicy{NoRollback: true}}
	create(t, e, spec)
	spec.Image = "pouchtest/health:v2"
	_, err := e.Update(context.Background(), "eng-norollback", spec)
	if err == nil || errors.Is(err, engine.ErrRolledBack) || !strings.Contains(err.Error(), "left in place") {
		t.Fatalf("err = %v, want the failure, with the new container left in place", err)
	}
	if got := mustExec(t, env, "eng-norollback", "cat", "/version"); got != "v2" {
		t.Fatalf("/version = %q, want the new container", got)
	}
	assertNothingLeaked(t, e, env, "eng-norollback", 1)
}

// Going back to a kept revision's image reuses its snapshot, with the files
// written in it.
func TestRevisionSwapBack(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("rev", "v1"))
	env.ImportImage(t, versionImage("rev", "v2"))
	spec := engine.ContainerSpec{Name: "eng-rev", Image: "pouchtest/rev:v1", Running: true, NetworkMode: engine.NetworkNone,
		Upgrade: engine.UpgradePolicy{KeepRevisions: 1}}
	create(t, e, spec)
	mustExec(t, env, "eng-rev", "sh", "-c", "echo from-v1 > /written")
	v1Key := containerSnapshot(t, env, "eng-rev")

	spec.Image = "pouchtest/rev:v2"
	if _, err := e.Update(context.Background(), "eng-rev", spec); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Exec(t, "eng-rev", "cat", "/written"); err == nil {
		t.Fatal("v2 started from v1's files")
	}
	if keys := snapshotsOf(t, env, "eng-rev"); len(keys) != 2 {
		t.Fatalf("snapshots while on v2 with one revision kept: %v", keys)
	}

	spec.Image = "pouchtest/rev:v1"
	if _, err := e.Update(context.Background(), "eng-rev", spec); err != nil {
		t.Fatal(err)
	}
	if containerSnapshot(t, env, "eng-rev") != v1Key {
		t.Fatal("going back to v1 did not reuse its snapshot")
	}
	if got := mustExec(t, env, "eng-rev", "cat", "/written"); got != "from-v1" {
		t.Fatalf("/written = %q", got)
	}
	assertNothingLeaked(t, e, env, "eng-rev", 2) // v1 in use, v2 kept

	if err := e.Delete(context.Background(), "eng-rev"); err != nil {
		t.Fatal(err)
	}
	if keys := snapshotsOf(t, env, "eng-rev"); len(keys) != 0 {
		t.Fatalf("snapshots left after delete, kept revisions included: %v", keys)
	}
}

func TestKeepRootfsChanges(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("carry", "v1"))
	env.ImportImage(t, versionImage("carry", "v2"))
	spec := engine.ContainerSpec{Name: "eng-carry", Image: "pouchtest/carry:v1", Running: true, NetworkMode: engine.NetworkNone,
		Upgrade: engine.UpgradePolicy{KeepRootfsChanges: true}}
	create(t, e, spec)
	mustExec(t, env, "eng-carry", "sh", "-c", "mkdir -p /etc/app && echo custom > /etc/app/conf")

	spec.Image = "pouchtest/carry:v2"
	if _, err := e.Update(context.Background(), "eng-carry", spec); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, env, "eng-carry", "sh", "-c", "cat /version; echo; cat /etc/app/conf"); got != "v2\ncustom" {
		t.Fatalf("after the upgrade: %q", got)
	}
	assertNothingLeaked(t, e, env, "eng-carry", 1)
}

func TestPausedContainerEndsPaused(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("paused", "v1"))
	env.ImportImage(t, versionImage("paused", "v2"))
	spec := engine.ContainerSpec{Name: "eng-paused", Image: "pouchtest/paused:v1", Running: true, NetworkMode: engine.NetworkNone}
	create(t, e, spec)
	c, err := env.Client.LoadContainer(env.Context(), "eng-paused")
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(env.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Pause(env.Context()); err != nil {
		t.Fatal(err)
	}
	spec.Image = "pouchtest/paused:v2"
	st, err := e.Update(context.Background(), "eng-paused", spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != engine.StatusPaused || st.ImageDigest == "" || !strings.HasSuffix(st.Spec.Image, ":v2") {
		t.Fatalf("after upgrading a paused container: %+v", st)
	}
	task, err = c.Task(env.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Resume(env.Context()); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, env, "eng-paused", "cat", "/version"); got != "v2" {
		t.Fatalf("/version = %q", got)
	}
}

// The user's command is kept across an upgrade while the entrypoint follows
// the new image, when the user did not set one.
func TestUpgradeCommandProvenance(t *testing.T) {
	e, env := newEngine(t)
	v1 := versionImage("prov", "v1")
	v1.Entrypoint, v1.Cmd = []string{"/bin/sh", "-c"}, []string{"exit 1"}
	v2 := versionImage("prov", "v2")
	v2.Entrypoint, v2.Cmd = []string{"/bin/busybox", "sh", "-c"}, []string{"exit 2"}
	env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	spec := engine.ContainerSpec{Name: "eng-prov", Image: "pouchtest/prov:v1", Running: true, NetworkMode: engine.NetworkNone,
		Command: []string{"sleep 3600"}}
	st := create(t, e, spec)
	if strings.Join(st.Process.Args, " ") != "/bin/sh -c sleep 3600" {
		t.Fatalf("args on v1 = %q", st.Process.Args)
	}
	spec.Image = "pouchtest/prov:v2"
	st, err := e.Update(context.Background(), "eng-prov", spec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(st.Process.Args, " ") != "/bin/busybox sh -c sleep 3600" {
		t.Fatalf("args on v2 = %q, want v2's entrypoint with the user's command", st.Process.Args)
	}
}

// Two processes never interleave updates of one container: the second is
// refused while the first holds the lock, with an error that says why.
func TestCrossProcessLock(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("lock", "v1"))
	env.ImportImage(t, versionImage("lock", "v2"))
	spec := engine.ContainerSpec{Name: "eng-lock", Image: "pouchtest/lock:v1", Running: true, NetworkMode: engine.NetworkNone}
	create(t, e, spec)
	// Another process's engine: its own in-process locks and its own open
	// lock file, which the kernel's lock keeps out as it would a process.
	opts := envOptions(env)
	opts.LockWait = 200 * time.Millisecond
	other := mustNew(t, opts)
	spec.Image = "pouchtest/lock:v2"
	var otherErr error
	engine.SetFaultHook(e, func(p engine.Phase) error {
		if p == engine.PhaseStage {
			_, otherErr = other.Update(context.Background(), "eng-lock", spec)
		}
		return nil
	})
	if _, err := e.Update(context.Background(), "eng-lock", spec); err != nil {
		t.Fatal(err)
	}
	if otherErr == nil || !strings.Contains(otherErr.Error(), "being changed by another pouch process") ||
		!strings.Contains(otherErr.Error(), fmt.Sprintf("pid %d ", os.Getpid())) ||
		!strings.Contains(otherErr.Error(), "update eng-lock") {
		t.Fatalf("concurrent update: err = %v, want it refused, naming the holder and what it does", otherErr)
	}
	assertNothingLeaked(t, e, env, "eng-lock", 1)
}

// msgLog is an engine.Logger that keeps the messages, in order, and their
// fields.
type msgLog struct {
	mu     sync.Mutex
	msgs   []string
	fields []map[string]any
}

func (l *msgLog) Debug(_ context.Context, msg string, f map[string]any) { l.add(msg, f) }
func (l *msgLog) Info(_ context.Context, msg string, f map[string]any)  { l.add(msg, f) }

func (l *msgLog) add(msg string, f map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, msg)
	l.fields = append(l.fields, f)
}

// all are the fields of every message msg, in order.
func (l *msgLog) all(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for i, m := range l.msgs {
		if m == msg {
			out = append(out, l.fields[i])
		}
	}
	return out
}

func (l *msgLog) index(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Index(l.msgs, msg)
}

// The new image is written out to disk before the old task is stopped, so
// that writing back a big pull does not happen inside the outage.
func TestUpgradeWritesTheImageOutBeforeTheStop(t *testing.T) {
	env := testenv.Get(t)
	log := &msgLog{}
	opts := envOptions(env)
	opts.Logger = log
	e := mustNew(t, opts)
	env.ImportImage(t, versionImage("writeout", "v1"))
	env.ImportImage(t, versionImage("writeout", "v2"))
	spec := engine.ContainerSpec{Name: "eng-writeout", Image: "pouchtest/writeout:v1", Running: true, NetworkMode: engine.NetworkHost}
	create(t, e, spec)

	spec.Image = "pouchtest/writeout:v2"
	if _, err := e.Update(context.Background(), spec.Name, spec); err != nil {
		t.Fatal(err)
	}
	written, stopped := log.index("new image written out"), log.index("upgrade: stopping task")
	if written < 0 || stopped < 0 || written > stopped {
		t.Fatalf("image written out at message %d, task stopped at %d, want the write-out first:\n%s",
			written, stopped, strings.Join(log.msgs, "\n"))
	}
	if i := log.index("could not write the new image out"); i >= 0 {
		t.Fatalf("write-out failed:\n%s", strings.Join(log.msgs, "\n"))
	}
}

func TestSnapshotDir(t *testing.T) {
	for _, tc := range []struct {
		mounts []mount.Mount
		want   string
	}{
		{[]mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"index=off", "workdir=/s/2/work", "upperdir=/s/2/fs", "lowerdir=/s/1/fs"}}}, "/s/2/fs"},
		{[]mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/s/3/fs:/s/1/fs"}}}, "/s/3/fs"},
		{[]mount.Mount{{Type: "bind", Source: "/s/1/fs", Options: []string{"ro", "rbind"}}}, "/s/1/fs"},
		{nil, ""},
	} {
		if got := engine.SnapshotDir(tc.mounts); got != tc.want {
			t.Errorf("SnapshotDir(%v) = %q, want %q", tc.mounts, got, tc.want)
		}
	}
}
