//go:build linux

package host

import (
	"bytes"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// node is what a test knows of one entry, read with lstat only.
type node struct {
	mode, uid, gid uint32
	ino            uint64
	mtime          unix.Timespec
	data, target   string // regular file bytes, symlink target
}

func lstatNode(t *testing.T, p string) (node, error) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return node{}, err
	}
	n := node{mode: st.Mode, uid: st.Uid, gid: st.Gid, ino: st.Ino, mtime: st.Mtim}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		b, err := os.ReadFile(p) // a regular file per lstat just above; tests only
		if err != nil {
			t.Fatal(err)
		}
		n.data = string(b)
	case unix.S_IFLNK:
		s, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
		}
		n.target = s
	}
	return n, nil
}

// snapshot maps every entry under root (root itself is ".") to its node,
// never following a symlink (WalkDir lstats).
func snapshot(t *testing.T, root string) map[string]node {
	t.Helper()
	m := map[string]node{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		n, err := lstatNode(t, p)
		m[rel] = n
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func fileType(mode uint32) uint32 { return mode & unix.S_IFMT }

// checkCopy asserts that dst is a faithful, defanged copy of src per CopyTree's
// contract, and that rep agrees; it returns dst's snapshot.
func checkCopy(t *testing.T, src, dst string, rep CopyReport) map[string]node {
	t.Helper()
	s, d := snapshot(t, src), snapshot(t, dst)
	var skipped []string
	setid := map[uint64]bool{} // setid regular files of src, by inode
	for rel, sn := range s {
		dn, ok := d[rel]
		typ := fileType(sn.mode)
		if typ == unix.S_IFCHR || typ == unix.S_IFBLK || typ == unix.S_IFSOCK {
			if ok {
				t.Errorf("%s: device or socket was copied", rel)
			}
			skipped = append(skipped, rel)
			continue
		}
		if !ok {
			t.Errorf("%s: missing in the copy", rel)
			continue
		}
		want := sn.mode &^ (unix.S_ISUID | unix.S_ISGID)
		if typ == unix.S_IFDIR {
			want = sn.mode &^ unix.S_ISUID
		} else if typ == unix.S_IFREG && sn.mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			setid[sn.ino] = true
		}
		if typ == unix.S_IFLNK {
			want = unix.S_IFLNK | 0o777 // symlink permissions are always 0777
		}
		if dn.mode != want || dn.uid != sn.uid || dn.gid != sn.gid {
			t.Errorf("%s: mode %#o owner %d:%d, want %#o %d:%d", rel, dn.mode, dn.uid, dn.gid, want, sn.uid, sn.gid)
		}
		if dn.mtime != sn.mtime {
			t.Errorf("%s: mtime %v, want %v", rel, dn.mtime, sn.mtime)
		}
		if dn.data != sn.data || dn.target != sn.target {
			t.Errorf("%s: content %q -> %q, want %q -> %q", rel, dn.data, dn.target, sn.data, sn.target)
		}
	}
	for rel, dn := range d {
		if sn, ok := s[rel]; !ok || fileType(sn.mode) != fileType(dn.mode) {
			t.Errorf("%s: in the copy, not in the source", rel)
		}
	}
	// One path per setid inode: a hardlink shares its first copy's inode.
	reported := map[uint64]bool{}
	for _, rel := range rep.StrippedSetID {
		if ino := s[rel].ino; !setid[ino] || reported[ino] {
			t.Errorf("StrippedSetID = %q: %s is not a setid file, or its inode is listed twice", rep.StrippedSetID, rel)
		} else {
			reported[ino] = true
		}
	}
	if len(reported) != len(setid) {
		t.Errorf("StrippedSetID = %q, want one path for each of %d setid inodes", rep.StrippedSetID, len(setid))
	}
	var gotSkipped []string
	for _, s := range rep.Skipped {
		gotSkipped = append(gotSkipped, s[:strings.LastIndex(s, ": ")])
	}
	slices.Sort(gotSkipped)
	slices.Sort(skipped)
	if !slices.Equal(gotSkipped, skipped) {
		t.Errorf("Skipped = %q, want entries for %q", rep.Skipped, skipped)
	}
	checkLinks(t, src, dst, s)
	return d
}

// checkLinks asserts that source entries sharing an inode share one in dst,
// and that entries with distinct inodes stay distinct.
func checkLinks(t *testing.T, src, dst string, s map[string]node) {
	t.Helper()
	fwd, back := map[uint64]uint64{}, map[uint64]uint64{}
	for rel, sn := range s {
		if fileType(sn.mode) == unix.S_IFDIR || fileType(sn.mode) == unix.S_IFCHR ||
			fileType(sn.mode) == unix.S_IFBLK || fileType(sn.mode) == unix.S_IFSOCK {
			continue
		}
		var ss, ds unix.Stat_t
		if unix.Lstat(filepath.Join(src, rel), &ss) != nil || unix.Lstat(filepath.Join(dst, rel), &ds) != nil {
			continue // reported by checkCopy
		}
		if d, ok := fwd[ss.Ino]; ok && d != ds.Ino {
			t.Errorf("%s: hardlink in the source, not in the copy", rel)
		}
		if s, ok := back[ds.Ino]; ok && s != ss.Ino {
			t.Errorf("%s: linked in the copy to an unrelated file", rel)
		}
		fwd[ss.Ino], back[ds.Ino] = ds.Ino, ss.Ino
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, data string, mode uint32, uid, gid int) {
	t.Helper()
	must(t, os.WriteFile(p, []byte(data), 0o600))
	must(t, os.Lchown(p, uid, gid))
	must(t, unix.Chmod(p, mode)) // after chown, which clears setid bits
}

func mkdir(t *testing.T, p string, mode uint32, uid, gid int) {
	t.Helper()
	must(t, os.Mkdir(p, 0o700))
	must(t, os.Lchown(p, uid, gid))
	must(t, unix.Chmod(p, mode))
}

// setTimes gives every entry under root distinct times (no symlink followed).
func setTimes(t *testing.T, root string) {
	t.Helper()
	var i int64
	must(t, filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		i++
		ts := []unix.Timespec{{Sec: 1_500_000_000 + i, Nsec: i}, {Sec: 1_400_000_000 + i, Nsec: 1000 * i}}
		if err == nil {
			err = unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
		return err
	}))
}

func mksock(t *testing.T, p string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(fd)
	must(t, unix.Bind(fd, &unix.SockaddrUnix{Name: p}))
}

func TestCopyTree(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	src, dst, canaryDir := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "canary")
	canary := filepath.Join(canaryDir, "secret")
	mkdir(t, canaryDir, 0o755, 0, 0)
	writeFile(t, canary, "host secret\n", 0o600, 0, 0)
	setTimes(t, canaryDir)
	canaryBefore := snapshot(t, canaryDir)

	in := func(rel string) string { return filepath.Join(src, rel) }
	mkdir(t, src, 0o4750, 1010, 1011) // the root's setuid bit must go
	mkdir(t, in("a"), 0o755, 1001, 1001)
	mkdir(t, in("a/b"), 0o700, 1001, 1002)
	mkdir(t, in("a/b/c"), 0o711, 0, 0)
	writeFile(t, in("a/b/c/deep.txt"), "deep", 0o640, 1001, 1002)
	writeFile(t, in("plain.txt"), "plain", 0o644, 0, 0)
	writeFile(t, in("exec.sh"), "#!/bin/sh\n", 0o755, 1000, 1000)
	writeFile(t, in("ro.txt"), "ro", 0o400, 0, 0)
	writeFile(t, in("empty"), "", 0o600, 0, 0)
	writeFile(t, in("suid"), "suid-bytes", 0o4755, 0, 0)
	writeFile(t, in("sgid"), "sgid-bytes", 0o2711, 1000, 50)
	writeFile(t, in("big"), strings.Repeat("0123456789abcdef", 1<<16), 0o644, 0, 0)
	must(t, os.Symlink(canary, in("abs")))
	must(t, os.Lchown(in("abs"), 1005, 1006))
	must(t, os.Symlink(canaryDir, in("absdir")))
	must(t, os.Symlink(canaryDir+"/planted", in("dangling")))
	must(t, os.Symlink("../../..", in("a/escape")))
	writeFile(t, in("a/hl2"), "linked", 0o644, 1003, 1003)
	must(t, os.Link(in("a/hl2"), in("hl1")))
	must(t, unix.Mkfifo(in("fifo"), 0o640))
	must(t, os.Lchown(in("fifo"), 1007, 1007))
	mkdir(t, in("dev"), 0o755, 0, 0)
	must(t, unix.Mknod(in("dev/mem"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1))))
	mksock(t, in("dev/sock"))
	mkdir(t, in("shared"), 0o2775, 1000, 1000)
	mkdir(t, in("tmp"), 0o1777, 0, 0)
	mkdir(t, in("suiddir"), 0o4755, 0, 0)
	setTimes(t, src)
	var plainSrc unix.Stat_t
	must(t, unix.Lstat(in("plain.txt"), &plainSrc))
	must(t, os.Mkdir(dst, 0o700))

	rep, err := CopyTree(src, dst)
	if err != nil {
		t.Fatal(err)
	}

	// atime first: the checks below read the files.
	var plainDst unix.Stat_t
	must(t, unix.Lstat(filepath.Join(dst, "plain.txt"), &plainDst))
	if plainDst.Atim != plainSrc.Atim {
		t.Errorf("plain.txt: atime %v, want %v", plainDst.Atim, plainSrc.Atim)
	}
	d := checkCopy(t, src, dst, rep)

	if want := []string{"sgid", "suid"}; !slices.Equal(rep.StrippedSetID, want) {
		t.Errorf("StrippedSetID = %q, want %q", rep.StrippedSetID, want)
	}
	if want := []string{"dev/mem: character device", "dev/sock: socket"}; !slices.Equal(rep.Skipped, want) {
		t.Errorf("Skipped = %q, want %q", rep.Skipped, want)
	}
	if rep.Files != 10 || rep.Dirs != 7 || rep.Symlinks != 4 || rep.Hardlinks != 1 {
		t.Errorf("report counts %+v, want 10 files, 7 dirs, 4 symlinks, 1 hardlink", rep)
	}
	for rel, want := range map[string]uint32{
		".":       unix.S_IFDIR | 0o750,
		"suid":    unix.S_IFREG | 0o755,
		"sgid":    unix.S_IFREG | 0o711,
		"shared":  unix.S_IFDIR | 0o2775,
		"tmp":     unix.S_IFDIR | 0o1777,
		"suiddir": unix.S_IFDIR | 0o755,
		"fifo":    unix.S_IFIFO | 0o640,
		"abs":     unix.S_IFLNK | 0o777,
	} {
		if d[rel].mode != want {
			t.Errorf("%s: mode %#o in the copy, want %#o", rel, d[rel].mode, want)
		}
	}
	if n := d["."]; n.uid != 1010 || n.gid != 1011 {
		t.Errorf("root owned by %d:%d, want 1010:1011", n.uid, n.gid)
	}
	if n := d["abs"]; n.target != canary || n.uid != 1005 || n.gid != 1006 {
		t.Errorf("abs: target %q owner %d:%d, want %q 1005:1006", n.target, n.uid, n.gid, canary)
	}
	if n := d["a/escape"]; n.target != "../../.." {
		t.Errorf("a/escape: target %q, want ../../..", n.target)
	}
	if d["suid"].data != "suid-bytes" || d["sgid"].data != "sgid-bytes" || d["sgid"].gid != 50 {
		t.Errorf("setid files: %+v %+v", d["suid"], d["sgid"])
	}
	var h1, h2, hs unix.Stat_t
	must(t, unix.Lstat(filepath.Join(dst, "hl1"), &h1))
	must(t, unix.Lstat(filepath.Join(dst, "a/hl2"), &h2))
	must(t, unix.Lstat(in("hl1"), &hs))
	if h1.Ino != h2.Ino || h1.Nlink != 2 || h1.Ino == hs.Ino {
		t.Errorf("hardlink pair: inodes %d, %d (nlink %d), source %d", h1.Ino, h2.Ino, h1.Nlink, hs.Ino)
	}
	if _, ok := d["dev/mem"]; ok {
		t.Error("dev/mem was copied")
	}
	if after := snapshot(t, canaryDir); !maps.Equal(after, canaryBefore) {
		t.Errorf("canary changed:\n%+v\nwas\n%+v", after, canaryBefore)
	}
}

