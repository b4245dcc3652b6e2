package engine

import (
	"errors"
	"fmt"
	"math"
	"net"
	"reflect"
	"strings"
	"testing"
)

// These tests judge the input rules of rules.go (and validateSpec and
// MergeProcess, which apply them) without a daemon: they never call
// testenv.Get.

// ruleCase is one input and the verdict a rule must give on it: accepted
// when frag is empty, else refused with an error containing frag and, when
// field is set, a FieldError naming that field.
type ruleCase struct {
	name  string
	err   error
	frag  string
	field string
}

// checkVerdict asserts the verdict of one ruleCase.
func checkVerdict(t *testing.T, c ruleCase) {
	t.Helper()
	if c.frag == "" {
		if c.err != nil {
			t.Errorf("%s: refused, want accepted: %v", c.name, c.err)
		}
		return
	}
	if c.err == nil {
		t.Errorf("%s: accepted, want refused with %q", c.name, c.frag)
		return
	}
	if !strings.Contains(c.err.Error(), c.frag) {
		t.Errorf("%s: error %q does not contain %q", c.name, c.err, c.frag)
	}
	if c.field != "" {
		var fe *FieldError
		if !errors.As(c.err, &fe) {
			t.Errorf("%s: error %q is not a FieldError, want field %s", c.name, c.err, c.field)
		} else if fe.Field != c.field {
			t.Errorf("%s: FieldError.Field = %s, want %s (error %q)", c.name, fe.Field, c.field, c.err)
		}
	}
}

func checkVerdicts(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, c := range cases {
		checkVerdict(t, c)
	}
}

func TestCheckMemoryMiB(t *testing.T) {
	// The issue: memory = 2^44 MiB was shifted to bytes and overflowed.
	if b := int64(MaxMemoryMiB) << 20; b <= 0 || b>>20 != MaxMemoryMiB {
		t.Fatalf("MaxMemoryMiB << 20 = %d overflows int64", b)
	}
	if MaxMemoryMiB > math.MaxInt64>>20 {
		t.Fatalf("MaxMemoryMiB %d is over %d, the largest size in MiB whose bytes fit in int64", MaxMemoryMiB, int64(math.MaxInt64>>20))
	}
	const bound = "must be between 1 and"
	checkVerdicts(t, []ruleCase{
		{"1", CheckMemoryMiB(1), "", ""},
		{"MaxMemoryMiB", CheckMemoryMiB(MaxMemoryMiB), "", ""},
		{"MaxMemoryMiB+1", CheckMemoryMiB(MaxMemoryMiB + 1), bound, ""},
		{"2^44", CheckMemoryMiB(1 << 44), bound, ""},
		{"MaxInt64", CheckMemoryMiB(math.MaxInt64), bound, ""},
		{"0", CheckMemoryMiB(0), bound, ""},
		{"-1", CheckMemoryMiB(-1), bound, ""},
	})
}

func TestCheckMemorySwapMiB(t *testing.T) {
	checkVerdicts(t, []ruleCase{
		{"-1 with memory", CheckMemorySwapMiB(-1, 256), "", ""},
		{"equal to memory", CheckMemorySwapMiB(256, 256), "", ""},
		{"above memory", CheckMemorySwapMiB(512, 256), "", ""},
		{"MaxMemoryMiB", CheckMemorySwapMiB(MaxMemoryMiB, 256), "", ""},
		{"below memory", CheckMemorySwapMiB(128, 256), "at least memory (256 MiB)", ""},
		{"without memory", CheckMemorySwapMiB(512, 0), "needs memory", ""},
		{"-1 without memory", CheckMemorySwapMiB(-1, 0), "needs memory", ""},
		// 0 is not a value of memory_swap (CheckResources reads it as
		// unset and never asks): the rule refuses it.
		{"0 with memory", CheckMemorySwapMiB(0, 256), "must be -1 (unlimited swap) or between 1 and", ""},
		{"0 without memory", CheckMemorySwapMiB(0, 0), "must be -1 (unlimited swap) or between 1 and", ""},
		{"-2", CheckMemorySwapMiB(-2, 256), "must be -1 (unlimited swap) or between 1 and", ""},
		{"MaxMemoryMiB+1", CheckMemorySwapMiB(MaxMemoryMiB+1, 256), "must be -1 (unlimited swap) or between 1 and", ""},
		{"2^44", CheckMemorySwapMiB(1<<44, 256), "must be -1 (unlimited swap) or between 1 and", ""},
	})
}

func TestCheckCPUs(t *testing.T) {
	const bound = "must be between 0.01 and 4096 CPUs"
	checkVerdicts(t, []ruleCase{
		{"0.01", CheckCPUs(0.01), "", ""},
		{"MinCPUs", CheckCPUs(MinCPUs), "", ""},
		{"0.5", CheckCPUs(0.5), "", ""},
		{"MaxCPUs", CheckCPUs(MaxCPUs), "", ""},
		{"1e30", CheckCPUs(1e30), bound, ""},
		{"0.001", CheckCPUs(0.001), bound, ""},
		{"NaN", CheckCPUs(math.NaN()), bound, ""},
		{"+Inf", CheckCPUs(math.Inf(1)), bound, ""},
		{"-Inf", CheckCPUs(math.Inf(-1)), bound, ""},
		{"-1", CheckCPUs(-1), bound, ""},
		{"MaxCPUs+1", CheckCPUs(MaxCPUs + 1), bound, ""},
	})
}

func TestCheckCPUShares(t *testing.T) {
	const bound = "must be between 2 and 262144"
	checkVerdicts(t, []ruleCase{
		{"2", CheckCPUShares(2), "", ""},
		{"1024", CheckCPUShares(1024), "", ""},
		{"262144", CheckCPUShares(262144), "", ""},
		{"1", CheckCPUShares(1), bound, ""},
		{"262145", CheckCPUShares(262145), bound, ""},
		{"-1", CheckCPUShares(-1), bound, ""},
	})
}

func TestCheckPidsLimit(t *testing.T) {
	const bound = "must be between 1 and 4194304"
	checkVerdicts(t, []ruleCase{
		{"1", CheckPidsLimit(1), "", ""},
		{"MaxPidsLimit", CheckPidsLimit(MaxPidsLimit), "", ""},
		{"0", CheckPidsLimit(0), bound, ""},
		{"MaxPidsLimit+1", CheckPidsLimit(MaxPidsLimit + 1), bound, ""},
		{"-1", CheckPidsLimit(-1), bound, ""},
	})
}

