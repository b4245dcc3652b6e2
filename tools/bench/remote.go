package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/remote"
	"github.com/pouch/terraform-provider-pouch/internal/sshd"
)

// The remote benchmark: the same containerd driven from this machine
// (local) and over SSH through a proxy that adds remoteRTT to every round
// trip (remote), side by side: the downtime of an in-place upgrade, the
// plan of many containers, and what installing the agent costs.
const (
	remoteRTT = 50 * time.Millisecond
	// The published ports of the local and the remote upgrade's containers.
	remoteLocalPort  = basePort + 10
	remoteRemotePort = basePort + 11
	// msgUploaded is the remote client's log line for an upload.
	msgUploaded = "uploaded the agent to the host"
)

// remoteResult is the remote benchmark's outcome.
type remoteResult struct {
	RTT time.Duration // added by the proxy to every round trip
	// Pings are engine.Ping calls of a connected client: a round trip to
	// the agent and from it to containerd.
	Pings []time.Duration
	// FirstConnect is the benchmark's first call over SSH: connect, find
	// the agent missing, upload it, start it.
	FirstConnect time.Duration
	// Connects are the later connections' first calls (connect, start the
	// agent, one ping), the agent already there.
	Connects      []time.Duration
	AgentMiB      float64 // the size of the agent uploaded
	Connections   int     // connections the benchmark's clients made
	BenchUploads  int     // uploads of the benchmark's agent over them
	Local, Remote []time.Duration
	// LocalCall, RemoteCall are the durations of the engine.Update calls.
	LocalCall, RemoteCall []time.Duration

	PlanCount                       int
	PlanLocal, PlanRemote           []time.Duration
	FirstPlanLocal, FirstPlanRemote time.Duration // the first plan each, not in the medians
	ProviderRuns                    int           // terraform runs on the remote host
	ProviderUploads                 int           // uploads of the provider's agent over them
	// PlanConnect is how long the provider took to connect in one more
	// remote plan, from its log.
	PlanConnect time.Duration
	Errors      []string
}

func (r *remoteResult) LocalStats() stats      { return summarize(r.Local) }
func (r *remoteResult) RemoteStats() stats     { return summarize(r.Remote) }
func (r *remoteResult) LocalCallStats() stats  { return summarize(r.LocalCall) }
func (r *remoteResult) RemoteCallStats() stats { return summarize(r.RemoteCall) }
func (r *remoteResult) PlanLocalStats() stats  { return summarize(r.PlanLocal) }
func (r *remoteResult) PlanRemoteStats() stats { return summarize(r.PlanRemote) }
func (r *remoteResult) PingStats() stats       { return summarize(r.Pings) }
func (r *remoteResult) ConnectStats() stats    { return summarize(r.Connects) }

// DowntimeRatio is the remote upgrade's median downtime over the local one's.
func (r *remoteResult) DowntimeRatio() float64 {
	return ratio(r.RemoteStats().Median, r.LocalStats().Median)
}

// PlanRatio is the remote plan's median over the local one's.
func (r *remoteResult) PlanRatio() float64 {
	return ratio(r.PlanRemoteStats().Median, r.PlanLocalStats().Median)
}

// UploadedOnce tells whether the provider's agent was uploaded by its
// first terraform run only, and the benchmark's at most once (not at all
// when the engine of an earlier part installed it as the log driver: the
// same file).
func (r *remoteResult) UploadedOnce() bool { return r.BenchUploads <= 1 && r.ProviderUploads == 1 }

// remoteHost is the benchmark's "remote host": an sshd on loopback behind
// the delay proxy, on this machine's containerd.
type remoteHost struct {
	srv   *sshd.Server
	proxy *delayProxy
	url   string
}

