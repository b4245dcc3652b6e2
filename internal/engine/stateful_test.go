package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// The container's network namespace outlives its tasks: the same IP and MAC
// after an image upgrade and after a restart, and the service answers at
// that IP and at its published port.
func TestBridgeIdentitySurvivesUpgradeAndRestart(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, webImage("web", "v1"))
	env.ImportImage(t, webImage("web", "v2"))
	port := freePort(t)
	spec := engine.ContainerSpec{
		Name: "eng-web", Image: "pouchtest/web:v1", Running: true,
		Ports: []engine.PortMapping{{HostIP: "127.0.0.1", HostPort: port, ContainerPort: 80}},
	}
	st := create(t, e, spec)
	if st.IPAddress == "" || st.MACAddress == "" {
		t.Fatalf("no address on the bridge network: %+v", st)
	}
	_, subnet, _ := net.ParseCIDR(env.Subnet)
	if !subnet.Contains(net.ParseIP(st.IPAddress)) {
		t.Fatalf("ip %s not in %s", st.IPAddress, env.Subnet)
	}
	published := fmt.Sprintf("http://127.0.0.1:%d/", port)
	eventuallyServes(t, "http://"+st.IPAddress+"/", "v1")
	eventuallyServes(t, published, "v1")

	spec.Image = "pouchtest/web:v2"
	up, err := e.Update(context.Background(), "eng-web", spec)
	if err != nil {
		t.Fatal(err)
	}
	if up.IPAddress != st.IPAddress || up.MACAddress != st.MACAddress {
		t.Fatalf("address changed across the upgrade: %s/%s -> %s/%s", st.IPAddress, st.MACAddress, up.IPAddress, up.MACAddress)
	}
	eventuallyServes(t, "http://"+st.IPAddress+"/", "v2")
	eventuallyServes(t, published, "v2")

	spec.Env = map[string]string{"RESTARTED": "1"}
	again, err := e.Update(context.Background(), "eng-web", spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.IPAddress != st.IPAddress || again.MACAddress != st.MACAddress {
		t.Fatalf("address changed across a restart: %s -> %s", st.IPAddress, again.IPAddress)
	}
	if got := mustExec(t, env, "eng-web", "sh", "-c", "ip -4 -o addr show eth0 | grep -c "+st.IPAddress); got != "1" {
		t.Fatalf("eth0 in the container lacks %s", st.IPAddress)
	}
	eventuallyServes(t, published, "v2")
}