func TestCheckResources(t *testing.T) {
	checkVerdicts(t, []ruleCase{
		{"zero is unset", CheckResources(Resources{}), "", ""},
		{"all set", CheckResources(Resources{MemoryMiB: 256, MemorySwapMiB: -1, CPUs: 0.5, CPUShares: 512, PidsLimit: 100}), "", ""},
		{"memory 2^44", CheckResources(Resources{MemoryMiB: 1 << 44}), "must be between 1 and", "memory"},
		{"memory MaxMemoryMiB+1", CheckResources(Resources{MemoryMiB: MaxMemoryMiB + 1}), "must be between 1 and", "memory"},
		{"swap below memory", CheckResources(Resources{MemoryMiB: 256, MemorySwapMiB: 128}), "at least memory", "memory_swap"},
		{"swap without memory", CheckResources(Resources{MemorySwapMiB: 512}), "needs memory", "memory_swap"},
		{"cpus NaN", CheckResources(Resources{CPUs: math.NaN()}), "CPUs", "cpus"},
		{"cpus 1e30", CheckResources(Resources{CPUs: 1e30}), "CPUs", "cpus"},
		{"cpu_shares 1", CheckResources(Resources{CPUShares: 1}), "must be between 2 and", "cpu_shares"},
		{"pids_limit MaxPidsLimit+1", CheckResources(Resources{PidsLimit: MaxPidsLimit + 1}), "must be between 1 and", "pids_limit"},
		{"reservation under memory", CheckResources(Resources{MemoryMiB: 256, MemoryReservationMiB: 128}), "", ""},
		{"reservation over memory", CheckResources(Resources{MemoryMiB: 128, MemoryReservationMiB: 256}), "soft limit", "memory_reservation"},
		{"cpuset list", CheckResources(Resources{CpusetCPUs: "0-2,4", CpusetMems: "0"}), "", ""},
		{"cpuset backwards", CheckResources(Resources{CpusetCPUs: "3-1"}), "list of CPU", "cpuset_cpus"},
		{"cpuset word", CheckResources(Resources{CpusetMems: "all"}), "list of CPU", "cpuset_mems"},
		{"cpuset empty part", CheckResources(Resources{CpusetCPUs: "0,,1"}), "list of CPU", "cpuset_cpus"},
		{"cpuset too big", CheckResources(Resources{CpusetCPUs: "0-99999"}), "list of CPU", "cpuset_cpus"},
	})
}

func TestCheckService(t *testing.T) {
	base := ContainerSpec{Name: "svc", Image: "busybox"}
	with := func(f func(*ContainerSpec)) error {
		s := base
		f(&s)
		return checkService(s)
	}
	checkVerdicts(t, []ruleCase{
		{"nothing", checkService(base), "", ""},
		{"nofile", with(func(s *ContainerSpec) { s.Ulimits = []Ulimit{{Name: "nofile", Soft: 65536, Hard: 65536}} }), "", ""},
		{"memlock unlimited", with(func(s *ContainerSpec) { s.Ulimits = []Ulimit{{Name: "memlock", Soft: -1, Hard: -1}} }), "", ""},
		{"unknown ulimit", with(func(s *ContainerSpec) { s.Ulimits = []Ulimit{{Name: "files", Soft: 1, Hard: 1}} }), "must be one of", "ulimits[0].name"},
		{"soft over hard", with(func(s *ContainerSpec) { s.Ulimits = []Ulimit{{Name: "nofile", Soft: 2048, Hard: 1024}} }), "must not be more than hard", "ulimits[0].soft"},
		{"soft unlimited, hard not", with(func(s *ContainerSpec) { s.Ulimits = []Ulimit{{Name: "core", Soft: -1, Hard: 0}} }), "must not be more than hard", "ulimits[0].soft"},
		{"below -1", with(func(s *ContainerSpec) { s.Ulimits = []Ulimit{{Name: "core", Soft: 0, Hard: -2}} }), "at least 0", "ulimits[0].hard"},
		{"twice", with(func(s *ContainerSpec) {
			s.Ulimits = []Ulimit{{Name: "nproc", Soft: 1, Hard: 1}, {Name: "nproc", Soft: 2, Hard: 2}}
		}), "is set by ulimits[0]", "ulimits[1].name"},
		{"shm 0 is unset", with(func(s *ContainerSpec) { s.ShmSizeMiB = 0 }), "", ""},
		{"shm -1", with(func(s *ContainerSpec) { s.ShmSizeMiB = -1 }), "must be between 1 and", "shm_size"},
		{"net sysctl", with(func(s *ContainerSpec) { s.Sysctls = map[string]string{"net.core.somaxconn": "1024"} }), "", ""},
		{"ipc sysctls", with(func(s *ContainerSpec) {
			s.Sysctls = map[string]string{"kernel.shmmax": "68719476736", "fs.mqueue.msg_max": "64"}
		}), "", ""},
		{"host sysctl", with(func(s *ContainerSpec) { s.Sysctls = map[string]string{"vm.max_map_count": "262144"} }),
			"is not namespaced", `sysctls["vm.max_map_count"]`},
		{"kernel.hostname", with(func(s *ContainerSpec) { s.Sysctls = map[string]string{"kernel.hostname": "x"} }),
			"is not namespaced", `sysctls["kernel.hostname"]`},
		{"net sysctl, host network", with(func(s *ContainerSpec) {
			s.NetworkMode = NetworkHost
			s.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		}), "network_mode host", `sysctls["net.ipv4.ip_forward"]`},
		{"sysctl newline", with(func(s *ContainerSpec) { s.Sysctls = map[string]string{"net.core.somaxconn": "1\n2"} }),
			"without NUL or newline", `sysctls["net.core.somaxconn"]`},
		{"device", with(func(s *ContainerSpec) { s.Devices = []Device{{HostPath: "/dev/fuse", Permissions: "rw"}} }), "", ""},
		{"device relative", with(func(s *ContainerSpec) { s.Devices = []Device{{HostPath: "dev/fuse"}} }), "absolute", "devices[0].host_path"},
		{"device under /proc", with(func(s *ContainerSpec) { s.Devices = []Device{{HostPath: "/dev/null", ContainerPath: "/proc/x"}} }),
			"/proc", "devices[0].container_path"},
		{"device permissions", with(func(s *ContainerSpec) { s.Devices = []Device{{HostPath: "/dev/null", Permissions: "rx"}} }),
			"some of r (read)", "devices[0].permissions"},
		{"device twice", with(func(s *ContainerSpec) {
			s.Devices = []Device{{HostPath: "/dev/null", ContainerPath: "/dev/x"}, {HostPath: "/dev/zero", ContainerPath: "/dev/x"}}
		}), "is made by devices[0]", "devices[1].container_path"},
		{"groups", with(func(s *ContainerSpec) { s.GroupAdd = []string{"1000", "audio", "www-data"} }), "", ""},
		{"bad group", with(func(s *ContainerSpec) { s.GroupAdd = []string{"audio", "no such"} }), "gid or a group name", "group_add[1]"},
		{"oom", with(func(s *ContainerSpec) { s.OOMScoreAdj = -1000 }), "", ""},
		{"oom over", with(func(s *ContainerSpec) { s.OOMScoreAdj = 1001 }), "between -1000 and 1000", "oom_score_adj"},
		{"upload", with(func(s *ContainerSpec) {
			s.Uploads = []Upload{{File: "/etc/app.conf", Mode: 0o640, Content: []byte("x")}}
		}), "", ""},
		{"upload relative", with(func(s *ContainerSpec) { s.Uploads = []Upload{{File: "etc/app.conf"}} }), "absolute", "uploads[0].file"},
		{"upload under /proc", with(func(s *ContainerSpec) { s.Uploads = []Upload{{File: "/proc/x"}} }), "/proc", "uploads[0].file"},
		{"upload setuid", with(func(s *ContainerSpec) { s.Uploads = []Upload{{File: "/bin/x", Mode: 0o4755}} }), "no setuid", "uploads[0].mode"},
		{"upload too big", with(func(s *ContainerSpec) { s.Uploads = []Upload{{File: "/x", Content: make([]byte, MaxUploadBytes+1)}} }),
			"more than the", "uploads[0]"},
		{"upload twice", with(func(s *ContainerSpec) { s.Uploads = []Upload{{File: "/x"}, {File: "/x/"}} }), "written by uploads[0]", "uploads[1].file"},
		{"upload on a mount", with(func(s *ContainerSpec) {
			s.Mounts = []Mount{{Type: MountTmpfs, Target: "/x"}}
			s.Uploads = []Upload{{File: "/x"}}
		}), "target of mounts[0]", "uploads[0].file"},
	})
}

