package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// Strategies of the downtime benchmark, in the order they are reported.
const (
	stFloor   = "floor"
	stInPlace = "inplace"
	stPouch   = "pouchorder"
	stReplace = "replace"
)

var strategyOrder = []string{stFloor, stInPlace, stPouch, stReplace}

var strategyLabels = map[string]string{
	stFloor:   "restart floor (same task, no change)",
	stInPlace: "pouch in-place upgrade (engine.Update)",
	stPouch:   "same upgrade in Pouch's order (stop, then prepare)",
	stReplace: "replacement (engine.Delete + engine.Create)",
}

var strategyShort = map[string]string{
	stFloor:   "restart floor",
	stInPlace: "in-place (pouch)",
	stPouch:   "Pouch's order",
	stReplace: "replacement",
}

// phase is one timed step of a strategy.
type phase struct {
	name string
	d    time.Duration
}

// downtimeResult is the downtime benchmark's outcome.
type downtimeResult struct {
	Sizes []int64
	// Runs[strategy][size] are the measured downtimes.
	Runs map[string]map[int64][]time.Duration
	// Calls[strategy][size] are the durations of the whole strategy call.
	Calls map[string]map[int64][]time.Duration
	// Phases[strategy][size][phase] are the per-run phase durations;
	// PhaseOrder[strategy] lists the phase names in order.
	Phases     map[string]map[int64]map[string][]time.Duration
	PhaseOrder map[string][]string
	ImageBuild map[int64]time.Duration // building and importing v1+v2 of a size
	Errors     []string
}

func (r *downtimeResult) add(st string, size int64, down, call time.Duration, phases []phase) {
	if r.Runs[st] == nil {
		r.Runs[st] = map[int64][]time.Duration{}
		r.Calls[st] = map[int64][]time.Duration{}
		r.Phases[st] = map[int64]map[string][]time.Duration{}
	}
	r.Runs[st][size] = append(r.Runs[st][size], down)
	r.Calls[st][size] = append(r.Calls[st][size], call)
	if r.Phases[st][size] == nil {
		r.Phases[st][size] = map[string][]time.Duration{}
	}
	for _, p := range phases {
		if !slices.Contains(r.PhaseOrder[st], p.name) {
			r.PhaseOrder[st] = append(r.PhaseOrder[st], p.name)
		}
		r.Phases[st][size][p.name] = append(r.Phases[st][size][p.name], p.d)
	}
}

// Stats returns the downtime statistics of a strategy at a size.
func (r *downtimeResult) Stats(st string, size int64) stats { return summarize(r.Runs[st][size]) }

// benchDowntime measures, for each image size, the four strategies side by
// side: one HTTP container per strategy, runs interleaved (the strategy
// order rotates from run to run) so that background load hits all alike.
func (b *bench) benchDowntime(ctx context.Context) *downtimeResult {
	res := &downtimeResult{
		Sizes: b.cfg.sizesMB, Runs: map[string]map[int64][]time.Duration{},
		Calls:  map[string]map[int64][]time.Duration{},
		Phases: map[string]map[int64]map[string][]time.Duration{}, PhaseOrder: map[string][]string{},
		ImageBuild: map[int64]time.Duration{},
	}
	for _, size := range b.cfg.sizesMB {
		if ctx.Err() != nil {
			break
		}
		if err := b.downtimeAtSize(ctx, size, res); err != nil {
			logf("downtime at %d MB: %v", size, err)
			res.Errors = append(res.Errors, fmt.Sprintf("%d MB: %v", size, err))
		}
	}
	return res
}

// The host port published for strategy i's container (on 127.0.0.1).
const basePort = 18480

