package testenv

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

// ImportImage builds img, imports it into the Env's namespace under img.Name
// and unpacks it into the snapshotter. It returns the image's target
// (manifest) digest. Importing the same image again is cheap.
func (e *Env) ImportImage(t testing.TB, img imagebuild.Image) string {
	t.Helper()
	if img.Name == "" {
		t.Fatal("testenv.ImportImage: image has no Name")
	}
	var buf bytes.Buffer
	dgst, err := imagebuild.WriteArchive(&buf, img)
	if err != nil {
		t.Fatalf("testenv.ImportImage: build %s: %v", img.Name, err)
	}
	ctx, cancel := context.WithTimeout(e.Context(), 2*time.Minute)
	defer cancel()
	key := img.Name + "@" + dgst.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.imported[key]; ok {
		// Still there (a test may have deleted it)?
		if i, err := e.Client.ImageService().Get(ctx, img.Name); err == nil && i.Target.Digest == dgst {
			if image, err := e.Client.GetImage(ctx, img.Name); err == nil {
				if ok, err := image.IsUnpacked(ctx, e.Snapshotter); err == nil && ok {
					return dgst.String()
				}
			}
		}
		delete(e.imported, key)
	}
	imgs, err := e.Client.Import(ctx, &buf)
	if err != nil {
		t.Fatalf("testenv.ImportImage: import %s: %v", img.Name, err)
	}
	var found bool
	for _, i := range imgs {
		if i.Name != img.Name {
			continue
		}
		found = true
		if i.Target.Digest != dgst {
			t.Fatalf("testenv.ImportImage: %s imported with digest %s, built %s", img.Name, i.Target.Digest, dgst)
		}
		image, err := e.Client.GetImage(ctx, i.Name)
		if err != nil {
			t.Fatalf("testenv.ImportImage: get %s: %v", img.Name, err)
		}
		if err := image.Unpack(ctx, e.Snapshotter); err != nil {
			t.Fatalf("testenv.ImportImage: unpack %s: %v", img.Name, err)
		}
	}
	if !found {
		t.Fatalf("testenv.ImportImage: import of %s created %d images but not that name", img.Name, len(imgs))
	}
	e.imported[key] = dgst.String()
	return dgst.String()
}

// Exec runs args inside the running task of container id and returns its
// stdout. A non-zero exit code is an error that includes the code and
// stderr. The deadline is 30 s.
func (e *Env) Exec(t testing.TB, id string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.Context(), 30*time.Second)
	defer cancel()
	c, err := e.Client.LoadContainer(ctx, id)
	if err != nil {
		return "", fmt.Errorf("exec in %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("exec in %s: %w", id, err)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return "", fmt.Errorf("exec in %s: spec: %w", id, err)
	}
	if spec.Process == nil {
		return "", fmt.Errorf("exec in %s: spec has no process", id)
	}
	pspec := *spec.Process
	pspec.Args = args
	pspec.Terminal = false
	pspec.ConsoleSize = nil

	e.mu.Lock()
	e.seq++
	execID := fmt.Sprintf("testenv-exec-%d", e.seq)
	e.mu.Unlock()

	var stdout, stderr bytes.Buffer
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr)))
	if err != nil {
		return "", fmt.Errorf("exec %v in %s: %w", args, id, err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(e.Context(), 10*time.Second)
		defer dcancel()
		if _, err := proc.Delete(dctx, containerd.WithProcessKill); err != nil {
			t.Logf("testenv.Exec: delete exec process %s: %v", execID, err)
		}
	}()
	statusC, err := proc.Wait(ctx)
	if err != nil {
		return "", fmt.Errorf("exec %v in %s: wait: %w", args, id, err)
	}
	if err := proc.Start(ctx); err != nil {
		return "", fmt.Errorf("exec %v in %s: start: %w", args, id, err)
	}
	var status containerd.ExitStatus
	select {
	case status = <-statusC:
	case <-ctx.Done():
		_ = proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
		return stdout.String(), fmt.Errorf("exec %v in %s: %w (stdout %q, stderr %q)", args, id, ctx.Err(), stdout.String(), stderr.String())
	}
	// Wait until stdout/stderr are fully copied.
	ioDone := make(chan struct{})
	go func() { proc.IO().Wait(); close(ioDone) }()
	select {
	case <-ioDone:
	case <-ctx.Done():
		return stdout.String(), fmt.Errorf("exec %v in %s: output not closed: %w", args, id, ctx.Err())
	}
	code, _, err := status.Result()
	if err != nil {
		return stdout.String(), fmt.Errorf("exec %v in %s: %w", args, id, err)
	}
	if code != 0 {
		return stdout.String(), fmt.Errorf("exec %v in %s: exit code %d, stderr: %q", args, id, code, stderr.String())
	}
	return stdout.String(), nil
}

// ActiveSnapshots lists the keys of the active (read-write) snapshots in the
// Env's namespace and snapshotter.
func (e *Env) ActiveSnapshots(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.Context(), 30*time.Second)
	defer cancel()
	var keys []string
	err := e.Client.SnapshotService(e.Snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive {
			keys = append(keys, info.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testenv.ActiveSnapshots: %v", err)
	}
	return keys
}

// Leases lists the lease IDs in the Env's namespace.
func (e *Env) Leases(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.Context(), 30*time.Second)
	defer cancel()
	ls, err := e.Client.LeasesService().List(ctx)
	if err != nil {
		t.Fatalf("testenv.Leases: %v", err)
	}
	ids := make([]string, 0, len(ls))
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	return ids
}

// task returns the task of container id, nil if the container or its task
// does not exist.
func (e *Env) task(t testing.TB, ctx context.Context, id string) containerd.Task {
	t.Helper()
	c, err := e.Client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("testenv: load container %s: %v", id, err)
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("testenv: task of %s: %v", id, err)
	}
	return task
}

// TaskPID returns the pid of the container's task, 0 if it has none.
func (e *Env) TaskPID(t testing.TB, id string) uint32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.Context(), 30*time.Second)
	defer cancel()
	if task := e.task(t, ctx, id); task != nil {
		return task.Pid()
	}
	return 0
}

// TaskStatus returns the status of the container's task ("running",
// "stopped", "created", ...), "" if it has none.
func (e *Env) TaskStatus(t testing.TB, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.Context(), 30*time.Second)
	defer cancel()
	task := e.task(t, ctx, id)
	if task == nil {
		return ""
	}
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatalf("testenv.TaskStatus %s: %v", id, err)
	}
	return string(st.Status)
}

// Eventually polls cond every 20 ms until it returns true; when timeout
// passes first, the test fails with msg.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %v: %s", timeout, msg)
		}
		<-tick.C
	}
}
