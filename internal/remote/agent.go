package remote

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// ServeIfAgent serves as the agent and exits when the process was started
// as one (`<binary> pouch-agent`, by the provider over SSH); otherwise it
// returns at once. Call it first thing in main.
//
// The agent runs the engine on the containerd host, exactly as the local
// provider does, and answers the provider's calls on its standard input and
// output. Each call runs to its end whatever happens to the connection: an
// upgrade whose SSH session dies finishes, or rolls back, on the host by
// itself, and releases the container's lock; the agent then exits.
func ServeIfAgent(version string) {
	if len(os.Args) < 2 || os.Args[1] != agentArg {
		return
	}
	// A session of its own, and no dying of the SSH session's signals:
	// the work in progress outlives the connection.
	_, _ = syscall.Setsid()
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	serveAgent(version, stdio{os.Stdin, os.Stdout})
	os.Exit(0)
}

// stdio is the agent's end of the connection: its standard input and
// output.
type stdio struct {
	io.Reader
	io.Writer
}

func (stdio) Close() error { return os.Stdin.Close() }

// serveAgent answers the calls that come on stream until it closes, then
// waits for those in progress.
func serveAgent(version string, stream io.ReadWriteCloser) {
	a := &agent{version: version}
	a.handler = jsonrpc2.HandlerWithError(a.handle).SuppressErrClosed()
	conn := jsonrpc2.NewConn(context.Background(), jsonrpc2.NewBufferedStream(stream, jsonrpc2.VSCodeObjectCodec{}), a)
	<-conn.DisconnectNotify()
	// The provider is gone (done, or its connection dropped): finish what
	// it asked for, then go.
	a.calls.Wait()
	a.uploads.removeAll()
	if a.engine != nil {
		_ = a.engine.Close()
	}
}

// agent is the engine on the host, answering one provider.
type agent struct {
	version string
	handler jsonrpc2.Handler
	calls   sync.WaitGroup // the calls in progress
	uploads uploads        // archives being sent to import

	mu     sync.Mutex
	engine *engine.Engine
}

// callKey carries a call's name in the context of its engine work, for the
// log lines sent back.
type callKey struct{}

// Handle runs each call in a goroutine of its own, counted before the
// connection reads on, so that the agent waits for every call it received.
func (a *agent) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	a.calls.Add(1)
	go func() {
		defer a.calls.Done()
		a.handler.Handle(ctx, conn, req)
	}()
}

func (a *agent) handle(_ context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
	if req.Method == methodHello {
		return a.hello(conn, req)
	}
	a.mu.Lock()
	e := a.engine
	a.mu.Unlock()
	if e == nil {
		return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeInvalidRequest, Message: "the agent has no engine yet: call hello first"}
	}
	var p callParams
	if err := decode(req, &p); err != nil {
		return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeInvalidParams, Message: err.Error()}
	}
	ctx, cancel := callContext(p)
	defer cancel()
	result, err := a.call(ctx, e, req)
	if err != nil {
		return nil, toRPCError(err)
	}
	return result, nil
}

// callContext is the context of the engine work of call p: not the
// connection's (the work goes on if the connection drops), bounded by the
// provider's deadline, and naming the call for its log lines.
func callContext(p callParams) (context.Context, context.CancelFunc) {
	ctx := context.WithValue(context.Background(), callKey{}, p.Call)
	if p.Deadline.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, p.Deadline)
}

