package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/registry"
)

const snapshotter = engine.DefaultSnapshotter

// The CNI bridge network of the downtime benchmark's containers, apart from
// the provider's default one and the tests'.
const (
	benchBridge = "pouchbench0"
	benchSubnet = "10.231.0.0/24"
)

// bench holds what the benchmarks share: the containerd client (the one
// the engine uses, on the benchmark's namespace), an engine with a
// recording logger, the temporary directory and the provider binary.
type bench struct {
	cfg    config
	client *containerd.Client
	ctx    context.Context // carries the namespace
	eng    *engine.Engine
	log    *recLogger

	tmp      string           // everything on disk
	dataRoot string           // the engine's and the provider's data_root
	reg      *registry.Server // the downtime benchmark pulls from it
	provider string           // the provider binary
	tfrc     string           // the CLI configuration with dev_overrides

	containerdPID int
}

func newBench(ctx context.Context, cfg config) (*bench, error) {
	client, err := containerd.New(cfg.address,
		containerd.WithDefaultNamespace(cfg.namespace),
		containerd.WithDefaultRuntime(engine.DefaultRuntime),
		containerd.WithTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("containerd at %s: %w (start it with tools/containerd.sh)", cfg.address, err)
	}
	tmp, err := os.MkdirTemp("", "pouch-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, client: client, ctx: namespaces.WithNamespace(ctx, cfg.namespace), tmp: tmp,
		dataRoot: filepath.Join(tmp, "data"), log: &recLogger{}}
	if b.eng, err = engine.New(engine.Options{
		Address: cfg.address, Namespace: cfg.namespace, DataRoot: b.dataRoot, Logger: b.log,
		Network: engine.NetworkOptions{Bridge: benchBridge, Subnet: benchSubnet},
	}); err != nil {
		return nil, err
	}
	b.containerdPID = pidOfSocket(cfg.address)
	return b, nil
}

// prepare empties the namespace of what an interrupted run left, builds
// the provider and writes the CLI configuration that points terraform at
// it.
func (b *bench) prepare(ctx context.Context) error {
	if err := b.cleanNamespace(b.ctx, false); err != nil {
		return fmt.Errorf("clean namespace %s: %w", b.cfg.namespace, err)
	}
	if b.cfg.parts["downtime"] || b.cfg.parts["remote"] || b.cfg.parts["pull"] {
		reg, err := registry.Start(filepath.Join(b.tmp, "registry"))
		if err != nil {
			return err
		}
		b.reg = reg
		logf("registry at %s", reg.Addr)
	}
	if !b.cfg.parts["plan"] && !b.cfg.parts["parallel"] && !b.cfg.parts["remote"] && !b.cfg.parts["pull"] {
		return nil
	}
	bin := filepath.Join(b.tmp, "bin")
	b.provider = filepath.Join(bin, "terraform-provider-pouch")
	logf("building the provider and the control provider into %s", bin)
	// The provider is the checkout's main module; the control provider is
	// in this benchmark's module, tools/bench.
	for out, pkg := range map[string]string{b.provider: ".", filepath.Join(bin, "terraform-provider-floor"): "./floorprovider"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		if pkg != "." {
			cmd.Dir = filepath.Join("tools", "bench")
		}
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", pkg, err)
		}
	}
	b.tfrc = filepath.Join(b.tmp, "bench.tfrc")
	rc := fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"pouch/pouch\" = %q\n    \"pouch/floor\" = %q\n  }\n  direct {}\n}\n", bin, bin)
	return os.WriteFile(b.tfrc, []byte(rc), 0o644)
}

// importImage builds img, streams it into containerd and unpacks it, as a
// pull would; it returns the image's manifest digest.
func (b *bench) importImage(ctx context.Context, img imagebuild.Image) (string, error) {
	ctx = namespaces.WithNamespace(ctx, b.cfg.namespace)
	if i, err := b.client.GetImage(ctx, img.Name); err == nil {
		if ok, _ := i.IsUnpacked(ctx, snapshotter); ok {
			return i.Target().Digest.String(), nil
		}
	}
	pr, pw := io.Pipe()
	var dgst string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d, err := imagebuild.WriteArchive(pw, img)
		dgst = d.String()
		pw.CloseWithError(err)
	}()
	imgs, err := b.client.Import(ctx, pr)
	pr.CloseWithError(err)
	wg.Wait()
	if err != nil {
		return "", fmt.Errorf("import %s: %w", img.Name, err)
	}
	for _, i := range imgs {
		if i.Name != img.Name {
			continue
		}
		if i.Target.Digest.String() != dgst {
			return "", fmt.Errorf("%s imported as %s, built as %s", img.Name, i.Target.Digest, dgst)
		}
		image := containerd.NewImage(b.client, i)
		if err := image.Unpack(ctx, snapshotter); err != nil {
			return "", fmt.Errorf("unpack %s: %w", img.Name, err)
		}
		return dgst, nil
	}
	return "", fmt.Errorf("import of %s did not create that image", img.Name)
}

// sleepImage is the small image of the Terraform benchmarks.
func sleepImage(version string) imagebuild.Image {
	return imagebuild.Image{
		Name:  "docker.io/pouchbench/sleep:" + version,
		Cmd:   []string{"sleep", "3600"},
		Files: map[string]string{"/version": version},
	}
}

