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
	MkdirAll(path string, perm os.FileMode) error
	RemoveAll(path string) error
	ReadFile(path string) ([]byte, error)
	WriteFile(path string, data []byte, perm os.FileMode) error
	Exists(path string) (bool, error)
	// CopyFromRootfs copies the directory subpath of a root filesystem
	// (given as its mounts) into dst.
	CopyFromRootfs(ctx context.Context, mounts []mount.Mount, subpath, dst string) error

	// NetNS returns container id's persistent network namespace, creating
	// it if needed; RemoveNetNS removes it.
	NetNS(id string) (string, error)
	RemoveNetNS(path string) error
	// Attach and Detach connect a namespace to the bridge network and
	// disconnect it. Attach is idempotent and keeps the IP and MAC.
	Attach(ctx context.Context, id, netnsPath string, ports []host.PortMapping) (host.Attachment, error)
	Detach(ctx context.Context, id, netnsPath string, ports []host.PortMapping) error

	// HandlesSignal tells whether process pid handles sig.
	HandlesSignal(pid uint32, sig syscall.Signal) bool
	// SyncFS writes out the dirty data of the filesystem that holds path.
	SyncFS(path string) error
}

var _ Host = (*host.Local)(nil)
