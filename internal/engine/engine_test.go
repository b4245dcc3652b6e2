package engine_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, "engine"))
}

func TestCreateInspectDelete(t *testing.T) {
	e, env := newEngine(t)
	digest := env.ImportImage(t, versionImage("basic", "v1"))
	spec := engine.ContainerSpec{Name: "eng-basic", Image: "pouchtest/basic:v1", Running: true}
	st := create(t, e, spec)

	if st.ID != "eng-basic" || st.Status != engine.StatusRunning || st.ImageDigest != digest {
		t.Fatalf("state after create = %+v, want running on %s", st, digest)
	}
	if st.Spec.Image != "pouchtest/basic:v1" {
		t.Fatalf("image read back as %q, want the reference as written", st.Spec.Image)
	}
	if got := mustExec(t, env, "eng-basic", "cat", "/version"); got != "v1" {
		t.Fatalf("/version = %q", got)
	}
	if n := len(snapshotsOf(t, env, "eng-basic")); n != 1 {
		t.Fatalf("%d snapshots for the container, want 1", n)
	}

	if err := e.Delete(context.Background(), "eng-basic"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Inspect(context.Background(), "eng-basic"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("inspect after delete: err = %v, want ErrNotFound", err)
	}
	if keys := snapshotsOf(t, env, "eng-basic"); len(keys) != 0 {
		t.Fatalf("snapshots left after delete: %v", keys)
	}
	if err := e.Delete(context.Background(), "eng-basic"); err != nil {
		t.Fatalf("deleting a deleted container: %v", err)
	}
}

// InspectAll reads each of pouch's containers as Inspect does, and leaves
// out those it must not answer for: a container pouch did not make, and
// one in the middle of an upgrade (until the upgrade ends).
func TestInspectAllReadsWhatInspectReads(t *testing.T) {
	e, env := newEngine(t)
	ctx := env.Context()
	env.ImportImage(t, versionImage("all", "v1"))
	env.ImportImage(t, versionImage("all", "v2"))
	create(t, e, engine.ContainerSpec{Name: "eng-all-run", Image: "pouchtest/all:v1", Running: true})
	create(t, e, engine.ContainerSpec{Name: "eng-all-stopped", Image: "pouchtest/all:v1", NetworkMode: engine.NetworkNone})
	busy := engine.ContainerSpec{Name: "eng-all-busy", Image: "pouchtest/all:v1", Running: true, NetworkMode: engine.NetworkNone}
	create(t, e, busy)
	// Processes that ran to their end, well and badly: their exit codes
	// decide whether they read as running as asked.
	env.ImportImage(t, imagebuild.Image{Name: "docker.io/pouchtest/all:true", Cmd: []string{"true"}})
	env.ImportImage(t, imagebuild.Image{Name: "docker.io/pouchtest/all:false", Cmd: []string{"false"}})
	create(t, e, engine.ContainerSpec{Name: "eng-all-done", Image: "pouchtest/all:true", Running: true, NetworkMode: engine.NetworkNone})
	create(t, e, engine.ContainerSpec{Name: "eng-all-failed", Image: "pouchtest/all:false", Running: true, NetworkMode: engine.NetworkNone})
	for _, id := range []string{"eng-all-done", "eng-all-failed"} {
		testenv.Eventually(t, 10*time.Second, id+"'s process exits", func() bool { return env.TaskStatus(t, id) == "stopped" })
	}
	image, err := env.Client.GetImage(ctx, "docker.io/pouchtest/all:v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.NewContainer(ctx, "eng-all-foreign", containerd.WithImage(image),
		containerd.WithNewSnapshot("eng-all-foreign-ctr", image), containerd.WithNewSpec(oci.WithImageConfig(image))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Delete(context.Background(), "eng-all-foreign") })

	// Another engine's upgrade of eng-all-busy, held once its task stopped.
	upgrader := mustNew(t, envOptions(env))
	stopped, hold := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release) // before the deletes, on a failure too
	engine.SetFaultHook(upgrader, func(p engine.Phase) error {
		if p == engine.PhaseStop {
			close(stopped)
			<-hold
		}
		return nil
	})
	busy.Image = "pouchtest/all:v2"
	upgraded := make(chan error, 1)
	go func() {
		_, err := upgrader.Update(context.Background(), busy.Name, busy)
		upgraded <- err
	}()
	select {
	case <-stopped:
	case err := <-upgraded:
		t.Fatalf("the upgrade ended before its hold: %v", err)
	}

	all := inspectAll(t, e)
	for _, id := range []string{"eng-all-run", "eng-all-stopped", "eng-all-done", "eng-all-failed"} {
		want, err := e.Inspect(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(all[id], want) {
			t.Fatalf("InspectAll read %s as\n%+v\nInspect as\n%+v", id, all[id], want)
		}
	}
	if !all["eng-all-done"].Spec.Running || all["eng-all-failed"].Spec.Running {
		t.Fatalf("read as running: done %v, failed %v; want a process that exited 0 done as asked, one that failed not",
			all["eng-all-done"].Spec.Running, all["eng-all-failed"].Spec.Running)
	}
	if _, ok := all["eng-all-foreign"]; ok {
		t.Fatal("InspectAll read a container that pouch did not make")
	}
	if st, ok := all["eng-all-busy"]; ok {
		t.Fatalf("InspectAll read a container in the middle of its upgrade: %+v", st)
	}

	release()
	if err := <-upgraded; err != nil {
		t.Fatal(err)
	}
	if st := inspectAll(t, e)["eng-all-busy"]; st.Spec.Image != "pouchtest/all:v2" || st.Status != engine.StatusRunning {
		t.Fatalf("after the upgrade, InspectAll read eng-all-busy as %+v", st)
	}
}