func (b *bench) startRemoteHost() (*remoteHost, error) {
	dir := filepath.Join(b.tmp, "sshd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	srv, err := sshd.Start(sshd.Options{Dir: dir, Name: "bench"})
	if err != nil {
		return nil, fmt.Errorf("sshd (Debian's openssh-server; tools/setup.sh installs it): %w", err)
	}
	proxy, err := startDelayProxy(srv.Addr, remoteRTT/2)
	if err != nil {
		srv.Stop()
		return nil, err
	}
	return &remoteHost{srv: srv, proxy: proxy, url: "ssh://root@" + proxy.Addr()}, nil
}

// close stops the proxy, the sshd and the agents its sessions started.
func (h *remoteHost) close() error {
	err := h.proxy.Close()
	h.srv.Stop()
	if kerr := h.srv.KillStarted(10 * time.Second); kerr != nil && err == nil {
		err = kerr
	}
	return err
}

// countLogger counts the remote client's uploads and connections, and
// passes every line on.
type countLogger struct {
	next engine.Logger
	mu   sync.Mutex
	seen map[string]int
}

func (l *countLogger) Debug(ctx context.Context, msg string, f map[string]any) {
	l.count(msg)
	l.next.Debug(ctx, msg, f)
}

func (l *countLogger) Info(ctx context.Context, msg string, f map[string]any) {
	l.count(msg)
	l.next.Info(ctx, msg, f)
}

func (l *countLogger) count(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]int{}
	}
	l.seen[msg]++
}

func (l *countLogger) n(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[msg]
}

// client is a new engine client of the host (it connects on first use),
// on the benchmark's containerd, namespace, data root and network.
func (h *remoteHost) client(b *bench, log engine.Logger) (*remote.Client, error) {
	o := b.eng.Options()
	o.Logger = log
	return remote.New(remote.Config{
		Host:    h.url,
		SSH:     remote.SSH{PrivateKeyFile: h.srv.ClientKey, HostKey: h.srv.HostKey},
		Engine:  o,
		Version: "bench",
	})
}

// providerBlock configures the provider for the host.
func (h *remoteHost) providerBlock(b *bench) string {
	return fmt.Sprintf(`provider "pouch" {
  host           = %q
  remote_address = %q
  namespace      = %q
  data_root      = %q
  ssh = {
    private_key_file = %q
    host_key         = %q
  }
}
`, h.url, b.cfg.address, b.cfg.namespace, b.dataRoot, h.srv.ClientKey, h.srv.HostKey)
}

func (b *bench) benchRemote(ctx context.Context) *remoteResult {
	res := &remoteResult{RTT: remoteRTT, PlanCount: b.cfg.remotePlanCount}
	h, err := b.startRemoteHost()
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return res
	}
	defer func() {
		if err := h.close(); err != nil {
			res.Errors = append(res.Errors, "clean up the remote host: "+err.Error())
		}
	}()
	logf("remote host: sshd at %s, through a proxy adding %s of round trip at %s", h.srv.Addr, remoteRTT, h.proxy.Addr())
	for _, step := range []func(context.Context, *remoteHost, *remoteResult) error{b.remoteConnect, b.remoteDowntime, b.remotePlan} {
		if ctx.Err() != nil {
			break
		}
		if err := step(ctx, h, res); err != nil {
			logf("remote: %v", err)
			res.Errors = append(res.Errors, err.Error())
		}
		settle()
	}
	return res
}

// remoteConnect times the first connection (the upload) and then round
// trips, and checks that more connections do not upload again.
func (b *bench) remoteConnect(ctx context.Context, h *remoteHost, res *remoteResult) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if fi, err := os.Stat(exe); err == nil {
		res.AgentMiB = float64(fi.Size()) / (1 << 20)
	}
	log := &countLogger{next: b.log}
	for i := range 3 {
		c, err := h.client(b, log)
		if err != nil {
			return err
		}
		start := time.Now()
		err = c.Ping(b.ctx)
		if i == 0 {
			res.FirstConnect = time.Since(start)
		} else if err == nil {
			res.Connects = append(res.Connects, time.Since(start))
		}
		if err == nil && i == 0 {
			for range 20 {
				t := time.Now()
				if err = c.Ping(b.ctx); err != nil {
					break
				}
				res.Pings = append(res.Pings, time.Since(t))
			}
		}
		_ = c.Close()
		if err != nil {
			return fmt.Errorf("connect to the remote host: %w", err)
		}
		res.Connections++
	}
	res.BenchUploads = log.n(msgUploaded)
	logf("remote: first connection %s ms (%.1f MiB agent), later ones %s ms, ping %s ms; %d uploads in %d connections",
		ms(res.FirstConnect), res.AgentMiB, ms(res.ConnectStats().Median), ms(res.PingStats().Median), res.BenchUploads, res.Connections)
	return nil
}

