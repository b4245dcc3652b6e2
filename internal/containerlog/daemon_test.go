package containerlog_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/pouch/terraform-provider-pouch/internal/containerlog"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

func TestMain(m *testing.M) {
	// The shims exec this test binary (its installed copy) as the logger.
	containerlog.ServeIfLogger()
	os.Exit(testenv.Main(m, "containerlog"))
}

// script prints 30000 numbered lines (2.4 MB) on its first run and 10 on
// later ones, one line on stderr, a LAST line, and sleeps. The run count is
// kept in the container's rootfs, which survives the task.
const script = `n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs
count=10; [ $n -eq 1 ] && count=30000
i=0
while [ $i -lt $count ]; do echo "run $n line $i ................................................................"; i=$((i+1)); done
echo "run $n stderr" >&2
echo "run $n LAST"
exec sleep 3600`

var lineRe = regexp.MustCompile(`^run \d+ (line \d+ \.{64}|stderr|LAST)$`)

// newContainer creates a container running script and deletes it (task,
// container and snapshot) at the end of the test.
func newContainer(t *testing.T, env *testenv.Env, id string) containerd.Container {
	t.Helper()
	img := imagebuild.Image{Name: "docker.io/pouchtest/containerlog:v1", Env: []string{"PATH=/bin"}}
	env.ImportImage(t, img)
	ctx, cancel := context.WithTimeout(env.Context(), time.Minute)
	defer cancel()
	image, err := env.Client.GetImage(ctx, img.Name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := env.Client.NewContainer(ctx, id,
		containerd.WithImage(image),
		containerd.WithNewSnapshot(id+"-snap", image),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sh", "-c", script)),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(env.Context(), time.Minute)
		defer cancel()
		deleteTask(t, ctx, c)
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			t.Errorf("delete container %s: %v", id, err)
		}
	})
	return c
}

// deleteTask kills and deletes the container's task, if it has one.
func deleteTask(t *testing.T, ctx context.Context, c containerd.Container) {
	t.Helper()
	task, err := c.Task(ctx, nil)
	if err != nil {
		return
	}
	if st, err := task.Status(ctx); err == nil && st.Status == containerd.Running {
		exited, err := task.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case <-exited:
		case <-ctx.Done():
			t.Fatalf("task of %s did not exit: %v", c.ID(), ctx.Err())
		}
	}
	if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil {
		t.Fatalf("delete task of %s: %v", c.ID(), err)
	}
}

func startTask(t *testing.T, ctx context.Context, c containerd.Container, opts cio.Creator) containerd.Task {
	t.Helper()
	task, err := c.NewTask(ctx, opts)
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start task: %v", err)
	}
	return task
}

// loggers returns the pids of the processes running exe with logPath in
// their arguments.
func loggers(t *testing.T, exe, logPath string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if target, err := os.Readlink(filepath.Join(dir, "exe")); err != nil || target != exe {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte("\x00"+logPath+"\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// logDirState returns the files of the log dir and their total size.
func logDirState(t *testing.T, dir string) (names []string, total int64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, e.Name())
		total += fi.Size()
	}
	return names, total
}

func tailHas(t *testing.T, path string, lines int, want ...string) func() bool {
	return func() bool {
		s, err := containerlog.Tail(path, lines, 1<<20)
		if err != nil {
			t.Fatalf("Tail: %v", err)
		}
		for _, w := range want {
			if !strings.Contains(s, w) {
				return false
			}
		}
		return true
	}
}

func TestDaemonRotatingLog(t *testing.T) {
	env := testenv.Get(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := containerlog.Install(exe, filepath.Join(t.TempDir(), "bin"))
	if err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(t.TempDir(), "logs") // the logger creates it
	cfg := containerlog.Config{Path: filepath.Join(logDir, "c.log"), MaxSizeMiB: 1, MaxFiles: 2}
	uri, err := containerlog.URI(bin, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if uri.Path != bin || uri.Path == exe {
		t.Fatalf("URI %s does not run the installed copy %s", uri, bin)
	}
	c := newContainer(t, env, "log-rotate")
	ctx, cancel := context.WithTimeout(env.Context(), 2*time.Minute)
	defer cancel()

	start := time.Now()
	startTask(t, ctx, c, cio.LogURI(uri))
	testenv.Eventually(t, 60*time.Second, "run 1 LAST and stderr in the log", func() bool {
		// stderr may be written before stdout lines printed earlier, but
		// not by much more than the logger's buffer.
		return tailHas(t, cfg.Path, 5, "run 1 LAST")() && tailHas(t, cfg.Path, 10000, "run 1 stderr")()
	})
	t.Logf("2.4 MB logged in %v", time.Since(start))

	names, total := logDirState(t, logDir)
	if len(names) != 2 || names[1] != "c.log" || !strings.HasPrefix(names[0], "c-") {
		t.Fatalf("log dir holds %q, want c.log and one rotated file", names)
	}
	if total > 2<<20 {
		t.Fatalf("log files hold %d bytes, more than MaxFiles*MaxSizeMiB", total)
	}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(logDir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if !lineRe.MatchString(l) {
				t.Fatalf("%s: broken line %.100q", name, l)
			}
		}
	}
	for p, want := range map[string]os.FileMode{logDir: os.ModeDir | 0o700, cfg.Path: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v, %v; want mode %v", p, fi.Mode(), err, want)
		}
	}
	// The shim runs the installed copy, not the test binary.
	pids := loggers(t, bin, cfg.Path)
	if len(pids) != 1 {
		t.Fatalf("%d logger processes run %s, want 1", len(pids), bin)
	}
	if status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pids[0]), "status")); err == nil {
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "RssAnon:") || strings.HasPrefix(l, "RssFile:") {
				t.Logf("logger %s", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	if pids := loggers(t, exe, cfg.Path); len(pids) != 0 {
		t.Fatalf("logger processes %v run the test binary", pids)
	}

	// Deleting the task ends its logger (the shim sends SIGTERM).
	deleteTask(t, ctx, c)
	testenv.Eventually(t, 15*time.Second, "the logger exits", func() bool { return len(loggers(t, bin, cfg.Path)) == 0 })

	// A new task with the same URI, as the restart monitor starts it: its
	// output is appended.
	startTask(t, ctx, c, cio.LogURI(uri))
	testenv.Eventually(t, 30*time.Second, "run 2 LAST in the log", tailHas(t, cfg.Path, 16, "run 2 LAST", "run 2 stderr"))
	tail, err := containerlog.Tail(cfg.Path, 16, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(tail, "\n")
	if len(lines) != 16 || !strings.Contains(tail, "run 2 stderr") || !strings.Contains(tail, "run 1 LAST\n") || !strings.Contains(tail, "run 2 line 0 ") ||
		strings.Index(tail, "run 1 LAST") > strings.Index(tail, "run 2 line 0 ") {
		t.Fatalf("the last lines do not show run 2 appended to run 1:\n%s", tail)
	}
	if names, _ := logDirState(t, logDir); len(names) != 2 {
		t.Fatalf("log dir holds %q after the second run", names)
	}
}
