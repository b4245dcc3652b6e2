package remote

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

func TestMain(m *testing.M) {
	// The SSH tests upload this test binary to their hosts as the agent.
	ServeIfAgent("test")
	os.Exit(testenv.Main(m, "remote"))
}

// engineOptions are the options of an engine on env's daemon.
func engineOptions(env *testenv.Env) engine.Options {
	return engine.Options{Address: env.Address, Namespace: env.Namespace, DataRoot: env.DataRoot,
		Network: engine.NetworkOptions{Bridge: env.Bridge, Subnet: env.Subnet}}
}

// pipeClient is a Client whose agent runs in this process, on a pipe: the
// protocol without SSH. dials counts the connections it made; drop closes
// the current one, as a dropped SSH connection would.
type pipeClient struct {
	*Client
	dials atomic.Int32
	mu    sync.Mutex
	pipe  net.Conn
}

func newPipeClient(t *testing.T, env *testenv.Env, log engine.Logger) *pipeClient {
	t.Helper()
	opts := engineOptions(env)
	opts.Logger = log
	c, err := New(Config{Host: "ssh://root@in-process:22", Engine: opts, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeClient{Client: c}
	c.dialer = func(ctx context.Context) (*connection, error) {
		p.dials.Add(1)
		agentEnd, providerEnd := net.Pipe()
		go serveAgent("test", agentEnd)
		p.mu.Lock()
		p.pipe = providerEnd
		p.mu.Unlock()
		conn := c.newConnection(providerEnd, &tailBuffer{max: 256}, agentEnd.Close)
		if err := c.hello(ctx, conn, "in-process"); err != nil {
			return nil, err
		}
		return conn, nil
	}
	t.Cleanup(func() { _ = c.Close() })
	return p
}

func (p *pipeClient) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pipe.Close()
}

func image(repo, version string, extra ...string) imagebuild.Image {
	return imagebuild.Image{
		Name:  "docker.io/pouchtest/" + repo + ":" + version,
		Cmd:   append([]string{"sleep", "3600"}, extra...),
		Files: map[string]string{"/version": version},
	}
}

// The engine's API through the protocol: what a call returns is what the
// engine on the host made, secrets reach the task, and the engine's errors
// keep their kinds.
func TestProtocolCarriesTheEngine(t *testing.T) {
	env := testenv.Get(t)
	env.ImportImage(t, image("rpc", "v1"))
	env.ImportImage(t, image("rpc", "v2"))
	env.ImportImage(t, imagebuild.Image{Name: "docker.io/pouchtest/rpc:broken", NoBusybox: true, Entrypoint: []string{"/missing"}})
	c := newPipeClient(t, env, nil)
	ctx := context.Background()

	spec := engine.ContainerSpec{Name: "rpc-web", Image: "pouchtest/rpc:v1", Running: true, NetworkMode: engine.NetworkNone,
		SecretEnv: map[string]string{"TOKEN": "s3cr3t"}, SecretEnvVersion: "1", Env: map[string]string{"PLAIN": "x"}}
	st, err := c.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), spec.Name) })
	if st.ID != spec.Name || !st.Spec.Running || st.Status != engine.StatusRunning || st.ImageDigest == "" {
		t.Fatalf("created: %+v", st)
	}
	if environ, err := env.Exec(t, spec.Name, "cat", "/proc/1/environ"); err != nil || !strings.Contains(environ, "TOKEN=s3cr3t") {
		t.Fatalf("the task's environment %q (%v) lacks the secret", environ, err)
	}
	for _, kv := range st.Process.Env {
		if strings.Contains(kv, "s3cr3t") {
			t.Fatalf("the state carries the secret: %q", kv)
		}
	}
	if got, err := c.Inspect(ctx, spec.Name); err != nil || got.Spec.Image != spec.Image || !got.Spec.Running {
		t.Fatalf("inspect: %+v, %v", got, err)
	}

	if _, err := c.Inspect(ctx, "rpc-missing"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("inspect of a missing container: %v, want ErrNotFound", err)
	}
	bad := spec
	bad.Labels = map[string]string{"io.pouch.x": "y"}
	if _, err := c.Update(ctx, spec.Name, bad); !errors.Is(err, engine.ErrInvalidSpec) || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("update with a reserved label: %v, want ErrInvalidSpec", err)
	}
	broken := spec
	broken.Image = "pouchtest/rpc:broken"
	if _, err := c.Update(ctx, spec.Name, broken); !errors.Is(err, engine.ErrRolledBack) {
		t.Fatalf("upgrade to a broken image: %v, want ErrRolledBack", err)
	}
	spec.Image = "pouchtest/rpc:v2"
	if st, err = c.Update(ctx, spec.Name, spec); err != nil || st.Spec.Image != spec.Image {
		t.Fatalf("upgrade: %+v, %v", st, err)
	}
	if got, err := env.Exec(t, spec.Name, "cat", "/version"); err != nil || got != "v2" {
		t.Fatalf("/version after the upgrade: %q, %v", got, err)
	}
	if err := c.Delete(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Inspect(ctx, spec.Name); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("inspect after delete: %v", err)
	}
	ref := env.PushImage(t, "pouchtest/rpc-registry:v1", image("rpc", "v1"))
	local, err := engine.New(engineOptions(env))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	want, err := local.RegistryDigest(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.RegistryDigest(ctx, ref); err != nil || got != want {
		t.Fatalf("the registry's digest of %s through the agent: %q, %v; want %q", ref, got, err, want)
	}
	if n := c.dials.Load(); n != 1 {
		t.Fatalf("%d connections for one client, want one, reused", n)
	}
}