// inspectAll is e.InspectAll by container ID.
func inspectAll(t *testing.T, e *engine.Engine) map[string]engine.State {
	t.Helper()
	states, err := e.InspectAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]engine.State, len(states))
	for _, st := range states {
		out[st.ID] = st
	}
	return out
}

func TestImageDefaultsApplyUnderUserValues(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, imagebuild.Image{
		Name:       "docker.io/pouchtest/defaults:v1",
		Cmd:        []string{"sleep", "3600"},
		Env:        []string{"PATH=/bin", "FOO=image", "KEEP=1"},
		WorkingDir: "/srv",
		User:       "app",
	})
	st := create(t, e, engine.ContainerSpec{
		Name: "eng-defaults", Image: "pouchtest/defaults:v1", Running: true,
		Env: map[string]string{"FOO": "user", "EXTRA": "x"},
	})
	if got := mustExec(t, env, "eng-defaults", "pwd"); got != "/srv" {
		t.Fatalf("pwd = %q, want the image's /srv", got)
	}
	if got := mustExec(t, env, "eng-defaults", "id", "-u"); got != "1000" {
		t.Fatalf("uid = %q, want the image user's 1000", got)
	}
	envOut := mustExec(t, env, "eng-defaults", "env")
	for _, want := range []string{"FOO=user", "KEEP=1", "EXTRA=x"} {
		if !strings.Contains(envOut, want) {
			t.Fatalf("env lacks %s:\n%s", want, envOut)
		}
	}
	// What reads back is what the user asked for, not the image's values.
	if st.Spec.WorkingDir != "" || st.Spec.User != "" || st.Spec.Command != nil || len(st.Spec.Env) != 2 {
		t.Fatalf("recorded spec carries image defaults: %+v", st.Spec)
	}
}

func TestUpgradeRunningContainer(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("up", "v1"))
	v2 := env.ImportImage(t, imagebuild.Image{
		Name:  "docker.io/pouchtest/up:v2",
		Cmd:   []string{"sleep", "3600"},
		Env:   []string{"PATH=/bin", "VERSION=v2"}, // v1's OLD-only variables must not linger
		Files: map[string]string{"/version": "v2"},
	})
	spec := engine.ContainerSpec{Name: "eng-up", Image: "pouchtest/up:v1", Running: true, Env: map[string]string{"MODE": "prod"}}
	create(t, e, spec)
	oldPID := env.TaskPID(t, "eng-up")
	oldKey := containerSnapshot(t, env, "eng-up")

	spec.Image = "pouchtest/up:v2"
	st, err := e.Update(context.Background(), "eng-up", spec)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if st.ID != "eng-up" || st.ImageDigest != v2 || st.Status != engine.StatusRunning {
		t.Fatalf("state after upgrade = %+v", st)
	}
	if got := mustExec(t, env, "eng-up", "cat", "/version"); got != "v2" {
		t.Fatalf("/version = %q after upgrade", got)
	}
	envOut := mustExec(t, env, "eng-up", "env")
	if !strings.Contains(envOut, "VERSION=v2") || !strings.Contains(envOut, "MODE=prod") {
		t.Fatalf("env after upgrade:\n%s", envOut)
	}
	if env.TaskPID(t, "eng-up") == oldPID {
		t.Fatal("the task was not restarted")
	}
	keys := snapshotsOf(t, env, "eng-up")
	if len(keys) != 1 || keys[0] == oldKey {
		t.Fatalf("snapshots after upgrade = %v, want one new snapshot (old was %s)", keys, oldKey)
	}
	if leases := env.Leases(t); len(leases) != 0 {
		t.Fatalf("leases left after upgrade: %v", leases)
	}
}

