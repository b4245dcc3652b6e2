package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
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

// Two provider configurations with different namespaces share a data root
// and a bridge: containers of the same name in both work, with two
// addresses, and deleting one leaves the other's network alone.
func TestTwoNamespacesShareABridge(t *testing.T) {
	env := testenv.Get(t)
	env.ImportImage(t, webImage("twons", "v1"))
	optsA := envOptions(env)
	optsB := envOptions(env)
	optsB.Namespace = env.Namespace + "-b"
	a, b := mustNew(t, optsA), mustNew(t, optsB)
	// The second namespace needs the image too: import it there.
	importInto(t, env, optsB.Namespace, webImage("twons", "v1"))
	spec := engine.ContainerSpec{Name: "eng-twons", Image: "pouchtest/twons:v1", Running: true}
	sa := create(t, a, spec)
	sb, err := b.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("the same name in a second namespace on the same bridge: %v", err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = b.Delete(context.Background(), spec.Name)
		}
	})
	if sa.IPAddress == "" || sb.IPAddress == "" || sa.IPAddress == sb.IPAddress {
		t.Fatalf("addresses %q and %q, want two", sa.IPAddress, sb.IPAddress)
	}
	eventuallyServes(t, "http://"+sa.IPAddress+":80/", "v1")
	eventuallyServes(t, "http://"+sb.IPAddress+":80/", "v1")
	if err := b.Delete(context.Background(), spec.Name); err != nil {
		t.Fatal(err)
	}
	deleted = true
	eventuallyServes(t, "http://"+sa.IPAddress+":80/", "v1")
	if st, err := a.Inspect(context.Background(), spec.Name); err != nil || st.IPAddress != sa.IPAddress {
		t.Fatalf("the first namespace's container after the other's delete: %+v, %v", st, err)
	}
}

// A host port another container of the namespace publishes is refused at
// create, naming that container, and nothing is made.
func TestPublishedPortTakenByAnotherContainer(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, webImage("ports-taken", "v1"))
	port := freePort(t)
	first := engine.ContainerSpec{Name: "eng-ports-first", Image: "pouchtest/ports-taken:v1", Running: true,
		Ports: []engine.PortMapping{{HostPort: port, ContainerPort: 80}}}
	create(t, e, first)
	second := first
	second.Name = "eng-ports-second"
	second.Ports = []engine.PortMapping{{HostIP: "127.0.0.1", HostPort: port, ContainerPort: 80}}
	_, err := e.Create(context.Background(), second)
	if err == nil || !strings.Contains(err.Error(), "eng-ports-first") ||
		!strings.Contains(err.Error(), fmt.Sprintf("tcp port %d on 127.0.0.1", port)) {
		t.Fatalf("create: %v, want the port refused, naming the container that has it", err)
	}
	assertNothingOf(t, e, env, second.Name)
	eventuallyServes(t, fmt.Sprintf("http://127.0.0.1:%d/", port), "v1")
}

// importInto imports img into namespace ns of env's daemon and unpacks it.
func importInto(t *testing.T, env *testenv.Env, ns string, img imagebuild.Image) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := imagebuild.WriteArchive(&buf, img); err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), ns)
	imgs, err := env.Client.Import(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range imgs {
		image, err := env.Client.GetImage(ctx, i.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := image.Unpack(ctx, env.Snapshotter); err != nil {
			t.Fatal(err)
		}
	}
}
