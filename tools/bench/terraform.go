package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/provider"
)

// tfEnv is the environment of every terraform command: the benchmark's CLI
// configuration (dev_overrides to the provider just built), no checkpoint,
// no input, plus extra.
func (b *bench) tfEnv(extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); strings.HasPrefix(k, "TF_") || k == "CHECKPOINT_DISABLE" {
			continue
		}
		env = append(env, e)
	}
	env = append(env, "TF_CLI_CONFIG_FILE="+b.tfrc, "CHECKPOINT_DISABLE=1", "TF_INPUT=0", "TF_IN_AUTOMATION=1")
	return append(env, extra...)
}

// terraform runs terraform in dir and returns its wall time and exit code;
// its output goes to dir/terraform.log.
func (b *bench) terraform(ctx context.Context, dir string, env []string, args ...string) (time.Duration, int, error) {
	d, code, _, err := b.terraformCPU(ctx, dir, env, args...)
	return d, code, err
}

// terraformCPU is terraform, also returning the CPU time terraform used.
func (b *bench) terraformCPU(ctx context.Context, dir string, env []string, args ...string) (time.Duration, int, time.Duration, error) {
	cmd := exec.CommandContext(ctx, b.cfg.terraform, args...)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	f, ferr := os.OpenFile(filepath.Join(dir, "terraform.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if ferr == nil {
		fmt.Fprintf(f, "\n$ terraform %s  (%s)\n%s", strings.Join(args, " "), d, out.String())
		f.Close()
	}
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		return d, -1, 0, err
	}
	if code != 0 && !(code == 2 && contains(args, "-detailed-exitcode")) {
		return d, code, cpu, fmt.Errorf("terraform %s: exit %d:\n%s", args[0], code, tail(out.String(), 1500))
	}
	return d, code, cpu, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// writeContainersConfig writes a configuration of count pouch_container
// resources named prefix-<i>, running `sleep` on var.image.
func (b *bench) writeContainersConfig(dir, prefix string, count int) error {
	provider := fmt.Sprintf("provider \"pouch\" {\n  address   = %q\n  namespace = %q\n  data_root = %q\n}\n",
		b.cfg.address, b.cfg.namespace, b.dataRoot)
	return writeSleepConfig(dir, "pouch", "pouch_container", provider, prefix, count)
}

// writeFloorConfig writes the same configuration for count floor_item
// resources of the control provider.
func (b *bench) writeFloorConfig(dir string, count int) error {
	return writeSleepConfig(dir, "floor", "floor_item", "", "floor", count)
}

// writeSleepConfig writes dir/main.tf: count resources of resourceType from
// pouch/<provider> (configured by providerBlock) named prefix-<i>, with the
// arguments of a container running `sleep` on var.image.
func writeSleepConfig(dir, provider, resourceType, providerBlock, prefix string, count int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tf := fmt.Sprintf(`terraform {
  required_providers {
    %[1]s = {
      source = "pouch/%[1]s"
    }
  }
}

%[2]s
variable "image" {
  type = string
}

resource %[3]q "c" {
  count        = %[4]d
  name         = "%[5]s-${count.index}"
  image        = var.image
  network_mode = "host"
  command      = ["sleep", "3600"]
}
`, provider, providerBlock, resourceType, count, prefix)
	return os.WriteFile(filepath.Join(dir, "main.tf"), []byte(tf), 0o644)
}

// planResult is the plan benchmark's outcome.
type planResult struct {
	Count       int
	Create      time.Duration // the apply that created the containers
	Pouch, Data []time.Duration
	// Floor are the plans of as many floor_item resources: the control
	// provider (tools/bench/floorprovider), same framework, no I/O.
	Floor        []time.Duration
	ReattachPlan []time.Duration // plans against a provider started in debug mode
	RSSKiB       []int64         // that provider's VmHWM after each of those plans
	// CPU time (user + system) of the provider and of terraform during
	// those plans.
	ProviderCPU, TerraformCPU []time.Duration
	Errors                    []string

	// Profile of the refresh, in process: engine.Inspect of every
	// container, one at a time and 10 at a time (wall time), and the
	// containerd calls an Inspect makes, timed one by one (median per call).
	InspectSeq, InspectPar time.Duration
	InspectOne             []time.Duration
	CallOrder              []string
	Calls                  map[string][]time.Duration
}

// CallRow is one containerd call of a refresh and its median.
type CallRow struct{ Call, Median string }

func (r *planResult) CallRows() []CallRow {
	var rows []CallRow
	for _, c := range r.CallOrder {
		rows = append(rows, CallRow{c, ms(summarize(r.Calls[c]).Median)})
	}
	return rows
}

func (r *planResult) InspectOneStats() stats { return summarize(r.InspectOne) }

func (r *planResult) ProviderCPUStats() stats  { return summarize(r.ProviderCPU) }
func (r *planResult) TerraformCPUStats() stats { return summarize(r.TerraformCPU) }

func (r *planResult) PouchStats() stats { return summarize(r.Pouch) }
func (r *planResult) FloorStats() stats { return summarize(r.Floor) }

// FloorRatio is the median floor_item plan over the median terraform_data
// plan: the least any provider on this framework achieves here.
func (r *planResult) FloorRatio() float64 {
	if d := r.DataStats().Median; d > 0 {
		return float64(r.FloorStats().Median) / float64(d)
	}
	return 0
}

// PouchOverFloor is the median pouch_container plan over the median
// floor_item plan.
func (r *planResult) PouchOverFloor() float64 {
	if d := r.FloorStats().Median; d > 0 {
		return float64(r.PouchStats().Median) / float64(d)
	}
	return 0
}
func (r *planResult) DataStats() stats     { return summarize(r.Data) }
func (r *planResult) ReattachStats() stats { return summarize(r.ReattachPlan) }

// PeakRSSMiB is the highest VmHWM seen, in MiB.
func (r *planResult) PeakRSSMiB() float64 {
	var m int64
	for _, v := range r.RSSKiB {
		m = max(m, v)
	}
	return float64(m) / 1024
}

// PluginStart is what Terraform's start of the provider plugin adds to a
// plan: the normal plan's median minus the reattached plan's.
func (r *planResult) PluginStart() time.Duration {
	return r.PouchStats().Median - r.ReattachStats().Median
}

// PluginStartOverBudget tells whether the plugin start alone exceeds the
// plan target's budget above terraform_data.
func (r *planResult) PluginStartOverBudget() bool {
	return float64(r.PluginStart()) > (targetPlanRatio-1)*float64(r.DataStats().Median)
}

// PerContainer is the refresh cost of one container above a terraform_data
// resource, plugin start excluded.
func (r *planResult) PerContainer() time.Duration {
	if r.Count == 0 {
		return 0
	}
	return (r.ReattachStats().Median - r.DataStats().Median) / time.Duration(r.Count)
}

// Ratio is the median pouch plan over the median terraform_data plan.
func (r *planResult) Ratio() float64 {
	d := r.DataStats().Median
	if d == 0 {
		return 0
	}
	return float64(r.PouchStats().Median) / float64(d)
}

func (b *bench) benchPlan(ctx context.Context) *planResult {
	res := &planResult{Count: b.cfg.planCount}
	if err := b.benchPlanRun(ctx, res); err != nil {
		logf("plan: %v", err)
		res.Errors = append(res.Errors, err.Error())
	}
	return res
}

func (b *bench) benchPlanRun(ctx context.Context, res *planResult) error {
	img := sleepImage("v1")
	if _, err := b.importImage(ctx, img); err != nil {
		return err
	}
	pouchDir := filepath.Join(b.tmp, "plan-pouch")
	dataDir := filepath.Join(b.tmp, "plan-data")
	floorDir := filepath.Join(b.tmp, "plan-floor")
	prefix := "bench-plan"
	if err := b.writeContainersConfig(pouchDir, prefix, b.cfg.planCount); err != nil {
		return err
	}
	defer func() {
		ids := make([]string, b.cfg.planCount)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		}
		logf("deleting the %d plan containers", len(ids))
		_ = b.deleteContainers(context.WithoutCancel(b.ctx), ids)
	}()
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	data := fmt.Sprintf("resource \"terraform_data\" \"d\" {\n  count = %d\n  input = \"item-${count.index}\"\n}\n", b.cfg.planCount)
	if err := os.WriteFile(filepath.Join(dataDir, "main.tf"), []byte(data), 0o644); err != nil {
		return err
	}
	if err := b.writeFloorConfig(floorDir, b.cfg.planCount); err != nil {
		return err
	}
	env := b.tfEnv()
	imageVar := "image=" + img.Name

	logf("creating %d containers with terraform apply", b.cfg.planCount)
	d, _, err := b.terraform(ctx, pouchDir, env, "apply", "-auto-approve", "-input=false", "-no-color", "-var", imageVar)
	if err != nil {
		return err
	}
	res.Create = d
	logf("created in %s", d.Round(time.Millisecond))
	if _, _, err := b.terraform(ctx, dataDir, env, "init", "-input=false", "-no-color"); err != nil {
		return err
	}
	if _, _, err := b.terraform(ctx, dataDir, env, "apply", "-auto-approve", "-input=false", "-no-color"); err != nil {
		return err
	}
	if _, _, err := b.terraform(ctx, floorDir, env, "apply", "-auto-approve", "-input=false", "-no-color", "-var", imageVar); err != nil {
		return err
	}
	planArgs := []string{"plan", "-input=false", "-no-color", "-detailed-exitcode", "-var", imageVar}
	for run := 0; run < b.cfg.planRuns; run++ {
		d, code, err := b.terraform(ctx, pouchDir, env, planArgs...)
		if err != nil {
			return err
		}
		if code == 2 {
			return fmt.Errorf("plan of the unchanged containers proposes changes (see %s)", filepath.Join(pouchDir, "terraform.log"))
		}
		res.Pouch = append(res.Pouch, d)
		d2, code, err := b.terraform(ctx, dataDir, env, "plan", "-input=false", "-no-color", "-detailed-exitcode")
		if err != nil {
			return err
		}
		if code == 2 {
			return fmt.Errorf("plan of the unchanged terraform_data proposes changes")
		}
		res.Data = append(res.Data, d2)
		d3, code, err := b.terraform(ctx, floorDir, env, planArgs...)
		if err != nil {
			return err
		}
		if code == 2 {
			return fmt.Errorf("plan of the unchanged floor_item resources proposes changes")
		}
		res.Floor = append(res.Floor, d3)
		logf("plan run %d of %d: pouch_container %s s, terraform_data %s s, floor_item %s s",
			run+1, b.cfg.planCount, secs(d), secs(d2), secs(d3))
	}
	b.profileRefresh(ctx, prefix, res)
	// Peak RSS: a provider process of our own per plan, attached with
	// TF_REATTACH_PROVIDERS, its VmHWM read once the plan is done.
	for run := 0; run < b.cfg.planRuns; run++ {
		d, kib, pcpu, tcpu, err := b.reattachedPlan(ctx, pouchDir, planArgs)
		if err != nil {
			return err
		}
		res.ProviderCPU = append(res.ProviderCPU, pcpu)
		res.TerraformCPU = append(res.TerraformCPU, tcpu)
		res.ReattachPlan = append(res.ReattachPlan, d)
		res.RSSKiB = append(res.RSSKiB, kib)
		logf("reattached plan %d: %s s, provider VmHWM %.1f MiB, CPU provider %s s, terraform %s s",
			run+1, secs(d), float64(kib)/1024, secs(pcpu), secs(tcpu))
	}
	return nil
}

