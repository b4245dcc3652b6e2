package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// serviceImage is versionImage with an /etc/group naming group audio.
func serviceImage(version string) string {
	img := versionImage("service", version)
	img.Files["/etc/group"] = "root:x:0:\naudio:x:29:\n"
	return img.Name
}

// serviceSpec asks for every setting of a service's process. The limits
// stay within the test's own (a hard limit above containerd's needs
// CAP_SYS_RESOURCE, which the test machine's root lacks): nofile is
// raised from the runtime's 1024, memlock lowered.
func serviceSpec(image string) engine.ContainerSpec {
	return engine.ContainerSpec{
		Name: "eng-service", Image: image, Running: true, NetworkMode: engine.NetworkNone,
		Ulimits: []engine.Ulimit{
			{Name: "nofile", Soft: 16384, Hard: 16384},
			{Name: "memlock", Soft: 4 << 20, Hard: 4 << 20},
		},
		ShmSizeMiB: 256,
		Sysctls:    map[string]string{"net.core.somaxconn": "1234", "kernel.shmmax": "68719476736"},
		// Not among the runtime's default devices, which it allows anyway.
		Devices:     []engine.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/pouch-fuse", Permissions: "r"}},
		GroupAdd:    []string{"audio", "1234"},
		OOMScoreAdj: 500,
		Resources:   engine.Resources{CpusetCPUs: "0", CpusetMems: "0", MemoryReservationMiB: 64},
		DNS:         engine.DNSConfig{Servers: []string{"10.0.0.53"}, Search: []string{"svc.example"}, Options: []string{"ndots:2"}},
		ExtraHosts:  map[string]string{"db.internal": "10.1.2.3"},
	}
}

// checkService asserts, from inside the container, every setting of
// serviceSpec (with cpus as its cpuset).
func checkService(t *testing.T, env *testenv.Env, id, cpus string) {
	t.Helper()
	for _, c := range []struct{ cmd, want string }{
		{"ulimit -n", "16384"},
		{"ulimit -Hn", "16384"},
		{"ulimit -l", "4096"},
		{"df -k /dev/shm | tail -n 1 | awk '{print $2}'", "262144"},
		{"cat /proc/sys/net/core/somaxconn", "1234"},
		{"cat /proc/sys/kernel/shmmax", "68719476736"},
		{"stat -c '%F %t:%T' /dev/pouch-fuse", "character special file a:e5"},
		{"(exec 3</dev/pouch-fuse) 2>/dev/null && echo opened || echo refused", "opened"},
		{"(exec 3>/dev/pouch-fuse) 2>/dev/null && echo opened || echo refused", "refused"},
		{"cat /proc/1/oom_score_adj", "500"},
		{"grep ^Groups: /proc/1/status | cut -f2", "0 29 1234"}, // root's own group, then group_add's
		{"grep ^Cpus_allowed_list: /proc/1/status | cut -f2", cpus},
		{"grep ^Mems_allowed_list: /proc/1/status | cut -f2", "0"},
		{"grep -v '^#' /etc/resolv.conf", "nameserver 10.0.0.53\nsearch svc.example\noptions ndots:2"},
		{"tail -n 1 /etc/hosts", "10.1.2.3\tdb.internal"},
		{"echo x >> /etc/hosts 2>/dev/null && echo written || echo refused", "refused"},
	} {
		if got := mustExec(t, env, id, "sh", "-c", c.cmd); got != c.want {
			t.Errorf("%s in %s: %q, want %q", c.cmd, id, got, c.want)
		}
	}
	if got := softLimit(t, env, id); got != fmt.Sprint(64<<20) {
		t.Errorf("memory.soft_limit_in_bytes of %s: %s, want 64 MiB", id, got)
	}
}