// downtimeAtSize measures the four strategies at one image size. Each
// strategy's container has images of its own (v1 and v2, pad bytes of their
// own), pushed to the benchmark's registry; before each run the image the
// strategy moves to is removed from containerd, so that every upgrade and
// replacement pulls and unpacks it, as after a new tag is pushed.
func (b *bench) downtimeAtSize(ctx context.Context, size int64, res *downtimeResult) error {
	start := time.Now()
	logf("building the %d MB images and pushing them to the registry", size)
	refs := map[string]map[string]string{}
	for _, st := range strategyOrder {
		refs[st] = map[string]string{}
		versions := []string{"v1", "v2"}
		if st == stFloor {
			versions = versions[:1] // the floor never changes its image
		}
		for _, v := range versions {
			ref, err := b.reg.Push(ctx, fmt.Sprintf("pouchbench/web-%dmb-%s:%s", size, st, v), webImage(size, v, st))
			if err != nil {
				return err
			}
			refs[st][v] = ref
		}
	}
	res.ImageBuild[size] = time.Since(start)
	logf("images pushed in %s", res.ImageBuild[size].Round(time.Second))

	specs := map[string]engine.ContainerSpec{}
	current := map[string]string{}
	defer func() {
		ids := make([]string, 0, len(specs))
		for _, s := range specs {
			ids = append(ids, s.Name)
		}
		_ = b.deleteContainers(context.WithoutCancel(b.ctx), ids)
	}()
	for i, st := range strategyOrder {
		spec := engine.ContainerSpec{
			Name:        fmt.Sprintf("bench-%s-%dmb", st, size),
			Image:       refs[st]["v1"],
			NetworkMode: engine.NetworkBridge,
			Ports:       []engine.PortMapping{{HostIP: "127.0.0.1", HostPort: basePort + i, ContainerPort: httpdPort}},
			Running:     true,
			StopTimeout: engine.DefaultStopTimeout,
		}
		if _, err := b.eng.Create(b.ctx, spec); err != nil {
			return fmt.Errorf("create %s: %w", spec.Name, err)
		}
		specs[st] = spec
		current[st] = "v1"
		if err := waitServing(ctx, basePort+i, "v1", 10*time.Second); err != nil {
			return fmt.Errorf("%s: %w", spec.Name, err)
		}
	}
	for run := 0; run < b.cfg.runs; run++ {
		for k := range strategyOrder {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			st := strategyOrder[(k+run)%len(strategyOrder)]
			port := basePort + slices.Index(strategyOrder, st)
			from := current[st]
			to := map[string]string{"v1": "v2", "v2": "v1"}[from]
			if st == stFloor {
				to = from
			}
			spec := specs[st]
			spec.Image = refs[st][to]
			if st != stFloor {
				if err := b.dropImage(ctx, spec.Image); err != nil {
					return err
				}
			}
			settle()
			down, call, phases, err := measure(ctx, port, from, to, func() ([]phase, error) { return b.strategy(st, spec) })
			if err != nil {
				return fmt.Errorf("%s run %d: %w", st, run+1, err)
			}
			current[st] = to
			res.add(st, size, down, call, phases)
			logf("%4d MB %-10s run %d: %s -> %s down %s ms (call %s ms)", size, st, run+1, from, to, ms(down), ms(call))
		}
	}
	return nil
}

// dropImage removes an image and, through a synchronous garbage collection,
// its blobs and unpacked snapshots, so that the next use pulls it again.
func (b *bench) dropImage(ctx context.Context, ref string) error {
	ctx = namespaces.WithNamespace(ctx, b.cfg.namespace)
	err := b.client.ImageService().Delete(ctx, ref, images.SynchronousDelete())
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	if _, err := b.client.GetImage(ctx, ref); !errdefs.IsNotFound(err) {
		return fmt.Errorf("image %s still present after its removal (%v)", ref, err)
	}
	return nil
}

// strategy runs strategy st on the container of spec.
func (b *bench) strategy(st string, spec engine.ContainerSpec) ([]phase, error) {
	switch st {
	case stFloor:
		return b.restartFloor(b.ctx, spec.Name)
	case stInPlace:
		return b.inPlace(b.ctx, spec)
	case stPouch:
		return b.pouchOrder(b.ctx, spec)
	case stReplace:
		return b.replace(b.ctx, spec)
	}
	return nil, fmt.Errorf("unknown strategy %q", st)
}

// measure runs call (a strategy) under the prober of port and returns the
// downtime, the duration of the call and its phases.
func measure(ctx context.Context, port int, from, to string, call func() ([]phase, error)) (time.Duration, time.Duration, []phase, error) {
	p := startProber(ctx, port)
	if err := p.waitGood(from, 20, 5*time.Second); err != nil {
		p.stop()
		return 0, 0, nil, err
	}
	t0 := time.Now()
	phases, err := call()
	t1 := time.Now()
	if err != nil {
		p.stop()
		return 0, 0, nil, err
	}
	// Wait for a good response to a request sent after the call returned.
	deadline := time.Now().Add(10 * time.Second)
	for !p.servedSince(t1, to) {
		if time.Now().After(deadline) {
			p.stop()
			return 0, 0, nil, fmt.Errorf("no %q served within 10 s of the call", to)
		}
		time.Sleep(5 * time.Millisecond)
	}
	oks := p.stop()
	down, err := downtime(oks, t0, t1, from, to)
	return down, t1.Sub(t0), phases, err
}