// Bytes in a named volume, a bind mount and an anonymous image volume
// survive an image upgrade; the image volume starts with the image's files.
func TestVolumesSurviveUpgrade(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	img := func(version string) imagebuild.Image {
		i := versionImage("vols", version)
		i.Volumes = []string{"/var/lib/app"}
		i.Files["/var/lib/app/seed"] = "seeded-" + version
		return i
	}
	env.ImportImage(t, img("v1"))
	env.ImportImage(t, img("v2"))
	vol, err := e.CreateVolume(ctx, engine.VolumeSpec{Name: "eng-data", Labels: map[string]string{"tier": "db"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.DeleteVolume(context.Background(), "eng-data") })
	bindDir := t.TempDir()
	spec := engine.ContainerSpec{
		Name: "eng-vols", Image: "pouchtest/vols:v1", Running: true,
		Mounts: []engine.Mount{
			{Type: engine.MountVolume, Source: "eng-data", Target: "/data"},
			{Type: engine.MountBind, Source: bindDir, Target: "/bind"},
			{Type: engine.MountTmpfs, Target: "/scratch", TmpfsSizeMiB: 8},
		},
	}
	st := create(t, e, spec)
	if got := mustExec(t, env, "eng-vols", "cat", "/var/lib/app/seed"); got != "seeded-v1" {
		t.Fatalf("image volume not populated from the image: %q", got)
	}
	if len(st.ImageVolumes) != 1 || st.ImageVolumes[0].Target != "/var/lib/app" {
		t.Fatalf("image volumes = %+v", st.ImageVolumes)
	}
	mustExec(t, env, "eng-vols", "sh", "-c",
		"dd if=/dev/urandom of=/data/blob bs=1k count=64 2>/dev/null && cp /data/blob /bind/blob && cp /data/blob /var/lib/app/blob")
	want := sha(t, env, "eng-vols", "/data/blob")
	if _, err := os.Stat(filepath.Join(vol.Mountpoint, "blob")); err != nil {
		t.Fatalf("volume data not under its mountpoint: %v", err)
	}

	spec.Image = "pouchtest/vols:v2"
	if _, err := e.Update(ctx, "eng-vols", spec); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, env, "eng-vols", "cat", "/version"); got != "v2" {
		t.Fatalf("/version = %q", got)
	}
	for _, f := range []string{"/data/blob", "/bind/blob", "/var/lib/app/blob"} {
		if got := sha(t, env, "eng-vols", f); got != want {
			t.Fatalf("%s changed across the upgrade", f)
		}
	}
	// The volume kept its contents: the new image's seed does not overwrite them.
	if got := mustExec(t, env, "eng-vols", "cat", "/var/lib/app/seed"); got != "seeded-v1" {
		t.Fatalf("image volume seed = %q after upgrade", got)
	}
	if got := mustExec(t, env, "eng-vols", "sh", "-c", "mount | grep ' /scratch ' | grep -c tmpfs"); got != "1" {
		t.Fatal("no tmpfs at /scratch")
	}

	err = e.DeleteVolume(ctx, "eng-data")
	if !errors.Is(err, engine.ErrVolumeInUse) || !strings.Contains(err.Error(), "eng-vols") {
		t.Fatalf("deleting a mounted volume: err = %v, want ErrVolumeInUse naming eng-vols", err)
	}
	anonymous := st.ImageVolumes[0].Path
	if err := e.Delete(ctx, "eng-vols"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(anonymous); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("image volume %s left after delete: %v", anonymous, err)
	}
	if _, err := os.Stat(filepath.Join(bindDir, "blob")); err != nil {
		t.Fatalf("delete touched the bind source: %v", err)
	}
	if err := e.DeleteVolume(ctx, "eng-data"); err != nil {
		t.Fatalf("deleting an unused volume: %v", err)
	}
	if _, err := e.InspectVolume(ctx, "eng-data"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("inspect deleted volume: %v", err)
	}
}

func TestKeepImageVolumes(t *testing.T) {
	e, env := newEngine(t)
	img := versionImage("keepvols", "v1")
	img.Volumes = []string{"/state"}
	env.ImportImage(t, img)
	st, err := e.Create(context.Background(), engine.ContainerSpec{
		Name: "eng-keepvols", Image: "pouchtest/keepvols:v1", Running: true, KeepImageVolumes: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, env, "eng-keepvols", "sh", "-c", "echo keep > /state/f")
	if err := e.Delete(context.Background(), "eng-keepvols"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(st.ImageVolumes[0].Path, "f"))
	if err != nil || strings.TrimSpace(string(b)) != "keep" {
		t.Fatalf("kept image volume: %q, %v", b, err)
	}
	os.RemoveAll(st.ImageVolumes[0].Path)
}

// containerd's restart monitor starts the task again after its process dies.
func TestRestartPolicyAlways(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("restart", "v1"))
	create(t, e, engine.ContainerSpec{Name: "eng-restart", Image: "pouchtest/restart:v1", Running: true,
		NetworkMode: engine.NetworkHost, Restart: engine.RestartAlways})
	pid := env.TaskPID(t, "eng-restart")
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 40*time.Second, "the restart monitor starts the task again", func() bool {
		p := env.TaskPID(t, "eng-restart")
		return p != 0 && p != pid && env.TaskStatus(t, "eng-restart") == "running"
	})
}

