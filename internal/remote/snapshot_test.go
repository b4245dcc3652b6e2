package remote

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// methodCount counts the calls a provider sends to its agent, by method.
type methodCount struct {
	net.Conn
	mu    sync.Mutex
	calls map[string]int
}

func (m *methodCount) Write(p []byte) (int, error) {
	m.mu.Lock()
	for _, method := range []string{methodInspect, methodInspectAll, methodUpdate} {
		m.calls[method] += strings.Count(string(p), `"method":"`+method+`"`)
	}
	m.mu.Unlock()
	return m.Conn.Write(p)
}

func (m *methodCount) count(method string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[method]
}

// countingPipeClient is a pipe client whose calls are counted.
func countingPipeClient(t *testing.T, env *testenv.Env) (*Client, *methodCount) {
	t.Helper()
	opts := engineOptions(env)
	c, err := New(Config{Host: "ssh://root@in-process:22", Engine: opts, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	agentEnd, providerEnd := net.Pipe()
	counted := &methodCount{Conn: providerEnd, calls: map[string]int{}}
	c.dialer = func(ctx context.Context) (*connection, error) {
		go serveAgent("test", agentEnd)
		conn := c.newConnection(counted, &tailBuffer{max: 256}, agentEnd.Close)
		return conn, c.hello(ctx, conn, "in-process")
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, counted
}

// A plan's refresh of several containers costs one call to the host, and
// reads each as Inspect on the host does; a second read of a container, and
// every read after this client changed one, goes to the host again.
func TestRefreshReadsTheHostOnce(t *testing.T) {
	env := testenv.Get(t)
	env.ImportImage(t, image("snap", "v1"))
	env.ImportImage(t, image("snap", "v2"))
	host, err := engine.New(engineOptions(env))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Close() })
	ctx := context.Background()
	ids := []string{"snap-a", "snap-b", "snap-c"}
	specs := map[string]engine.ContainerSpec{}
	for _, id := range ids {
		spec := engine.ContainerSpec{Name: id, Image: "pouchtest/snap:v1", Running: true, NetworkMode: engine.NetworkNone}
		if _, err := host.Create(ctx, spec); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = host.Delete(context.Background(), id) })
		specs[id] = spec
	}

	// A new terraform run: a new client, its reads in parallel (of two of
	// the three).
	c, calls := countingPipeClient(t, env)
	// Time stands still: only the change may drop the reading.
	frozen := time.Now()
	c.snaps.now = func() time.Time { return frozen }
	read := ids[:2]
	got := make([]engine.State, len(read))
	errs := make([]error, len(read))
	var wg sync.WaitGroup
	for i, id := range read {
		wg.Go(func() { got[i], errs[i] = c.Inspect(ctx, id) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if all, one := calls.count(methodInspectAll), calls.count(methodInspect); all != 1 || one != 0 {
		t.Fatalf("reading %d containers took %d inspectAll and %d inspect calls, want 1 and 0", len(read), all, one)
	}
	for i, id := range read {
		want, err := host.Inspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Fatalf("%s read as\n%+v\nthe host reads\n%+v", id, got[i], want)
		}
	}

	if _, err := c.Inspect(ctx, "snap-a"); err != nil || calls.count(methodInspect) != 1 {
		t.Fatalf("a second read of snap-a: %v, %d inspect calls, want it from the host", err, calls.count(methodInspect))
	}
	if _, err := c.Inspect(ctx, "snap-missing"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a container the reading did not have: %v, want ErrNotFound", err)
	}

	// snap-c, in the reading but not read yet, is upgraded by another
	// process; then this client changes a container: its next read of
	// snap-c is the host's.
	spec := specs["snap-c"]
	spec.Image = "pouchtest/snap:v2"
	if _, err := host.Update(ctx, "snap-c", spec); err != nil {
		t.Fatal(err)
	}
	spec = specs["snap-a"]
	spec.Image = "pouchtest/snap:v2"
	if _, err := c.Update(ctx, "snap-a", spec); err != nil {
		t.Fatal(err)
	}
	st, err := c.Inspect(ctx, "snap-c")
	if err != nil || st.Spec.Image != "pouchtest/snap:v2" {
		t.Fatalf("snap-c after its upgrade read as %+v (%v), want v2", st, err)
	}
	if all := calls.count(methodInspectAll); all != 1 {
		t.Fatalf("%d inspectAll calls, want one per client", all)
	}
}

// reader is a fake InspectAll: its states, after release is closed (if
// set), counting its calls.
type reader struct {
	states  []engine.State
	err     error
	release chan struct{}
	started chan struct{}
	calls   atomic.Int32
}

func (r *reader) read(ctx context.Context) ([]engine.State, error) {
	r.calls.Add(1)
	if r.started != nil {
		close(r.started)
	}
	if r.release != nil {
		<-r.release
	}
	return r.states, r.err
}

func states(ids ...string) []engine.State {
	out := make([]engine.State, len(ids))
	for i, id := range ids {
		out[i] = engine.State{ID: id}
	}
	return out
}

func TestSnapshotsServeEachStateOnce(t *testing.T) {
	var s snapshots
	r := &reader{states: states("a", "b")}
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if st, ok := s.inspect(ctx, id, r.read); !ok || st.ID != id {
			t.Fatalf("%s: %+v, %v; want it from the reading", id, st, ok)
		}
	}
	for _, id := range []string{"a", "c"} {
		if _, ok := s.inspect(ctx, id, r.read); ok {
			t.Fatalf("%s served from the reading, want it from the host (read already, or not in it)", id)
		}
	}
	if n := r.calls.Load(); n != 1 {
		t.Fatalf("%d readings, want 1", n)
	}
}

