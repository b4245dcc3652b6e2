package engine

import (
	"fmt"
	"maps"
	"strings"
)

// revision is a previous image's read-write snapshot, kept so that going
// back to that image finds its files again (upgrade.keep_revisions).
type revision struct {
	Image    string `json:"image"`
	Digest   string `json:"digest"`
	Snapshot string `json:"snapshot"`
}

// gcSnapshotLabelPrefix names the container labels that keep extra
// snapshots (the revisions) from containerd's garbage collection.
const gcSnapshotLabelPrefix = "containerd.io/gc.ref.snapshot."

func isRevision(rec record, key string) bool {
	for _, r := range rec.Revisions {
		if r.Snapshot == key {
			return true
		}
	}
	return false
}

// findRevision returns the kept revision of digest, if any.
func findRevision(rec record, digest string) (revision, bool) {
	for _, r := range rec.Revisions {
		if r.Digest == digest {
			return r, true
		}
	}
	return revision{}, false
}

// containerLabels are the labels a container record carries: the user's,
// one garbage-collection reference per kept revision, and the restart
// monitor's labels of current (which superviseTask and unsuperviseTask
// own: rewriting the user's labels must not take a running container away
// from the monitor).
func (e *Engine) containerLabels(user map[string]string, revs []revision, current map[string]string) map[string]string {
	labels := maps.Clone(user)
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range current {
		if strings.HasPrefix(k, restartLabelPrefix) {
			labels[k] = v
		}
	}
	for i, r := range revs {
		labels[fmt.Sprintf("%s%s/pouch.rev%d", gcSnapshotLabelPrefix, e.opts.Snapshotter, i)] = r.Snapshot
	}
	return labels
}

// nextRevisions is the list of revisions after an upgrade from old (whose
// snapshot becomes a revision) to the image of digest: newest first, at
// most keep, without the one now in use. dropped are the snapshots no
// longer kept.
func nextRevisions(prev []revision, old revision, newDigest string, keep int) (kept []revision, dropped []string) {
	all := append([]revision{old}, prev...)
	for _, r := range all {
		switch {
		case r.Digest == newDigest:
			// in use again: not a revision any more
		case len(kept) < keep:
			kept = append(kept, r)
		default:
			dropped = append(dropped, r.Snapshot)
		}
	}
	return kept, dropped
}