func TestCopyTreeRefusesNonEmptyDst(t *testing.T) {
	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	must(t, os.Mkdir(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "keep"), []byte("theirs"), 0o644))
	must(t, os.Mkdir(dst, 0o700))
	must(t, os.WriteFile(filepath.Join(dst, "keep"), []byte("mine"), 0o600))
	setTimes(t, dst)
	before := snapshot(t, dst)
	if _, err := CopyTree(src, dst); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("CopyTree into a non-empty directory: %v", err)
	}
	if after := snapshot(t, dst); !maps.Equal(after, before) {
		t.Errorf("dst changed: %+v, was %+v", after, before)
	}
}

func TestCopyTreeRefusesSymlinkedDst(t *testing.T) {
	base := t.TempDir()
	src, dst, canary := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "canary")
	must(t, os.Mkdir(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "planted"), []byte("x"), 0o644))
	must(t, os.Mkdir(canary, 0o755))
	setTimes(t, canary)
	before := snapshot(t, canary)
	must(t, os.Symlink(canary, dst))
	// O_NOFOLLOW|O_DIRECTORY on a symlink: ENOTDIR (Linux) or ELOOP.
	if _, err := CopyTree(src, dst); !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
		t.Fatalf("CopyTree into a symlink: %v, want ENOTDIR or ELOOP", err)
	}
	if after := snapshot(t, canary); !maps.Equal(after, before) {
		t.Errorf("canary directory changed: %+v, was %+v", after, before)
	}
}