// remoteDowntime upgrades a container through the local engine and another
// through the remote one, alternately, and measures each outage as the
// downtime benchmark does (1 MB images pulled from the registry each time).
func (b *bench) remoteDowntime(ctx context.Context, h *remoteHost, res *remoteResult) error {
	log := &countLogger{next: b.log}
	rc, err := h.client(b, log)
	if err != nil {
		return err
	}
	defer rc.Close()
	engines := map[string]engine.API{"local": b.eng, "remote": rc}
	ports := map[string]int{"local": remoteLocalPort, "remote": remoteRemotePort}
	refs := map[string]map[string]string{}
	var names []string
	defer func() { _ = b.deleteContainers(context.WithoutCancel(b.ctx), names) }()
	specs := map[string]engine.ContainerSpec{}
	for _, where := range []string{"local", "remote"} {
		refs[where] = map[string]string{}
		for _, v := range []string{"v1", "v2"} {
			ref, err := b.reg.Push(ctx, fmt.Sprintf("pouchbench/web-1mb-remote-%s:%s", where, v), webImage(1, v, "remote-"+where))
			if err != nil {
				return err
			}
			refs[where][v] = ref
		}
		spec := engine.ContainerSpec{
			Name:        "bench-remote-" + where,
			Image:       refs[where]["v1"],
			NetworkMode: engine.NetworkBridge,
			Ports:       []engine.PortMapping{{HostIP: "127.0.0.1", HostPort: ports[where], ContainerPort: httpdPort}},
			Running:     true,
			StopTimeout: engine.DefaultStopTimeout,
		}
		names = append(names, spec.Name)
		if _, err := engines[where].Create(b.ctx, spec); err != nil {
			return fmt.Errorf("create %s: %w", spec.Name, err)
		}
		specs[where] = spec
		if err := waitServing(ctx, ports[where], "v1", 10*time.Second); err != nil {
			return fmt.Errorf("%s: %w", spec.Name, err)
		}
	}
	current := map[string]string{"local": "v1", "remote": "v1"}
	order := []string{"local", "remote"}
	for run := 0; run < b.cfg.runs; run++ {
		for k := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			where := order[(k+run)%len(order)]
			from := current[where]
			to := map[string]string{"v1": "v2", "v2": "v1"}[from]
			spec := specs[where]
			spec.Image = refs[where][to]
			if err := b.dropImage(ctx, spec.Image); err != nil {
				return err
			}
			settle()
			down, call, _, err := measure(ctx, ports[where], from, to, func() ([]phase, error) {
				_, err := engines[where].Update(b.ctx, spec.Name, spec)
				return nil, err
			})
			if err != nil {
				return fmt.Errorf("%s upgrade, run %d: %w", where, run+1, err)
			}
			current[where] = to
			if where == "local" {
				res.Local, res.LocalCall = append(res.Local, down), append(res.LocalCall, call)
			} else {
				res.Remote, res.RemoteCall = append(res.Remote, down), append(res.RemoteCall, call)
			}
			logf("remote benchmark, %-6s upgrade run %d: %s -> %s down %s ms (call %s ms)", where, run+1, from, to, ms(down), ms(call))
		}
	}
	return nil
}