// reattachedPlan starts the provider in debug mode, runs the plan against
// it and returns the plan's wall time and the provider's peak RSS (KiB).
func (b *bench) reattachedPlan(ctx context.Context, dir string, planArgs []string) (_ time.Duration, _ int64, pcpu, tcpu time.Duration, _ error) {
	cmd := exec.CommandContext(ctx, b.provider, "-debug")
	// In debug mode the provider keeps its loggers at trace; give it the
	// levels it sets itself when Terraform starts it (no TF_LOG), so that
	// its CPU time is that of a normal plan.
	cmd.Env = b.tfEnv()
	for name, level := range provider.PluginLogDefaults(func(string) string { return "" }) {
		cmd.Env = append(cmd.Env, name+"="+level)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	logFile, err := os.Create(filepath.Join(dir, "provider-debug.log"))
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	reattach := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		sent := false
		for s.Scan() {
			line := strings.TrimSpace(s.Text())
			if v, ok := strings.CutPrefix(line, "TF_REATTACH_PROVIDERS="); ok && !sent {
				reattach <- strings.Trim(v, "'")
				sent = true
			}
			fmt.Fprintln(logFile, line)
		}
		if !sent {
			close(reattach)
		}
	}()
	var value string
	select {
	case v, ok := <-reattach:
		if !ok {
			return 0, 0, 0, 0, fmt.Errorf("the provider did not print TF_REATTACH_PROVIDERS in debug mode")
		}
		value = v
	case <-time.After(30 * time.Second):
		return 0, 0, 0, 0, fmt.Errorf("the provider did not start in debug mode within 30 s")
	}
	before := procCPU(cmd.Process.Pid)
	d, code, tcpu, err := b.terraformCPU(ctx, dir, b.tfEnv("TF_REATTACH_PROVIDERS="+value), planArgs...)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	if code == 2 {
		return 0, 0, 0, 0, fmt.Errorf("reattached plan proposes changes")
	}
	pcpu = procCPU(cmd.Process.Pid) - before
	kib, err := vmHWM(cmd.Process.Pid)
	return d, kib, pcpu, tcpu, err
}