// softLimit is the soft memory limit of container id's cgroup (v1), read
// on the host.
func softLimit(t *testing.T, env *testenv.Env, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", env.Namespace, id, "memory.soft_limit_in_bytes"))
	if err != nil {
		t.Fatalf("read the soft memory limit: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// A service's process settings reach its task, and stay through a
// restart in place and an image upgrade; a new cpuset and soft memory
// limit are applied live (same PID), a new ulimit by a restart.
func TestServiceSettings(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	for _, v := range []string{"v1", "v2"} {
		img := versionImage("service", v)
		img.Files["/etc/group"] = "root:x:0:\naudio:x:29:\n"
		env.ImportImage(t, img)
	}
	spec := serviceSpec(serviceImage("v1"))
	create(t, e, spec)
	checkService(t, env, spec.Name, "0")

	pid := env.TaskPID(t, spec.Name)
	spec.Resources.CpusetCPUs, spec.Resources.MemoryReservationMiB = "1", 32
	if _, err := e.Update(ctx, spec.Name, spec); err != nil {
		t.Fatal(err)
	}
	if env.TaskPID(t, spec.Name) != pid {
		t.Fatal("a new cpuset and soft limit restarted the task")
	}
	if got := mustExec(t, env, spec.Name, "sh", "-c", "grep ^Cpus_allowed_list: /proc/1/status | cut -f2"); got != "1" {
		t.Fatalf("cpuset after the live update: %q, want 1", got)
	}
	if got := softLimit(t, env, spec.Name); got != fmt.Sprint(32<<20) {
		t.Fatalf("soft limit after the live update: %q", got)
	}
	spec.Resources.CpusetCPUs, spec.Resources.MemoryReservationMiB = "0", 64

	spec.Ulimits[0] = engine.Ulimit{Name: "nofile", Soft: 4096, Hard: 16384}
	if _, err := e.Update(ctx, spec.Name, spec); err != nil {
		t.Fatal(err)
	}
	if env.TaskPID(t, spec.Name) == pid {
		t.Fatal("a new ulimit did not restart the task")
	}
	if got := mustExec(t, env, spec.Name, "sh", "-c", "ulimit -n"); got != "4096" {
		t.Fatalf("nofile after the restart: %q, want 4096", got)
	}
	spec.Ulimits[0].Soft = 16384
	if _, err := e.Update(ctx, spec.Name, spec); err != nil {
		t.Fatal(err)
	}
	checkService(t, env, spec.Name, "0")

	spec.Image = serviceImage("v2")
	if _, err := e.Update(ctx, spec.Name, spec); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, env, spec.Name, "cat", "/version"); got != "v2" {
		t.Fatalf("/version after the upgrade: %q", got)
	}
	checkService(t, env, spec.Name, "0")

	// Another name server: a restart on a new resolv.conf, the old one
	// removed once no task reads it; without DNS settings, the host's.
	pid = env.TaskPID(t, spec.Name)
	spec.DNS.Servers = []string{"10.0.0.54"}
	if _, err := e.Update(ctx, spec.Name, spec); err != nil {
		t.Fatal(err)
	}
	if env.TaskPID(t, spec.Name) == pid {
		t.Fatal("a new name server did not restart the task")
	}
	if got := mustExec(t, env, spec.Name, "grep", "^nameserver", "/etc/resolv.conf"); got != "nameserver 10.0.0.54" {
		t.Fatalf("resolv.conf after the change: %q", got)
	}
	etc, err := os.ReadDir(filepath.Join(env.DataRoot, "containers", env.Namespace, spec.Name, "files"))
	if err != nil || len(etc) != 2 {
		t.Fatalf("the container's own /etc files: %v (%v), want its resolv.conf and hosts only", etc, err)
	}
	spec.DNS, spec.ExtraHosts = engine.DNSConfig{}, nil
	if _, err := e.Update(ctx, spec.Name, spec); err != nil {
		t.Fatal(err)
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	if got := mustExec(t, env, spec.Name, "cat", "/etc/resolv.conf"); got != strings.TrimSpace(string(host)) {
		t.Fatalf("resolv.conf without dns settings: %q, want the host's %q", got, host)
	}
}

// A host-level sysctl and a group the image does not have are refused
// with the reason, and nothing is created.
func TestServiceSettingsRefused(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	img := versionImage("service", "v1")
	img.Files["/etc/group"] = "root:x:0:\naudio:x:29:\n"
	env.ImportImage(t, img)
	for _, tc := range []struct {
		name string
		edit func(*engine.ContainerSpec)
		want string
	}{
		{"host sysctl", func(s *engine.ContainerSpec) { s.Sysctls = map[string]string{"vm.max_map_count": "262144"} }, "is not namespaced"},
		{"unknown group", func(s *engine.ContainerSpec) { s.GroupAdd = []string{"video"} }, "video"},
		{"missing device", func(s *engine.ContainerSpec) { s.Devices = []engine.Device{{HostPath: "/dev/pouch-no-such-device"}} }, "pouch-no-such-device"},
		{"a hard limit above containerd's", func(s *engine.ContainerSpec) {
			s.Ulimits = []engine.Ulimit{{Name: "nofile", Soft: 1 << 20, Hard: 1 << 20}}
		}, "CAP_SYS_RESOURCE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := serviceSpec(img.Name)
			spec.Name = "eng-service-refused"
			tc.edit(&spec)
			_, err := e.Create(ctx, spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: %v, want an error naming %q", err, tc.want)
			}
			if _, err := e.Inspect(ctx, spec.Name); err == nil {
				t.Fatal("a refused create left a container")
			}
		})
	}
}

// zombies counts the zombie processes in container id.
func zombies(t *testing.T, env *testenv.Env, id string) string {
	t.Helper()
	return mustExec(t, env, id, "sh", "-c", "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l")
}

// With init, PID 1 is the host's tini, and an orphan's zombie is reaped;
// without it (PID 1 is sleep, which reaps nothing), the zombie stays: the
// check can fail.
func TestInitReapsZombies(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("init", "v1"))
	orphan := "(sleep 0.2 &) ; true" // the subshell exits: sleep is PID 1's child, then a zombie
	for _, tc := range []struct {
		init    bool
		zombies string
	}{{true, "0"}, {false, "1"}} {
		t.Run(fmt.Sprintf("init=%v", tc.init), func(t *testing.T) {
			spec := engine.ContainerSpec{Name: fmt.Sprintf("eng-init-%v", tc.init), Image: "pouchtest/init:v1", Running: true,
				NetworkMode: engine.NetworkNone, Init: tc.init}
			st := create(t, e, spec)
			comm := mustExec(t, env, spec.Name, "cat", "/proc/1/comm")
			if tc.init != (comm == "pouch-init") {
				t.Fatalf("PID 1 is %q", comm)
			}
			if !slices.Equal(st.Process.Args, []string{"sleep", "3600"}) {
				t.Fatalf("the process read back is %v, want the service's, without the init", st.Process.Args)
			}
			mustExec(t, env, spec.Name, "sh", "-c", orphan)
			testenv.Eventually(t, 10*time.Second, "zombies: "+tc.zombies, func() bool { return zombies(t, env, spec.Name) == tc.zombies })
		})
	}
}

// With init, the stop signal reaches the service: its trap runs, before
// the stop timeout's SIGKILL.
func TestInitForwardsTheStopSignal(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("init", "v1"))
	out := t.TempDir()
	spec := engine.ContainerSpec{Name: "eng-init-stop", Image: "pouchtest/init:v1", Running: true,
		NetworkMode: engine.NetworkNone, Init: true, StopTimeout: 60 * time.Second,
		Command: []string{"sh", "-c", `trap "echo TERM > /out/term; exit 0" TERM; while :; do sleep 1; done`},
		Mounts:  []engine.Mount{{Type: engine.MountBind, Source: out, Target: "/out"}}}
	create(t, e, spec)
	spec.Running = false
	if _, err := e.Update(context.Background(), spec.Name, spec); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "term")); err != nil || string(b) != "TERM\n" {
		t.Fatalf("the service's trap after the stop: %q, %v; want TERM: the stop signal did not reach it", b, err)
	}
}