func TestCheckMountTmpfsSize(t *testing.T) {
	tmpfs := func(size int64) Mount { return Mount{Type: MountTmpfs, Target: "/tmp", TmpfsSizeMiB: size} }
	checkVerdicts(t, []ruleCase{
		{"default size", CheckMount(tmpfs(0)), "", ""},
		{"64 MiB", CheckMount(tmpfs(64)), "", ""},
		{"MaxMemoryMiB", CheckMount(tmpfs(MaxMemoryMiB)), "", ""},
		{"MaxMemoryMiB+1", CheckMount(tmpfs(MaxMemoryMiB + 1)), "MiB", "tmpfs_size"},
		{"2^44", CheckMount(tmpfs(1 << 44)), "MiB", "tmpfs_size"},
		{"negative", CheckMount(tmpfs(-1)), "MiB", "tmpfs_size"},
		{"size on a bind", CheckMount(Mount{Type: MountBind, Source: "/srv", Target: "/data", TmpfsSizeMiB: 64}),
			"only applies to tmpfs mounts", "tmpfs_size"},
	})
}

func TestCheckLabels(t *testing.T) {
	checkVerdicts(t, []ruleCase{
		{"plain", CheckLabelKey("app"), "", ""},
		{"dotted", CheckLabelKey("com.example.team"), "", ""},
		{"io.pouch.", CheckLabelKey("io.pouch.restart"), "reserved", ""},
		{"containerd.io/", CheckLabelKey("containerd.io/restart.policy"), "reserved", ""},
		{"io.containerd.", CheckLabelKey("io.containerd.runtime"), "reserved", ""},
		{"empty", CheckLabelKey(""), "must not be empty", ""},
		{"4096 bytes", CheckLabel("key", strings.Repeat("v", 4096-3)), "", ""},
		{"4097 bytes", CheckLabel("key", strings.Repeat("v", 4097-3)), "at most 4096 bytes, got 4097", ""},
		{"reserved via CheckLabel", CheckLabel("io.pouch.x", "y"), "reserved", ""},
		{"CheckLabels ok", CheckLabels(map[string]string{"a": "1", "b": "2"}), "", ""},
		{"CheckLabels nil", CheckLabels(nil), "", ""},
		{"CheckLabels reserved", CheckLabels(map[string]string{"app": "x", "io.pouch.monitor": "on"}), "reserved", `["io.pouch.monitor"]`},
		{"CheckLabels empty key", CheckLabels(map[string]string{"": "x"}), "must not be empty", `[""]`},
		{"CheckLabels too big", CheckLabels(map[string]string{"A": strings.Repeat("v", 4096)}), "at most 4096 bytes", `["A"]`},
	})
}

func TestCheckCapability(t *testing.T) {
	for _, c := range []string{"NET_ADMIN", "cap_net_admin", "CAP_NET_ADMIN", "CAP_CHECKPOINT_RESTORE", "sys_ptrace", "ALL", "all"} {
		if err := CheckCapability(c); err != nil {
			t.Errorf("CheckCapability(%q) = %v, want accepted", c, err)
		}
	}
	for _, c := range []string{"NET_ADMINX", "", "CAP_", "CAP_ALL", "NET ADMIN"} {
		checkVerdict(t, ruleCase{fmt.Sprintf("%q", c), CheckCapability(c), "must be a Linux capability", ""})
	}
}

func TestCheckEnv(t *testing.T) {
	const secret = "sec\x00ret-TOKEN"
	err := CheckEnv(map[string]string{"A": "1", "SECRET": secret})
	checkVerdict(t, ruleCase{"NUL in value", err, "must not contain NUL", `["SECRET"]`})
	if err != nil && (strings.Contains(err.Error(), "TOKEN") || strings.Contains(err.Error(), "sec")) {
		t.Errorf("the error shows the value: %q", err)
	}
	// One entry is "KEY=VALUE": with a key of 1 byte, a value of
	// MaxArgBytes-2 bytes fills the kernel's limit.
	checkVerdicts(t, []ruleCase{
		{"ok", CheckEnv(map[string]string{"A": "1", "PATH": "/bin", "EMPTY": ""}), "", ""},
		{"nil", CheckEnv(nil), "", ""},
		{"'=' in key", CheckEnv(map[string]string{"A=B": "1"}), "must not contain '='", `["A=B"]`},
		{"NUL in key", CheckEnv(map[string]string{"A\x00": "1"}), "must not contain '=' or NUL", `["A\x00"]`},
		{"empty key", CheckEnv(map[string]string{"": "1"}), "must not be empty", `[""]`},
		{"entry of MaxArgBytes", CheckEnv(map[string]string{"A": strings.Repeat("x", MaxArgBytes-2)}), "", ""},
		{"entry over MaxArgBytes", CheckEnv(map[string]string{"A": strings.Repeat("x", MaxArgBytes-1)}),
			fmt.Sprintf("must be at most %d bytes", MaxArgBytes), `["A"]`},
	})
}

