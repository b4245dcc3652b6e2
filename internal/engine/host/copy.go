//go:build linux

package host

// The copier populates anonymous volumes from image contents, which are
// untrusted: an image can hold symlinks pointing anywhere on the host,
// hardlinks, setuid binaries and device nodes. A path-based copier (os.Mkdir,
// os.OpenFile by path) follows a crafted symlink and writes onto the host as
// root. This one never resolves a path string below the two roots: it walks
// both trees through directory file descriptors, opens every name with
// O_NOFOLLOW, creates every entry with an *at call on a single component
// relative to a directory fd, and changes owners, modes and times through an
// fd of the entry or with AT_SYMLINK_NOFOLLOW. So a symlink it did not create
// is never followed, and one it did create is never followed either.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxCopyDepth bounds the nesting CopyTree accepts: it holds two fds per
// level, so an absurdly deep image cannot exhaust the process's descriptors.
const maxCopyDepth = 512

var errTooDeep = fmt.Errorf("directory nesting exceeds %d levels", maxCopyDepth)

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

var skippedTypes = map[uint32]string{
	unix.S_IFCHR: "character device", unix.S_IFBLK: "block device", unix.S_IFSOCK: "socket",
}

// CopyTree copies the directory tree at src into dst, which must be an existing EMPTY directory
// (the caller has just created it); it refuses a non-empty or symlinked dst.
//
// It is safe against a hostile src (an untrusted image): no symlink is ever
// followed on either side, and nothing is created outside dst. src and dst
// themselves are opened with O_NOFOLLOW, so a symlink as the last component of
// either is an error; their parent directories are trusted (dst's parent must
// be writable by root only, and src must not change during the copy).
//
// What is copied: directories, regular files (bytes, owner, permission bits,
// atime and mtime; sparse files become dense), symlinks (the same target
// string, never resolved, and their owner and times), FIFOs, and hardlinks
// between entries inside src (recreated as hardlinks inside dst). Directories
// keep their setgid and sticky bits and lose setuid; every other entry loses
// setuid and setgid (regular files that had them are listed in
// CopyReport.StrippedSetID). A directory's owner, mode and times are set
// after its contents are copied. dst itself takes the owner, mode (setuid
// stripped) and times of src. Character and block devices and sockets are
// not copied (CopyReport.Skipped). Extended attributes, including ACLs,
// security.capability and SELinux labels, are NOT copied.
//
// It must run as root (it sets owners). A directory nested more than 512
// levels below src is an error. Errors name the relative path that failed
// and wrap the errno. On error, dst holds what was copied so far; the caller
// removes it.
func CopyTree(src, dst string) (CopyReport, error) {
	var rep CopyReport
	sfd, err := unix.Open(src, dirFlags, 0)
	if err != nil {
		return rep, fmt.Errorf("open source %s (a directory, not a symlink): %w", src, err)
	}
	defer unix.Close(sfd)
	dfd, err := unix.Open(dst, dirFlags, 0)
	if err != nil {
		return rep, fmt.Errorf("open destination %s (a directory, not a symlink): %w", dst, err)
	}
	defer unix.Close(dfd)
	names, err := readNames(dfd)
	if err != nil {
		return rep, fmt.Errorf("read destination %s: %w", dst, err)
	}
	if len(names) > 0 {
		return rep, fmt.Errorf("destination %s is not empty", dst)
	}
	var sst, dstSt unix.Stat_t
	if err := unix.Fstat(sfd, &sst); err != nil {
		return rep, fmt.Errorf("stat .: %w", err)
	}
	if err := unix.Fstat(dfd, &dstSt); err != nil {
		return rep, fmt.Errorf("stat destination %s: %w", dst, err)
	}
	c := &copier{rep: &rep, dstRoot: dfd, dstID: fileID{dstSt.Dev, dstSt.Ino}, links: map[fileID]string{}}
	if c.dstID == (fileID{sst.Dev, sst.Ino}) {
		return rep, errors.New("source and destination are the same directory")
	}
	if err := c.copyDir(sfd, dfd, ".", 0); err != nil {
		return rep, err
	}
	return rep, setAttrs(dfd, ".", &sst, sst.Mode&0o7777&^unix.S_ISUID)
}