// remotePlan plans the same containers with the provider on this machine
// and on the remote host, alternately, and watches the provider's agent
// on the host: uploaded by the first remote run only.
func (b *bench) remotePlan(ctx context.Context, h *remoteHost, res *remoteResult) error {
	img := sleepImage("v1")
	if _, err := b.importImage(ctx, img); err != nil {
		return err
	}
	localDir := filepath.Join(b.tmp, "remote-plan-local")
	remoteDir := filepath.Join(b.tmp, "remote-plan-remote")
	const prefix = "bench-rplan"
	n := b.cfg.remotePlanCount
	if err := b.writeContainersConfig(localDir, prefix, n); err != nil {
		return err
	}
	if err := writeSleepConfig(remoteDir, "pouch", "pouch_container", h.providerBlock(b), prefix, n); err != nil {
		return err
	}
	defer func() {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		}
		_ = b.deleteContainers(context.WithoutCancel(b.ctx), ids)
	}()
	env := b.tfEnv()
	imageVar := "image=" + img.Name
	logf("remote plan: creating %d containers", n)
	if _, _, err := b.terraform(ctx, localDir, env, "apply", "-auto-approve", "-input=false", "-no-color", "-var", imageVar); err != nil {
		return err
	}
	// The same state, planned through the remote host.
	state, err := os.ReadFile(filepath.Join(localDir, "terraform.tfstate"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(remoteDir, "terraform.tfstate"), state, 0o600); err != nil {
		return err
	}
	agent, err := b.providerAgentPath()
	if err != nil {
		return err
	}
	var last agentFile
	planArgs := []string{"plan", "-input=false", "-no-color", "-detailed-exitcode", "-var", imageVar}
	plan := func(where string) (time.Duration, error) {
		dir := localDir
		if where == "remote" {
			dir = remoteDir
		}
		d, code, err := b.terraform(ctx, dir, env, planArgs...)
		if err == nil && code == 2 {
			err = fmt.Errorf("the %s plan of the unchanged containers proposes changes (see %s)", where, filepath.Join(dir, "terraform.log"))
		}
		if err == nil && where == "remote" {
			res.ProviderRuns++
			if now := statAgent(agent); now != last {
				res.ProviderUploads++
				last = now
			}
		}
		return d, err
	}
	if res.FirstPlanLocal, err = plan("local"); err != nil {
		return err
	}
	if res.FirstPlanRemote, err = plan("remote"); err != nil {
		return err
	}
	logf("remote plan: first plans local %s s, remote %s s (uploads the provider's agent)", secs(res.FirstPlanLocal), secs(res.FirstPlanRemote))
	order := []string{"local", "remote"}
	for run := 0; run < b.cfg.planRuns; run++ {
		for k := range order {
			where := order[(k+run)%len(order)]
			d, err := plan(where)
			if err != nil {
				return err
			}
			if where == "local" {
				res.PlanLocal = append(res.PlanLocal, d)
			} else {
				res.PlanRemote = append(res.PlanRemote, d)
			}
			logf("remote plan run %d, %-6s: %s s", run+1, where, secs(d))
		}
	}
	// One more, logged, for the time the provider took to connect.
	if _, _, err := b.terraform(ctx, remoteDir, b.tfEnv("TF_LOG_PROVIDER=debug", "TF_LOG_SDK=off"), planArgs...); err != nil {
		return err
	}
	logged, err := os.ReadFile(filepath.Join(remoteDir, "terraform.log"))
	if err != nil {
		return err
	}
	if m := connectedRE.FindAllSubmatch(logged, -1); len(m) > 0 {
		res.PlanConnect, _ = time.ParseDuration(string(m[len(m)-1][1]))
	}
	logf("remote plan: the provider connected in %s ms", ms(res.PlanConnect))
	return nil
}

// connectedRE finds the remote client's "connected" line in a provider log.
var connectedRE = regexp.MustCompile(`connected to the host:.*?took=([0-9.]+[a-zµ]+)`)

// providerAgentPath is where the provider uploads itself on the host.
func (b *bench) providerAgentPath() (string, error) {
	f, err := os.Open(b.provider)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return filepath.Join(b.dataRoot, "bin", "pouch-"+hex.EncodeToString(h.Sum(nil))[:16]), nil
}

// agentFile identifies a version of the agent's file: a new upload renames
// a new file into place.
type agentFile struct {
	ino   uint64
	mtime time.Time
}