// The defaults are containerd's safe ones; the security attributes change
// what the process may do.
func TestSecuritySettings(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("sec", "v1"))
	spec := engine.ContainerSpec{Name: "eng-sec", Image: "pouchtest/sec:v1", Running: true, NetworkMode: engine.NetworkNone}
	create(t, e, spec)
	status := mustExec(t, env, "eng-sec", "cat", "/proc/self/status")
	for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(status, want) {
			t.Fatalf("default task lacks %q:\n%s", want, status)
		}
	}
	mustExec(t, env, "eng-sec", "touch", "/writable")

	spec.Security = engine.Security{ReadOnlyRootfs: true, CapDrop: []string{"CHOWN"}, SeccompProfile: "unconfined", AllowNewPrivileges: true}
	if _, err := e.Update(context.Background(), "eng-sec", spec); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Exec(t, "eng-sec", "touch", "/x"); err == nil {
		t.Fatal("read_only_rootfs: the root filesystem is writable")
	}
	if _, err := env.Exec(t, "eng-sec", "chown", "1000", "/tmp"); err == nil {
		t.Fatal("CHOWN was dropped, yet chown works")
	}
	status = mustExec(t, env, "eng-sec", "cat", "/proc/self/status")
	if !strings.Contains(status, "NoNewPrivs:\t0") || !strings.Contains(status, "Seccomp:\t0") {
		t.Fatalf("settings not applied:\n%s", status)
	}
}

// A container created outside pouch (as `ctr run` does) reads back with
// what differs from its image as the user's settings, and can then be
// upgraded like any other.
func TestForeignContainerIsDerivedAndUpgradable(t *testing.T) {
	e, env := newEngine(t)
	ctx := env.Context()
	img := versionImage("foreign", "v1")
	img.Entrypoint = []string{"/bin/sh", "-c"}
	img.Cmd = []string{"sleep 3600"}
	env.ImportImage(t, img)
	env.ImportImage(t, versionImage("foreign", "v2"))
	image, err := env.Client.GetImage(ctx, "docker.io/pouchtest/foreign:v1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := env.Client.NewContainer(ctx, "eng-foreign",
		containerd.WithImage(image),
		containerd.WithNewSnapshot("eng-foreign-ctr", image),
		containerd.WithNewSpec(oci.WithImageConfig(image),
			oci.WithProcessArgs("/bin/sh", "-c", "sleep 1000"),
			oci.WithEnv([]string{"A=1"}),
			oci.WithMounts([]specs.Mount{{Type: "tmpfs", Source: "tmpfs", Destination: "/scratch"}})),
		containerd.WithContainerLabels(map[string]string{"team": "ops"}))
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Delete(context.Background(), "eng-foreign") })

	st, err := e.Inspect(context.Background(), "eng-foreign")
	if err != nil {
		t.Fatal(err)
	}
	got := st.Spec
	if got.Image != "docker.io/pouchtest/foreign:v1" || got.Entrypoint != nil ||
		strings.Join(got.Command, " ") != "sleep 1000" || got.Env["A"] != "1" || len(got.Env) != 1 ||
		got.Labels["team"] != "ops" || got.NetworkMode != engine.NetworkNone ||
		len(got.Mounts) != 1 || got.Mounts[0].Type != engine.MountTmpfs || got.Mounts[0].Target != "/scratch" {
		t.Fatalf("derived spec = %+v", got)
	}
	if st.Status != engine.StatusRunning {
		t.Fatalf("status %s", st.Status)
	}

	got.Image = "pouchtest/foreign:v2"
	got.Running = true
	got.Entrypoint, got.Command = nil, nil
	up, err := e.Update(context.Background(), "eng-foreign", got)
	if err != nil {
		t.Fatal(err)
	}
	if up.Status != engine.StatusRunning || mustExec(t, env, "eng-foreign", "cat", "/version") != "v2" {
		t.Fatalf("after upgrading the imported container: %+v", up)
	}
}