// Uploads are in the container, with their bytes and modes, read-only,
// before the task starts; a new content restarts the task on it, an image
// upgrade keeps them, and their contents are never in the container's
// record.
func TestUploads(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	env.ImportImage(t, versionImage("uploads", "v1"))
	env.ImportImage(t, versionImage("uploads", "v2"))
	const secret = "pa55-Upl0ad-9q"
	spec := engine.ContainerSpec{Name: "eng-uploads", Image: "pouchtest/uploads:v1", Running: true, NetworkMode: engine.NetworkNone,
		// The task reads its configuration when it starts.
		Command: []string{"sh", "-c", "cp /etc/app/app.conf /tmp/at-start && exec sleep 3600"},
		Uploads: []engine.Upload{
			{File: "/etc/app/app.conf", Mode: 0o640, Content: []byte("a = 1\n")},
			{File: "/run/secrets/db", Mode: 0o600, Content: []byte(secret)},
			// Under a mount, and with a mode the umask would change.
			{File: "/srv/shared/motd", Mode: 0o664, Content: []byte("welcome")},
		},
		Mounts: []engine.Mount{{Type: engine.MountTmpfs, Target: "/srv/shared"}}}
	create(t, e, spec)
	check := func(conf string) {
		t.Helper()
		for _, c := range []struct{ cmd, want string }{
			{"cat /tmp/at-start", strings.TrimSpace(conf)},
			{"stat -c '%a %u' /etc/app/app.conf /run/secrets/db /srv/shared/motd", "640 0\n600 0\n664 0"},
			{"cat /srv/shared/motd", "welcome"},
			{"cat /run/secrets/db", secret},
			{"echo x >> /etc/app/app.conf 2>/dev/null && echo written || echo refused", "refused"},
		} {
			if got := mustExec(t, env, spec.Name, "sh", "-c", c.cmd); got != c.want {
				t.Errorf("%s: %q, want %q", c.cmd, got, c.want)
			}
		}
	}
	check("a = 1\n")
	if info := containerInfo(t, env, spec.Name); strings.Contains(fmt.Sprint(info.Extensions), secret) ||
		strings.Contains(fmt.Sprint(info.Labels), secret) {
		t.Fatal("an upload's content is in the container's record")
	}

	pid := env.TaskPID(t, spec.Name)
	spec.Uploads[0].Content = []byte("a = 2\n")
	if _, err := e.Update(ctx, spec.Name, spec); err != nil {
		t.Fatal(err)
	}
	if env.TaskPID(t, spec.Name) == pid {
		t.Fatal("a new content did not restart the task")
	}
	check("a = 2\n")
	files, err := os.ReadDir(filepath.Join(env.DataRoot, "containers", env.Namespace, spec.Name, "files"))
	if err != nil || len(files) != 3 {
		t.Fatalf("the container's own files after the change: %v (%v), want its three uploads only", files, err)
	}

	spec.Image = "pouchtest/uploads:v2"
	st, err := e.Update(ctx, spec.Name, spec)
	if err != nil {
		t.Fatal(err)
	}
	check("a = 2\n")
	// The spec read back, without the contents, changes nothing.
	pid = env.TaskPID(t, spec.Name)
	back := st.Spec
	back.Running = true
	if _, err := e.Update(ctx, spec.Name, back); err != nil || env.TaskPID(t, spec.Name) != pid {
		t.Fatalf("an update with the spec read back: %v, or it restarted the task", err)
	}
}