func TestCheckArg(t *testing.T) {
	err := CheckArg("--token=sec\x00ret-TOKEN")
	checkVerdict(t, ruleCase{"NUL", err, "must not contain NUL", ""})
	if err != nil && strings.Contains(err.Error(), "TOKEN") {
		t.Errorf("the error shows the argument: %q", err)
	}
	checkVerdicts(t, []ruleCase{
		{"plain", CheckArg("--port=80"), "", ""},
		{"empty", CheckArg(""), "", ""},
		{"MaxArgBytes", CheckArg(strings.Repeat("x", MaxArgBytes)), "", ""},
		{"MaxArgBytes+1", CheckArg(strings.Repeat("x", MaxArgBytes+1)), fmt.Sprintf("must be at most %d bytes", MaxArgBytes), ""},
		{"CheckArgs names the index", CheckArgs([]string{"sh", "-c", "a\x00b"}), "must not contain NUL", "[2]"},
	})
}

func TestCheckName(t *testing.T) {
	for _, n := range []string{"web", "a", "web-1.blue_x", "Web2", strings.Repeat("a", 76)} {
		if err := CheckName(n); err != nil {
			t.Errorf("CheckName(%q) = %v, want accepted", n, err)
		}
	}
	for _, n := range []string{strings.Repeat("a", 77), "-web", "web-", "a..b", "a.-b", "web/1", "", "web server", "_web", "wéb"} {
		checkVerdict(t, ruleCase{fmt.Sprintf("%q", n), CheckName(n), "must be 1 to 76 letters and digits", ""})
	}
}

func TestCheckMountTarget(t *testing.T) {
	checkVerdicts(t, []ruleCase{
		{"/", CheckMountTarget("/"), "must not be the root directory", ""},
		{"//", CheckMountTarget("//"), "must not be the root directory", ""},
		{"relative", CheckMountTarget("relative"), "must be an absolute path", ""},
		{"empty", CheckMountTarget(""), "must be an absolute path", ""},
		{"/proc", CheckMountTarget("/proc"), "must not be /proc or under it", ""},
		{"/proc/", CheckMountTarget("/proc/"), "must not be /proc or under it", ""},
		{"/proc/sys/x", CheckMountTarget("/proc/sys/x"), "must not be /proc or under it", ""},
		{"//proc/./sys", CheckMountTarget("//proc/./sys"), "must not be /proc or under it", ""},
		{"/sys", CheckMountTarget("/sys"), "must not be /sys or under it", ""},
		{"/sys/fs", CheckMountTarget("/sys/fs"), "must not be /sys or under it", ""},
		{"/a/../b", CheckMountTarget("/a/../b"), "must not contain '..'", ""},
		{"/a/..", CheckMountTarget("/a/.."), "must not contain '..'", ""},
		{"NUL", CheckMountTarget("/data\x00"), "must not contain NUL", ""},
		{"/data", CheckMountTarget("/data"), "", ""},
		{"/data/", CheckMountTarget("/data/"), "", ""},
		// Prefix confusion: these are not under /proc or /sys.
		{"/procfs", CheckMountTarget("/procfs"), "", ""},
		{"/system", CheckMountTarget("/system"), "", ""},
		{"/sysroot/x", CheckMountTarget("/sysroot/x"), "", ""},
		{"/data/proc", CheckMountTarget("/data/proc"), "", ""},
		{"/a..b", CheckMountTarget("/a..b"), "", ""},
	})
}

func TestCheckMounts(t *testing.T) {
	checkVerdicts(t, []ruleCase{
		{"ok", CheckMounts([]Mount{
			{Type: MountVolume, Source: "data", Target: "/data"},
			{Type: MountBind, Source: "/srv/conf", Target: "/etc/app", ReadOnly: true},
			{Type: MountTmpfs, Target: "/tmp", TmpfsSizeMiB: 64},
			{Type: MountTmpfs, Target: "/data/cache"},
		}), "", ""},
		{"none", CheckMounts(nil), "", ""},
		{"duplicate target", CheckMounts([]Mount{
			{Type: MountVolume, Source: "a", Target: "/data"},
			{Type: MountVolume, Source: "b", Target: "/data/"},
		}), "already the target of mounts[0]", "mounts[1].target"},
		{"duplicate target, unclean", CheckMounts([]Mount{
			{Type: MountTmpfs, Target: "/tmp"},
			{Type: MountTmpfs, Target: "/run"},
			{Type: MountTmpfs, Target: "//run/."},
		}), "already the target of mounts[1]", "mounts[2].target"},
		{"bad target", CheckMounts([]Mount{
			{Type: MountTmpfs, Target: "/tmp"},
			{Type: MountTmpfs, Target: "/proc/x"},
		}), "must not be /proc", "mounts[1].target"},
		{"volume without source", CheckMounts([]Mount{{Type: MountVolume, Target: "/data"}}),
			"must name the volume", "mounts[0].source"},
		{"volume with a bad name", CheckMounts([]Mount{{Type: MountVolume, Source: "../x", Target: "/data"}}),
			"must be a volume name", "mounts[0].source"},
		{"bind with relative source", CheckMounts([]Mount{{Type: MountBind, Source: "srv", Target: "/data"}}),
			"must be an absolute host path", "mounts[0].source"},
		{"bind with '..' source", CheckMounts([]Mount{{Type: MountBind, Source: "/srv/../etc", Target: "/data"}}),
			"must not contain '..'", "mounts[0].source"},
		{"bind without source", CheckMounts([]Mount{{Type: MountBind, Target: "/data"}}),
			"must be an absolute host path", "mounts[0].source"},
		{"tmpfs with source", CheckMounts([]Mount{{Type: MountTmpfs, Source: "x", Target: "/tmp"}}),
			"must be left out for a tmpfs mount", "mounts[0].source"},
		{"unknown type", CheckMounts([]Mount{{Type: "overlay", Target: "/data"}}),
			"must be volume, bind or tmpfs", "mounts[0].type"},
		{"empty type", CheckMounts([]Mount{{Target: "/data"}}),
			"must be volume, bind or tmpfs", "mounts[0].type"},
	})
}

