// Package remote runs the engine on a containerd host that Terraform does
// not run on: a Terraform Cloud run, a CI runner or a laptop drives the
// host over SSH. The provider's own binary serves as the agent on the
// host: the provider uploads it (once per version), starts it over an SSH
// session and calls the engine's API through it, as JSON-RPC 2.0 on the
// session's standard input and output (a versioned protocol: protocol.go).
// Every containerd call, every host operation and the whole
// stop-swap-start window of an upgrade happen on the host; the journal and
// the container locks stay there, and an upgrade whose connection dies
// finishes or rolls back on the host by itself.
package remote

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"golang.org/x/crypto/ssh"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// Config is how to reach a host and run the engine there.
type Config struct {
	// Host is the host's SSH URL, "ssh://user@host:port".
	Host string
	SSH  SSH
	// AgentPath is an agent installed on the host by hand; empty uploads
	// this binary (which needs the host's system to be this one's).
	AgentPath string
	// Engine are the options of the engine on the host (Address is its
	// containerd socket there). Host and LogDriver are the agent's own.
	Engine engine.Options
	// Version is the provider's, which the agent is told.
	Version string
}

// Client is the engine of a remote host: an engine.API. It connects on
// first use and keeps one connection (an SSH client, one agent) for all
// the calls of a provider configuration; a connection that drops is
// dialled again once.
type Client struct {
	cfg    Config
	target Target
	log    engine.Logger
	// dialer makes a connection: dial, over SSH; tests give a pipe.
	dialer func(context.Context) (*connection, error)

	mu    sync.Mutex
	conn  *connection
	opts  engine.Options // in effect on the host, once connected
	calls sync.Map       // call name -> context, for the agent's log lines
	seq   atomic.Uint64
	snaps snapshots // the host's containers, read in one call (snapshot.go)
}

var _ engine.API = (*Client)(nil)

// New returns a client for cfg. It does no I/O.
func New(cfg Config) (*Client, error) {
	t, err := ParseHost(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("host %w", err)
	}
	if cfg.SSH.KeepAlive <= 0 {
		cfg.SSH.KeepAlive = 15 * time.Second
	}
	log := cfg.Engine.Logger
	if log == nil {
		log = discard{}
	}
	opts := cfg.Engine
	if opts.DataRoot == "" {
		opts.DataRoot = engine.DefaultDataRoot
	}
	if err := engine.CheckDataRoot(opts.DataRoot); err != nil {
		return nil, fmt.Errorf("data_root %w", err)
	}
	cfg.Engine = opts
	c := &Client{cfg: cfg, target: t, log: log, opts: opts}
	c.dialer = c.dial
	return c, nil
}

type discard struct{}

func (discard) Debug(context.Context, string, map[string]any) {}
func (discard) Info(context.Context, string, map[string]any)  {}

// connection is one agent, and what carries the calls to it (an SSH
// client and session).
type connection struct {
	rpc     *jsonrpc2.Conn
	stderr  *tailBuffer
	done    chan struct{}
	closers []func() error
}

func (c *connection) close() {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	c.rpc.Close()
	for _, f := range c.closers {
		_ = f()
	}
}

// lost reports whether the connection is gone.
func (c *connection) lost() bool {
	select {
	case <-c.rpc.DisconnectNotify():
		return true
	default:
		return false
	}
}

// connected returns the live connection, dialling one when there is none.
func (c *Client) connected(ctx context.Context) (*connection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && !c.conn.lost() {
		return c.conn, nil
	}
	if c.conn != nil {
		c.conn.close()
		c.conn = nil
	}
	conn, err := c.dialer(ctx)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	return conn, nil
}

// dial connects to the host, installs the agent if need be, starts it and
// says hello.
func (c *Client) dial(ctx context.Context) (*connection, error) {
	start := time.Now()
	client, err := dial(ctx, c.target, c.cfg.SSH)
	if err != nil {
		return nil, err
	}
	conn, agent, err := c.launch(ctx, client)
	if err != nil {
		client.Close()
		return nil, err
	}
	c.log.Debug(ctx, "connected to the host", map[string]any{"host": c.cfg.Host, "agent": agent, "took": time.Since(start).String()})
	return conn, nil
}