type fileID struct{ dev, ino uint64 }

type copier struct {
	rep     *CopyReport
	dstRoot int               // fd of dst, for resolving hardlink targets
	dstID   fileID            // dst itself, refused if met inside src
	links   map[fileID]string // src inode with nlink > 1 -> rel path of its first copy
}

// copyDir copies the contents of the directory sfd (at rel, depth levels below
// the root) into the directory dfd.
func (c *copier) copyDir(sfd, dfd int, rel string, depth int) error {
	names, err := readNames(sfd)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", rel, err)
	}
	slices.Sort(names) // a deterministic "first copy" of each hardlinked inode
	for _, name := range names {
		if err := c.copyEntry(sfd, dfd, name, path.Join(rel, name), depth+1); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry copies the entry name of sfd into dfd. It is a function of its
// own so that the fds it opens are closed before the next entry.
func (c *copier) copyEntry(sfd, dfd int, name, rel string, depth int) error {
	var st unix.Stat_t
	if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	typ := st.Mode & unix.S_IFMT
	switch typ {
	case unix.S_IFDIR:
		return c.copySubdir(sfd, dfd, name, rel, depth)
	case unix.S_IFREG, unix.S_IFLNK, unix.S_IFIFO:
	default: // devices would give the container the host's hardware
		why, ok := skippedTypes[typ]
		if !ok {
			why = fmt.Sprintf("unknown file type %#o", typ)
		}
		c.rep.Skipped = append(c.rep.Skipped, rel+": "+why)
		return nil
	}
	id := fileID{st.Dev, st.Ino}
	if first, ok := c.links[id]; ok { // only inodes with nlink > 1 are in links
		if err := c.link(first, dfd, name); err != nil {
			return fmt.Errorf("hardlink %s to %s: %w", rel, first, err)
		}
		c.rep.Hardlinks++
		return nil
	}
	var err error
	switch typ {
	case unix.S_IFREG:
		err = c.copyFile(sfd, dfd, name, rel, &st)
	case unix.S_IFLNK:
		if err = copySymlink(sfd, dfd, name, rel, &st); err == nil {
			c.rep.Symlinks++
		}
	case unix.S_IFIFO:
		if err = copyFIFO(dfd, name, rel, &st); err == nil {
			c.rep.Files++
		}
	}
	if err == nil && st.Nlink > 1 {
		c.links[id] = rel
	}
	return err
}

func (c *copier) copySubdir(sfd, dfd int, name, rel string, depth int) error {
	if depth > maxCopyDepth {
		return fmt.Errorf("%s: %w", rel, errTooDeep)
	}
	sub, err := unix.Openat(sfd, name, dirFlags, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", rel, err)
	}
	defer unix.Close(sub)
	var st unix.Stat_t
	if err := unix.Fstat(sub, &st); err != nil {
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	if (fileID{st.Dev, st.Ino}) == c.dstID {
		return fmt.Errorf("%s: the destination lies inside the source", rel)
	}
	// Created owner-only; owner, mode and times come after the contents.
	if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
		return fmt.Errorf("mkdir %s: %w", rel, err)
	}
	c.rep.Dirs++
	dsub, err := unix.Openat(dfd, name, dirFlags, 0)
	if err != nil {
		return fmt.Errorf("open %s in destination: %w", rel, err)
	}
	defer unix.Close(dsub)
	if err := c.copyDir(sub, dsub, rel, depth); err != nil {
		return err
	}
	return setAttrs(dsub, rel, &st, st.Mode&0o7777&^unix.S_ISUID)
}

func (c *copier) copyFile(sfd, dfd int, name, rel string, st *unix.Stat_t) error {
	fd, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", rel, err)
	}
	in := os.NewFile(uintptr(fd), rel)
	defer in.Close()
	// Copy the attributes of the inode actually opened, and make sure it is
	// the regular file that was stat'ed.
	var ost unix.Stat_t
	if err := unix.Fstat(fd, &ost); err != nil {
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	if ost.Mode&unix.S_IFMT != unix.S_IFREG || ost.Dev != st.Dev || ost.Ino != st.Ino {
		return fmt.Errorf("%s changed during the copy", rel)
	}
	*st = ost
	ofd, err := unix.Openat(dfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", rel, err)
	}
	out := os.NewFile(uintptr(ofd), rel)
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %s: %w", rel, err)
	}
	mode := st.Mode & 0o7777
	if mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		mode &^= unix.S_ISUID | unix.S_ISGID
		c.rep.StrippedSetID = append(c.rep.StrippedSetID, rel)
	}
	if err := setAttrs(ofd, rel, st, mode); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("close %s: %w", rel, err)
	}
	c.rep.Files++
	return nil
}