// Changes the runtime spec shows as resources but that cannot be applied
// live restart the task, as the plan says: a device's access rights, a
// soft memory limit lifted.
func TestResourceLikeChangesRestart(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	env.ImportImage(t, versionImage("restarts", "v1"))
	spec := engine.ContainerSpec{Name: "eng-restarts", Image: "pouchtest/restarts:v1", Running: true, NetworkMode: engine.NetworkNone,
		Devices:   []engine.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/pouch-fuse", Permissions: "r"}},
		Resources: engine.Resources{MemoryReservationMiB: 32}}
	create(t, e, spec)
	write := "(exec 3>/dev/pouch-fuse) 2>/dev/null && echo opened || echo refused"
	for _, step := range []struct {
		name  string
		edit  func(*engine.ContainerSpec)
		check func() bool
	}{
		{"device rw", func(s *engine.ContainerSpec) { s.Devices[0].Permissions = "rw" },
			func() bool { return mustExec(t, env, spec.Name, "sh", "-c", write) == "opened" }},
		{"reservation lifted", func(s *engine.ContainerSpec) { s.Resources.MemoryReservationMiB = 0 },
			func() bool { return softLimit(t, env, spec.Name) != fmt.Sprint(32<<20) }},
	} {
		pid := env.TaskPID(t, spec.Name)
		step.edit(&spec)
		if _, err := e.Update(ctx, spec.Name, spec); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if env.TaskPID(t, spec.Name) == pid || !step.check() {
			t.Fatalf("%s: not applied by a restart", step.name)
		}
	}
}

// An image whose upload directory is a symlink to a host directory gets
// the upload inside its own root filesystem: the host directory stays
// empty.
func TestUploadThroughAHostileSymlink(t *testing.T) {
	e, env := newEngine(t)
	hostDir := t.TempDir()
	img := versionImage("uploads-hostile", "v1")
	img.Entries = []imagebuild.Entry{{Path: "/etc/app", Type: imagebuild.Symlink, Target: hostDir}}
	env.ImportImage(t, img)
	spec := engine.ContainerSpec{Name: "eng-uploads-hostile", Image: img.Name, Running: true, NetworkMode: engine.NetworkNone,
		Uploads: []engine.Upload{{File: "/etc/app/app.conf", Content: []byte("inside")}}}
	create(t, e, spec)
	if got := mustExec(t, env, spec.Name, "cat", "/etc/app/app.conf"); got != "inside" {
		t.Fatalf("the upload in the container: %q", got)
	}
	if entries, err := os.ReadDir(hostDir); err != nil || len(entries) != 0 {
		t.Fatalf("the host directory the image's symlink names: %v (%v), want it untouched", entries, err)
	}
}
