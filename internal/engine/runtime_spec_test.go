package engine

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSpecProcess(t *testing.T) {
	full := specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: []string{"httpd", "-f"}, Env: []string{"A=1", "B=2"}, Cwd: "/www"},
		Root:    &specs.Root{Path: "rootfs"},
		Linux:   &specs.Linux{Seccomp: defaultSeccomp()},
	}
	data, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	got, err := specProcess(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, full.Process) {
		t.Errorf("specProcess = %+v, want %+v", got, full.Process)
	}

	// Key order does not matter; a spec without a process has none.
	got, err = specProcess([]byte(`{"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO"}},"process":{"args":["sh"],"cwd":"/"}}`))
	if err != nil || got == nil || !reflect.DeepEqual(got.Args, []string{"sh"}) || got.Cwd != "/" {
		t.Errorf("process after linux: %+v, %v", got, err)
	}
	if got, err := specProcess([]byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs"}}`)); err != nil || got != nil {
		t.Errorf("spec without process: %+v, %v", got, err)
	}
	for _, bad := range []string{``, `[]`, `{"process":`, `{"process":{"args":"sh"}}`} {
		if _, err := specProcess([]byte(bad)); err == nil {
			t.Errorf("specProcess(%q) gave no error", bad)
		}
	}
}

func BenchmarkSpecProcess(b *testing.B) {
	data, err := json.Marshal(specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: []string{"sleep", "3600"}, Env: []string{"PATH=/bin"}, Cwd: "/"},
		Linux:   &specs.Linux{Seccomp: defaultSeccomp()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("process only", func(b *testing.B) {
		for b.Loop() {
			if _, err := specProcess(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("whole spec", func(b *testing.B) {
		for b.Loop() {
			var s specs.Spec
			if err := json.Unmarshal(data, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// defaultSeccomp is containerd's default profile, the bulk of a real spec.
func defaultSeccomp() *specs.LinuxSeccomp {
	return seccomp.DefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}})
}
