package engine_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// A container's log rotates at its size and keeps its number of files, and
// goes on being written after the provider's binary that started the task
// is gone (a provider upgrade, a deleted .terraform directory), by a
// restart in place and by containerd's restart monitor alike.
func TestLogRotatesAndOutlivesTheProviderBinary(t *testing.T) {
	env := testenv.Get(t)
	// The log driver is this test binary (testenv.Main serves it); a copy
	// of it stands for the provider's binary, which goes away.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	provider := filepath.Join(t.TempDir(), "terraform-provider-pouch")
	copyFile(t, self, provider)
	opts := envOptions(env)
	opts.LogDriver = provider
	e := mustNew(t, opts)

	// 3 MiB of numbered lines, then a marker of its own, then it waits.
	env.ImportImage(t, imagebuild.Image{Name: "docker.io/pouchtest/logs:v1", Cmd: []string{"sh", "-c",
		`i=0; while [ $i -lt 40000 ]; do echo "line $i $RUN 0123456789012345678901234567890123456789012345678901234567890"; i=$((i+1)); done; ` +
			`echo "done $RUN $(cat /proc/sys/kernel/random/uuid)"; exec sleep 3600`}})
	spec := engine.ContainerSpec{Name: "eng-logs", Image: "pouchtest/logs:v1", Running: true, NetworkMode: engine.NetworkNone,
		Env: map[string]string{"RUN": "first"}, Restart: engine.RestartAlways,
		Log: engine.LogOptions{MaxSizeMiB: 1, MaxFiles: 2}}
	st := create(t, e, spec)
	waitForRun(t, st.LogPath, "first", "")
	files, total := logFiles(t, st.LogPath)
	if len(files) != 2 || total > 2<<20+200 {
		t.Fatalf("log files %v, %d bytes in all: want 2 files of at most 1 MiB", files, total)
	}

	if err := os.Remove(provider); err != nil {
		t.Fatal(err)
	}
	spec.Env = map[string]string{"RUN": "second"} // a restart in place
	if _, err := e.Update(context.Background(), spec.Name, spec); err != nil {
		t.Fatal(err)
	}
	marker := waitForRun(t, st.LogPath, "second", "")

	pid := env.TaskPID(t, spec.Name)
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 40*time.Second, "the restart monitor starts the task again", func() bool {
		p := env.TaskPID(t, spec.Name)
		return p != 0 && p != pid && env.TaskStatus(t, spec.Name) == "running"
	})
	waitForRun(t, st.LogPath, "second", marker)
	if files, total := logFiles(t, st.LogPath); len(files) > 2 || total > 2<<20+200 {
		t.Fatalf("after the restarts: log files %v, %d bytes", files, total)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitForRun waits until the current log file holds the last line of a
// run of the task ("done <run> <marker>") other than the one with marker
// not, and returns that line.
func waitForRun(t *testing.T, log, run, not string) string {
	t.Helper()
	var last string
	testenv.Eventually(t, 60*time.Second, "the log has the end of a new run "+run, func() bool {
		b, _ := os.ReadFile(log)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "done "+run+" ") && line != not {
				last = line
			}
		}
		return last != ""
	})
	return last
}

// logFiles lists a log's files (the current one and its rotated ones) and
// their total size.
func logFiles(t *testing.T, log string) ([]string, int64) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Dir(log))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var total int64
	for _, ent := range ents {
		fi, err := ent.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, ent.Name())
		total += fi.Size()
	}
	return names, total
}