// ok is a good response: when its request was sent, when the answer came,
// and the body.
type ok struct {
	sent, at time.Time
	body     string
}

type prober struct {
	mu     sync.Mutex
	oks    []ok
	fails  []time.Time // when the probes that failed were sent
	cancel context.CancelFunc
	done   chan struct{}
}

// probeEvery is the pause between two probes; probeTimeout bounds each.
const (
	probeEvery   = 2 * time.Millisecond
	probeTimeout = 200 * time.Millisecond
)

// startProber GETs http://127.0.0.1:port/ every probeEvery on a new
// connection each time, recording the good responses.
func startProber(ctx context.Context, port int) *prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &prober{cancel: cancel, done: make(chan struct{})}
	client := &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			sent := time.Now()
			body, err := get(ctx, client, url)
			p.mu.Lock()
			switch {
			case err == nil:
				p.oks = append(p.oks, ok{sent: sent, at: time.Now(), body: body})
			case ctx.Err() == nil:
				p.fails = append(p.fails, sent)
			}
			p.mu.Unlock()
			time.Sleep(probeEvery)
		}
	}()
	return p
}

func get(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(body), nil
}

// waitGood waits until the prober has recorded n good responses of body: a
// baseline before the change.
func (p *prober) waitGood(body string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		good := 0
		for _, o := range p.oks {
			if o.body == body {
				good++
			}
		}
		p.mu.Unlock()
		if good >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d good responses of %q within %s, want %d", good, body, timeout, n)
		}
		time.Sleep(probeEvery)
	}
}

// servedSince tells whether body was served to a request sent after t.
func (p *prober) servedSince(t time.Time, body string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.oks) - 1; i >= 0 && p.oks[i].sent.After(t); i-- {
		if p.oks[i].body == body {
			return true
		}
	}
	return false
}

// failedIn counts the probes sent in [from, to) that failed.
func (p *prober) failedIn(from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.fails {
		if !f.Before(from) && f.Before(to) {
			n++
		}
	}
	return n
}

func (p *prober) stop() []ok {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.oks
}

// downtime is the longest interval between two consecutive good responses
// from the start of the change (t0) to the first good response of the new
// version to a request sent after the change returned (t1): the last good
// response before the outage to the first good one after it. The response
// that ends the outage must already serve the new version, and the one
// that starts it the old.
func downtime(oks []ok, t0, t1 time.Time, from, to string) (time.Duration, error) {
	end := -1
	for i, o := range oks {
		if o.sent.After(t1) && o.body == to {
			end = i
			break
		}
	}
	if end < 1 {
		return 0, fmt.Errorf("no good response of %q after the change", to)
	}
	var longest time.Duration
	at := -1
	for i := 1; i <= end; i++ {
		if oks[i].at.Before(t0) {
			continue
		}
		if gap := oks[i].at.Sub(oks[i-1].at); gap > longest {
			longest, at = gap, i
		}
	}
	if at < 0 || oks[at-1].at.After(t1) {
		return 0, fmt.Errorf("no outage seen between the change and the first response of %q", to)
	}
	if oks[at].body != to {
		return 0, fmt.Errorf("the first response after the outage served %q, want %q", oks[at].body, to)
	}
	if oks[at-1].body != from {
		return 0, fmt.Errorf("the last response before the outage served %q, want %q", oks[at-1].body, from)
	}
	for _, o := range oks[at:end] {
		if o.body != to {
			return 0, fmt.Errorf("%q served again after the outage", o.body)
		}
	}
	return longest, nil
}

