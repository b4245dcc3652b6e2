//go:build linux

package host

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The data root and the engine's directories in it are private; a data
// root that another user can write to (who could swap those directories
// for symlinks) is refused, and so is a directory of the engine's that is
// a symlink.
func TestPrepareDataRoot(t *testing.T) {
	requireRoot(t)
	l := &Local{}
	dirs := []string{"volumes", "locks"}

	root := filepath.Join(t.TempDir(), "new", "pouch")
	if err := l.PrepareDataRoot(root, dirs); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root, filepath.Join(root, "volumes"), filepath.Join(root, "locks")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v, %v; want a 0700 directory", p, fi, err)
		}
	}

	// A directory made earlier with looser modes is tightened.
	if err := os.Chmod(filepath.Join(root, "volumes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := l.PrepareDataRoot(root, dirs); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "volumes")); fi.Mode().Perm() != 0o700 {
		t.Fatalf("volumes is %v after a second preparation, want 0700", fi.Mode().Perm())
	}

	for _, c := range []struct {
		name  string
		setup func(root string)
		want  string
	}{
		{"world-writable root", func(root string) { must(t, os.Chmod(root, 0o777)) }, "writable by other users"},
		{"root owned by another user", func(root string) { must(t, os.Chown(root, 1000, 1000)) }, "owned by another user"},
		{"symlinked directory", func(root string) {
			must(t, os.Symlink(t.TempDir(), filepath.Join(root, "locks")))
		}, "not a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "pouch")
			must(t, os.Mkdir(root, 0o700))
			c.setup(root)
			err := l.PrepareDataRoot(root, dirs)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("PrepareDataRoot: %v, want a refusal saying %q", err, c.want)
			}
		})
	}
}

// MkdirNew makes a directory that did not exist, and only such a one.
func TestMkdirNew(t *testing.T) {
	l := &Local{}
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := l.MkdirNew(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("made %v, %v; want 0750", fi, err)
	}
	if fi, _ := os.Stat(filepath.Dir(dir)); fi.Mode().Perm() != 0o700 {
		t.Fatalf("the parent made on the way is %v, want 0700", fi.Mode().Perm())
	}
	if err := l.MkdirNew(dir, 0o750); !errors.Is(err, os.ErrExist) {
		t.Fatalf("making it again: %v, want os.ErrExist", err)
	}
}
