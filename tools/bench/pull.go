package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

// The shared-pull benchmark: many containers upgraded by one terraform
// apply at -parallelism to an image not yet on the host, against the same
// apply to an image pulled beforehand plus the time of that pull alone.
// The engine pulls each image once for all the upgrades that need it.
const (
	defaultPullCount  = 20
	defaultPullSizeMB = 20
	targetPullRatio   = 1.2
)

// pullResult is the shared-pull benchmark's outcome.
type pullResult struct {
	Count, Parallelism int
	SizeMB             int64
	// NotPulled are the applies to an image not on the host; PrePulled to
	// one pulled just before, in OnePull.
	NotPulled, PrePulled, OnePull []time.Duration
	Errors                        []string
}

func (r *pullResult) NotPulledStats() stats { return summarize(r.NotPulled) }
func (r *pullResult) PrePulledStats() stats { return summarize(r.PrePulled) }
func (r *pullResult) OnePullStats() stats   { return summarize(r.OnePull) }

// Base is the pre-pulled apply plus one pull (medians).
func (r *pullResult) Base() time.Duration {
	return r.PrePulledStats().Median + r.OnePullStats().Median
}

// Ratio is the not-pulled apply over Base.
func (r *pullResult) Ratio() float64 { return ratio(r.NotPulledStats().Median, r.Base()) }

func (b *bench) benchPull(ctx context.Context) *pullResult {
	res := &pullResult{Count: b.cfg.pullCount, Parallelism: b.cfg.upParallel, SizeMB: b.cfg.pullSizeMB}
	if err := b.benchPullRun(ctx, res); err != nil {
		logf("pull: %v", err)
		res.Errors = append(res.Errors, err.Error())
	}
	return res
}

// pullImage is the image of run's apply, "pre" or "new": its own bytes.
func pullImage(sizeMB int64, run int, which string) imagebuild.Image {
	img := sleepImage(fmt.Sprintf("%s-%d", which, run))
	img.PadBytes, img.PadSeed = sizeMB<<20, fmt.Sprintf("pull-%s-%d", which, run)
	return img
}

func (b *bench) benchPullRun(ctx context.Context, res *pullResult) error {
	dir := filepath.Join(b.tmp, "pull")
	if err := b.writeContainersConfig(dir, "bench-pull", res.Count); err != nil {
		return err
	}
	ids := make([]string, res.Count)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-pull-%d", i)
	}
	defer func() {
		logf("deleting the %d shared-pull containers", len(ids))
		_ = b.deleteContainers(context.WithoutCancel(b.ctx), ids)
	}()
	push := func(run int, which string) (string, error) {
		return b.reg.Push(ctx, fmt.Sprintf("pouchbench/pull-%s:%d", which, run), pullImage(res.SizeMB, run, which))
	}
	env := b.tfEnv()
	par := fmt.Sprintf("-parallelism=%d", res.Parallelism)
	apply := func(ref string) (time.Duration, error) {
		d, _, err := b.terraform(ctx, dir, env, "apply", "-auto-approve", "-input=false", "-no-color", par, "-var", "image="+ref)
		return d, err
	}
	first, err := push(0, "first")
	if err != nil {
		return err
	}
	logf("creating %d containers", res.Count)
	if _, err := apply(first); err != nil {
		return err
	}
	var previous []string
	for run := 1; run <= b.cfg.upRuns; run++ {
		pre, err := push(run, "pre")
		if err != nil {
			return err
		}
		fresh, err := push(run, "new")
		if err != nil {
			return err
		}
		settle()
		d, err := b.pullOnce(ctx, pre)
		if err != nil {
			return err
		}
		res.OnePull = append(res.OnePull, d)
		settle()
		dPre, err := apply(pre)
		if err != nil {
			return fmt.Errorf("apply to a pulled image: %w", err)
		}
		res.PrePulled = append(res.PrePulled, dPre)
		settle()
		dNew, err := apply(fresh)
		if err != nil {
			return fmt.Errorf("apply to an image not pulled: %w", err)
		}
		res.NotPulled = append(res.NotPulled, dNew)
		logf("shared pull run %d: one pull %s s; %d upgrades to it then %s s; to an image not pulled %s s",
			run, secs(d), res.Count, secs(dPre), secs(dNew))
		for _, ref := range previous {
			if err := b.dropImage(ctx, ref); err != nil {
				return err
			}
		}
		previous = []string{pre}
	}
	return nil
}

// pullOnce pulls and unpacks ref as the engine does, and times it.
func (b *bench) pullOnce(ctx context.Context, ref string) (time.Duration, error) {
	ctx = namespaces.WithNamespace(ctx, b.cfg.namespace)
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost)),
	})
	start := time.Now()
	if _, err := b.client.Pull(ctx, ref, containerd.WithResolver(resolver), containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(snapshotter)); err != nil {
		return 0, fmt.Errorf("pull %s: %w", ref, err)
	}
	return time.Since(start), nil
}

// targets are the shared-pull benchmark's rows of the summary.
func (r *pullResult) targets() []target {
	if len(r.NotPulled) == 0 {
		return []target{{Name: "upgrades to an image not pulled", Goal: "measured", Measured: "not measured", Skipped: true}}
	}
	return []target{{
		Name: fmt.Sprintf("%d upgrades, -parallelism=%d, to a %d MB image not pulled", r.Count, r.Parallelism, r.SizeMB),
		Goal: fmt.Sprintf("≤ %.1f × (pulled beforehand + one pull)", targetPullRatio),
		Measured: fmt.Sprintf("%.2f× (%s s vs %s + %s s)", r.Ratio(), secs(r.NotPulledStats().Median),
			secs(r.PrePulledStats().Median), secs(r.OnePullStats().Median)),
		Met: r.Ratio() <= targetPullRatio,
	}}
}

// findings explain the target missed.
func (r *pullResult) findings() []string {
	if len(r.NotPulled) == 0 || r.Ratio() <= targetPullRatio {
		return nil
	}
	return []string{fmt.Sprintf("**Upgrades to an image not pulled (%.2f×).** %d upgrades took %s s to a %d MB image "+
		"not on the host, against %s s to one pulled beforehand and %s s for that pull alone.", r.Ratio(), r.Count,
		secs(r.NotPulledStats().Median), r.SizeMB, secs(r.PrePulledStats().Median), secs(r.OnePullStats().Median))}
}