func TestCheckPorts(t *testing.T) {
	p := func(ip string, host int, proto string) PortMapping {
		return PortMapping{HostIP: ip, HostPort: host, ContainerPort: 80, Protocol: proto}
	}
	checkVerdicts(t, []ruleCase{
		{"ok", CheckPorts([]PortMapping{p("", 8080, ""), p("127.0.0.1", 8443, "tcp"), p("::1", 8443, "tcp")}), "", ""},
		{"none", CheckPorts(nil), "", ""},
		{"all addresses twice", CheckPorts([]PortMapping{p("", 8080, ""), p("0.0.0.0", 8080, "")}),
			"which ports[0] takes already", "ports[1].external"},
		{"all addresses, '::'", CheckPorts([]PortMapping{p("0.0.0.0", 8080, "tcp"), p("::", 8080, "")}),
			"which ports[0] takes already", "ports[1].external"},
		{"same address twice", CheckPorts([]PortMapping{p("127.0.0.1", 8080, "tcp"), p("127.0.0.1", 8080, "TCP")}),
			"which ports[0] takes already", "ports[1].external"},
		{"two specific addresses", CheckPorts([]PortMapping{p("127.0.0.1", 8080, ""), p("127.0.0.2", 8080, "")}), "", ""},
		{"tcp and udp", CheckPorts([]PortMapping{p("", 53, "tcp"), p("", 53, "udp")}), "", ""},
		{"upper case protocol", CheckPorts([]PortMapping{p("", 53, "UDP")}), "", ""},
		{"sctp", CheckPorts([]PortMapping{p("", 8080, "sctp")}), "must be tcp or udp", "ports[0].protocol"},
		{"bad ip", CheckPorts([]PortMapping{p("300.1.1.1", 8080, "")}), "must be an IP address", "ports[0].ip"},
		{"host name as ip", CheckPorts([]PortMapping{p("localhost", 8080, "")}), "must be an IP address", "ports[0].ip"},
		{"external 0", CheckPorts([]PortMapping{p("", 0, "")}), "must be between 1 and 65535", "ports[0].external"},
		{"external 65536", CheckPorts([]PortMapping{p("", 65536, "")}), "must be between 1 and 65535", "ports[0].external"},
		{"internal 0", CheckPorts([]PortMapping{{HostPort: 8080}}), "must be between 1 and 65535", "ports[0].internal"},
	})
}

// A port published on all addresses takes that port on every address: the
// same port on a specific address too cannot reach this container. The
// engine refuses the pair between two containers (portsClash in
// checkPortsFree); within one container's ports it should as well.
func TestCheckPortsAllAddressesTakesSpecificOnes(t *testing.T) {
	ports := []PortMapping{
		{HostPort: 8080, ContainerPort: 80},
		{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 81},
	}
	if !portsClash(ports[0], ports[1]) {
		t.Fatal("portsClash says these do not clash")
	}
	checkVerdict(t, ruleCase{"all addresses then 127.0.0.1", CheckPorts(ports), "which ports[0] takes already", "ports[1].external"})
	ports[0], ports[1] = ports[1], ports[0]
	checkVerdict(t, ruleCase{"127.0.0.1 then all addresses", CheckPorts(ports), "which ports[0] takes already", "ports[1].external"})
}

// CheckHostIP is the plan-time rule; the host's network setup refuses, at
// apply, an address net.ParseIP does not parse. The two should agree.
func TestCheckHostIPAgreesWithApply(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1", "0.0.0.0", "::", "fe80::1%eth0"} {
		planOK := CheckHostIP(ip) == nil
		applyOK := net.ParseIP(ip) != nil
		if planOK != applyOK {
			t.Errorf("CheckHostIP(%q) accepted=%v, but the apply's net.ParseIP accepted=%v", ip, planOK, applyOK)
		}
	}
}

func TestPortsClash(t *testing.T) {
	p := func(ip string, host int, proto string) PortMapping {
		return PortMapping{HostIP: ip, HostPort: host, ContainerPort: 80, Protocol: proto}
	}
	cases := []struct {
		name string
		a, b PortMapping
		want bool
	}{
		{"all vs specific", p("", 80, ""), p("127.0.0.1", 80, ""), true},
		{"specific vs 0.0.0.0", p("10.0.0.1", 80, "tcp"), p("0.0.0.0", 80, "tcp"), true},
		{"specific vs ::", p("10.0.0.1", 80, "tcp"), p("::", 80, "tcp"), true},
		{"all vs all", p("", 80, ""), p("0.0.0.0", 80, ""), true},
		{"same specific", p("127.0.0.1", 80, "tcp"), p("127.0.0.1", 80, "TCP"), true},
		{"default protocol is tcp", p("", 80, ""), p("", 80, "tcp"), true},
		{"two specific", p("127.0.0.1", 80, ""), p("127.0.0.2", 80, ""), false},
		{"tcp vs udp", p("", 80, "tcp"), p("", 80, "udp"), false},
		{"default vs udp", p("", 80, ""), p("", 80, "udp"), false},
		{"other port", p("", 80, ""), p("", 81, ""), false},
	}
	for _, c := range cases {
		if got := portsClash(c.a, c.b); got != c.want {
			t.Errorf("%s: portsClash(%+v, %+v) = %v, want %v", c.name, c.a, c.b, got, c.want)
		}
		if got := portsClash(c.b, c.a); got != c.want {
			t.Errorf("%s: portsClash(%+v, %+v) = %v, want %v (not symmetric)", c.name, c.b, c.a, got, c.want)
		}
	}
}