func TestUpgradeStoppedContainerStaysStopped(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("stopped", "v1"))
	env.ImportImage(t, versionImage("stopped", "v2"))
	spec := engine.ContainerSpec{Name: "eng-stopped", Image: "pouchtest/stopped:v1", Running: false}
	create(t, e, spec)

	spec.Image = "pouchtest/stopped:v2"
	st, err := e.Update(context.Background(), "eng-stopped", spec)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if st.Status == engine.StatusRunning || env.TaskStatus(t, "eng-stopped") == "running" {
		t.Fatalf("a stopped container was started by the upgrade: %s", st.Status)
	}
	if n := len(snapshotsOf(t, env, "eng-stopped")); n != 1 {
		t.Fatalf("%d snapshots after upgrading a stopped container, want 1", n)
	}

	spec.Running = true
	if _, err := e.Update(context.Background(), "eng-stopped", spec); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, env, "eng-stopped", "cat", "/version"); got != "v2" {
		t.Fatalf("/version = %q", got)
	}
}

func TestUpgradeToBrokenImageRollsBack(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("broken", "v1"))
	env.ImportImage(t, imagebuild.Image{
		Name: "docker.io/pouchtest/broken:v2", NoBusybox: true, Entrypoint: []string{"/bin/missing"},
	})
	spec := engine.ContainerSpec{Name: "eng-broken", Image: "pouchtest/broken:v1", Running: true}
	create(t, e, spec)
	mustExec(t, env, "eng-broken", "sh", "-c", "echo precious > /data.txt")
	oldKey := containerSnapshot(t, env, "eng-broken")

	spec.Image = "pouchtest/broken:v2"
	_, err := e.Update(context.Background(), "eng-broken", spec)
	if !errors.Is(err, engine.ErrRolledBack) {
		t.Fatalf("upgrade to a broken image: err = %v, want ErrRolledBack", err)
	}
	if !strings.Contains(err.Error(), "/bin/missing") {
		t.Fatalf("the error does not say why: %v", err)
	}

	st, err := e.Inspect(context.Background(), "eng-broken")
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != engine.StatusRunning || st.Spec.Image != "pouchtest/broken:v1" {
		t.Fatalf("after rollback: %+v", st)
	}
	if got := mustExec(t, env, "eng-broken", "sh", "-c", "cat /version; echo; cat /data.txt"); got != "v1\nprecious" {
		t.Fatalf("old rootfs after rollback: %q", got)
	}
	if keys := snapshotsOf(t, env, "eng-broken"); len(keys) != 1 || keys[0] != oldKey {
		t.Fatalf("snapshots after rollback = %v, want only the old %s", keys, oldKey)
	}
	if leases := env.Leases(t); len(leases) != 0 {
		t.Fatalf("leases left after rollback: %v", leases)
	}
}

// A failure while staging (here, an image that cannot be pulled) never
// touches the running task.
func TestUpgradeFailingToStageKeepsTaskRunning(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("stage", "v1"))
	spec := engine.ContainerSpec{Name: "eng-stage", Image: "pouchtest/stage:v1", Running: true}
	create(t, e, spec)
	pid := env.TaskPID(t, "eng-stage")

	spec.Image = "127.0.0.1:1/pouchtest/absent:v2"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.Update(ctx, "eng-stage", spec); !errors.Is(err, engine.ErrRolledBack) {
		t.Fatalf("err = %v, want ErrRolledBack", err)
	}
	if got := env.TaskPID(t, "eng-stage"); got != pid {
		t.Fatalf("task pid %d -> %d: a staging failure restarted the task", pid, got)
	}
	if n := len(snapshotsOf(t, env, "eng-stage")); n != 1 {
		t.Fatalf("%d snapshots after a failed stage, want 1", n)
	}
}