// launch starts the agent, uploading it first if the host does not have
// this version.
func (c *Client) launch(ctx context.Context, client *ssh.Client) (*connection, string, error) {
	agent, sum, err := agentFile(c.cfg.Engine.DataRoot, c.cfg.AgentPath)
	if err != nil {
		return nil, "", fmt.Errorf("host %s: %w", c.cfg.Host, err)
	}
	for attempt := 0; ; attempt++ {
		conn, missing, err := c.startAgent(ctx, client, agent, sum)
		switch {
		case err != nil:
			return nil, agent, err
		case conn != nil:
			return conn, agent, nil
		case c.cfg.AgentPath != "":
			return nil, agent, fmt.Errorf("host %s: agent_path %s is not an executable on the host: install the provider's "+
				"binary for the host's system there (the release's zip), or leave agent_path out when the host runs %s",
				c.cfg.Host, agent, localPlatform)
		}
		f := strings.Fields(missing)
		if len(f) != 4 {
			return nil, agent, fmt.Errorf("host %s: the launch of the agent answered %q", c.cfg.Host, missing)
		}
		if attempt > 0 {
			return nil, agent, fmt.Errorf("host %s: %w", c.cfg.Host, launchFailed(agent, sum, f[3]))
		}
		if err := uploadAgent(client, parsePlatform(f[1], f[2]), agent, sum); err != nil {
			return nil, agent, fmt.Errorf("host %s: %w", c.cfg.Host, err)
		}
		c.log.Info(ctx, "uploaded the agent to the host", map[string]any{"host": c.cfg.Host, "agent": agent})
	}
}

