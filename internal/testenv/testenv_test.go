package testenv

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

func TestMain(m *testing.M) { os.Exit(Main(m, "testenv")) }

func TestDaemonContainerExec(t *testing.T) {
	e := Get(t)
	if !strings.HasPrefix(e.Namespace, "pouch-test-testenv-") || e.Snapshotter != "overlayfs" {
		t.Fatalf("env %+v", e)
	}
	if fi, err := os.Stat(e.DataRoot); err != nil || !fi.IsDir() {
		t.Fatalf("DataRoot %s: %v", e.DataRoot, err)
	}
	img := imagebuild.Image{
		Name:  "docker.io/pouchtest/testenv:v1",
		Files: map[string]string{"/version": "v1\n"},
	}
	dgst := e.ImportImage(t, img)
	if !strings.HasPrefix(dgst, "sha256:") {
		t.Fatalf("digest %q", dgst)
	}
	if again := e.ImportImage(t, img); again != dgst {
		t.Fatalf("second import gave %s, first %s", again, dgst)
	}

	ctx := e.Context()
	image, err := e.Client.GetImage(ctx, img.Name)
	if err != nil {
		t.Fatal(err)
	}
	if image.Target().Digest.String() != dgst {
		t.Fatalf("image target %s, ImportImage said %s", image.Target().Digest, dgst)
	}
	const id = "testenv-c1"
	c, err := e.Client.NewContainer(ctx, id,
		containerd.WithImage(image),
		containerd.WithNewSnapshot(id+"-snap", image),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "300")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.TaskStatus(t, id); got != "" {
		t.Fatalf("status before task %q", got)
	}
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "task running", func() bool { return e.TaskStatus(t, id) == "running" })
	if pid := e.TaskPID(t, id); pid == 0 || pid != task.Pid() {
		t.Fatalf("TaskPID %d, task %d", pid, task.Pid())
	}

	out, err := e.Exec(t, id, "cat", "/version")
	if err != nil || out != "v1\n" {
		t.Fatalf("exec cat: %q, %v", out, err)
	}
	out, err = e.Exec(t, id, "sh", "-c", "echo out; echo err >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "exit code 3") || !strings.Contains(err.Error(), "err") || out != "out\n" {
		t.Fatalf("failing exec: %q, %v", out, err)
	}
	out, err = e.Exec(t, id, "id", "-un")
	if err != nil || out != "root\n" {
		t.Fatalf("id: %q, %v", out, err)
	}
	if snaps := e.ActiveSnapshots(t); !slices.Contains(snaps, id+"-snap") {
		t.Fatalf("active snapshots %v lack %s", snaps, id+"-snap")
	}
	_ = e.Leases(t) // must not fail

	// Leave the task running: Main must clean it up.
	if got := e.TaskPID(t, "no-such-container"); got != 0 {
		t.Fatalf("TaskPID of missing container %d", got)
	}
}

func TestRegistryPushPull(t *testing.T) {
	e := Get(t)
	img := imagebuild.Image{Files: map[string]string{"/version": "pushed\n"}, Cmd: []string{"sleep", "1"}}
	ref := e.PushImage(t, "pouchtest/pushed:v2", img)
	host := e.Registry(t)
	if ref != host+"/pouchtest/pushed:v2" {
		t.Fatalf("ref %q", ref)
	}
	ctx := e.Context()
	if _, err := e.Client.GetImage(ctx, ref); err == nil {
		t.Fatal("PushImage imported the image into containerd")
	}
	img.Name = ref
	want, err := imagebuild.WriteArchive(discard{}, img)
	if err != nil {
		t.Fatal(err)
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost)),
	})
	pulled, err := e.Client.Pull(ctx, ref, containerd.WithResolver(resolver), containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(e.Snapshotter))
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Target().Digest != want {
		t.Fatalf("pulled %s, pushed %s", pulled.Target().Digest, want)
	}
	if ok, err := pulled.IsUnpacked(ctx, e.Snapshotter); err != nil || !ok {
		t.Fatalf("unpacked %v, %v", ok, err)
	}
}

func TestEventuallyPasses(t *testing.T) {
	n := 0
	Eventually(t, time.Second, "counter", func() bool { n++; return n >= 3 })
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