// The same tag pointing at a new digest is an upgrade, not "no change"
// (Pouch's B5).
func TestUpgradeSameTagNewDigest(t *testing.T) {
	e, env := newEngine(t)
	img := versionImage("retag", "v1")
	img.Name = "docker.io/pouchtest/retag:latest"
	env.ImportImage(t, img)
	spec := engine.ContainerSpec{Name: "eng-retag", Image: "pouchtest/retag", Running: true}
	create(t, e, spec)

	img.Files = map[string]string{"/version": "v1.1"}
	newDigest := env.ImportImage(t, img)
	st, err := e.Update(context.Background(), "eng-retag", spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.ImageDigest != newDigest {
		t.Fatalf("digest %s, want %s", st.ImageDigest, newDigest)
	}
	if got := mustExec(t, env, "eng-retag", "cat", "/version"); got != "v1.1" {
		t.Fatalf("/version = %q", got)
	}
}

// A config change that reaches the process restarts the task on the same
// read-write snapshot: files written in the rootfs survive.
func TestEnvChangeRestartsOnSameSnapshot(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("envchange", "v1"))
	spec := engine.ContainerSpec{Name: "eng-env", Image: "pouchtest/envchange:v1", Running: true, Env: map[string]string{"A": "1"}}
	create(t, e, spec)
	mustExec(t, env, "eng-env", "sh", "-c", "echo kept > /written.txt")
	pid, key := env.TaskPID(t, "eng-env"), containerSnapshot(t, env, "eng-env")

	spec.Env = map[string]string{"A": "2"}
	if _, err := e.Update(context.Background(), "eng-env", spec); err != nil {
		t.Fatal(err)
	}
	if env.TaskPID(t, "eng-env") == pid {
		t.Fatal("env change did not restart the task")
	}
	if containerSnapshot(t, env, "eng-env") != key {
		t.Fatal("env change replaced the snapshot")
	}
	if got := mustExec(t, env, "eng-env", "sh", "-c", "cat /written.txt; echo $A"); got != "kept\n2" {
		t.Fatalf("after env change: %q", got)
	}
}

// A change that does not reach the task (labels) keeps it running untouched.
func TestLabelChangeKeepsTask(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("labels", "v1"))
	spec := engine.ContainerSpec{Name: "eng-labels", Image: "pouchtest/labels:v1", Running: true, Labels: map[string]string{"team": "a"}}
	create(t, e, spec)
	pid := env.TaskPID(t, "eng-labels")

	spec.Labels = map[string]string{"team": "b"}
	st, err := e.Update(context.Background(), "eng-labels", spec)
	if err != nil {
		t.Fatal(err)
	}
	if env.TaskPID(t, "eng-labels") != pid {
		t.Fatal("a label change restarted the task")
	}
	if st.Spec.Labels["team"] != "b" {
		t.Fatalf("labels read back %v", st.Spec.Labels)
	}
}

