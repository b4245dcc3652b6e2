package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// The staging benchmark: the latency of the old service while an upgrade
// pulls, unpacks and stages a big image, against its latency when idle.
// The stage ends where the upgrade stops the old task.
const (
	defaultStageSizeMB = 500
	stageIdle          = 5 * time.Second
	stagePort          = basePort + 20
	targetStageP99     = 2.0 // × the idle p99
)

// stageResult is the staging benchmark's outcome.
type stageResult struct {
	SizeMB                  int64
	IdleP99, StageP99       time.Duration
	IdleN, StageN           int
	IdleFailed, StageFailed int
	Stage                   time.Duration // the stage's length
	// The stage in two: the pull and unpack (up to the snapshot's
	// preparation), then the rest (spec, image written out to disk).
	PullP99, RestP99 time.Duration
	Pull             time.Duration
	Errors           []string
}

// Ratio is the stage's p99 over the idle one.
func (r *stageResult) Ratio() float64 { return ratio(r.StageP99, r.IdleP99) }

func (b *bench) benchStage(ctx context.Context) *stageResult {
	res := &stageResult{SizeMB: b.cfg.stageSizeMB}
	if err := b.benchStageRun(ctx, res); err != nil {
		logf("stage: %v", err)
		res.Errors = append(res.Errors, err.Error())
	}
	return res
}

// p99 is the 99th percentile of the latencies of the good responses to
// probes sent in [from, to), and their count.
func p99(oks []ok, from, to time.Time) (time.Duration, int) {
	var lat []time.Duration
	for _, o := range oks {
		if !o.sent.Before(from) && o.sent.Before(to) {
			lat = append(lat, o.at.Sub(o.sent))
		}
	}
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return lat[min(len(lat)-1, len(lat)*99/100)], len(lat)
}

func (b *bench) benchStageRun(ctx context.Context, res *stageResult) error {
	v1, err := b.reg.Push(ctx, "pouchbench/stage:v1", webImage(1, "v1", "stage"))
	if err != nil {
		return err
	}
	v2, err := b.reg.Push(ctx, "pouchbench/stage:v2", webImage(res.SizeMB, "v2", "stage"))
	if err != nil {
		return err
	}
	spec := engine.ContainerSpec{
		Name: "bench-stage", Image: v1, NetworkMode: engine.NetworkBridge, Running: true,
		Ports:       []engine.PortMapping{{HostIP: "127.0.0.1", HostPort: stagePort, ContainerPort: httpdPort}},
		StopTimeout: engine.DefaultStopTimeout,
	}
	if _, err := b.eng.Create(b.ctx, spec); err != nil {
		return err
	}
	defer func() { _ = b.deleteContainers(context.WithoutCancel(b.ctx), []string{spec.Name}) }()
	settle()
	p := startProber(ctx, stagePort)
	if err := p.waitGood("v1", 20, 10*time.Second); err != nil {
		p.stop()
		return err
	}
	idleFrom := time.Now()
	select { // the idle window itself
	case <-time.After(stageIdle):
	case <-ctx.Done():
		p.stop()
		return ctx.Err()
	}
	t0 := time.Now()
	spec.Image = v2
	_, err = b.eng.Update(b.ctx, spec.Name, spec)
	end := time.Now()
	oks := p.stop()
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	stopAt, preparedAt := end, time.Time{}
	for _, m := range b.log.since(t0) {
		if preparedAt.IsZero() && m.msg == "snapshot prepared" {
			preparedAt = m.at
		}
		if m.container == spec.Name && strings.Contains(m.msg, "stopping task") {
			stopAt = m.at
			break
		}
	}
	if !preparedAt.IsZero() {
		res.PullP99, _ = p99(oks, t0, preparedAt)
		res.RestP99, _ = p99(oks, preparedAt, stopAt)
		res.Pull = preparedAt.Sub(t0)
	}
	res.IdleP99, res.IdleN = p99(oks, idleFrom, t0)
	res.StageP99, res.StageN = p99(oks, t0, stopAt)
	res.IdleFailed, res.StageFailed = p.failedIn(idleFrom, t0), p.failedIn(t0, stopAt)
	res.Stage = stopAt.Sub(t0)
	logf("stage of %d MB: %s s; old service p99 %s ms idle (%d probes, %d failed), %s ms during the stage (%d probes, %d failed): "+
		"%s ms in the pull and unpack (%s s), %s ms after", res.SizeMB, secs(res.Stage), ms(res.IdleP99), res.IdleN, res.IdleFailed,
		ms(res.StageP99), res.StageN, res.StageFailed, ms(res.PullP99), secs(res.Pull), ms(res.RestP99))
	return b.dropImage(ctx, v2)
}

// targets are the staging benchmark's rows of the summary.
func (r *stageResult) targets() []target {
	if r.StageN == 0 {
		return []target{{Name: "old service's latency during a stage", Goal: "measured", Measured: "not measured", Skipped: true}}
	}
	return []target{{
		Name: fmt.Sprintf("old service's p99 latency while a %d MB image is staged", r.SizeMB),
		Goal: fmt.Sprintf("≤ %.0f × idle p99, no failed request", targetStageP99),
		Measured: fmt.Sprintf("%.2f× (%s / %s ms), %d of %d failed", r.Ratio(), ms(r.StageP99), ms(r.IdleP99),
			r.StageFailed, r.StageN+r.StageFailed),
		Met: r.Ratio() <= targetStageP99 && r.StageFailed == 0,
	}}
}

// findings explain the target missed.
func (r *stageResult) findings() []string {
	if r.StageN == 0 || r.Ratio() <= targetStageP99 && r.StageFailed == 0 {
		return nil
	}
	return []string{fmt.Sprintf("**Latency during a stage (%.2f×, %d failed).** While the %d MB image was pulled, "+
		"unpacked and written out (%s s), the old service answered its probes with a p99 of %s ms, against %s ms idle: "+
		"%s ms during the pull and unpack (%s s, containerd fetching and decompressing the layer into the snapshotter), "+
		"%s ms after it (the spec, and the image written out to disk). The fetch and the unpack run in containerd and "+
		"compete with the service for the machine's %d CPUs; the engine does not lower containerd's priority, which is "+
		"the host's to set.",
		r.Ratio(), r.StageFailed, r.SizeMB, secs(r.Stage), ms(r.StageP99), ms(r.IdleP99), ms(r.PullP99), secs(r.Pull),
		ms(r.RestP99), runtime.NumCPU())}
}