func TestCopyTreeRefusesSymlinkedSrc(t *testing.T) {
	base := t.TempDir()
	orig, src, dst := filepath.Join(base, "orig"), filepath.Join(base, "src"), filepath.Join(base, "dst")
	must(t, os.Mkdir(orig, 0o755))
	must(t, os.WriteFile(filepath.Join(orig, "f"), []byte("x"), 0o644))
	must(t, os.Symlink(orig, src))
	must(t, os.Mkdir(dst, 0o700))
	// O_NOFOLLOW|O_DIRECTORY on a symlink: ENOTDIR (Linux) or ELOOP.
	if _, err := CopyTree(src, dst); !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
		t.Fatalf("CopyTree from a symlink: %v, want ENOTDIR or ELOOP", err)
	}
	if names, _ := os.ReadDir(dst); len(names) != 0 {
		t.Errorf("dst has %v", names)
	}
}

func TestCopyTreeDstInsideSrc(t *testing.T) {
	src := t.TempDir()
	dst := filepath.Join(src, "dst")
	must(t, os.Mkdir(dst, 0o700))
	if _, err := CopyTree(src, dst); err == nil || !strings.Contains(err.Error(), "inside the source") {
		t.Fatalf("CopyTree into its own source: %v", err)
	}
	if _, err := CopyTree(src, src); err == nil {
		t.Fatal("CopyTree onto itself succeeded")
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	must(t, err)
	return len(fds)
}

// TestCopyTreeDepth also checks that no fd leaks, on success or on error.
func TestCopyTreeDepth(t *testing.T) {
	for _, levels := range []int{maxCopyDepth, maxCopyDepth + 1} {
		base := t.TempDir()
		src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
		deep := strings.Repeat("/d", levels)
		must(t, os.MkdirAll(src+deep, 0o755))
		must(t, os.WriteFile(src+deep+"/f", []byte("bottom"), 0o644))
		must(t, os.Mkdir(dst, 0o700))
		fds := openFDs(t)
		rep, err := CopyTree(src, dst)
		if n := openFDs(t); n != fds {
			t.Errorf("%d levels: %d fds open after CopyTree, %d before", levels, n, fds)
		}
		if levels <= maxCopyDepth {
			if err != nil || rep.Dirs != levels || rep.Files != 1 {
				t.Fatalf("%d levels: %+v, %v", levels, rep, err)
			}
			if b, err := os.ReadFile(dst + deep + "/f"); err != nil || !bytes.Equal(b, []byte("bottom")) {
				t.Errorf("%d levels: bottom file %q, %v", levels, b, err)
			}
			continue
		}
		if !errors.Is(err, errTooDeep) || !strings.Contains(err.Error(), deep[1:]+":") {
			t.Errorf("%d levels: %v, want errTooDeep naming the path", levels, err)
		}
	}
}
