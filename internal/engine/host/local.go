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
)

// Local does the engine's host work on the machine the provider runs on,
// which must be the containerd host.
type Local struct {
	// NetNSDir holds the containers' persistent network namespaces.
	NetNSDir string
	// Network describes the bridge network; it is loaded (and its conflist
	// written) on first use, so that hosts that never use bridge mode need
	// no CNI plugins.
	Network NetworkConfig

	once   sync.Once
	net    *Network
	netErr error
}

// MkdirAll creates a directory and its parents.
func (l *Local) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

// RemoveAll removes a path and everything under it.
func (l *Local) RemoveAll(path string) error { return os.RemoveAll(path) }

// ReadFile reads a whole file; errors.Is(err, os.ErrNotExist) when absent.
func (l *Local) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

// WriteFile replaces a file atomically (write to a temporary file, rename).
func (l *Local) WriteFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
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

// CopyFromRootfs mounts a root filesystem for a moment and copies the
// directory at subpath inside it into dst, keeping owners and modes. A
// subpath the root filesystem does not have copies nothing.
func (l *Local) CopyFromRootfs(ctx context.Context, mounts []mount.Mount, subpath, dst string) error {
	return mount.WithReadonlyTempMount(ctx, mounts, func(root string) error {
		src, err := fs.RootPath(root, subpath)
		if err != nil {
			return err
		}
		fi, err := os.Stat(src)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s in the image is not a directory", subpath)
		}
		if err := fs.CopyDir(dst, src); err != nil {
			return fmt.Errorf("copy %s from the image: %w", subpath, err)
		}
		// CopyDir keeps the contents' owners; the volume's root takes the
		// image directory's too.
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		return os.Chmod(dst, fi.Mode().Perm())
	})
}

// NetNS returns the persistent network namespace of container id, creating
// it if needed.
func (l *Local) NetNS(id string) (string, error) { return CreateNetNS(l.NetNSDir, id) }

// RemoveNetNS removes a namespace made by NetNS.
func (l *Local) RemoveNetNS(path string) error { return RemoveNetNS(path) }

func (l *Local) network() (*Network, error) {
	l.once.Do(func() { l.net, l.netErr = NewNetwork(l.Network) })
	return l.net, l.netErr
}

// Attach connects the namespace to the bridge network (see Network.Attach).
func (l *Local) Attach(ctx context.Context, id, netnsPath string, ports []PortMapping) (Attachment, error) {
	n, err := l.network()
	if err != nil {
		return Attachment{}, err
	}
	return n.Attach(ctx, id, netnsPath, ports)
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