func TestSnapshotsNotAfterAChange(t *testing.T) {
	var s snapshots
	r := &reader{states: states("a")}
	s.changed()
	if _, ok := s.inspect(context.Background(), "a", r.read); ok || r.calls.Load() != 0 {
		t.Fatalf("served %v after %d readings; want no reading once the client changed a container", ok, r.calls.Load())
	}
}

func TestSnapshotsDroppedByAChangeDuringTheReading(t *testing.T) {
	var s snapshots
	r := &reader{states: states("a", "b"), release: make(chan struct{}), started: make(chan struct{})}
	first := make(chan bool)
	go func() {
		_, ok := s.inspect(context.Background(), "a", r.read)
		first <- ok
	}()
	<-r.started
	s.changed() // begins while the host is being read
	close(r.release)
	if <-first {
		t.Fatal("a state of a reading that a change overtook was served")
	}
	if _, ok := s.inspect(context.Background(), "b", r.read); ok {
		t.Fatal("b served from a reading that a change overtook")
	}
}

func TestSnapshotsFailedReading(t *testing.T) {
	var s snapshots
	r := &reader{err: errors.New("no inspectAll")}
	for range 2 {
		if _, ok := s.inspect(context.Background(), "a", r.read); ok {
			t.Fatal("served a state from a failed reading")
		}
	}
	if n := r.calls.Load(); n != 1 {
		t.Fatalf("%d readings, want 1: a failed one is not tried again", n)
	}
}

func TestSnapshotsExpire(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := snapshots{now: func() time.Time { return now }}
	r := &reader{states: states("a", "b")}
	if _, ok := s.inspect(context.Background(), "a", r.read); !ok {
		t.Fatal("a not served from a fresh reading")
	}
	now = now.Add(snapshotTTL + time.Millisecond)
	if _, ok := s.inspect(context.Background(), "b", r.read); ok {
		t.Fatalf("b served from a reading older than %s", snapshotTTL)
	}
}

func TestSnapshotsWaitWithinTheContext(t *testing.T) {
	var s snapshots
	r := &reader{states: states("a", "b"), release: make(chan struct{}), started: make(chan struct{})}
	defer close(r.release)
	go s.inspect(context.Background(), "a", r.read)
	<-r.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok := s.inspect(ctx, "b", r.read); ok {
		t.Fatal("served b with its context cancelled")
	}
}
