//go:build linux

package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/pkg/netns"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// CreateNetNS returns the persistent network namespace of container id,
// creating it if needed. The namespace is a bind mount of an nsfs inode on a
// file in the directory baseDir/id (containerd's pkg/netns, as CRI uses), so
// it outlives every task that joins it through the OCI spec: a task
// delete/recreate or an image upgrade keeps the same interfaces, IP and MAC.
//
// It is idempotent: if baseDir/id already holds a mounted namespace, that one
// is returned. A file left behind without its mount (after a reboot, the
// mounts are gone but baseDir is on disk) is removed and a fresh namespace is
// created in its place. The loopback interface of the namespace is brought up,
// because runc configures lo only in namespaces it creates itself.
//
// Calls for the same id must not run concurrently (the engine holds a
// per-container lock).
func CreateNetNS(baseDir, id string) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	if baseDir == "" {
		return "", errors.New("netns base directory is empty")
	}
	dir := filepath.Join(baseDir, id)
	path, err := findNetNS(dir)
	if err != nil {
		return "", err
	}
	if path == "" {
		created, err := netns.NewNetNS(dir)
		if err != nil {
			return "", fmt.Errorf("create network namespace for %s: %w", id, err)
		}
		path = created.GetPath()
	}
	if err := ns.WithNetNSPath(path, func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		return "", fmt.Errorf("bring up loopback in %s: %w", path, err)
	}
	return path, nil
}

// findNetNS returns the mounted namespace file in dir, or "" if there is
// none. Stale (unmounted) files are removed on the way.
func findNetNS(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read netns directory: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(dir, name)
		// Closed removes the file when it is not a mounted namespace.
		closed, err := netns.LoadNetNS(p).Closed()
		if err != nil {
			return "", fmt.Errorf("inspect network namespace %s: %w", p, err)
		}
		if !closed {
			return p, nil
		}
	}
	return "", nil
}

// RemoveNetNS unmounts and removes a namespace returned by CreateNetNS, and
// its per-container directory once empty. It returns nil if the namespace is
// already gone. Interfaces still inside are destroyed with the namespace, but
// CNI state (IP reservation, iptables rules) is not: call Network.Detach first.
func RemoveNetNS(path string) error {
	if path == "" {
		return nil
	}
	if err := netns.LoadNetNS(path).Remove(); err != nil {
		return fmt.Errorf("remove network namespace %s: %w", path, err)
	}
	// Only an empty directory is removed; a non-empty or missing one is left.
	if err := os.Remove(filepath.Dir(path)); err != nil && !errors.Is(err, os.ErrNotExist) && !isNotEmpty(err) {
		return fmt.Errorf("remove netns directory: %w", err)
	}
	return nil
}

func isNotEmpty(err error) bool {
	return errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST)
}

// validID rejects ids that cannot be a single path element or a CNI
// container id.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("invalid container id %q", id)
	}
	return nil
}