func copySymlink(sfd, dfd int, name, rel string, st *unix.Stat_t) error {
	buf := make([]byte, unix.PathMax) // Linux caps targets at PATH_MAX-1 bytes
	n, err := unix.Readlinkat(sfd, name, buf)
	if err == nil && n == len(buf) {
		err = unix.ENAMETOOLONG
	}
	if err != nil {
		return fmt.Errorf("readlink %s: %w", rel, err)
	}
	if err := unix.Symlinkat(string(buf[:n]), dfd, name); err != nil {
		return fmt.Errorf("symlink %s: %w", rel, err)
	}
	if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s: %w", rel, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", rel, err)
	}
	return nil
}

func copyFIFO(dfd int, name, rel string, st *unix.Stat_t) error {
	if err := unix.Mknodat(dfd, name, unix.S_IFIFO|0o600, 0); err != nil {
		return fmt.Errorf("mkfifo %s: %w", rel, err)
	}
	// Opening a FIFO for reading with O_NONBLOCK does not wait for a writer;
	// the fd lets us chmod without a path.
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s in destination: %w", rel, err)
	}
	defer unix.Close(fd)
	return setAttrs(fd, rel, st, st.Mode&0o7777&^(unix.S_ISUID|unix.S_ISGID))
}

// link creates name in dfd as a hardlink to first, the rel path of an entry
// already copied into dst. first's parent directories are opened one
// component at a time with O_NOFOLLOW from the dst root fd, and linkat gets
// no AT_SYMLINK_FOLLOW, so nothing on the way is resolved through a symlink.
func (c *copier) link(first string, dfd int, name string) error {
	dir, base := path.Split(first)
	pfd := c.dstRoot
	if dir != "" {
		fd, err := unix.Openat(c.dstRoot, ".", dirFlags, 0)
		if err != nil {
			return err
		}
		for _, comp := range strings.Split(strings.TrimSuffix(dir, "/"), "/") {
			next, err := unix.Openat(fd, comp, dirFlags, 0)
			unix.Close(fd)
			if err != nil {
				return err
			}
			fd = next
		}
		defer unix.Close(fd)
		pfd = fd
	}
	return unix.Linkat(pfd, base, dfd, name, 0)
}

// setAttrs gives the open entry fd the owner, mode and times of st. chown
// comes first because it clears setid bits that chmod then sets.
func setAttrs(fd int, rel string, st *unix.Stat_t, mode uint32) error {
	if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", rel, err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", rel, err)
	}
	// futimens(fd, ts), i.e. utimensat(fd, NULL, ts, 0): x/sys/unix has no
	// wrapper, and its Futimes goes through a /proc path.
	ts := [2]unix.Timespec{st.Atim, st.Mtim}
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
		return fmt.Errorf("set times of %s: %w", rel, e)
	}
	return nil
}

// readNames lists the directory fd (without "." and ".."), reading it with
// getdents.
func readNames(fd int) ([]string, error) {
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
