package remote

import (
	"context"
	"sync"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// A plan refreshes its containers a few at a time (terraform's
// -parallelism, 10 by default), each Inspect a round trip to the host: 50
// containers, five round trips in a row. Instead, the first Inspect of a
// client reads all the host's containers in one call (the engine's
// InspectAll) and the Inspects that follow take their state from that
// reading. A state read so serves one Inspect only, for snapshotTTL at
// most, and none is served once this client has started changing a
// container: such reads go to the host, as do those of the containers the
// reading left out (not pouch's, in the middle of an upgrade, missing).
// A client that has changed a container never reads them all again: the
// host may still be finishing a change whose call ended early (a
// cancelled apply), which only Inspect waits for.

// snapshotTTL is how long the states read in one call may stand for
// reads of their own.
const snapshotTTL = 5 * time.Second

// snapshots holds a client's reading of all its host's containers.
type snapshots struct {
	now     func() time.Time // time.Now; tests move it
	mu      sync.Mutex
	taken   bool      // the one reading was asked for, or a change made
	current *snapshot // nil once dropped
}

// snapshot is one reading of the host's containers.
type snapshot struct {
	ready  chan struct{} // closed once read, or failed
	at     time.Time
	states map[string]engine.State
}

// inspect returns container id's state from the reading, reading it first
// (with read) if none was asked for yet; false when the state must come
// from the host.
func (s *snapshots) inspect(ctx context.Context, id string, read func(context.Context) ([]engine.State, error)) (engine.State, bool) {
	s.mu.Lock()
	snap, first := s.current, false
	if !s.taken {
		s.taken, first = true, true
		snap = &snapshot{ready: make(chan struct{})}
		s.current = snap
	}
	s.mu.Unlock()
	if snap == nil {
		return engine.State{}, false
	}
	if first {
		snap.at = s.clock()
		states, err := read(ctx)
		if err == nil {
			snap.states = make(map[string]engine.State, len(states))
			for _, st := range states {
				snap.states[st.ID] = st
			}
		}
		close(snap.ready)
	}
	select {
	case <-snap.ready:
	case <-ctx.Done():
		return engine.State{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current != snap || s.clock().Sub(snap.at) > snapshotTTL {
		return engine.State{}, false
	}
	st, ok := snap.states[id]
	delete(snap.states, id)
	return st, ok
}

// changed marks the start of a change of a container: it drops the
// reading, and no other is made.
func (s *snapshots) changed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taken, s.current = true, nil
}

func (s *snapshots) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}
