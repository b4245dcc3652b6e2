package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// Two pipelines create the same container at once: one wins, the other
// fails before it has made anything, and the winner keeps its network
// (namespace, address, iptables rules): the loser removes nothing of it.
// Each engine stands for a process: its own in-process locks and its own
// open lock file, which the kernel lock keeps apart as it would two
// processes.
func TestConcurrentCreatesOfOneName(t *testing.T) {
	env := testenv.Get(t)
	env.ImportImage(t, webImage("race", "v1"))
	opts := envOptions(env)
	opts.LockWait = 50 * time.Millisecond
	a, b := mustNew(t, opts), mustNew(t, opts)
	const name = "eng-race"
	for round := range 5 {
		spec := engine.ContainerSpec{Name: name, Image: "pouchtest/race:v1", Running: true}
		var wg sync.WaitGroup
		var states [2]engine.State
		var errs [2]error
		for i, e := range []*engine.Engine{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				states[i], errs[i] = e.Create(context.Background(), spec)
			}()
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won = i
			case strings.Contains(err.Error(), "already exists") ||
				strings.Contains(err.Error(), "being changed by another pouch process"):
			default:
				t.Fatalf("round %d: the loser failed with %v, want a clear refusal", round, err)
			}
		}
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: errors %v and %v, want exactly one create to succeed", round, errs[0], errs[1])
		}
		st := states[won]
		if st.IPAddress == "" {
			t.Fatalf("round %d: the winner has no address: %+v", round, st)
		}
		// The winner's network works: its address answers from the host.
		eventuallyServes(t, "http://"+st.IPAddress+":80/", "v1")
		ns := filepath.Join(opts.DataRoot, "netns", opts.Namespace, name)
		if ents, err := os.ReadDir(ns); err != nil || len(ents) != 1 {
			t.Fatalf("round %d: the winner's network namespace directory: %v, %v", round, ents, err)
		}
		if err := a.Delete(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		assertNothingOf(t, a, env, name)
	}
}
