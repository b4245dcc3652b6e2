package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"
)

// journalExtension is the container extension holding the journal of an
// update in progress. Extensions cannot be deleted through an update, so a
// finished update leaves an empty journal (Phase "").
const journalExtension = "io.pouch.journal"

// journal is written on the container before each phase of an upgrade, so
// that an update interrupted at any point (an error, or the provider
// killed) can be driven to one consistent container: the old one before
// Commit, the new one from Commit on. It holds everything needed to undo the
// update without the memory of the process that started it.
type journal struct {
	Phase Phase  `json:"phase"`
	Lease string `json:"lease"` // protects the staged and the old snapshot

	WasRunning bool `json:"was_running"`
	WasPaused  bool `json:"was_paused"`

	OldImage    string            `json:"old_image"`
	OldSnapshot string            `json:"old_snapshot"`
	OldSpecType string            `json:"old_spec_type"`
	OldSpec     json.RawMessage   `json:"old_spec"`
	OldLabels   map[string]string `json:"old_labels"`
	OldRecord   record            `json:"old_record"`

	NewSnapshot string        `json:"new_snapshot"`
	NewVolumes  []ImageVolume `json:"new_volumes,omitempty"`
	NewNetwork  networkState  `json:"new_network"`
	// KeepOldSnapshot is set when Commit keeps the old snapshot as a
	// revision.
	KeepOldSnapshot bool `json:"keep_old_snapshot,omitempty"`
}

func init() {
	typeurl.Register(&journal{}, "io.pouch", "journal", "v1")
}

func withJournal(c *containers.Container, j journal) error {
	anyJ, err := typeurl.MarshalAny(&j)
	if err != nil {
		return fmt.Errorf("encode upgrade journal: %w", err)
	}
	if c.Extensions == nil {
		c.Extensions = map[string]typeurl.Any{}
	}
	c.Extensions[journalExtension] = anyJ
	return nil
}

func readJournal(c containers.Container) (journal, error) {
	var j journal
	anyJ, ok := c.Extensions[journalExtension]
	if !ok || len(anyJ.GetValue()) == 0 {
		return j, nil
	}
	if err := json.Unmarshal(anyJ.GetValue(), &j); err != nil {
		return j, fmt.Errorf("decode upgrade journal of %s: %w", c.ID, err)
	}
	return j, nil
}

// writeJournal records j on the container.
func (e *Engine) writeJournal(ctx context.Context, c containerd.Container, j journal) error {
	return c.Update(ctx, func(_ context.Context, _ *containerd.Client, rec *containers.Container) error {
		return withJournal(rec, j)
	})
}

// oldSpec returns the runtime spec the container had before the update.
func (j journal) oldSpec() typeurl.Any {
	return &anypb.Any{TypeUrl: j.OldSpecType, Value: j.OldSpec}
}

// recover finishes or undoes an update that did not end, as its journal
// says: before Swap it discards what was staged (and starts the old task
// again if it was stopped); after Swap and before Commit it rolls back to
// the old container; from Commit on it finishes the clean-up. It is
// idempotent, and a no-op for a container without a journal. The caller
// holds the container's locks (see journalOpen).
func (e *Engine) recover(ctx context.Context, client *containerd.Client, c containerd.Container) error {
	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("read container %s: %w", c.ID(), err)
	}
	j, err := readJournal(info)
	if err != nil || j.Phase == "" {
		return err
	}
	if _, ok, err := readRecord(info); err != nil || !ok {
		return fmt.Errorf("container %s has an upgrade journal but no pouch record, so pouch did not write it: "+
			"not acting on it (remove the %s extension if no pouch process is changing the container)", c.ID(), journalExtension)
	}
	e.log.Info(ctx, "recovering an interrupted update", map[string]any{"container": c.ID(), "phase": string(j.Phase)})
	if j.Phase == PhaseCommit {
		return e.finishCommit(ctx, client, c, j)
	}
	return e.rollBack(ctx, client, c, j)
}