// call runs one of the engine's methods.
func (a *agent) call(ctx context.Context, e *engine.Engine, req *jsonrpc2.Request) (any, error) {
	switch req.Method {
	case methodPing:
		return struct{}{}, e.Ping(ctx)
	case methodRegistryDigest:
		var p imageParams
		if err := decode(req, &p); err != nil {
			return nil, err
		}
		return e.RegistryDigest(ctx, p.Ref)
	case methodPullImage, methodInspectImage, methodDeleteImage, methodImportImage:
		var p imageParams
		if err := decode(req, &p); err != nil {
			return nil, err
		}
		switch req.Method {
		case methodPullImage:
			return e.PullImage(ctx, p.Spec)
		case methodInspectImage:
			return e.InspectImage(ctx, p.Spec)
		case methodDeleteImage:
			return struct{}{}, e.DeleteImage(ctx, p.Spec.Name, p.Digest, p.Owner)
		default:
			return a.uploads.finish(p.Upload, p.Abort)
		}
	case methodImportUpload:
		var p uploadParams
		if err := decode(req, &p); err != nil {
			return nil, err
		}
		upload := p.Upload
		if upload == "" {
			if p.Spec == nil {
				return nil, fmt.Errorf("%s: the first piece of an upload names no image", req.Method)
			}
			upload = a.uploads.begin(e, p.callParams, *p.Spec)
		}
		return upload, a.uploads.write(upload, p.Data)
	case methodInspectAll:
		states, err := e.InspectAll(ctx)
		wire := make([]wireState, len(states))
		for i, st := range states {
			wire[i] = stateToWire(st)
		}
		return wire, err
	case methodCreate, methodInspect, methodUpdate, methodDelete:
		var p containerParams
		if err := decode(req, &p); err != nil {
			return nil, err
		}
		var st engine.State
		var err error
		switch req.Method {
		case methodCreate:
			st, err = e.Create(ctx, p.Spec.spec())
		case methodInspect:
			st, err = e.Inspect(ctx, p.ID)
		case methodUpdate:
			st, err = e.Update(ctx, p.ID, p.Spec.spec())
		case methodDelete:
			return struct{}{}, e.Delete(ctx, p.ID)
		}
		return stateToWire(st), err
	case methodCreateVolume, methodInspectVolume, methodDeleteVolume:
		var p volumeParams
		if err := decode(req, &p); err != nil {
			return nil, err
		}
		switch req.Method {
		case methodCreateVolume:
			return e.CreateVolume(ctx, p.Spec)
		case methodInspectVolume:
			return e.InspectVolume(ctx, p.Name)
		default:
			return struct{}{}, e.DeleteVolume(ctx, p.Name)
		}
	}
	return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: fmt.Sprintf("no method %q", req.Method)}
}

// hello checks the provider's protocol version and makes the engine with
// its options.
func (a *agent) hello(conn *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
	var p helloParams
	if err := decode(req, &p); err != nil {
		return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeInvalidParams, Message: err.Error()}
	}
	if p.Protocol != ProtocolVersion {
		return nil, toRPCError(fmt.Errorf("%w: the agent (pouch %s) speaks protocol %d and the provider (pouch %s) %d",
			errProtocolVersion, a.version, ProtocolVersion, p.Version, p.Protocol))
	}
	opts := p.Options.options()
	opts.Logger = agentLogger{conn: conn}
	e, err := engine.New(opts)
	if err != nil {
		return nil, toRPCError(err)
	}
	a.mu.Lock()
	if a.engine != nil {
		_ = a.engine.Close()
	}
	a.engine = e
	a.mu.Unlock()
	inEffect := e.Options()
	inEffect.Registries = inEffect.Registries.Redacted()
	return helloResult{Protocol: ProtocolVersion, Version: a.version, Options: toWire(inEffect), PID: os.Getpid()}, nil
}

// agentLogger sends the engine's log lines to the provider, which writes
// them to Terraform's log with the request that caused them. A line the
// provider cannot receive any more is dropped.
type agentLogger struct {
	conn *jsonrpc2.Conn
}

func (l agentLogger) Debug(ctx context.Context, msg string, fields map[string]any) {
	l.send(ctx, "debug", msg, fields)
}

func (l agentLogger) Info(ctx context.Context, msg string, fields map[string]any) {
	l.send(ctx, "info", msg, fields)
}

func (l agentLogger) send(ctx context.Context, level, msg string, fields map[string]any) {
	call, _ := ctx.Value(callKey{}).(string)
	sendCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.conn.Notify(sendCtx, notifyLog, logParams{Call: call, Level: level, Msg: msg, Fields: fields})
}
