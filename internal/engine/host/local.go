//go:build linux

package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"

	"github.com/pouch/terraform-provider-pouch/internal/containerlog"
)

// Local does the engine's host work on the machine the provider runs on,
// which must be the containerd host.
type Local struct {
	// NetNSDir holds the containers' persistent network namespaces.
	NetNSDir string
	// LogDriver is the executable that serves as the containers' log
	// driver (see containerlog); empty means this process's own.
	LogDriver string
	// Network describes the bridge network; it is loaded (and its conflist
	// written) on first use, so that hosts that never use bridge mode need
	// no CNI plugins.
	Network NetworkConfig

	once   sync.Once
	net    *Network
	netErr error
}

// PrepareDataRoot creates root (0700) when it is missing, and each of its
// directories dirs, private: made 0700, or set to 0700 when they exist.
// It refuses a root or a directory that is a symlink, not a directory, or
// writable by users other than its owner (who could plant symlinks in
// it). A root readable by others is left as it is (it may be the user's
// directory), since the private directories below it are what keeps
// image files out of reach.
func (l *Local) PrepareDataRoot(root string, dirs []string) error {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(root)
	if err != nil {
		return err
	}
	if err := checkPrivate(root, fi); err != nil {
		return err
	}
	for _, d := range dirs {
		p := filepath.Join(root, d)
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory (a symlink?): pouch keeps its own files there; move it away", p)
		}
		if fi.Mode().Perm() != 0o700 {
			if err := os.Chmod(p, 0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPrivate refuses a data root that is not a directory, or that
// another user owns or can write to: whoever can rename entries in it could
// swap the engine's directories for symlinks.
func checkPrivate(path string, fi os.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by another user, who could replace pouch's directories in it: "+
			"use a directory of the provider's user's own (for example `install -d -m 0700 %s`)", path, path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by other users (mode %04o), who could replace pouch's directories in it: "+
			"make it owner-only (`chmod 0700 %s`)", path, fi.Mode().Perm(), path)
	}
	return nil
}

// MkdirAll creates a directory and its parents.
func (l *Local) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

// MkdirNew creates the directory path, which must not exist yet; missing
// parents are created 0700.
func (l *Local) MkdirNew(path string, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(path, perm); err != nil {
		return err
	}
	// Mkdir's mode is cut by the umask.
	return os.Chmod(path, perm)
}

// RemoveAll removes a path and everything under it. It never follows a
// symlink below path (os.RemoveAll works through directory descriptors).
func (l *Local) RemoveAll(path string) error { return os.RemoveAll(path) }

// RemoveEmptyDir removes the directory path if it is empty or gone.
func (l *Local) RemoveEmptyDir(path string) error {
	err := os.Remove(path)
	if err == nil || errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// ReadFile reads a whole file; errors.Is(err, os.ErrNotExist) when absent.
func (l *Local) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

// WriteFile replaces a file atomically (write to a temporary file, rename).
func (l *Local) WriteFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	// The mode asked, whatever the umask took off.
	if err := os.Chmod(tmp, perm); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// Exists tells whether a path exists.
func (l *Local) Exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// CopyFromRootfs mounts a root filesystem read-only for a moment and
// copies the directory at subpath inside it into dst (see CopyTree),
// keeping owners and modes. subpath is resolved inside the root
// filesystem (a symlink in the image cannot lead out of it). A subpath the
// root filesystem does not have copies nothing; one that is not a
// directory is an error.
func (l *Local) CopyFromRootfs(ctx context.Context, mounts []mount.Mount, subpath, dst string) (CopyReport, error) {
	var report CopyReport
	err := mount.WithReadonlyTempMount(ctx, mounts, func(root string) error {
		src, err := fs.RootPath(root, subpath)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s in the image is not a directory", subpath)
		}
		report, err = CopyTree(src, dst)
		return err
	})
	return report, err
}

// InstallLogDriver copies the log driver's executable into dir, once per
// version (see containerlog.Install).
func (l *Local) InstallLogDriver(dir string) (string, error) {
	self := l.LogDriver
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return "", fmt.Errorf("find the provider's executable, the containers' log driver: %w", err)
		}
	}
	return containerlog.Install(self, dir)
}

// LogTail returns the end of a container's log (see containerlog.Tail).
func (l *Local) LogTail(path string, lines, bytes int) (string, error) {
	return containerlog.Tail(path, lines, bytes)
}

// NetNS returns the persistent network namespace of container id, creating
// it if needed.
func (l *Local) NetNS(id string) (string, error) { return CreateNetNS(l.NetNSDir, id) }

// FindNetNS returns the mounted network namespace of container id, ""
// when it has none.
func (l *Local) FindNetNS(id string) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	return findNetNS(filepath.Join(l.NetNSDir, id))
}

// RemoveNetNS removes a namespace made by NetNS.
func (l *Local) RemoveNetNS(path string) error { return RemoveNetNS(path) }

func (l *Local) network() (*Network, error) {
	l.once.Do(func() { l.net, l.netErr = NewNetwork(l.Network) })
	return l.net, l.netErr
}

// Attach connects the namespace to the bridge network (see Network.Attach).
func (l *Local) Attach(ctx context.Context, id, netnsPath string, ports []PortMapping, want Address) (Attachment, error) {
	n, err := l.network()
	if err != nil {
		return Attachment{}, err
	}
	return n.Attach(ctx, id, netnsPath, ports, want)
}

// Detach disconnects the container from the bridge network (see
// Network.Detach).
func (l *Local) Detach(ctx context.Context, id, netnsPath string, ports []PortMapping) error {
	n, err := l.network()
	if err != nil {
		return err
	}
	return n.Detach(ctx, id, netnsPath, ports)
}

// HandlesSignal tells whether process pid has installed a handler for sig,
// from the SigCgt mask in /proc. PID 1 of a container ignores signals it
// does not handle, so sending it SIGTERM would only wait out the timeout.
// When the mask cannot be read it answers true: the safe, slower path.
func (l *Local) HandlesSignal(pid uint32, sig syscall.Signal) bool {
	f, err := os.Open(filepath.Join("/proc", strconv.FormatUint(uint64(pid), 10), "status"))
	if err != nil {
		return true
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		mask, ok := strings.CutPrefix(scanner.Text(), "SigCgt:")
		if !ok {
			continue
		}
		bits, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
		if err != nil {
			return true
		}
		return bits&(1<<(uint(sig)-1)) != 0
	}
	return true
}

// SyncFS writes out the dirty data of the filesystem that holds path
// (syncfs(2)).
func (l *Local) SyncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}
