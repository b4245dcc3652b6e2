package engine

import (
	"context"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
)

// carryRootfsChanges applies the changes made in the old read-write layer
// (what differs from its image) onto the new snapshot, with containerd's
// diff service: upgrade.keep_rootfs_changes. Files the new image also
// changed are overwritten by the old container's version. Call it under the
// upgrade's lease, with the old task stopped.
func (e *Engine) carryRootfsChanges(ctx context.Context, client *containerd.Client, oldKey, newKey string) error {
	sn := client.SnapshotService(e.opts.Snapshotter)
	info, err := sn.Stat(ctx, oldKey)
	if err != nil {
		return fmt.Errorf("stat old snapshot: %w", err)
	}
	viewKey := oldKey + "-base-" + randomSuffix()
	lower, err := sn.View(ctx, viewKey, info.Parent)
	if err != nil {
		return fmt.Errorf("view old image: %w", err)
	}
	defer e.removeSnapshot(context.WithoutCancel(ctx), client, viewKey)
	upper, err := sn.Mounts(ctx, oldKey)
	if err != nil {
		return fmt.Errorf("mount old snapshot: %w", err)
	}
	changes, err := client.DiffService().Compare(ctx, lower, upper)
	if err != nil {
		return fmt.Errorf("diff old rootfs: %w", err)
	}
	target, err := sn.Mounts(ctx, newKey)
	if err != nil {
		return fmt.Errorf("mount new snapshot: %w", err)
	}
	if _, err := client.DiffService().Apply(ctx, changes, target); err != nil {
		return fmt.Errorf("apply old rootfs changes: %w", err)
	}
	e.log.Debug(ctx, "carried rootfs changes", map[string]any{"from": oldKey, "to": newKey, "bytes": changes.Size})
	return nil
}
