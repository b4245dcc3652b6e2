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
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(base, tc.next); got != tc.want {
				t.Fatalf("Classify = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClassifyEmptyIsUnset(t *testing.T) {
	old := ContainerSpec{Image: "app:v1"}
	next := ContainerSpec{Image: "app:v1", Env: map[string]string{}, Labels: map[string]string{}, Mounts: []Mount{}}
	if got := Classify(old, next); got != ChangeNone {
		t.Fatalf("Classify = %s, want none", got)
	}
}
