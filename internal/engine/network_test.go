package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

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

// A create that fails to attach (the CNI network list it names is
// missing) leaves nothing behind: no mounted network namespace, no log
// directory, no lock file.
func TestFailedAttachLeavesNothing(t *testing.T) {
	env := testenv.Get(t)
	opts := envOptions(env)
	opts.Network.ConfFile = "/nonexistent/pouch.conflist"
	e := mustNew(t, opts)
	env.ImportImage(t, versionImage("noconf", "v1"))
	_, err := e.Create(context.Background(), engine.ContainerSpec{Name: "eng-noconf", Image: "pouchtest/noconf:v1", Running: true})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/pouch.conflist") {
		t.Fatalf("create: %v, want the missing network list named", err)
	}
	assertNothingOf(t, e, env, "eng-noconf")
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

// addressIn is the host address n of subnet (CIDR), "10.88.0.0/16", 50:
// "10.88.0.50".
func addressIn(t *testing.T, subnet string, n int) string {
	t.Helper()
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		t.Fatal(err)
	}
	a := p.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return a.String()
}

// A fixed address is the container's, inside its own namespace, through an
// image upgrade; a new one moves it there in place (same container); one
// that another container holds is refused naming the holder, and one
// outside the subnet naming the subnet, creating nothing.
func TestFixedAddress(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	env.ImportImage(t, versionImage("fixed", "v1"))
	env.ImportImage(t, versionImage("fixed", "v2"))
	first, second := addressIn(t, env.Subnet, 200), addressIn(t, env.Subnet, 201)
	spec := engine.ContainerSpec{Name: "eng-fixed", Image: "pouchtest/fixed:v1", Running: true, IPv4Address: first}
	st := create(t, e, spec)
	inside := func() string {
		return mustExec(t, env, spec.Name, "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1")
	}
	if st.IPAddress != first || inside() != first {
		t.Fatalf("created with ipv4_address %s: state %s, inside %s", first, st.IPAddress, inside())
	}
	spec.Image = "pouchtest/fixed:v2"
	if st, err := e.Update(ctx, spec.Name, spec); err != nil || st.IPAddress != first || inside() != first {
		t.Fatalf("after an upgrade: %v, state %s, inside %s; want %s", err, st.IPAddress, inside(), first)
	}
	spec.Env = map[string]string{"RESTARTED": "1"}
	if st, err := e.Update(ctx, spec.Name, spec); err != nil || st.IPAddress != first || inside() != first {
		t.Fatalf("after a restart in place: %v, state %s, inside %s; want %s", err, st.IPAddress, inside(), first)
	}
	spec.IPv4Address = second
	st, err := e.Update(ctx, spec.Name, spec)
	if err != nil || st.IPAddress != second || inside() != second || st.ID != spec.Name {
		t.Fatalf("moved to %s: %v, state %s, inside %s", second, err, st.IPAddress, inside())
	}

	other := engine.ContainerSpec{Name: "eng-fixed-other", Image: "pouchtest/fixed:v1", Running: true, IPv4Address: second}
	_, err = e.Create(ctx, other)
	if !errors.Is(err, engine.ErrInvalidSpec) || !strings.Contains(err.Error(), "held by container eng-fixed") {
		t.Fatalf("another container on a held address: %v, want a refusal naming eng-fixed", err)
	}
	other.IPv4Address = "192.0.2.10"
	_, err = e.Create(ctx, other)
	if !errors.Is(err, engine.ErrInvalidSpec) || !strings.Contains(err.Error(), env.Subnet) {
		t.Fatalf("an address outside the subnet: %v, want a refusal naming %s", err, env.Subnet)
	}
	if _, err := e.Inspect(ctx, other.Name); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a refused create left a container: %v", err)
	}
	// The freed first address is free again.
	other.IPv4Address = first
	if st := create(t, e, other); st.IPAddress != first {
		t.Fatalf("the freed address: %s, want %s", st.IPAddress, first)
	}
}

// An upgrade that moves a container to a new fixed address and a new
// upload, onto an image that cannot start, rolls back: the old image runs
// again at the old address, with the old file, and the failed update's own
// file is gone from the host.
func TestFixedAddressRollBack(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	env.ImportImage(t, versionImage("fixed-rb", "v1"))
	env.ImportImage(t, imagebuild.Image{Name: "docker.io/pouchtest/fixed-rb:broken", NoBusybox: true,
		Entrypoint: []string{"/bin/missing"}})
	first, second := addressIn(t, env.Subnet, 220), addressIn(t, env.Subnet, 221)
	spec := engine.ContainerSpec{Name: "eng-fixed-rb", Image: "pouchtest/fixed-rb:v1", Running: true, IPv4Address: first,
		Uploads: []engine.Upload{{File: "/etc/app.conf", Content: []byte("old")}}}
	create(t, e, spec)
	next := spec
	next.Image, next.IPv4Address = "pouchtest/fixed-rb:broken", second
	next.Uploads = []engine.Upload{{File: "/etc/app.conf", Content: []byte("new secret")}}
	if _, err := e.Update(ctx, spec.Name, next); !errors.Is(err, engine.ErrRolledBack) {
		t.Fatalf("upgrade to an image that cannot start: %v, want ErrRolledBack", err)
	}
	st, err := e.Inspect(ctx, spec.Name)
	if err != nil || st.IPAddress != first || st.Spec.Image != spec.Image {
		t.Fatalf("after the rollback: %v, address %s, image %s; want %s, %s", err, st.IPAddress, st.Spec.Image, first, spec.Image)
	}
	if got := mustExec(t, env, spec.Name, "sh", "-c", "cat /version; echo; cat /etc/app.conf; echo; "+
		"ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1"); got != "v1\nold\n"+first {
		t.Fatalf("the old container after the rollback: %q", got)
	}
	files, err := os.ReadDir(filepath.Join(env.DataRoot, "containers", env.Namespace, spec.Name, "files"))
	if err != nil || len(files) != 1 {
		t.Fatalf("the container's own files after the rollback: %v (%v), want the old upload only", files, err)
	}
}

// Two engines (two pouch processes) creating containers with the same
// fixed address at once: one gets it, the other is refused, and nothing of
// the refused one is left.
func TestFixedAddressRace(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("fixed-race", "v1"))
	engines := []*engine.Engine{e, mustNew(t, envOptions(env))}
	ip := addressIn(t, env.Subnet, 230)
	errs := make([]error, len(engines))
	var wg sync.WaitGroup
	for i, eng := range engines {
		wg.Go(func() {
			_, errs[i] = eng.Create(context.Background(), engine.ContainerSpec{Name: fmt.Sprintf("eng-fixed-race-%d", i),
				Image: "pouchtest/fixed-race:v1", Running: true, IPv4Address: ip})
		})
	}
	wg.Wait()
	var won []string
	for i, err := range errs {
		name := fmt.Sprintf("eng-fixed-race-%d", i)
		if err == nil {
			won = append(won, name)
			t.Cleanup(func() { _ = e.Delete(context.Background(), name) })
			continue
		}
		if !errors.Is(err, engine.ErrInvalidSpec) || !strings.Contains(err.Error(), ip) {
			t.Errorf("%s: %v, want a refusal naming %s", name, err, ip)
		}
		if _, err := e.Inspect(context.Background(), name); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("the refused %s is left: %v", name, err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d containers got %s, want exactly one: %v", len(won), ip, errs)
	}
	if st, err := e.Inspect(context.Background(), won[0]); err != nil || st.IPAddress != ip {
		t.Fatalf("%s: %v, address %s, want %s", won[0], err, st.IPAddress, ip)
	}
}