func statAgent(path string) agentFile {
	fi, err := os.Stat(path)
	if err != nil {
		return agentFile{}
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return agentFile{ino: ino, mtime: fi.ModTime()}
}

// remoteTargets are the remote benchmark's rows of the summary.
func (r *remoteResult) targets() []target {
	var out []target
	rtt := fmt.Sprintf("%d ms RTT", r.RTT.Milliseconds())
	if len(r.Local) > 0 && len(r.Remote) > 0 {
		out = append(out, target{
			Name: "remote upgrade downtime vs local, " + rtt, Goal: fmt.Sprintf("≤ %.1f×", targetRemoteDowntimeRatio),
			Measured: fmt.Sprintf("%.2f× (%s / %s ms)", r.DowntimeRatio(), ms(r.RemoteStats().Median), ms(r.LocalStats().Median)),
			Met:      r.DowntimeRatio() <= targetRemoteDowntimeRatio,
		})
	} else {
		out = append(out, target{Name: "remote upgrade downtime", Goal: "measured", Measured: "not measured", Skipped: true})
	}
	if len(r.PlanLocal) > 0 && len(r.PlanRemote) > 0 {
		out = append(out, target{
			Name: fmt.Sprintf("plan of %d remote containers vs local, %s", r.PlanCount, rtt), Goal: fmt.Sprintf("≤ %.1f×", targetRemotePlanRatio),
			Measured: fmt.Sprintf("%.2f× (%s / %s s)", r.PlanRatio(), secs(r.PlanRemoteStats().Median), secs(r.PlanLocalStats().Median)),
			Met:      r.PlanRatio() <= targetRemotePlanRatio,
		})
	}
	if r.Connections > 0 {
		out = append(out, target{
			Name: "agent upload paid once per version per host", Goal: "≤ 1 upload per agent",
			Measured: fmt.Sprintf("benchmark's agent: %d in %d connections; provider's: %d in %d terraform runs",
				r.BenchUploads, r.Connections, r.ProviderUploads, r.ProviderRuns),
			Met: r.UploadedOnce(),
		})
	}
	return out
}

// findings explain the remote targets missed.
func (r *remoteResult) findings() []string {
	var out []string
	if len(r.Local) > 0 && len(r.Remote) > 0 && r.DowntimeRatio() > targetRemoteDowntimeRatio {
		out = append(out, fmt.Sprintf("**Remote upgrade downtime (%.2f×).** %s ms remote against %s ms local; the whole "+
			"engine.Update call took %s ms remote and %s ms local.", r.DowntimeRatio(), ms(r.RemoteStats().Median),
			ms(r.LocalStats().Median), ms(r.RemoteCallStats().Median), ms(r.LocalCallStats().Median)))
	}
	if len(r.PlanLocal) > 0 && len(r.PlanRemote) > 0 && r.PlanRatio() > targetRemotePlanRatio {
		local := r.PlanLocalStats().Median
		extra := r.PlanRemoteStats().Median - local
		margin := time.Duration(float64(local) * (targetRemotePlanRatio - 1))
		out = append(out, fmt.Sprintf("**Remote plan (%.2f×).** %d containers planned in %s s remote against %s s local: "+
			"%s ms more, of which the provider's SSH connection took %s ms (handshake, agent check and start, hello: once "+
			"per terraform run), and the refresh one round trip (%s ms) for all the containers. The target leaves the "+
			"remote plan %s ms more than the local one, less than the connection alone at this round trip. Meeting it "+
			"would take a connection that outlives the terraform run (an SSH master kept on the machine running "+
			"terraform), which a Terraform Cloud run, on a new machine each time, would not have; left as it is.",
			r.PlanRatio(), r.PlanCount, secs(r.PlanRemoteStats().Median), secs(local),
			ms(extra), ms(r.PlanConnect), ms(r.PingStats().Median), ms(margin)))
	}
	if r.Connections > 0 && !r.UploadedOnce() {
		out = append(out, fmt.Sprintf("**Agent uploads.** The benchmark's agent was uploaded %d times in %d connections, "+
			"the provider's %d times in %d terraform runs.", r.BenchUploads, r.Connections, r.ProviderUploads, r.ProviderRuns))
	}
	return out
}
