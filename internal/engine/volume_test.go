package engine_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

// The image is untrusted: these tests build images the way an attacker
// would and check that the host is untouched and no volume data is lost.

// canary is a directory on the host with one file, outside the data root,
// that hostile images point their symlinks at.
type canary struct {
	dir, file string
	before    []byte
	mode      os.FileMode
}

func newCanary(t *testing.T) *canary {
	t.Helper()
	dir := t.TempDir()
	c := &canary{dir: dir, file: filepath.Join(dir, "passwd"), before: []byte("root:x:0:0:canary\n"), mode: 0o644}
	if err := os.WriteFile(c.file, c.before, c.mode); err != nil {
		t.Fatal(err)
	}
	return c
}

// untouched fails the test unless the canary directory holds exactly its
// file, with its bytes and mode.
func (c *canary) untouched(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "passwd" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("canary directory %s now holds %v: something was written through a symlink", c.dir, names)
	}
	got, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(c.file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, c.before) || fi.Mode() != c.mode {
		t.Fatalf("canary file changed: %q mode %v", got, fi.Mode())
	}
}

// imageVolumePath returns the host directory of the image volume at
// target in a container's state.
func imageVolumePath(t *testing.T, st engine.State, target string) string {
	t.Helper()
	for _, v := range st.ImageVolumes {
		if v.Target == target {
			return v.Path
		}
	}
	t.Fatalf("no image volume at %s in %+v", target, st.ImageVolumes)
	return ""
}

// Two VOLUMEs whose host directory names collided before (/a/b and /a_b
// were both "a_b") get a directory each. The image's layout is the old
// attack: /x/y holds a symlink "evil" to a host directory, and /x_y a
// directory "evil" with a file, which copying into the shared directory
// wrote into the host directory.
func TestImageVolumesDoNotCollide(t *testing.T) {
	e, env := newEngine(t)
	cn := newCanary(t)
	img := imagebuild.Image{
		Name:    "docker.io/pouchtest/vol-collide:v1",
		Cmd:     []string{"sleep", "3600"},
		Volumes: []string{"/x/y", "/x_y"},
		Entries: []imagebuild.Entry{
			{Path: "/x/y/evil", Type: imagebuild.Symlink, Target: cn.dir},
			{Path: "/x/y/own", Type: imagebuild.File, Mode: 0o644, Data: "x/y"},
			{Path: "/x_y/evil/planted", Type: imagebuild.File, Mode: 0o644, Data: "pwned"},
			{Path: "/x_y/own", Type: imagebuild.File, Mode: 0o644, Data: "x_y"},
		},
	}
	env.ImportImage(t, img)
	st := create(t, e, engine.ContainerSpec{Name: "eng-vol-collide", Image: "pouchtest/vol-collide:v1", Running: true,
		NetworkMode: engine.NetworkNone})

	cn.untouched(t)
	a, b := imageVolumePath(t, st, "/x/y"), imageVolumePath(t, st, "/x_y")
	if a == b {
		t.Fatalf("both volumes are %s", a)
	}
	if got := mustExec(t, env, "eng-vol-collide", "cat", "/x/y/own", "/x_y/own", "/x_y/evil/planted"); got != "x/yx_ypwned" {
		t.Fatalf("volume contents in the container: %q", got)
	}
	if target, err := os.Readlink(filepath.Join(a, "evil")); err != nil || target != cn.dir {
		t.Fatalf("the image's symlink in the volume: %q, %v (want the symlink itself, not followed)", target, err)
	}
}

// VOLUME keys that cannot be a directory of the container (relative, with
// "..", the root, under /proc or /sys) are refused, naming the image and
// the key, before anything is made: at create, and at an upgrade, which
// leaves the container as it was.
func TestHostileImageVolumeKeysAreRefused(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("vol-keys", "v1"))
	up := create(t, e, engine.ContainerSpec{Name: "eng-vol-keys-up", Image: "pouchtest/vol-keys:v1", Running: true,
		NetworkMode: engine.NetworkNone})
	pid := env.TaskPID(t, "eng-vol-keys-up")
	for i, key := range []string{"data", "/data/../../etc", "/", "/proc/sys", "/sys/fs/cgroup", "../escape"} {
		img := imagebuild.Image{
			Name:    "docker.io/pouchtest/vol-keys:bad" + string(rune('a'+i)),
			Cmd:     []string{"sleep", "3600"},
			Volumes: []string{"/fine", key},
		}
		env.ImportImage(t, img)
		name := "eng-vol-keys-" + string(rune('a'+i))
		_, err := e.Create(context.Background(), engine.ContainerSpec{Name: name, Image: img.Name, Running: true})
		if !errors.Is(err, engine.ErrInvalidSpec) || !strings.Contains(err.Error(), img.Name) ||
			!strings.Contains(err.Error(), `"`+key+`"`) {
			t.Fatalf("create with VOLUME %q: err = %v, want a refusal naming the image and the key", key, err)
		}
		assertNothingOf(t, e, env, name)

		spec := up.Spec
		spec.Image = img.Name
		spec.Running = true
		if _, err := e.Update(context.Background(), up.ID, spec); !strings.Contains(err.Error(), `"`+key+`"`) {
			t.Fatalf("upgrade to an image with VOLUME %q: err = %v, want a refusal naming the key", key, err)
		}
		if got := env.TaskPID(t, up.ID); got != pid {
			t.Fatalf("the refused upgrade touched the task: pid %d, was %d", got, pid)
		}
		assertNothingLeaked(t, e, env, up.ID, 1)
	}
}