func TestCheckImageVolume(t *testing.T) {
	deep := "/" + strings.Repeat("a/", 100) + "a"
	if n := len(volumeDirName(deep)); n <= maxFileName {
		t.Fatalf("the deep key encodes to %d bytes, want over %d", n, maxFileName)
	}
	long := "/" + strings.Repeat("b", 250)
	if n := len(volumeDirName(long)); n > maxFileName {
		t.Fatalf("the long key encodes to %d bytes, want at most %d", n, maxFileName)
	}
	checkVerdicts(t, []ruleCase{
		{"relative", CheckImageVolume("relative"), "is not an absolute path", ""},
		{"empty", CheckImageVolume(""), "is not an absolute path", ""},
		{"../x", CheckImageVolume("../x"), "is not an absolute path", ""},
		{"/", CheckImageVolume("/"), "is the root directory", ""},
		{"/.", CheckImageVolume("/."), "is the root directory", ""},
		{"//", CheckImageVolume("//"), "is the root directory", ""},
		{"/data/../etc", CheckImageVolume("/data/../etc"), "has a '..' element", ""},
		{"/..", CheckImageVolume("/.."), "has a '..' element", ""},
		{"/proc", CheckImageVolume("/proc"), "is under /proc", ""},
		{"/proc/1", CheckImageVolume("/proc/1"), "is under /proc", ""},
		{"/./proc", CheckImageVolume("/./proc"), "is under /proc", ""},
		{"/sys/kernel", CheckImageVolume("/sys/kernel"), "is under /sys", ""},
		{"NUL", CheckImageVolume("/data\x00x"), "contains NUL", ""},
		{"deep", CheckImageVolume(deep), "is too long", ""},
		{"256-byte element", CheckImageVolume("/" + strings.Repeat("b", 256)), "is too long", ""},
		{"'%' triples", CheckImageVolume("/" + strings.Repeat("%", 86)), "is too long", ""},
		{"250-byte element", CheckImageVolume(long), "", ""},
		{"255-byte element", CheckImageVolume("/" + strings.Repeat("b", 255)), "", ""},
		{"/data", CheckImageVolume("/data"), "", ""},
		{"/var/lib/db", CheckImageVolume("/var/lib/db"), "", ""},
		{"/data/", CheckImageVolume("/data/"), "", ""},
		{"/procfs", CheckImageVolume("/procfs"), "", ""},
		{"/...", CheckImageVolume("/..."), "", ""},
	})
}

func TestCheckDataRoot(t *testing.T) {
	checkVerdicts(t, []ruleCase{
		{"relative", CheckDataRoot("relative"), "must be an absolute path", ""},
		{"empty", CheckDataRoot(""), "must be an absolute path", ""},
		{"/", CheckDataRoot("/"), "must not be the root directory", ""},
		{"//.", CheckDataRoot("//."), "must not be the root directory", ""},
		{"/a/../b", CheckDataRoot("/a/../b"), "must not contain '..'", ""},
		{"NUL", CheckDataRoot("/var/lib/pouch\x00"), "must not contain NUL", ""},
		{"/var/lib/pouch", CheckDataRoot("/var/lib/pouch"), "", ""},
		{"/var/lib/pouch/", CheckDataRoot("/var/lib/pouch/"), "", ""},
	})
}

func TestCheckNamespace(t *testing.T) {
	checkVerdicts(t, []ruleCase{
		{"pouch", CheckNamespace("pouch"), "", ""},
		{"k8s.io", CheckNamespace("k8s.io"), "", ""},
		{"bad/ns", CheckNamespace("bad/ns"), "must be a containerd namespace", ""},
		{"empty", CheckNamespace(""), "must be a containerd namespace", ""},
	})
}

func TestValidateSpec(t *testing.T) {
	valid := func(f func(*ContainerSpec)) ContainerSpec {
		s := ContainerSpec{Name: "web", Image: "busybox"}
		f(&s)
		return s
	}
	if err := validateSpec(ContainerSpec{Name: "web", Image: "busybox"}); err != nil {
		t.Fatalf("minimal spec refused: %v", err)
	}
	full := valid(func(s *ContainerSpec) {
		s.Image = "busybox:1.36"
		s.Env = map[string]string{"A": "1"}
		s.SecretEnv = map[string]string{"TOKEN": "t"}
		s.Labels = map[string]string{"app": "web"}
		s.Ports = []PortMapping{{HostPort: 8080, ContainerPort: 80}}
		s.Mounts = []Mount{{Type: MountTmpfs, Target: "/tmp"}}
		s.Resources = Resources{MemoryMiB: 256, MemorySwapMiB: 512, CPUs: 0.5}
		s.Security.CapAdd = []string{"NET_ADMIN"}
		s.StopTimeout = DefaultStopTimeout
		s.Upgrade.VerifySeconds = DefaultVerifySeconds
	})
	if err := validateSpec(full); err != nil {
		t.Fatalf("full spec refused: %v", err)
	}
	cases := []struct {
		name  string
		spec  ContainerSpec
		frag  string
		field string
	}{
		{"secret_env also in env", valid(func(s *ContainerSpec) {
			s.Env = map[string]string{"A": "1", "TOKEN": "x"}
			s.SecretEnv = map[string]string{"TOKEN": "y"}
		}), `secret_env "TOKEN" is also set in env`, ""},
		{"bad label", valid(func(s *ContainerSpec) { s.Labels = map[string]string{"io.pouch.x": "1"} }),
			"reserved", `labels["io.pouch.x"]`},
		{"bad port", valid(func(s *ContainerSpec) { s.Ports = []PortMapping{{HostPort: 0, ContainerPort: 80}} }),
			"must be between 1 and 65535", "ports[0].external"},
		{"ports without bridge", valid(func(s *ContainerSpec) {
			s.NetworkMode = NetworkHost
			s.Ports = []PortMapping{{HostPort: 8080, ContainerPort: 80}}
		}), "ports need network_mode bridge", ""},
		{"bad mount", valid(func(s *ContainerSpec) { s.Mounts = []Mount{{Type: MountBind, Source: "rel", Target: "/data"}} }),
			"must be an absolute host path", "mounts[0].source"},
		{"bad name", valid(func(s *ContainerSpec) { s.Name = "-web" }), "must be 1 to 76", "name"},
		{"bad image", valid(func(s *ContainerSpec) { s.Image = "busy box" }), "must not contain whitespace", "image"},
		{"bad memory", valid(func(s *ContainerSpec) { s.Resources.MemoryMiB = 1 << 44 }), "must be between 1 and", "memory"},
		{"bad cpus", valid(func(s *ContainerSpec) { s.Resources.CPUs = math.NaN() }), "CPUs", "cpus"},
		{"bad capability", valid(func(s *ContainerSpec) { s.Security.CapDrop = []string{"ALL", "NET_ADMINX"} }),
			"must be a Linux capability", "capabilities.drop[1]"},
		{"NUL in command", valid(func(s *ContainerSpec) { s.Command = []string{"sh", "a\x00b"} }),
			"must not contain NUL", "command[1]"},
		{"bad env key", valid(func(s *ContainerSpec) { s.Env = map[string]string{"A=B": "1"} }),
			"must not contain '='", `env["A=B"]`},
		{"bad log", valid(func(s *ContainerSpec) { s.Log.MaxFiles = MaxLogFiles + 1 }), "must be between 1 and", "log_max_files"},
	}
	for _, c := range cases {
		err := validateSpec(c.spec)
		checkVerdict(t, ruleCase{c.name, err, c.frag, c.field})
		if err != nil && !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: error %q is not ErrInvalidSpec", c.name, err)
		}
	}

	// A secret value never shows in the error that refuses it.
	err := validateSpec(valid(func(s *ContainerSpec) { s.SecretEnv = map[string]string{"TOKEN": "sec\x00ret-TOKEN-VALUE"} }))
	checkVerdict(t, ruleCase{"NUL in secret_env", err, "must not contain NUL", `secret_env["TOKEN"]`})
	if err != nil && strings.Contains(err.Error(), "VALUE") {
		t.Errorf("the error shows the secret value: %q", err)
	}
}