// vmHWM reads a process's peak resident set size in KiB.
func vmHWM(pid int) (int64, error) {
	v := firstField(fmt.Sprintf("/proc/%d/status", pid), "VmHWM")
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0, fmt.Errorf("no VmHWM for pid %d", pid)
	}
	return strconv.ParseInt(f[0], 10, 64)
}

// parallelResult is the parallel upgrade benchmark's outcome.
type parallelResult struct {
	Count, Parallelism int
	Create             time.Duration
	Many, One          []time.Duration
	// After the last apply: containers, active snapshots and leases in the
	// namespace, and the containers whose snapshot is not among the active
	// ones or that do not run the image asked for.
	Containers, Active, Leases int
	Mismatched                 []string
	Errors                     []string

	// The same upgrades through engine.Update, without Terraform: all
	// containers with Parallelism goroutines, and the single one alone;
	// with the phases of each update from the engine's log.
	EngineMany, EngineOne             []time.Duration
	EnginePhasesMany, EnginePhasesOne map[string][]time.Duration
	EnginePhaseOrder                  []string
	// Fraction of the machine's CPUs busy (any process) during those runs,
	// and the CPU time used (any process).
	EngineManyBusy, EngineOneBusy []float64
	EngineManyCPU, EngineOneCPU   []time.Duration
	CPUs                          int
}

