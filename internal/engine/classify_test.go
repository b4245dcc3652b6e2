package engine

import "testing"

func TestClassify(t *testing.T) {
	base := ContainerSpec{Name: "c", Image: "app:v1", Running: true, Env: map[string]string{"A": "1"}}
	with := func(f func(*ContainerSpec)) ContainerSpec {
		s := base
		s.Env = map[string]string{"A": "1"}
		f(&s)
		return s
	}
	cases := []struct {
		name string
		next ContainerSpec
		want Change
	}{
		{"nothing", with(func(*ContainerSpec) {}), ChangeNone},
		{"image", with(func(s *ContainerSpec) { s.Image = "app:v2" }), ChangeImage},
		{"env", with(func(s *ContainerSpec) { s.Env = map[string]string{"A": "2"} }), ChangeRestart},
		{"ports", with(func(s *ContainerSpec) { s.Ports = []PortMapping{{HostPort: 80, ContainerPort: 80}} }), ChangeRestart},
		{"memory", with(func(s *ContainerSpec) { s.Resources.MemoryMiB = 64 }), ChangeResize},
		{"stop", with(func(s *ContainerSpec) { s.Running = false }), ChangeStartStop},
		{"labels", with(func(s *ContainerSpec) { s.Labels = map[string]string{"x": "y"} }), ChangeSettings},
		{"upgrade policy", with(func(s *ContainerSpec) { s.Upgrade.VerifySeconds = 3 }), ChangeSettings},
		{"ulimits", with(func(s *ContainerSpec) { s.Ulimits = []Ulimit{{Name: "nofile", Soft: 4096, Hard: 4096}} }), ChangeRestart},
		{"shm", with(func(s *ContainerSpec) { s.ShmSizeMiB = 256 }), ChangeRestart},
		{"sysctls", with(func(s *ContainerSpec) { s.Sysctls = map[string]string{"net.core.somaxconn": "1024"} }), ChangeRestart},
		{"devices", with(func(s *ContainerSpec) { s.Devices = []Device{{HostPath: "/dev/null"}} }), ChangeRestart},
		{"group_add", with(func(s *ContainerSpec) { s.GroupAdd = []string{"10"} }), ChangeRestart},
		{"oom_score_adj", with(func(s *ContainerSpec) { s.OOMScoreAdj = 500 }), ChangeRestart},
		{"cpuset", with(func(s *ContainerSpec) { s.Resources.CpusetCPUs = "0" }), ChangeResize},
		{"memory reservation", with(func(s *ContainerSpec) { s.Resources.MemoryReservationMiB = 64 }), ChangeResize},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(base, tc.next); got != tc.want {
				t.Fatalf("Classify = %s, want %s", got, tc.want)
			}
		})
	}
}

// A soft memory limit is set live, and lifted by a restart: no value lifts
// it on every cgroup version.
func TestClassifyLiftedReservationRestarts(t *testing.T) {
	old := ContainerSpec{Image: "app:v1", Resources: Resources{MemoryReservationMiB: 64}}
	if got := Classify(old, ContainerSpec{Image: "app:v1", Resources: Resources{MemoryReservationMiB: 32}}); got != ChangeResize {
		t.Fatalf("a new reservation: %s, want resize", got)
	}
	if got := Classify(old, ContainerSpec{Image: "app:v1"}); got != ChangeRestart {
		t.Fatalf("a lifted reservation: %s, want restart", got)
	}
}

func TestClassifyEmptyIsUnset(t *testing.T) {
	old := ContainerSpec{Image: "app:v1"}
	next := ContainerSpec{Image: "app:v1", Env: map[string]string{}, Labels: map[string]string{}, Mounts: []Mount{},
		Ulimits: []Ulimit{}, Sysctls: map[string]string{}, Devices: []Device{}, GroupAdd: []string{}}
	if got := Classify(old, next); got != ChangeNone {
		t.Fatalf("Classify = %s, want none", got)
	}
}