// recordLog keeps the log lines it gets, with the value of a context key.
type recordLog struct {
	mu    sync.Mutex
	lines []string
}

type requestKey struct{}

func (l *recordLog) Debug(ctx context.Context, msg string, f map[string]any) { l.add(ctx, msg) }
func (l *recordLog) Info(ctx context.Context, msg string, f map[string]any)  { l.add(ctx, msg) }
func (l *recordLog) add(ctx context.Context, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	req, _ := ctx.Value(requestKey{}).(string)
	l.lines = append(l.lines, req+": "+msg)
}

// The engine's log lines on the host reach the provider's log, with the
// request that caused them.
func TestAgentLogsReachTheRequest(t *testing.T) {
	env := testenv.Get(t)
	env.ImportImage(t, image("rpclog", "v1"))
	log := &recordLog{}
	c := newPipeClient(t, env, log)
	ctx := context.WithValue(context.Background(), requestKey{}, "create-request")
	spec := engine.ContainerSpec{Name: "rpc-log", Image: "pouchtest/rpclog:v1", Running: true, NetworkMode: engine.NetworkNone}
	if _, err := c.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), spec.Name) })
	testenv.Eventually(t, 10*time.Second, "the engine's 'creating container' line reaches the request's log", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		for _, l := range log.lines {
			if l == "create-request: creating container" {
				return true
			}
		}
		return false
	})
}

// A connection that drops in the middle of an upgrade: the agent finishes
// the upgrade on the host by itself; the client connects again, once, and
// makes the call again, which waits for the first (the container's lock)
// and finds nothing left to do.
func TestDroppedConnectionDuringAnUpgrade(t *testing.T) {
	env := testenv.Get(t)
	env.ImportImage(t, image("rpcdrop", "v1"))
	env.ImportImage(t, image("rpcdrop", "v2"))
	c := newPipeClient(t, env, nil)
	ctx := context.Background()
	spec := engine.ContainerSpec{Name: "rpc-drop", Image: "pouchtest/rpcdrop:v1", Running: true, NetworkMode: engine.NetworkNone}
	if _, err := c.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), spec.Name) })
	// The health check's start period keeps the upgrade in Verify long
	// enough to drop the connection under it.
	spec.Image = "pouchtest/rpcdrop:v2"
	spec.Healthcheck = &engine.Healthcheck{Command: []string{"true"}, StartPeriod: 2 * time.Second, Interval: time.Second, Timeout: 5 * time.Second}
	done := make(chan error, 1)
	var st engine.State
	go func() {
		var err error
		st, err = c.Update(ctx, spec.Name, spec)
		done <- err
	}()
	testenv.Eventually(t, 20*time.Second, "the upgrade reaches its Verify phase", func() bool {
		got, err := env.Exec(t, spec.Name, "cat", "/version")
		return err == nil && got == "v2"
	})
	c.drop()
	if err := <-done; err != nil {
		t.Fatalf("the upgrade, made again after the connection dropped: %v", err)
	}
	if st.Spec.Image != spec.Image || st.Status != engine.StatusRunning {
		t.Fatalf("state after the upgrade: %+v", st)
	}
	if n := c.dials.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the first, dropped, and one more)", n)
	}
	if leases := env.Leases(t); len(leases) != 0 {
		t.Fatalf("leases left: %v", leases)
	}
}

// An agent of another protocol version is refused, saying so.
func TestProtocolVersionMismatch(t *testing.T) {
	a := &agent{version: "0.9.0"}
	_, err := a.hello(nil, requestOf(t, methodHello, helloParams{Protocol: ProtocolVersion + 1, Version: "9.9.9"}))
	got := fromRPCError(err)
	if !errors.Is(got, errProtocolVersion) || !strings.Contains(got.Error(), "speaks protocol") {
		t.Fatalf("hello of another protocol version: %v", got)
	}
}