// CPUPerUpgradeAlone is the machine's CPU time for one upgrade run alone
// (median, all processes: containerd, shims, runc, the engine).
func (r *parallelResult) CPUPerUpgradeAlone() time.Duration { return summarize(r.EngineOneCPU).Median }

// CPUPerUpgradeMany is the same among Parallelism concurrent upgrades.
func (r *parallelResult) CPUPerUpgradeMany() time.Duration {
	if r.Count == 0 {
		return 0
	}
	return summarize(r.EngineManyCPU).Median / time.Duration(r.Count)
}

// CPUBound is the least wall time Count upgrades can take on CPUs
// processors at the solo CPU cost, however they overlap.
func (r *parallelResult) CPUBound() time.Duration {
	if r.CPUs == 0 {
		return 0
	}
	return time.Duration(r.Count) * r.CPUPerUpgradeAlone() / time.Duration(r.CPUs)
}

// CPUsNeeded is how many CPUs the upgrades' CPU time alone needs to fit in
// the budget.
func (r *parallelResult) CPUsNeeded() int {
	b := r.Budget()
	if b <= 0 {
		return 0
	}
	need := time.Duration(r.Count) * r.CPUPerUpgradeAlone()
	return int((need + b - 1) / b)
}

// CPUBoundOverBudget tells whether that bound alone exceeds the target.
func (r *parallelResult) CPUBoundOverBudget() bool { return r.CPUBound() > r.Budget() }

