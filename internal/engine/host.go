package engine

import (
	"context"
	"os"
	"syscall"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/pouch/terraform-provider-pouch/internal/engine/host"
)

// Host is everything the engine does on the containerd host besides the
// containerd API: files (volumes, logs, records), network namespaces and
// CNI, and looking at processes. host.Local does it on the local machine; a
// remote host implements the same interface, and nothing else changes.
type Host interface {
	// PrepareDataRoot makes the data root and its directories dirs
	// private (0700), refusing a data root other users can write to.
	PrepareDataRoot(root string, dirs []string) error
	MkdirAll(path string, perm os.FileMode) error
	// MkdirNew creates the directory path, which must not exist (its
	// parents are made private as needed): errors.Is(err, os.ErrExist)
	// when it does.
	MkdirNew(path string, perm os.FileMode) error
	RemoveAll(path string) error
	// RemoveEmptyDir removes a directory if it is empty (or gone), and
	// leaves it otherwise.
	RemoveEmptyDir(path string) error
	ReadFile(path string) ([]byte, error)
	WriteFile(path string, data []byte, perm os.FileMode) error
	Exists(path string) (bool, error)
	// CopyFromRootfs copies the directory subpath of a root filesystem
	// (given as its mounts) into dst, an empty directory just made, never
	// following a symlink (see host.CopyTree).
	CopyFromRootfs(ctx context.Context, mounts []mount.Mount, subpath, dst string) (host.CopyReport, error)

	// InstallLogDriver puts the binary that serves as the containers'
	// log driver into dir, once per version, and returns its path there.
	InstallLogDriver(dir string) (string, error)
	// LogTail returns the last lines of a container's log, made safe to
	// print.
	LogTail(path string, lines, bytes int) (string, error)

	// NetNS returns container id's persistent network namespace, creating
	// it if needed; RemoveNetNS removes it.
	NetNS(id string) (string, error)
	// FindNetNS returns container id's network namespace, "" if it has
	// none.
	FindNetNS(id string) (string, error)
	RemoveNetNS(path string) error
	// Attach and Detach connect a namespace to the bridge network and
	// disconnect it. Attach is idempotent and keeps the IP and MAC.
	Attach(ctx context.Context, id, netnsPath string, ports []host.PortMapping, want host.Address) (host.Attachment, error)
	Detach(ctx context.Context, id, netnsPath string, ports []host.PortMapping) error

	// HandlesSignal tells whether process pid handles sig.
	HandlesSignal(pid uint32, sig syscall.Signal) bool
	// SyncFS writes out the dirty data of the filesystem that holds path.
	SyncFS(path string) error
}
