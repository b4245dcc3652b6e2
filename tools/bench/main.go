// Command bench measures pouch against its performance targets and writes
// BENCHMARKS.md (with the chart tools/bench/results/downtime.png):
//
//  1. the downtime of an image upgrade of a container serving HTTP, for four
//     strategies side by side (the restart floor, pouch's in-place upgrade,
//     the same upgrade in Pouch's order, a Terraform-style replacement), at
//     several image sizes;
//  2. `terraform plan` of many pouch_container resources against the same
//     plan of terraform_data resources, and the provider's peak RSS;
//  3. many containers upgraded by one `terraform apply -parallelism=10`;
//  4. many containers upgraded by one apply to an image not pulled yet,
//     against one pulled beforehand plus that pull;
//  5. a remote host over SSH with 50 ms of round trip against the local
//     one: upgrade downtime, plan, agent upload.
//
// It needs root, a containerd at -address (tools/containerd.sh) and
// terraform (tools/setup.sh); `make bench` does the set-up and runs it from
// the repository root. Everything it creates lives in its own containerd
// namespace (-namespace) and a temporary directory, and is removed at the
// end (and at the start, if a previous run was interrupted).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/containerlog"
	"github.com/pouch/terraform-provider-pouch/internal/remote"
)

// config is what the flags set.
type config struct {
	address    string
	namespace  string
	terraform  string
	quick      bool
	runs       int
	sizesMB    []int64
	planCount  int
	planRuns   int
	upCount    int
	upParallel int
	upRuns     int
	// remotePlanCount is the containers of the remote plan benchmark.
	remotePlanCount int
	// pullCount and pullSizeMB are the shared-pull benchmark's containers
	// and image size.
	pullCount  int
	pullSizeMB int64
	// stageSizeMB is the image of the staging benchmark.
	stageSizeMB int64
	parts       map[string]bool
	out         string
	chart       string
	keepTmp     bool
	cmdline     string
}