func TestMergeProcessRefusesNULFromImage(t *testing.T) {
	_, err := MergeProcess(ContainerSpec{}, ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "SECRET=sec\x00ret-TOKEN"}})
	checkVerdict(t, ruleCase{"image env", err, `environment variable "SECRET"`, ""})
	checkVerdict(t, ruleCase{"image env", err, "must not contain NUL", ""})
	if err != nil {
		if !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("error %q is not ErrInvalidSpec", err)
		}
		if strings.Contains(err.Error(), "TOKEN") {
			t.Errorf("the error shows the value: %q", err)
		}
	}

	_, err = MergeProcess(ContainerSpec{}, ImageConfig{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo x\x00TOKEN"}})
	checkVerdict(t, ruleCase{"image cmd", err, "argument 2 of the process", ""})
	checkVerdict(t, ruleCase{"image cmd", err, "must not contain NUL", ""})
	if err != nil {
		if !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("error %q is not ErrInvalidSpec", err)
		}
		if strings.Contains(err.Error(), "TOKEN") {
			t.Errorf("the error shows the argument: %q", err)
		}
	}

	// A secret value that reaches MergeProcess unvalidated is refused
	// without being shown either.
	_, err = MergeProcess(ContainerSpec{SecretEnv: map[string]string{"S": "a\x00TOKEN"}}, ImageConfig{Cmd: []string{"sh"}})
	checkVerdict(t, ruleCase{"secret env", err, `environment variable "S"`, ""})
	if err != nil && strings.Contains(err.Error(), "TOKEN") {
		t.Errorf("the error shows the secret value: %q", err)
	}

	_, err = MergeProcess(ContainerSpec{}, ImageConfig{Cmd: []string{"sh"}, Env: []string{"BIG=" + strings.Repeat("x", MaxArgBytes)}})
	checkVerdict(t, ruleCase{"image env entry over MaxArgBytes", err, fmt.Sprintf("must be at most %d bytes", MaxArgBytes), ""})
	if err != nil && !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("error %q is not ErrInvalidSpec", err)
	}
}

func TestMergeProcessSizeLimit(t *testing.T) {
	// Each entry counts its bytes and its NUL: 16 entries of 65535 bytes
	// take exactly MaxProcessBytes.
	const entry = MaxProcessBytes/16 - 1
	args := make([]string, 8)
	for i := range args {
		args[i] = strings.Repeat("a", entry)
	}
	env := make([]string, 8)
	for i := range env {
		k := fmt.Sprintf("V%d=", i)
		env[i] = k + strings.Repeat("e", entry-len(k))
	}
	if _, err := MergeProcess(ContainerSpec{Command: args}, ImageConfig{Env: env}); err != nil {
		t.Fatalf("MaxProcessBytes exactly: refused: %v", err)
	}
	env[7] += "e"
	_, err := MergeProcess(ContainerSpec{Command: args}, ImageConfig{Env: env})
	checkVerdict(t, ruleCase{"MaxProcessBytes+1", err, fmt.Sprintf("take %d bytes: at most %d fit", MaxProcessBytes+1, MaxProcessBytes), ""})
	if err != nil && !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("error %q is not ErrInvalidSpec", err)
	}

	// Arguments alone, well over.
	many := make([]string, 20)
	for i := range many {
		many[i] = strings.Repeat("a", 60000)
	}
	_, err = MergeProcess(ContainerSpec{Command: many}, ImageConfig{})
	checkVerdict(t, ruleCase{"20 arguments of 60000 bytes", err, fmt.Sprintf("at most %d fit", MaxProcessBytes), ""})
	if err != nil && !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("error %q is not ErrInvalidSpec", err)
	}
}

func TestMergeProcessSecretEnv(t *testing.T) {
	userEnv := map[string]string{"A": "user", "B": "user"}
	secret := map[string]string{"A": "secret", "TOKEN": "s3cr3t", "C": "secret"}
	spec := ContainerSpec{Env: userEnv, SecretEnv: secret}
	img := ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "TOKEN=image", "A=image"}}
	p, err := MergeProcess(spec, img)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/bin", "TOKEN=s3cr3t", "A=secret", "B=user", "C=secret"}
	if !reflect.DeepEqual(p.Env, want) {
		t.Fatalf("env = %q, want %q", p.Env, want)
	}
	// No aliasing: the caller's maps are as they were.
	if !reflect.DeepEqual(userEnv, map[string]string{"A": "user", "B": "user"}) {
		t.Fatalf("MergeProcess changed spec.Env: %q", userEnv)
	}
	if !reflect.DeepEqual(spec.Env, map[string]string{"A": "user", "B": "user"}) {
		t.Fatalf("MergeProcess changed spec.Env: %q", spec.Env)
	}
	if !reflect.DeepEqual(secret, map[string]string{"A": "secret", "TOKEN": "s3cr3t", "C": "secret"}) {
		t.Fatalf("MergeProcess changed spec.SecretEnv: %q", secret)
	}

	// Secret variables without user ones (spec.Env nil).
	p, err = MergeProcess(ContainerSpec{SecretEnv: map[string]string{"TOKEN": "s"}}, img)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"PATH=/bin", "TOKEN=s", "A=image"}
	if !reflect.DeepEqual(p.Env, want) {
		t.Fatalf("env = %q, want %q", p.Env, want)
	}
}

func TestClassifyImageReferences(t *testing.T) {
	cases := []struct {
		old, next string
		want      Change
	}{
		// The same image written two ways: the reference string is a
		// setting that changed, the image did not.
		{"busybox:1.36", "docker.io/library/busybox:1.36", ChangeSettings},
		{"busybox", "busybox:latest", ChangeSettings},
		{"busybox", "docker.io/library/busybox:latest", ChangeSettings},
		{"busybox:1.36", "busybox:1.36", ChangeNone},
		{"busybox:1.36", "busybox:1.37", ChangeImage},
		{"busybox:1.36", "alpine:1.36", ChangeImage},
		{"busybox", "registry.example:5000/busybox", ChangeImage},
	}
	for _, c := range cases {
		old := ContainerSpec{Name: "web", Image: c.old, Running: true}
		next := ContainerSpec{Name: "web", Image: c.next, Running: true}
		if got := Classify(old, next); got != c.want {
			t.Errorf("Classify(%q -> %q) = %s, want %s", c.old, c.next, got, c.want)
		}
	}
}

