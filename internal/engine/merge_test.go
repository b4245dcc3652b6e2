package engine

import (
	"errors"
	"reflect"
	"testing"
)

func TestMergeProcessEntrypointAndCommand(t *testing.T) {
	img := ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"img-cmd"}}
	cases := []struct {
		name string
		spec ContainerSpec
		want []string
	}{
		{"image defaults", ContainerSpec{}, []string{"/entry", "img-cmd"}},
		{"command only keeps image entrypoint", ContainerSpec{Command: []string{"a", "b"}}, []string{"/entry", "a", "b"}},
		{"entrypoint only drops image cmd", ContainerSpec{Entrypoint: []string{"/x"}}, []string{"/x"}},
		{"both", ContainerSpec{Entrypoint: []string{"/x"}, Command: []string{"y"}}, []string{"/x", "y"}},
		{"explicit empty command", ContainerSpec{Command: []string{}}, []string{"/entry"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := MergeProcess(tc.spec, img)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Args, tc.want) {
				t.Fatalf("args = %q, want %q", p.Args, tc.want)
			}
		})
	}
}

func TestMergeProcessNothingToRun(t *testing.T) {
	_, err := MergeProcess(ContainerSpec{Entrypoint: []string{}}, ImageConfig{Cmd: []string{"sh"}})
	if !errors.Is(err, errNoCommand) {
		t.Fatalf("err = %v, want errNoCommand", err)
	}
}

func TestMergeProcessDefaults(t *testing.T) {
	img := ImageConfig{Cmd: []string{"sh"}, WorkingDir: "/srv", User: "app", Env: []string{"PATH=/bin", "FOO=image"}}
	p, err := MergeProcess(ContainerSpec{}, img)
	if err != nil {
		t.Fatal(err)
	}
	want := Process{Args: []string{"sh"}, Env: []string{"PATH=/bin", "FOO=image"}, WorkingDir: "/srv", User: "app"}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v, want %+v", p, want)
	}

	p, err = MergeProcess(ContainerSpec{WorkingDir: "/data", User: "1000:1000"}, ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.WorkingDir != "/data" || p.User != "1000:1000" {
		t.Fatalf("user values not applied: %+v", p)
	}
	p, _ = MergeProcess(ContainerSpec{}, ImageConfig{Cmd: []string{"sh"}})
	if p.WorkingDir != "/" || p.User != "" {
		t.Fatalf("defaults: %+v", p)
	}
}

func TestMergeEnv(t *testing.T) {
	got := MergeEnv([]string{"PATH=/bin", "FOO=image", "KEEP=1"}, map[string]string{"FOO": "user", "ZED": "z", "ALPHA": "a"})
	want := []string{"PATH=/bin", "FOO=user", "KEEP=1", "ALPHA=a", "ZED=z"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// An upgrade merges against the new image only: variables that only the old
// image declared do not linger (Pouch's B4).
func TestMergeEnvDropsOldImageDefaults(t *testing.T) {
	user := map[string]string{"MODE": "prod"}
	oldImage := []string{"PATH=/bin", "OLD_ONLY=1", "VERSION=1"}
	newImage := []string{"PATH=/bin", "VERSION=2"}
	_ = MergeEnv(oldImage, user)
	got := MergeEnv(newImage, user)
	want := []string{"PATH=/bin", "VERSION=2", "MODE=prod"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