// rollBack restores the old container from the journal and removes what
// the update created.
func (e *Engine) rollBack(ctx context.Context, client *containerd.Client, c containerd.Container, j journal) error {
	ctx = context.WithoutCancel(ctx)
	id := c.ID()
	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("read container: %w", err)
	}
	if info.SnapshotKey != j.OldSnapshot || info.Image != j.OldImage {
		// Swapped: the task, if any, is the new container's.
		if err := e.killTask(ctx, c); err != nil {
			return fmt.Errorf("stop the new task: %w", err)
		}
	}
	err = c.Update(ctx, func(_ context.Context, _ *containerd.Client, rec *containers.Container) error {
		rec.Image, rec.SnapshotKey, rec.Spec, rec.Labels = j.OldImage, j.OldSnapshot, j.oldSpec(), j.OldLabels
		return withRecord(rec, j.OldRecord)
	})
	if err != nil {
		return fmt.Errorf("restore the container record: %w", err)
	}
	// A network that cannot be restored does not keep the old task from
	// starting again; the journal stays, for the next read to try again.
	var netErr error
	if !reflect.DeepEqual(j.NewNetwork, j.OldRecord.Network) && j.NewNetwork.Mode != "" {
		restored, err := e.applyNetwork(ctx, id, j.NewNetwork, j.OldRecord.Network)
		switch {
		case err != nil:
			netErr = fmt.Errorf("restore the network: %w", err)
		case restored.IP != j.OldRecord.Network.IP || restored.MAC != j.OldRecord.Network.MAC:
			// The old address was taken meanwhile: the record says the one
			// the container has now.
			rec := j.OldRecord
			rec.Network = restored
			if err := c.Update(ctx, func(_ context.Context, _ *containerd.Client, c *containers.Container) error {
				return withRecord(c, rec)
			}); err != nil {
				netErr = fmt.Errorf("record the restored network: %w", err)
			}
			e.log.Info(ctx, "the old address was taken: the container has another", map[string]any{"container": id,
				"was": j.OldRecord.Network.IP, "now": restored.IP})
		}
	}
	if j.WasRunning {
		status, err := taskStatus(ctx, client, c.ID())
		if err != nil {
			return err
		}
		if status != StatusRunning && status != StatusPaused {
			if err := e.killTask(ctx, c); err != nil { // an exited or half-made task
				return err
			}
			if err := e.startTask(ctx, c, j.OldRecord.Spec); err != nil {
				return fmt.Errorf("restart the old task: %w", err)
			}
			if j.WasPaused {
				if err := e.pauseTask(ctx, c); err != nil {
					return err
				}
			}
		}
	}
	if netErr != nil {
		return netErr
	}
	if j.NewSnapshot != "" && j.NewSnapshot != j.OldSnapshot && !isRevision(j.OldRecord, j.NewSnapshot) {
		e.removeSnapshot(ctx, client, j.NewSnapshot)
	}
	// The update's own files (uploads may be secret) go; the old task's
	// stay.
	e.pruneOwnFiles(id, specMountSources(j.oldSpec()))
	e.removeImageVolumes(ctx, id, stagedVolumes(j))
	if j.NewNetwork.NetNS != "" && j.OldRecord.Network.NetNS == "" {
		if err := e.removeNetNS(j.NewNetwork.NetNS); err != nil {
			return fmt.Errorf("remove the staged network namespace: %w", err)
		}
	}
	return e.endJournal(ctx, client, c, j)
}

// stagedVolumes are the image volumes a rollback removes: those the
// update created, never one the old container has (which a journal could
// only list by mistake: the old container's data is what an upgrade keeps).
func stagedVolumes(j journal) []ImageVolume {
	var out []ImageVolume
	for _, v := range j.NewVolumes {
		if !slices.ContainsFunc(j.OldRecord.ImageVolumes, func(o ImageVolume) bool {
			return o.Path == v.Path || o.Target == v.Target
		}) {
			out = append(out, v)
		}
	}
	return out
}

// finishCommit removes what the committed update replaced.
func (e *Engine) finishCommit(ctx context.Context, client *containerd.Client, c containerd.Container, j journal) error {
	ctx = context.WithoutCancel(ctx)
	if !j.KeepOldSnapshot && j.OldSnapshot != j.NewSnapshot {
		e.removeSnapshot(ctx, client, j.OldSnapshot)
	}
	if old := j.OldRecord.Network.NetNS; old != "" && j.NewNetwork.NetNS == "" {
		if err := e.removeNetNS(old); err != nil {
			return fmt.Errorf("remove the old network namespace: %w", err)
		}
	}
	return e.endJournal(ctx, client, c, j)
}

// endJournal releases the update's lease and clears the journal.
func (e *Engine) endJournal(ctx context.Context, client *containerd.Client, c containerd.Container, j journal) error {
	var errs []error
	if j.Lease != "" {
		if err := client.LeasesService().Delete(ctx, leases.Lease{ID: j.Lease}); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("release lease: %w", err))
		}
	}
	if err := e.writeJournal(ctx, c, journal{}); err != nil {
		errs = append(errs, fmt.Errorf("clear the upgrade journal: %w", err))
	}
	return errors.Join(errs...)
}