func main() {
	// The engine installs this binary as the containers' log driver, and
	// the remote benchmark uploads it to the "host" as the agent.
	containerlog.ServeIfLogger()
	remote.ServeIfAgent("bench")
	var (
		cfg              config
		sizes, parts     string
		runs, planCount  int
		upCount, upRuns  int
		planRuns         int
		remotePlanCount  int
		pullCount        int
		pullSizeMB       int64
		stageSizeMB      int64
		out, chart       string
		defaultOut       = "BENCHMARKS.md"
		defaultChart     = "tools/bench/results/downtime.png"
		quickOut         = "tools/bench/results/quick/BENCHMARKS.md"
		quickChart       = "tools/bench/results/quick/downtime.png"
		defaultSizes     = "1,100,500"
		defaultRuns      = 5
		defaultPlanCount = 200
		defaultUpCount   = 50
	)
	flag.StringVar(&cfg.address, "address", "/run/containerd/containerd.sock", "containerd socket")
	flag.StringVar(&cfg.namespace, "namespace", "pouch-bench", "containerd namespace of the benchmark (emptied at start and end)")
	flag.StringVar(&cfg.terraform, "terraform", "bin/terraform", "terraform binary")
	flag.BoolVar(&cfg.quick, "quick", os.Getenv("BENCH_QUICK") == "1",
		"quick run: 1 MB only, 2 runs, 20 containers; written to "+quickOut+" (default from BENCH_QUICK=1)")
	flag.StringVar(&sizes, "sizes", "", "image sizes in MB for the downtime benchmark (default "+defaultSizes+"; quick: 1)")
	flag.IntVar(&runs, "runs", 0, "downtime runs per strategy and size (default 5; quick: 2)")
	flag.IntVar(&planCount, "plan-count", 0, "containers in the plan benchmark (default 200; quick: 20)")
	flag.IntVar(&planRuns, "plan-runs", 0, "terraform plan runs per configuration (default 3; quick: 2)")
	flag.IntVar(&upCount, "upgrade-count", 0, "containers upgraded by one apply (default 50; quick: 20)")
	flag.IntVar(&cfg.upParallel, "parallelism", 10, "terraform -parallelism of the parallel upgrade")
	flag.IntVar(&upRuns, "upgrade-runs", 0, "applies per configuration in the parallel benchmark (default 3; quick: 1)")
	flag.IntVar(&remotePlanCount, "remote-plan-count", 0, "containers in the remote plan benchmark (default 50; quick: 10)")
	flag.IntVar(&pullCount, "pull-count", 0, fmt.Sprintf("containers in the shared-pull benchmark (default %d; quick: 10)", pullCount))
	flag.Int64Var(&stageSizeMB, "stage-size-mb", 0, fmt.Sprintf("image size of the staging benchmark (default %d; quick: 20)", defaultStageSizeMB))
	flag.Int64Var(&pullSizeMB, "pull-size-mb", 0, fmt.Sprintf("image size of the shared-pull benchmark (default %d; quick: 5)", pullSizeMB))
	flag.StringVar(&parts, "parts", "downtime,plan,parallel,pull,remote", "benchmarks to run")
	flag.StringVar(&out, "out", "", "report path (default "+defaultOut+"; quick: "+quickOut+")")
	flag.StringVar(&chart, "chart", "", "chart path (default "+defaultChart+"; quick: "+quickChart+")")
	flag.BoolVar(&cfg.keepTmp, "keep", false, "keep the temporary directory (terraform configurations, logs)")
	render := flag.String("render", "", "only write the report and chart again from a results.json of an earlier run")
	flag.Parse()

	pick := func(v, full, quick int) int {
		switch {
		case v > 0:
			return v
		case cfg.quick:
			return quick
		}
		return full
	}
	cfg.runs = pick(runs, defaultRuns, 2)
	cfg.planCount = pick(planCount, defaultPlanCount, 20)
	cfg.planRuns = pick(planRuns, 3, 2)
	cfg.upCount = pick(upCount, defaultUpCount, 20)
	cfg.upRuns = pick(upRuns, 3, 1)
	cfg.remotePlanCount = pick(remotePlanCount, 50, 10)
	cfg.pullCount = pick(pullCount, defaultPullCount, 10)
	cfg.pullSizeMB = int64(pick(int(pullSizeMB), defaultPullSizeMB, 5))
	cfg.stageSizeMB = int64(pick(int(stageSizeMB), defaultStageSizeMB, 20))
	if sizes == "" {
		sizes = defaultSizes
		if cfg.quick {
			sizes = "1"
		}
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n <= 0 {
			fatalf("-sizes: %q is not a positive number of MB", s)
		}
		cfg.sizesMB = append(cfg.sizesMB, n)
	}
	cfg.parts = map[string]bool{}
	for _, p := range strings.Split(parts, ",") {
		switch p = strings.TrimSpace(p); p {
		case "downtime", "plan", "parallel", "pull", "remote":
			cfg.parts[p] = true
		default:
			fatalf("-parts: unknown benchmark %q (downtime, plan, parallel, pull, remote)", p)
		}
	}
	cfg.out, cfg.chart = out, chart
	if cfg.out == "" {
		cfg.out = defaultOut
		if cfg.quick {
			cfg.out = quickOut
		}
	}
	if cfg.chart == "" {
		cfg.chart = defaultChart
		if cfg.quick {
			cfg.chart = quickChart
		}
	}
	cfg.cmdline = strings.TrimSpace("go run ./tools/bench " + strings.Join(os.Args[1:], " "))
	if *render != "" {
		rep, err := loadReport(*render)
		if err != nil {
			fatalf("%v", err)
		}
		if err := rep.write(cfg.out, cfg.chart); err != nil {
			fatalf("%v", err)
		}
		logf("wrote %s and %s from %s", cfg.out, cfg.chart, *render)
		return
	}

	if os.Getuid() != 0 {
		fatalf("running containers needs root: run `sudo make bench`")
	}
	if _, err := os.Stat("go.mod"); err != nil {
		fatalf("run from the repository root (go run ./tools/bench)")
	}
	tf, err := exec.LookPath(cfg.terraform)
	if err != nil {
		fatalf("terraform %q not found: run tools/setup.sh (make bench does)", cfg.terraform)
	}
	if cfg.terraform, err = filepath.Abs(tf); err != nil {
		fatalf("%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fatalf("%v", err)
	}
}

func run(ctx context.Context, cfg config) (retErr error) {
	start := time.Now()
	b, err := newBench(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		// Clean up even when interrupted.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		defer cancel()
		if err := b.close(cctx); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("clean up: %w", err))
		}
	}()
	rep := &report{Config: cfg, Cmdline: cfg.cmdline, Namespace: cfg.namespace, Start: start, Quick: cfg.quick}
	rep.Machine = machineInfo(ctx, b)
	rep.LoadBefore = loadAvg()
	rep.OthersStart = otherActivity(b.containerdPID)

	if err := b.prepare(ctx); err != nil {
		return err
	}
	if cfg.parts["downtime"] {
		logf("== downtime of an image upgrade: sizes %v MB, %d runs per strategy", cfg.sizesMB, cfg.runs)
		rep.Downtime = b.benchDowntime(ctx)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	settle()
	if cfg.parts["plan"] {
		logf("== terraform plan of %d containers", cfg.planCount)
		rep.Plan = b.benchPlan(ctx)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	settle()
	if cfg.parts["parallel"] {
		logf("== %d containers upgraded by one apply -parallelism=%d", cfg.upCount, cfg.upParallel)
		rep.Parallel = b.benchParallel(ctx)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	settle()
	if cfg.parts["pull"] {
		logf("== %d containers upgraded by one apply -parallelism=%d to an image not pulled", cfg.pullCount, cfg.upParallel)
		rep.Pull = b.benchPull(ctx)
		if ctx.Err() == nil {
			settle()
			logf("== the old service's latency while a %d MB image is staged", cfg.stageSizeMB)
			rep.Stage = b.benchStage(ctx)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	settle()
	if cfg.parts["remote"] {
		logf("== a remote host over SSH, %s of round trip, against the local one", remoteRTT)
		rep.Remote = b.benchRemote(ctx)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rep.LoadAfter = loadAvg()
	rep.OthersEnd = otherActivity(b.containerdPID)
	rep.Duration = time.Since(start)
	if err := rep.write(cfg.out, cfg.chart); err != nil {
		return err
	}
	logf("wrote %s and %s in %s", cfg.out, cfg.chart, rep.Duration.Round(time.Second))
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}
