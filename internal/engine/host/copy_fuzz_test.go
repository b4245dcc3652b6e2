//go:build linux

package host

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fuzzNames is the alphabet of entry names: small, so that names collide
// (a later operation on an existing name is ignored) and symlink targets
// naming other entries hit.
var fuzzNames = []string{"a", "b", "etc", "..a", "d"}

// progReader hands out the fuzz input a byte at a time, then zeros.
type progReader struct{ b []byte }

func (r *progReader) next() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *progReader) mode() uint32 { return (uint32(r.next())<<8 | uint32(r.next())) & 0o7777 }

// buildFuzzTree runs the program prog in the empty directory src. Each
// operation is: op, parent directory index, name index, then op arguments.
// It returns a log of what it made, for failure messages.
func buildFuzzTree(t *testing.T, src, canaryDir string, prog []byte) []string {
	t.Helper()
	r := &progReader{prog}
	dirs := []string{"."}
	var linkable, all, log []string
	for ops := 0; ops < 64 && len(r.b) > 0; ops++ {
		op := r.next() % 6
		parent := dirs[int(r.next())%len(dirs)]
		rel := filepath.Join(parent, fuzzNames[int(r.next())%len(fuzzNames)])
		p := filepath.Join(src, rel)
		if _, err := os.Lstat(p); err == nil {
			continue // name taken
		}
		owner := int(r.next()%4) * 1000
		var what string
		switch op {
		case 0:
			mode := r.mode()
			mkdir(t, p, mode, owner, owner)
			dirs = append(dirs, rel)
			what = fmt.Sprintf("dir %#o", mode)
		case 1:
			mode := r.mode()
			data := make([]byte, r.next()%32)
			for i := range data {
				data[i] = r.next()
			}
			writeFile(t, p, string(data), mode, owner, owner)
			linkable = append(linkable, rel)
			what = fmt.Sprintf("file %#o %q", mode, data)
		case 2:
			target := fuzzTarget(r, src, parent, canaryDir, all)
			must(t, os.Symlink(target, p))
			must(t, os.Lchown(p, owner, owner))
			linkable = append(linkable, rel)
			what = "symlink -> " + target
		case 3:
			if len(linkable) == 0 {
				continue
			}
			old := linkable[int(r.next())%len(linkable)]
			must(t, os.Link(filepath.Join(src, old), p)) // links a symlink itself
			what = "hardlink to " + old
		case 4:
			mode := r.mode()
			must(t, unix.Mkfifo(p, 0))
			must(t, os.Lchown(p, owner, owner))
			must(t, unix.Chmod(p, mode))
			linkable = append(linkable, rel)
			what = "fifo"
		case 5:
			if r.next()&1 == 0 || len(p) > 100 {
				must(t, unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
				what = "char device"
			} else {
				mksock(t, p)
				what = "socket"
			}
		}
		all = append(all, rel)
		log = append(log, rel+": "+what)
	}
	return log
}

// fuzzTarget picks a symlink target: escapes, the canary (absolute and
// relative), other entries, or raw bytes.
func fuzzTarget(r *progReader, src, parent, canaryDir string, entries []string) string {
	switch r.next() % 9 {
	case 0:
		return canaryDir
	case 1:
		return filepath.Join(canaryDir, "secret")
	case 2:
		return filepath.Join(canaryDir, "planted")
	case 3:
		return "../../.."
	case 4:
		return ".."
	case 5:
		rel, _ := filepath.Rel(filepath.Join(src, parent), canaryDir)
		return rel
	case 6:
		if len(entries) > 0 {
			return entries[int(r.next())%len(entries)]
		}
		return "/"
	case 7:
		b := make([]byte, r.next()%16)
		for i := range b {
			if b[i] = r.next(); b[i] == 0 {
				b[i] = '/'
			}
		}
		if len(b) == 0 {
			return "."
		}
		return string(b)
	default:
		return "/etc/passwd"
	}
}

func FuzzCopyTree(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{
		0, 0, 0, 0, 0x0b, 0xed, // dir a, setuid+sticky
		1, 1, 1, 1, 0x0d, 0xed, 3, 'a', 'b', 'c', // file a/b, setuid+setgid
		2, 0, 2, 2, 0, // symlink etc -> canary dir
		2, 1, 2, 0, 1, // symlink a/etc -> canary file
		2, 0, 3, 0, 5, // symlink ..a -> ../canary (relative)
		3, 0, 4, 0, 0, // hardlink d -> a/b
		4, 1, 0, 0, 0x09, 0xa4, // fifo a/a, setuid
		5, 1, 3, 0, 0, // char device a/..a
		5, 1, 4, 0, 1, // socket a/d
	})
	f.Add([]byte{
		0, 0, 0, 1, 0x07, 0xff, // dir a, 2777|sticky
		0, 1, 0, 2, 0x04, 0x00, // dir a/a, setgid, mode 0
		2, 2, 1, 0, 2, // a/a/b -> canary/planted
		2, 2, 2, 0, 3, // a/a/etc -> ../../..
		2, 2, 3, 0, 7, 4, '/', 'e', 't', 'c', // a/a/..a -> /etc
		3, 0, 1, 0, 1, // b: hardlink to a symlink
		1, 0, 4, 3, 0x0f, 0xff, 0, // d: empty file 7777
		3, 1, 1, 0, 3, // a/b: hardlink to d
	})
	f.Add([]byte("mkdir a; ln -s /etc a/b; echo x > a/b/passwd"))
	f.Fuzz(func(t *testing.T, prog []byte) {
		requireRoot(t)
		base := t.TempDir()
		src, dst, canaryDir := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "canary")
		mkdir(t, canaryDir, 0o755, 0, 0)
		writeFile(t, filepath.Join(canaryDir, "secret"), "host secret\n", 0o600, 0, 0)
		setTimes(t, canaryDir)
		canaryBefore := snapshot(t, canaryDir)
		must(t, os.Mkdir(src, 0o755))
		log := buildFuzzTree(t, src, canaryDir, prog)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("source tree:\n%s", strings.Join(log, "\n"))
			}
		})
		srcBefore := snapshot(t, src)
		must(t, os.Mkdir(dst, 0o700))

		rep, err := CopyTree(src, dst)
		if err != nil {
			t.Fatal(err)
		}

		must(t, filepath.WalkDir(dst, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dst, p)
			if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				t.Errorf("%s lies outside dst", p)
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			switch typ := fileType(st.Mode); {
			case typ == unix.S_IFCHR || typ == unix.S_IFBLK || typ == unix.S_IFSOCK:
				t.Errorf("%s: device or socket in dst (%#o)", rel, st.Mode)
			case typ != unix.S_IFDIR && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0:
				t.Errorf("%s: setid bits in dst (%#o)", rel, st.Mode)
			}
			return nil
		}))
		checkCopy(t, src, dst, rep) // symlink targets, bytes, modes, owners, links
		if after := snapshot(t, canaryDir); !maps.Equal(after, canaryBefore) {
			t.Errorf("canary changed:\n%+v\nwas\n%+v", after, canaryBefore)
		}
		if after := snapshot(t, src); !maps.Equal(after, srcBefore) {
			t.Errorf("source changed")
		}
	})
}