// startAgent runs the launch script in a session: the connection to the
// agent, or, when it cannot start, the line that says what is missing.
// The hello goes out with the script, not after its first line: a round
// trip less (the script reads no input; the agent finds the hello waiting).
func (c *Client) startAgent(ctx context.Context, client *ssh.Client, agent, sum string) (_ *connection, missing string, _ error) {
	s, err := client.NewSession()
	if err != nil {
		return nil, "", fmt.Errorf("open an SSH session on %s: %w", c.cfg.Host, err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	stderr := &tailBuffer{max: 4096}
	s.Stderr = stderr
	if err := s.Start(launchScript(agent, sum)); err != nil {
		s.Close()
		return nil, "", fmt.Errorf("start the agent %s on %s: %w", agent, c.cfg.Host, err)
	}
	out := newLaunchReader(stdout)
	// Until the agent answers, closing the connection closes the session
	// only: the SSH client may be needed to upload the agent.
	conn := c.newConnection(sessionStream{out, stdin}, stderr, s.Close)
	herr := c.hello(ctx, conn, agent)
	if herr == nil {
		conn.closers = append(conn.closers, client.Close)
		go keepAlive(client, c.cfg.SSH.KeepAlive, conn.done)
		return conn, "", nil
	}
	conn.close()
	line, ok := out.first(ctx)
	switch {
	case !ok || line == launchAgent:
		return nil, "", herr
	case strings.HasPrefix(line, launchInstall+" ") || line == launchMissing:
		return nil, line, nil
	}
	return nil, "", fmt.Errorf("start the agent %s on %s: it answered %q: %s", agent, c.cfg.Host, line, strings.TrimSpace(stderr.String()))
}

// launchReader is the agent's standard output behind the launch script's
// first line: the agent's output when that line is launchAgent, the end
// of the stream otherwise.
type launchReader struct {
	r       *bufio.Reader
	once    sync.Once
	checked chan struct{}
	line    string
	err     error
}

func newLaunchReader(r io.Reader) *launchReader {
	return &launchReader{r: bufio.NewReader(r), checked: make(chan struct{})}
}

func (l *launchReader) Read(p []byte) (int, error) {
	l.once.Do(func() {
		defer close(l.checked)
		line, err := l.r.ReadString('\n')
		l.line = strings.TrimSpace(line)
		switch {
		case err != nil:
			l.err = err
		case l.line != launchAgent:
			l.err = io.EOF
		}
	})
	if l.err != nil {
		return 0, l.err
	}
	return l.r.Read(p)
}

// first is the script's first line, once read (false if it never was: the
// connection failed first). Call it once the session is closed, which ends
// a read in progress; it waits for that read, within firstLineWait.
func (l *launchReader) first(ctx context.Context) (string, bool) {
	select {
	case <-l.checked:
		return l.line, true
	case <-ctx.Done():
	case <-time.After(firstLineWait):
	}
	return "", false
}

// firstLineWait bounds the wait for the launch script's first line once
// the hello failed.
const firstLineWait = 10 * time.Second

// newConnection starts the protocol on stream, the agent's standard input
// and output.
func (c *Client) newConnection(stream io.ReadWriteCloser, stderr *tailBuffer, closers ...func() error) *connection {
	conn := &connection{stderr: stderr, done: make(chan struct{}), closers: closers}
	conn.rpc = jsonrpc2.NewConn(context.Background(), jsonrpc2.NewBufferedStream(stream, jsonrpc2.VSCodeObjectCodec{}),
		jsonrpc2.HandlerWithError(c.handleNotification))
	return conn
}

// hello tells the agent the protocol and the engine's options, and learns
// the options in effect on the host.
func (c *Client) hello(ctx context.Context, conn *connection, agent string) error {
	var hello helloResult
	opts := c.cfg.Engine
	err := conn.rpc.Call(ctx, methodHello, helloParams{Protocol: ProtocolVersion, Version: c.cfg.Version, Options: toWire(opts)}, &hello)
	if err != nil {
		conn.close()
		if errors.Is(fromRPCError(err), errProtocolVersion) && c.cfg.AgentPath != "" {
			return fmt.Errorf("%w: install the agent of this provider's version at agent_path %s on %s", fromRPCError(err), agent, c.cfg.Host)
		}
		return c.agentError(conn, fmt.Errorf("the agent on %s: %w", c.cfg.Host, fromRPCError(err)))
	}
	c.opts = hello.Options.options()
	return nil
}

// sessionStream is the provider's end of the agent's standard input and
// output.
type sessionStream struct {
	io.Reader
	io.WriteCloser
}

// handleNotification writes the agent's log lines to the log of the
// request that caused them.
func (c *Client) handleNotification(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
	if req.Method != notifyLog || !req.Notif {
		return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: req.Method}
	}
	var p logParams
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if v, ok := c.calls.Load(p.Call); ok {
		ctx = v.(context.Context)
	}
	if p.Fields == nil {
		p.Fields = map[string]any{}
	}
	p.Fields["host"] = c.cfg.Host
	if p.Level == "debug" {
		c.log.Debug(ctx, p.Msg, p.Fields)
	} else {
		c.log.Info(ctx, p.Msg, p.Fields)
	}
	return nil, nil
}

// agentError adds to err what the agent wrote on its standard error, if it
// died.
func (c *Client) agentError(conn *connection, err error) error {
	if tail := strings.TrimSpace(conn.stderr.String()); tail != "" {
		return fmt.Errorf("%w; the agent wrote: %s", err, tail)
	}
	return err
}

// call calls the agent. A connection that is lost on the way is dialled
// again, once, and the call made again: every method is safe to repeat
// (the engine's lock makes a repeated update wait for the first and then
// find nothing to do).
func (c *Client) call(ctx context.Context, method string, params interface{ setCall(string, time.Time) }, result any) error {
	_, err := c.callAgain(ctx, method, params, result)
	return err
}

// callAgain is call, saying whether the call was made again on a new
// connection.
func (c *Client) callAgain(ctx context.Context, method string, params interface{ setCall(string, time.Time) }, result any) (again bool, _ error) {
	name := strconv.FormatUint(c.seq.Add(1), 10)
	deadline, _ := ctx.Deadline()
	params.setCall(name, deadline)
	c.calls.Store(name, ctx)
	defer c.calls.Delete(name)
	for attempt := 0; ; attempt++ {
		again = attempt > 0
		conn, err := c.connected(ctx)
		if err != nil {
			if again {
				return again, fmt.Errorf("lost the connection to %s during %s, and could not connect again: %w", c.cfg.Host, method, err)
			}
			return again, err
		}
		err = conn.rpc.Call(ctx, method, params, result)
		if err == nil {
			return again, nil
		}
		dropped := conn.lost() || errors.Is(err, jsonrpc2.ErrClosed)
		switch {
		case dropped && again:
			return again, c.agentError(conn, fmt.Errorf("lost the connection to %s again during %s: %w", c.cfg.Host, method, err))
		case !dropped || ctx.Err() != nil:
			return again, fromRPCError(err)
		}
		c.log.Info(ctx, "the connection to the host dropped: connecting again", map[string]any{"host": c.cfg.Host, "call": method})
	}
}

func (p *callParams) setCall(name string, deadline time.Time) { p.Call, p.Deadline = name, deadline }

// Create creates a container on the host. When the connection dropped
// during the create and the container exists when the call is repeated, it
// is the one this create made (the container's lock kept every other
// creator out): its state is returned.
func (c *Client) Create(ctx context.Context, spec engine.ContainerSpec) (engine.State, error) {
	c.snaps.changed()
	var st wireState
	again, err := c.callAgain(ctx, methodCreate, &containerParams{Spec: specToWire(spec)}, &st)
	if err != nil && again && strings.Contains(err.Error(), "already exists") {
		if got, ierr := c.Inspect(ctx, spec.Name); ierr == nil && engine.SameImage(got.Spec.Image, spec.Image) {
			return got, nil
		}
	}
	if err != nil {
		return engine.State{}, err
	}
	return st.state(), nil
}

// Inspect reads a container on the host; the first one reads all the
// host's containers, for the Inspects that follow (snapshot.go).
func (c *Client) Inspect(ctx context.Context, id string) (engine.State, error) {
	if st, ok := c.snaps.inspect(ctx, id, c.inspectAll); ok {
		return st, nil
	}
	var st wireState
	if err := c.call(ctx, methodInspect, &containerParams{ID: id}, &st); err != nil {
		return engine.State{}, err
	}
	return st.state(), nil
}

// Update changes a container on the host.
func (c *Client) Update(ctx context.Context, id string, spec engine.ContainerSpec) (engine.State, error) {
	c.snaps.changed()
	var st wireState
	if err := c.call(ctx, methodUpdate, &containerParams{ID: id, Spec: specToWire(spec)}, &st); err != nil {
		return engine.State{}, err
	}
	return st.state(), nil
}

// Delete deletes a container on the host.
func (c *Client) Delete(ctx context.Context, id string) error {
	c.snaps.changed()
	return c.call(ctx, methodDelete, &containerParams{ID: id}, nil)
}

// inspectAll reads all the host's containers that pouch made and that no
// upgrade is changing, in one call.
func (c *Client) inspectAll(ctx context.Context) ([]engine.State, error) {
	start := time.Now()
	var wire []wireState
	if err := c.call(ctx, methodInspectAll, &callParams{}, &wire); err != nil {
		c.log.Debug(ctx, "could not read the host's containers in one call: reading them one by one", map[string]any{
			"host": c.cfg.Host, "error": err.Error()})
		return nil, err
	}
	states := make([]engine.State, len(wire))
	for i, w := range wire {
		states[i] = w.state()
	}
	c.log.Debug(ctx, "read the host's containers in one call", map[string]any{
		"host": c.cfg.Host, "containers": len(states), "took": time.Since(start).String()})
	return states, nil
}

// CreateVolume creates a named volume on the host.
func (c *Client) CreateVolume(ctx context.Context, spec engine.VolumeSpec) (engine.Volume, error) {
	var v engine.Volume
	err := c.call(ctx, methodCreateVolume, &volumeParams{Spec: spec}, &v)
	return v, err
}

// InspectVolume reads a named volume on the host.
func (c *Client) InspectVolume(ctx context.Context, name string) (engine.Volume, error) {
	var v engine.Volume
	err := c.call(ctx, methodInspectVolume, &volumeParams{Name: name}, &v)
	return v, err
}

// DeleteVolume deletes a named volume on the host.
func (c *Client) DeleteVolume(ctx context.Context, name string) error {
	return c.call(ctx, methodDeleteVolume, &volumeParams{Name: name}, nil)
}

// RegistryDigest asks the image's registry for its digest, from the host
// (with the host's view of the registry and its settings).
func (c *Client) RegistryDigest(ctx context.Context, ref string) (string, error) {
	var dgst string
	err := c.call(ctx, methodRegistryDigest, &imageParams{Ref: ref}, &dgst)
	return dgst, err
}

// Ping connects, if need be, and checks that the host's containerd
// answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.call(ctx, methodPing, &callParams{}, nil)
}

// Options are the options in effect on the host (before the first
// connection, those asked for).
func (c *Client) Options() engine.Options {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opts
}

// Close ends the connection; the agent finishes what it was asked, then
// exits.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.close()
		c.conn = nil
	}
	return nil
}