// Setuid and setgid bits and device nodes in an image volume never become
// usable on the host: the bits are dropped, device nodes are not made, and
// every directory from the data root down to the volume is private.
func TestImageVolumeSetIDAndDevices(t *testing.T) {
	e, env := newEngine(t)
	img := imagebuild.Image{
		Name:    "docker.io/pouchtest/vol-setid:v1",
		Cmd:     []string{"sleep", "3600"},
		Volumes: []string{"/data"},
		Entries: []imagebuild.Entry{
			{Path: "/data/suid", Type: imagebuild.File, Mode: 0o4755, Data: "#!/bin/sh\n"},
			{Path: "/data/sgid", Type: imagebuild.File, Mode: 0o2755, Data: "#!/bin/sh\n"},
			{Path: "/data/mem", Type: imagebuild.CharDevice, Mode: 0o666, Major: 1, Minor: 1},
			{Path: "/data/sda", Type: imagebuild.BlockDevice, Mode: 0o666, Major: 8, Minor: 0},
			{Path: "/data/shared", Type: imagebuild.Dir, Mode: 0o2775, GID: 50},
			{Path: "/data/fifo", Type: imagebuild.FIFO, Mode: 0o600},
			{Path: "/data/plain", Type: imagebuild.File, Mode: 0o640, UID: 1000, GID: 1000, Data: "data"},
		},
	}
	env.ImportImage(t, img)
	st := create(t, e, engine.ContainerSpec{Name: "eng-vol-setid", Image: "pouchtest/vol-setid:v1", Running: true,
		NetworkMode: engine.NetworkNone})
	vol := imageVolumePath(t, st, "/data")

	mode := func(name string) os.FileMode {
		fi, err := os.Lstat(filepath.Join(vol, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode()
	}
	if m := mode("suid"); m&(os.ModeSetuid|os.ModeSetgid) != 0 || m.Perm() != 0o755 {
		t.Fatalf("suid file in the volume: %v, want 0755 without setuid", m)
	}
	if m := mode("sgid"); m&(os.ModeSetuid|os.ModeSetgid) != 0 {
		t.Fatalf("sgid file in the volume: %v, want no setgid", m)
	}
	for _, dev := range []string{"mem", "sda"} {
		if _, err := os.Lstat(filepath.Join(vol, dev)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("device node %s was made in the volume (%v)", dev, err)
		}
	}
	if m := mode("shared"); m&os.ModeSetgid == 0 || !m.IsDir() {
		t.Fatalf("setgid directory: %v, want its group-inheritance bit kept", m)
	}
	if m := mode("fifo"); m&os.ModeNamedPipe == 0 {
		t.Fatalf("fifo: %v", m)
	}
	fi, err := os.Lstat(filepath.Join(vol, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1000 || fi.Mode().Perm() != 0o640 {
		t.Fatalf("plain file: owner %d:%d mode %v, want 1000:1000 0640", st.Uid, st.Gid, fi.Mode())
	}
	if got := mustExec(t, env, "eng-vol-setid", "cat", "/data/plain"); got != "data" {
		t.Fatalf("in the container: %q", got)
	}

	// Every directory from the data root to the volume's parent is
	// private, so no unprivileged host user reaches the volume's files.
	root := e.Options().DataRoot
	for dir := filepath.Dir(vol); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if dir == root {
			break
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s is mode %v: reachable by other users", dir, fi.Mode().Perm())
		}
	}
	for _, d := range []string{"volumes", "containers", "netns", "network", "locks", "bin"} {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s is mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
}

// A volume kept by keep_image_volumes keeps its data for the next
// container of the name: it is taken as it is, never populated from the
// image again, and never written through a symlink the old container's
// process planted in it.
func TestKeptImageVolumeIsNotRepopulated(t *testing.T) {
	e, env := newEngine(t)
	cn := newCanary(t)
	img := imagebuild.Image{
		Name:    "docker.io/pouchtest/vol-kept:v1",
		Cmd:     []string{"sleep", "3600"},
		Volumes: []string{"/data"},
		Entries: []imagebuild.Entry{
			{Path: "/data/seed", Type: imagebuild.File, Mode: 0o644, Data: "from the image"},
			{Path: "/data/link/planted", Type: imagebuild.File, Mode: 0o644, Data: "pwned"},
		},
	}
	env.ImportImage(t, img)
	spec := engine.ContainerSpec{Name: "eng-vol-kept", Image: "pouchtest/vol-kept:v1", Running: true,
		NetworkMode: engine.NetworkNone, KeepImageVolumes: true}
	st, err := e.Create(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	vol := imageVolumePath(t, st, "/data")
	// The service writes its data, and a compromised one plants a symlink
	// to a host directory where the image has a directory.
	mustExec(t, env, spec.Name, "sh", "-c", "echo precious > /data/seed && rm -rf /data/link && ln -s "+cn.dir+" /data/link")
	if err := e.Delete(context.Background(), spec.Name); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(vol, "seed")); err != nil || string(got) != "precious\n" {
		t.Fatalf("kept volume after delete: %q, %v", got, err)
	}

	st = create(t, e, spec)
	if got := imageVolumePath(t, st, "/data"); got != vol {
		t.Fatalf("the new container's volume is %s, want the kept %s", got, vol)
	}
	if got := mustExec(t, env, spec.Name, "cat", "/data/seed"); got != "precious" {
		t.Fatalf("the kept volume's data: %q, want what the old container wrote", got)
	}
	cn.untouched(t)
}

// A rolled-back upgrade removes the volumes it made, and only those: the
// old container's volume (whose name the new one's used to share) and the
// files its process wrote there are intact, and so is a host directory the
// process pointed a symlink at.
func TestRolledBackUpgradeKeepsTheOldVolumes(t *testing.T) {
	e, env := newEngine(t)
	cn := newCanary(t)
	v1 := imagebuild.Image{
		Name:    "docker.io/pouchtest/vol-rollback:v1",
		Cmd:     []string{"sleep", "3600"},
		Volumes: []string{"/a/b"},
		Files:   map[string]string{"/version": "v1"},
	}
	v2 := imagebuild.Image{ // a new VOLUME /a_b, and a process that exits at once
		Name:    "docker.io/pouchtest/vol-rollback:v2",
		Cmd:     []string{"sh", "-c", "exit 4"},
		Volumes: []string{"/a/b", "/a_b"},
		Entries: []imagebuild.Entry{{Path: "/a_b/link/planted", Type: imagebuild.File, Mode: 0o644, Data: "pwned"}},
	}
	env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	spec := engine.ContainerSpec{Name: "eng-vol-rollback", Image: "pouchtest/vol-rollback:v1", Running: true,
		NetworkMode: engine.NetworkNone, Upgrade: engine.UpgradePolicy{VerifySeconds: 1}}
	st := create(t, e, spec)
	mustExec(t, env, spec.Name, "sh", "-c", "echo precious > /a/b/data && ln -s "+cn.dir+" /a/b/link")
	old := imageVolumePath(t, st, "/a/b")

	spec.Image = "pouchtest/vol-rollback:v2"
	if _, err := e.Update(context.Background(), spec.Name, spec); !errors.Is(err, engine.ErrRolledBack) {
		t.Fatalf("upgrade to an image whose process exits: %v, want a rollback", err)
	}
	if got := mustExec(t, env, spec.Name, "cat", "/version", "/a/b/data"); got != "v1precious" {
		t.Fatalf("after the rollback: %q, want v1 with its volume's data", got)
	}
	after, err := e.Inspect(context.Background(), spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.ImageVolumes) != 1 || imageVolumePath(t, after, "/a/b") != old {
		t.Fatalf("image volumes after the rollback: %+v", after.ImageVolumes)
	}
	ents, err := os.ReadDir(filepath.Dir(old))
	if err != nil || len(ents) != 1 {
		t.Fatalf("the container's volume directory holds %v (%v), want the old volume alone", ents, err)
	}
	cn.untouched(t)
	assertNothingLeaked(t, e, env, spec.Name, 1)
}