// An image whose process exits at once still upgrades: the upgrade does not
// verify that the process keeps running.
// With no start window (upgrade.verify_seconds = 0, a one-shot container),
// an upgrade to an image whose process exits is what was asked for, as in
// Pouch: the new process runs and exits, and an exit with code 0 is done,
// not drift. A non-zero exit is drift.
func TestOneShotContainerThatExits(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("exits", "v1"))
	env.ImportImage(t, imagebuild.Image{Name: "docker.io/pouchtest/exits:v2", Cmd: []string{"true"}})
	env.ImportImage(t, imagebuild.Image{Name: "docker.io/pouchtest/exits:v3", Cmd: []string{"false"}})
	spec := engine.ContainerSpec{Name: "eng-exits", Image: "pouchtest/exits:v1", Running: true}
	create(t, e, spec)

	spec.Image = "pouchtest/exits:v2"
	st, err := e.Update(context.Background(), "eng-exits", spec)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if !st.Spec.Running {
		t.Fatalf("state after the upgrade = %+v, want running as asked", st)
	}
	testenv.Eventually(t, 10*time.Second, "the v2 process exits", func() bool {
		return env.TaskStatus(t, "eng-exits") == "stopped"
	})
	if st, err = e.Inspect(context.Background(), "eng-exits"); err != nil {
		t.Fatal(err)
	}
	if st.Status != engine.StatusStopped || !st.Spec.Running {
		t.Fatalf("state = %+v, want stopped and done (running as asked)", st)
	}

	spec.Image = "pouchtest/exits:v3"
	if _, err := e.Update(context.Background(), "eng-exits", spec); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "the v3 process exits", func() bool {
		return env.TaskStatus(t, "eng-exits") == "stopped"
	})
	if st, err = e.Inspect(context.Background(), "eng-exits"); err != nil {
		t.Fatal(err)
	}
	if st.Status != engine.StatusStopped || st.Spec.Running {
		t.Fatalf("state = %+v, want a failed run to read as not running (drift)", st)
	}
}

func TestUnreachableDaemonFailsFast(t *testing.T) {
	e := mustNew(t, engine.Options{Address: "/tmp/pouch-no-such.sock", DataRoot: t.TempDir()})
	start := time.Now()
	err := e.Ping(context.Background())
	if !errors.Is(err, engine.ErrUnreachable) || !strings.Contains(err.Error(), "/tmp/pouch-no-such.sock") {
		t.Fatalf("err = %v, want ErrUnreachable naming the address", err)
	}
	if time.Since(start) > 6*time.Second {
		t.Fatalf("took %s to report an unreachable daemon", time.Since(start))
	}
}

// A change of cgroup limits alone is applied to the running task: same PID,
// new limit, and the stored spec keeps it for later restarts.
func TestResourceChangeResizesLiveTask(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("resize", "v1"))
	spec := engine.ContainerSpec{Name: "eng-resize", Image: "pouchtest/resize:v1", Running: true,
		Resources: engine.Resources{MemoryMiB: 64, CPUs: 0.5}}
	create(t, e, spec)
	pid := env.TaskPID(t, "eng-resize")
	limits := func() string { return cgroupLimits(t, env, "eng-resize") }
	if got := limits(); got != "67108864\n50000" {
		t.Fatalf("limits at create = %q", got)
	}

	spec.Resources = engine.Resources{MemoryMiB: 128, CPUs: 1.5}
	if _, err := e.Update(context.Background(), "eng-resize", spec); err != nil {
		t.Fatal(err)
	}
	if env.TaskPID(t, "eng-resize") != pid {
		t.Fatal("a resource change restarted the task")
	}
	if got := limits(); got != "134217728\n150000" {
		t.Fatalf("limits after resize = %q", got)
	}

	// The new limits are in the stored spec: a restart keeps them.
	spec.Running = false
	if _, err := e.Update(context.Background(), "eng-resize", spec); err != nil {
		t.Fatal(err)
	}
	spec.Running = true
	if _, err := e.Update(context.Background(), "eng-resize", spec); err != nil {
		t.Fatal(err)
	}
	if got := limits(); got != "134217728\n150000" {
		t.Fatalf("limits after restart = %q", got)
	}

	// Lifting a limit is applied live too.
	spec.Resources = engine.Resources{}
	if _, err := e.Update(context.Background(), "eng-resize", spec); err != nil {
		t.Fatal(err)
	}
	if got := limits(); !strings.HasSuffix(got, "\n-1") {
		t.Fatalf("cpu quota not lifted: %q", got)
	}
}

// cgroupLimits reads the memory limit and CFS quota of a container's cgroup
// (cgroup v1, as on this machine) from the host.
func cgroupLimits(t *testing.T, env *testenv.Env, id string) string {
	t.Helper()
	c, err := env.Client.LoadContainer(env.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Spec(env.Context())
	if err != nil {
		t.Fatal(err)
	}
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read cgroup: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	cg := s.Linux.CgroupsPath
	return read("/sys/fs/cgroup/memory"+cg+"/memory.limit_in_bytes") + "\n" + read("/sys/fs/cgroup/cpu"+cg+"/cpu.cfs_quota_us")
}