// waitServing waits until port serves body.
func waitServing(ctx context.Context, port int, body string, timeout time.Duration) error {
	client := &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	deadline := time.Now().Add(timeout)
	var got string
	var err error
	for time.Now().Before(deadline) {
		if got, err = get(ctx, client, url); err == nil && got == body {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("port %d does not serve %q after %s (last: %q, %v)", port, body, timeout, got, err)
}

// timer records consecutive phases.
type timer struct {
	last   time.Time
	phases []phase
}

func newTimer() *timer { return &timer{last: time.Now()} }

func (t *timer) mark(name string) {
	now := time.Now()
	t.phases = append(t.phases, phase{name, now.Sub(t.last)})
	t.last = now
}

// restartFloor stops and starts the same task with no change, with the
// client the engine uses: SIGKILL (the engine's signal for a PID 1 that
// does not handle SIGTERM, as busybox httpd does not), wait, delete, then a
// new task with the same log file, started.
func (b *bench) restartFloor(ctx context.Context, id string) ([]phase, error) {
	t := newTimer()
	c, err := b.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := killTask(ctx, c); err != nil {
		return nil, err
	}
	t.mark("stop (kill, wait, delete task)")
	if err := b.startTask(ctx, c); err != nil {
		return nil, err
	}
	t.mark("start (new task, start)")
	return t.phases, nil
}

// killTask is the engine's stopTask for a PID 1 without a SIGTERM handler:
// wait channel, SIGKILL, wait for the exit, delete the exited task.
func killTask(ctx context.Context, c containerd.Container) error {
	task, err := c.Task(ctx, nil)
	if err != nil {
		return fmt.Errorf("load task: %w", err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait for task: %w", err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill task: %w", err)
	}
	<-exited
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task: %w", err)
	}
	return nil
}

// startTask is the engine's startTask: a new task logging to the
// container's log file, started.
func (b *bench) startTask(ctx context.Context, c containerd.Container) error {
	path := filepath.Join(b.dataRoot, "containers", b.cfg.namespace, c.ID(), "container.log")
	task, err := c.NewTask(ctx, cio.LogFile(path))
	if err != nil {
		return fmt.Errorf("create task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
		return fmt.Errorf("start task: %w", err)
	}
	return nil
}

// inPlace is pouch's upgrade; its phases come from the engine's log.
func (b *bench) inPlace(ctx context.Context, spec engine.ContainerSpec) ([]phase, error) {
	t0 := time.Now()
	if _, err := b.eng.Update(ctx, spec.Name, spec); err != nil {
		return nil, err
	}
	return logPhases(b.log.since(t0), t0, time.Now(), spec.Name, spec.Image, "return (inspect)", []logStep{
		{"pulling image", "lock, load (task serving)"},
		{"upgrade: staging new image", "resolve or pull image, journal (task serving)"},
		{"snapshot prepared", "prepare snapshot"},
		{"new image written out", "build spec, compare, write image out (task serving)"},
		{"stopping task", "journal, unsupervise, load task"},
		{"upgrade: swapping container to the new configuration", "kill, wait, delete task"},
		{"upgrade: starting task", "swap (containerd update)"},
		{"task started", "new task, start"},
		{"upgrade: done", "commit (task serving)"},
	}), nil
}

// The phases of a replacement.
const (
	phaseReplaceDelete = "engine.Delete (stop, network teardown)"
	phaseReplacePull   = "engine.Create: pull, unpack, prepare snapshot"
	phaseReplaceStart  = "engine.Create: network, new task, start"
)

// replace is what terraform does for a ForceNew attribute: destroy, then
// create, which pulls the image.
func (b *bench) replace(ctx context.Context, spec engine.ContainerSpec) ([]phase, error) {
	t := newTimer()
	if err := b.eng.Delete(ctx, spec.Name); err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	t.mark(phaseReplaceDelete)
	t1 := time.Now()
	if _, err := b.eng.Create(ctx, spec); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	create := logPhases(b.log.since(t1), t1, time.Now(), spec.Name, spec.Image, phaseReplaceStart, []logStep{
		{"snapshot prepared", phaseReplacePull},
	})
	return append(t.phases, create...), nil
}

// pouchOrder is the same upgrade as the engine's, in Pouch's order: the
// task is stopped first, then the new image is looked up, its snapshot
// prepared and the runtime spec generated (the engine's options), then one
// containerd update swaps image, snapshot and spec, the new task starts,
// and the old snapshot is removed. The engine's journal writes and record
// extension are left out (they happen outside the outage in the engine:
// before the stop, and at commit, except the swap which this update also
// is).
func (b *bench) pouchOrder(ctx context.Context, spec engine.ContainerSpec) ([]phase, error) {
	t := newTimer()
	c, err := b.client.LoadContainer(ctx, spec.Name)
	if err != nil {
		return nil, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	ctx, release, err := b.client.WithLease(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = release(context.WithoutCancel(ctx)) }()
	lease, _ := leases.FromContext(ctx)
	if err := b.client.LeasesService().AddResource(ctx, leases.Lease{ID: lease}, leases.Resource{
		ID: info.SnapshotKey, Type: "snapshots/" + snapshotter}); err != nil {
		return nil, fmt.Errorf("protect old snapshot: %w", err)
	}
	old, err := c.Spec(ctx)
	if err != nil {
		return nil, err
	}
	netns := ""
	if old.Linux != nil {
		for _, ns := range old.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				netns = ns.Path
			}
		}
	}
	t.mark("load, lease (task still serving)")

	// `pouch upgrade` pulls a missing image first, unpacked, as a pull
	// does; the task still serves.
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost)),
	})
	if _, err := b.client.Pull(ctx, spec.Image, containerd.WithResolver(resolver),
		containerd.WithPullUnpack, containerd.WithPullSnapshotter(snapshotter)); err != nil {
		return nil, fmt.Errorf("pull %s: %w", spec.Image, err)
	}
	t.mark("pull, unpack (task still serving)")

	if err := killTask(ctx, c); err != nil {
		return nil, err
	}
	t.mark("stop (kill, wait, delete task)")

	img, err := b.client.GetImage(ctx, spec.Image)
	if err != nil {
		return nil, err
	}
	if ok, err := img.IsUnpacked(ctx, snapshotter); err != nil || !ok {
		return nil, fmt.Errorf("image %s not unpacked: %v", spec.Image, err)
	}
	ispec, err := img.Spec(ctx)
	if err != nil {
		return nil, err
	}
	proc, err := engine.MergeProcess(spec, engine.ImageConfig{
		Entrypoint: ispec.Config.Entrypoint, Cmd: ispec.Config.Cmd, Env: ispec.Config.Env,
		WorkingDir: ispec.Config.WorkingDir, User: ispec.Config.User})
	if err != nil {
		return nil, err
	}
	t.mark("resolve image")

	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s-%d", spec.Name, time.Now().UnixNano())
	if _, err := b.client.SnapshotService(snapshotter).Prepare(ctx, key, identity.ChainID(diffIDs).String()); err != nil {
		return nil, fmt.Errorf("prepare snapshot: %w", err)
	}
	t.mark("prepare snapshot")

	rs, err := oci.GenerateSpec(ctx, b.client,
		&containers.Container{ID: spec.Name, Snapshotter: snapshotter, SnapshotKey: key},
		oci.WithProcessArgs(proc.Args...),
		oci.WithEnv(proc.Env),
		oci.WithProcessCwd(proc.WorkingDir),
		oci.WithHostname(spec.Name),
		oci.WithHostHostsFile,
		oci.WithHostResolvconf,
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netns}),
		oci.WithNoNewPrivileges,
		seccomp.WithDefaultProfile(),
	)
	if err != nil {
		return nil, fmt.Errorf("build runtime spec: %w", err)
	}
	t.mark("build spec")

	err = c.Update(ctx, func(_ context.Context, _ *containerd.Client, rec *containers.Container) error {
		anySpec, err := typeurl.MarshalAny(rs)
		if err != nil {
			return err
		}
		rec.Image, rec.SnapshotKey, rec.Spec = img.Name(), key, anySpec
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("swap: %w", err)
	}
	t.mark("swap (containerd update)")

	if err := b.startTask(ctx, c); err != nil {
		return nil, err
	}
	t.mark("new task, start")

	if err := b.client.SnapshotService(snapshotter).Remove(ctx, info.SnapshotKey); err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("remove old snapshot: %w", err)
	}
	t.mark("commit (task serving)")
	return t.phases, nil
}

// logStep maps an engine log message to the name of the phase that ends
// with it.
type logStep struct{ msg, phase string }

// logPhases turns the engine's log messages about container id (or its
// snapshots, or the image ref it pulls), from t0 to t1, into phases: each
// step's phase lasts from the previous step's message (or t0) to its own;
// the rest up to t1 is the phase named tail.
func logPhases(msgs []logMsg, t0, t1 time.Time, id, ref, tail string, steps []logStep) []phase {
	var out []phase
	last := t0
	i := 0
	for _, s := range steps {
		for j := i; j < len(msgs); j++ {
			m := msgs[j]
			mine := m.container == id || strings.HasPrefix(m.container, "snapshot:"+id+"-") || m.container == "image:"+ref
			if m.msg == s.msg && mine && !m.at.After(t1) {
				out = append(out, phase{s.phase, m.at.Sub(last)})
				last, i = m.at, j+1
				break
			}
		}
	}
	if d := t1.Sub(last); d > 0 {
		out = append(out, phase{tail, d})
	}
	return out
}