func TestSameImage(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"busybox:1.36", "docker.io/library/busybox:1.36", true},
		{"busybox", "busybox:latest", true},
		{"library/busybox", "busybox", true},
		{"busybox:1.36", "busybox:1.37", false},
		{"busybox", "busybox:1.36", false},
		{"Not A Ref", "Not A Ref", true},
		{"Not A Ref", "not a ref", false},
		{"", "busybox", false},
	}
	for _, c := range cases {
		if got := SameImage(c.a, c.b); got != c.want {
			t.Errorf("SameImage(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := SameImage(c.b, c.a); got != c.want {
			t.Errorf("SameImage(%q, %q) = %v, want %v (not symmetric)", c.b, c.a, got, c.want)
		}
	}
}

func TestClassifySecretEnvAndLog(t *testing.T) {
	base := ContainerSpec{Name: "web", Image: "busybox:1.36", Running: true,
		SecretEnv: map[string]string{"TOKEN": "a"}, SecretEnvVersion: "1"}
	with := func(f func(*ContainerSpec)) ContainerSpec {
		s := base
		f(&s)
		return s
	}
	cases := []struct {
		name string
		next ContainerSpec
		want Change
	}{
		{"secret_env_version", with(func(s *ContainerSpec) { s.SecretEnvVersion = "2" }), ChangeRestart},
		{"secret_env_version set", with(func(s *ContainerSpec) { s.SecretEnvVersion = "" }), ChangeRestart},
		// Documented: secret values apply when the version changes.
		{"secret values alone", with(func(s *ContainerSpec) { s.SecretEnv = map[string]string{"TOKEN": "b"} }), ChangeNone},
		{"log size", with(func(s *ContainerSpec) { s.Log.MaxSizeMiB = 50 }), ChangeRestart},
		{"log files", with(func(s *ContainerSpec) { s.Log.MaxFiles = 2 }), ChangeRestart},
		{"log defaults written out", with(func(s *ContainerSpec) {
			s.Log = LogOptions{MaxSizeMiB: DefaultLogMaxSizeMiB, MaxFiles: DefaultLogMaxFiles}
		}), ChangeNone},
		{"one log default written out", with(func(s *ContainerSpec) { s.Log.MaxFiles = DefaultLogMaxFiles }), ChangeNone},
	}
	for _, c := range cases {
		if got := Classify(base, c.next); got != c.want {
			t.Errorf("%s: Classify = %s, want %s", c.name, got, c.want)
		}
		if got := Classify(c.next, base); got != c.want {
			t.Errorf("%s (reversed): Classify = %s, want %s", c.name, got, c.want)
		}
	}
}

func TestCheckRegistries(t *testing.T) {
	hosts := func(h ...RegistryHost) Registries { return Registries{Hosts: h} }
	const hostPort = "must be a registry's host[:port]"
	checkVerdicts(t, []ruleCase{
		{name: "host and port", err: CheckRegistries(hosts(RegistryHost{Address: "registry.example:5000", Username: "u", Password: "p"}))},
		{name: "docker hub", err: CheckRegistries(hosts(RegistryHost{Address: "docker.io", ConfigFile: "/root/.docker/config.json"}))},
		{name: "ca only", err: CheckRegistries(hosts(RegistryHost{Address: "127.0.0.1:5000", CAFile: "/etc/ca.pem"}))},
		{name: "insecure", err: CheckRegistries(Registries{Insecure: []string{"10.0.0.5:5000"}})},
		{name: "scheme", err: CheckRegistries(hosts(RegistryHost{Address: "https://registry.example"})),
			frag: "registry_auth[0].address " + hostPort, field: "registry_auth[0].address"},
		{name: "path", err: CheckRegistries(hosts(RegistryHost{Address: "registry.example/team"})), frag: hostPort, field: "registry_auth[0].address"},
		{name: "no host", err: CheckRegistries(hosts(RegistryHost{Address: "library"})), frag: hostPort, field: "registry_auth[0].address"},
		{name: "user without password", err: CheckRegistries(hosts(RegistryHost{Address: "r.example", Username: "u"})),
			frag: "registry_auth[0].password and username must be set together", field: "registry_auth[0].password"},
		{name: "both sources", err: CheckRegistries(hosts(RegistryHost{Address: "r.example", Username: "u", Password: "p", ConfigFile: "/c.json"})),
			frag: "one source of credentials", field: "registry_auth[0].config_file"},
		{name: "relative file", err: CheckRegistries(hosts(RegistryHost{Address: "r.example", CAFile: "ca.pem"})),
			frag: "registry_auth[0].ca_file must be an absolute path", field: "registry_auth[0].ca_file"},
		{name: "twice", err: CheckRegistries(hosts(RegistryHost{Address: "r.example"}, RegistryHost{Address: "r.example"})),
			frag: "registry_auth[1].address must name each registry once", field: "registry_auth[1].address"},
		{name: "insecure with a scheme", err: CheckRegistries(Registries{Insecure: []string{"http://r.example"}}),
			frag: "insecure_registries[0] must be", field: "insecure_registries[0]"},
		{name: "insecure with a CA", err: CheckRegistries(Registries{Hosts: []RegistryHost{{Address: "r.example", CAFile: "/ca.pem"}},
			Insecure: []string{"r.example"}}),
			frag: "insecure_registries[0] must not name \"r.example\", which registry_auth[0] gives a ca_file", field: "insecure_registries[0]"},
	})
}

func TestCheckIPv4Address(t *testing.T) {
	const subnet = "10.88.0.0/16"
	checkVerdicts(t, []ruleCase{
		{"host address", CheckIPv4Address("10.88.3.7", subnet), "", ""},
		{"last host", CheckIPv4Address("10.88.255.254", subnet), "", ""},
		{"outside", CheckIPv4Address("10.89.0.5", subnet), "inside the bridge network's subnet 10.88.0.0/16", ""},
		{"network", CheckIPv4Address("10.88.0.0", subnet), "network address", ""},
		{"gateway", CheckIPv4Address("10.88.0.1", subnet), "bridge's own address", ""},
		{"broadcast", CheckIPv4Address("10.88.255.255", subnet), "broadcast", ""},
		{"broadcast /24", CheckIPv4Address("192.168.7.255", "192.168.7.0/24"), "broadcast", ""},
		{"IPv6", CheckIPv4Address("fd00::5", subnet), "IPv4 address", ""},
		{"not an address", CheckIPv4Address("web", subnet), "IPv4 address", ""},
	})
}