func medianFloat(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func (r *parallelResult) ManyBusy() float64 { return 100 * medianFloat(r.EngineManyBusy) }
func (r *parallelResult) OneBusy() float64  { return 100 * medianFloat(r.EngineOneBusy) }

// EngineRow is a phase of the engine-level upgrades: its median alone and
// among the concurrent ones.
type EngineRow struct{ Phase, One, Many string }

func (r *parallelResult) EngineRows() []EngineRow {
	var rows []EngineRow
	for _, p := range r.EnginePhaseOrder {
		rows = append(rows, EngineRow{p, ms(summarize(r.EnginePhasesOne[p]).Median), ms(summarize(r.EnginePhasesMany[p]).Median)})
	}
	return rows
}

func (r *parallelResult) EngineManyStats() stats { return summarize(r.EngineMany) }
func (r *parallelResult) EngineOneStats() stats  { return summarize(r.EngineOne) }

func (r *parallelResult) ManyStats() stats { return summarize(r.Many) }
func (r *parallelResult) OneStats() stats  { return summarize(r.One) }

// Waves is how many rounds of -parallelism upgrades the apply needs.
func (r *parallelResult) Waves() int { return (r.Count + r.Parallelism - 1) / r.Parallelism }

// Budget is the target: 1.2 × waves × one upgrade.
func (r *parallelResult) Budget() time.Duration {
	return time.Duration(1.2 * float64(r.Waves()) * float64(r.OneStats().Median))
}

// Ratio is the apply's median over waves × one upgrade's median.
func (r *parallelResult) Ratio() float64 {
	one := r.OneStats().Median
	if one == 0 {
		return 0
	}
	return float64(r.ManyStats().Median) / (float64(r.Waves()) * float64(one))
}

// Clean says nothing leaked: one active snapshot per container, each
// container's own, and no lease.
func (r *parallelResult) Clean() bool {
	return r.Active == r.Containers && r.Leases == 0 && len(r.Mismatched) == 0
}

func (b *bench) benchParallel(ctx context.Context) *parallelResult {
	res := &parallelResult{Count: b.cfg.upCount, Parallelism: b.cfg.upParallel, CPUs: runtime.NumCPU()}
	if err := b.benchParallelRun(ctx, res); err != nil {
		logf("parallel: %v", err)
		res.Errors = append(res.Errors, err.Error())
	}
	return res
}

func (b *bench) benchParallelRun(ctx context.Context, res *parallelResult) error {
	refs := map[string]string{}
	for _, v := range []string{"v1", "v2"} {
		img := sleepImage(v)
		if _, err := b.importImage(ctx, img); err != nil {
			return err
		}
		refs[v] = img.Name
	}
	manyDir := filepath.Join(b.tmp, "parallel-many")
	oneDir := filepath.Join(b.tmp, "parallel-one")
	if err := b.writeContainersConfig(manyDir, "bench-par", b.cfg.upCount); err != nil {
		return err
	}
	if err := b.writeContainersConfig(oneDir, "bench-one", 1); err != nil {
		return err
	}
	defer func() {
		ids := []string{"bench-one-0"}
		for i := 0; i < b.cfg.upCount; i++ {
			ids = append(ids, fmt.Sprintf("bench-par-%d", i))
		}
		logf("deleting the %d upgrade containers", len(ids))
		_ = b.deleteContainers(context.WithoutCancel(b.ctx), ids)
	}()
	env := b.tfEnv()
	par := fmt.Sprintf("-parallelism=%d", b.cfg.upParallel)
	apply := func(dir, version string) (time.Duration, error) {
		d, _, err := b.terraform(ctx, dir, env, "apply", "-auto-approve", "-input=false", "-no-color", par, "-var", "image="+refs[version])
		return d, err
	}
	logf("creating %d + 1 containers", b.cfg.upCount)
	d, err := apply(manyDir, "v1")
	if err != nil {
		return err
	}
	res.Create = d
	if _, err := apply(oneDir, "v1"); err != nil {
		return err
	}
	version := "v1"
	for run := 0; run < b.cfg.upRuns; run++ {
		version = map[string]string{"v1": "v2", "v2": "v1"}[version]
		d, err := apply(manyDir, version)
		if err != nil {
			return fmt.Errorf("apply of %d upgrades: %w", b.cfg.upCount, err)
		}
		res.Many = append(res.Many, d)
		d1, err := apply(oneDir, version)
		if err != nil {
			return fmt.Errorf("apply of 1 upgrade: %w", err)
		}
		res.One = append(res.One, d1)
		logf("upgrade run %d (-> %s): %d containers %s s, 1 container %s s", run+1, version, b.cfg.upCount, secs(d), secs(d1))
	}
	// Profile: the same upgrades through the engine, without Terraform.
	res.EnginePhasesMany, res.EnginePhasesOne = map[string][]time.Duration{}, map[string][]time.Duration{}
	for run := 0; run < b.cfg.upRuns; run++ {
		version = map[string]string{"v1": "v2", "v2": "v1"}[version]
		cpu := sampleCPU()
		d, err := b.engineUpgrades(ctx, "bench-par", b.cfg.upCount, refs[version], b.cfg.upParallel, res.EnginePhasesMany, &res.EnginePhaseOrder)
		if err != nil {
			return fmt.Errorf("engine upgrades: %w", err)
		}
		res.EngineMany = append(res.EngineMany, d)
		busy, used := cpuSince(cpu)
		res.EngineManyBusy = append(res.EngineManyBusy, busy)
		res.EngineManyCPU = append(res.EngineManyCPU, used)
		cpu = sampleCPU()
		d1, err := b.engineUpgrades(ctx, "bench-one", 1, refs[version], 1, res.EnginePhasesOne, &res.EnginePhaseOrder)
		if err != nil {
			return fmt.Errorf("engine upgrade: %w", err)
		}
		res.EngineOne = append(res.EngineOne, d1)
		busy, used = cpuSince(cpu)
		res.EngineOneBusy = append(res.EngineOneBusy, busy)
		res.EngineOneCPU = append(res.EngineOneCPU, used)
		logf("engine.Update run %d (-> %s): %d containers %s s, 1 container %s s", run+1, version, b.cfg.upCount, secs(d), secs(d1))
	}
	// Nothing leaked: one active snapshot per container, the container's
	// own; no lease; every container on the image asked for.
	cs, err := b.client.Containers(b.ctx)
	if err != nil {
		return err
	}
	res.Containers = len(cs)
	var active map[string]bool
	res.Active, active = b.countSnapshots(b.ctx, snapshots.KindActive, false)
	ls, err := b.leases(b.ctx)
	if err != nil {
		return err
	}
	res.Leases = len(ls)
	for _, c := range cs {
		info, err := c.Info(b.ctx)
		if err != nil {
			return err
		}
		if !active[info.SnapshotKey] {
			res.Mismatched = append(res.Mismatched, info.ID+": snapshot "+info.SnapshotKey+" is not active")
		}
		if info.Image != refs[version] {
			res.Mismatched = append(res.Mismatched, info.ID+": runs "+info.Image+", want "+refs[version])
		}
		if st, err := b.eng.Inspect(b.ctx, info.ID); err != nil || st.Status != "running" {
			res.Mismatched = append(res.Mismatched, fmt.Sprintf("%s: status %s %v", info.ID, st.Status, err))
		}
	}
	logf("after the upgrades: %d containers, %d active snapshots, %d leases, %d problems",
		res.Containers, res.Active, res.Leases, len(res.Mismatched))
	return nil
}

// engineUpgrades updates containers prefix-0 … prefix-(count-1) to image
// with engine.Update, conc at a time, as the provider would (same spec as
// the Terraform configuration), and returns the wall time; each update's
// phases are added to phases.
func (b *bench) engineUpgrades(ctx context.Context, prefix string, count int, image string, conc int,
	phases map[string][]time.Duration, order *[]string) (time.Duration, error) {
	var mu sync.Mutex
	var errs []error
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				spec := engine.ContainerSpec{
					Name: fmt.Sprintf("%s-%d", prefix, i), Image: image, Command: []string{"sleep", "3600"},
					NetworkMode: engine.NetworkHost, Running: true, StopTimeout: engine.DefaultStopTimeout,
				}
				ps, err := b.inPlace(b.ctx, spec)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, p := range ps {
					if !slices.Contains(*order, p.name) {
						*order = append(*order, p.name)
					}
					phases[p.name] = append(phases[p.name], p.d)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < count && ctx.Err() == nil; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// profileRefresh times what a refresh does, without Terraform.
func (b *bench) profileRefresh(ctx context.Context, prefix string, res *planResult) {
	ids := make([]string, res.Count)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	start := time.Now()
	for _, id := range ids {
		t := time.Now()
		if _, err := b.eng.Inspect(b.ctx, id); err != nil {
			res.Errors = append(res.Errors, "inspect: "+err.Error())
			return
		}
		res.InspectOne = append(res.InspectOne, time.Since(t))
	}
	res.InspectSeq = time.Since(start)
	start = time.Now()
	work := make(chan string)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				_, _ = b.eng.Inspect(b.ctx, id)
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	res.InspectPar = time.Since(start)
	res.Calls = map[string][]time.Duration{}
	add := func(name string, t time.Time) {
		if !slices.Contains(res.CallOrder, name) {
			res.CallOrder = append(res.CallOrder, name)
		}
		res.Calls[name] = append(res.Calls[name], time.Since(t))
	}
	for _, id := range ids {
		t := time.Now()
		c, err := b.client.LoadContainer(b.ctx, id)
		if err != nil {
			continue
		}
		add("LoadContainer", t)
		t = time.Now()
		_, _ = c.Info(b.ctx)
		add("container Info", t)
		t = time.Now()
		task, err := c.Task(b.ctx, nil)
		add("container Task", t)
		if err == nil {
			t = time.Now()
			_, _ = task.Status(b.ctx)
			add("task Status", t)
		}
		t = time.Now()
		_, _ = c.Spec(b.ctx)
		add("container Spec", t)
		t = time.Now()
		_, _ = c.Labels(b.ctx)
		add("container Labels", t)
	}
	logf("refresh profile: Inspect %s ms median; %d in %s s one at a time, %s s 10 at a time",
		ms(res.InspectOneStats().Median), res.Count, secs(res.InspectSeq), secs(res.InspectPar))
}

// procCPU is a live process's user + system CPU time.
func procCPU(pid int) time.Duration {
	v, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	_, rest, ok := strings.Cut(string(v), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest) // f[0] is field 3 (state); utime is field 14, stime 15
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