// webImage is the HTTP image of the downtime benchmark: busybox httpd on
// port httpdPort serving /www/index.html = version, with an incompressible
// layer of sizeMB whose bytes are the image's own (seed and version).
func webImage(sizeMB int64, version, seed string) imagebuild.Image {
	return imagebuild.Image{
		Cmd:      []string{"httpd", "-f", "-p", strconv.Itoa(httpdPort), "-h", "/www"},
		Files:    map[string]string{"/www/index.html": version, "/version": version},
		PadBytes: sizeMB << 20,
		PadSeed:  seed + "/" + version,
	}
}

// httpdPort is the port httpd listens on in the web image.
const httpdPort = 80

// close removes everything the benchmark created.
func (b *bench) close(ctx context.Context) error {
	ctx = namespaces.WithNamespace(ctx, b.cfg.namespace)
	logf("cleaning up namespace %s and %s", b.cfg.namespace, b.tmp)
	err := b.cleanNamespace(ctx, true)
	_ = b.eng.Close()
	_ = b.client.Close()
	if b.reg != nil {
		b.reg.Stop()
	}
	// Deleting the containers released their addresses and removed their
	// network namespaces; the bridge itself stays until removed.
	if link, lerr := netlink.LinkByName(benchBridge); lerr == nil {
		if derr := netlink.LinkDel(link); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete bridge %s: %w", benchBridge, derr))
		}
	}
	if b.cfg.keepTmp {
		logf("kept %s", b.tmp)
		return err
	}
	return errors.Join(err, os.RemoveAll(b.tmp))
}

// cleanNamespace deletes the namespace's containers (through the engine,
// which also removes their tasks, snapshots and files), images, leases and
// content; with removeNS, the namespace too.
func (b *bench) cleanNamespace(ctx context.Context, removeNS bool) error {
	ctx = namespaces.WithNamespace(ctx, b.cfg.namespace)
	cs, err := b.client.Containers(ctx)
	if err != nil {
		return err
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID()
	}
	var errs []error
	if len(ids) > 0 {
		logf("deleting %d containers", len(ids))
		errs = append(errs, b.deleteContainers(ctx, ids))
	}
	// Containers not made by the engine (or that it failed to delete).
	cs, _ = b.client.Containers(ctx)
	for _, c := range cs {
		if t, err := c.Task(ctx, nil); err == nil {
			_ = t.Kill(ctx, syscall.SIGKILL)
			_, _ = t.Delete(ctx, containerd.WithProcessKill)
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	ls, _ := b.client.LeasesService().List(ctx)
	for _, l := range ls {
		_ = b.client.LeasesService().Delete(ctx, l)
	}
	imgs, err := b.client.ImageService().List(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for i, img := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			opts = append(opts, images.SynchronousDelete()) // one garbage collection at the end
		}
		if err := b.client.ImageService().Delete(ctx, img.Name, opts...); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if !removeNS {
		return errors.Join(errs...)
	}
	// Garbage collection may lag behind; the namespace can only go once
	// it is empty.
	var nerr error
	for range 20 {
		if nerr = b.client.NamespaceService().Delete(ctx, b.cfg.namespace); nerr == nil || errdefs.IsNotFound(nerr) {
			nerr = nil
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if nerr != nil {
		errs = append(errs, fmt.Errorf("delete namespace %s: %w (left: %s)", b.cfg.namespace, nerr, b.leftovers(ctx)))
	}
	return errors.Join(errs...)
}

// deleteContainers deletes containers through the engine, four at a time.
func (b *bench) deleteContainers(ctx context.Context, ids []string) error {
	var mu sync.Mutex
	var errs []error
	work := make(chan string)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if err := b.eng.Delete(ctx, id); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

// leftovers describes what is still in the namespace.
func (b *bench) leftovers(ctx context.Context) string {
	var parts []string
	if cs, err := b.client.Containers(ctx); err == nil && len(cs) > 0 {
		parts = append(parts, fmt.Sprintf("%d containers", len(cs)))
	}
	if n, _ := b.countSnapshots(ctx, 0, true); n > 0 {
		parts = append(parts, fmt.Sprintf("%d snapshots", n))
	}
	if ls, err := b.client.LeasesService().List(ctx); err == nil && len(ls) > 0 {
		parts = append(parts, fmt.Sprintf("%d leases", len(ls)))
	}
	n := 0
	_ = b.client.ContentStore().Walk(ctx, func(_ content.Info) error { n++; return nil })
	if n > 0 {
		parts = append(parts, fmt.Sprintf("%d blobs", n))
	}
	return strings.Join(parts, ", ")
}

// countSnapshots counts the namespace's snapshots of a kind (or all).
func (b *bench) countSnapshots(ctx context.Context, kind snapshots.Kind, all bool) (int, map[string]bool) {
	keys := map[string]bool{}
	_ = b.client.SnapshotService(snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if all || info.Kind == kind {
			keys[info.Name] = true
		}
		return nil
	})
	return len(keys), keys
}

func (b *bench) leases(ctx context.Context) ([]leases.Lease, error) {
	return b.client.LeasesService().List(ctx)
}
