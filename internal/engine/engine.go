// Package engine drives containerd: it creates containers from a
// ContainerSpec, reads them back as State, upgrades them in place and deletes
// them. It knows nothing of Terraform.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sync/singleflight"

	"github.com/pouch/terraform-provider-pouch/internal/engine/host"
)

// Defaults for Options fields left empty.
const (
	DefaultAddress     = "/run/containerd/containerd.sock"
	DefaultNamespace   = "pouch"
	DefaultSnapshotter = "overlayfs"
	DefaultRuntime     = "io.containerd.runc.v2"
	DefaultDataRoot    = "/var/lib/pouch"
)

// connectTimeout bounds the first contact with containerd, so that an
// unreachable daemon is reported at once rather than after gRPC's backoff.
const connectTimeout = 5 * time.Second

var (
	// ErrNotFound means the container (volume, image) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnreachable means containerd did not answer at the configured address.
	ErrUnreachable = errors.New("containerd is not reachable")
	// ErrRolledBack wraps the cause of a failed update after the old
	// container was restored.
	ErrRolledBack = errors.New("upgrade rolled back")
	// ErrVolumeInUse means a volume cannot be deleted: a container mounts it.
	ErrVolumeInUse = errors.New("volume is in use")
	// ErrInvalidSpec means the spec cannot be run as given; the message
	// names the field and the fix.
	ErrInvalidSpec = errors.New("invalid container spec")
)

// Options configure an Engine.
type Options struct {
	Address     string // containerd socket path
	Namespace   string // containerd namespace holding pouch's containers
	Snapshotter string // snapshotter for container root filesystems
	Runtime     string // containerd runtime (shim) name
	DataRoot    string // directory for the engine's own files (logs, volumes, network state)
	Network     NetworkOptions
	Logger      Logger // progress messages; nil discards them
	// LockWait is how long a change waits for another pouch process's
	// change of the same container before it fails (see lockContainer);
	// zero means DefaultLockWait.
	LockWait time.Duration
	// Host does the work on the containerd host besides the containerd
	// API; nil means this machine (host.Local).
	Host Host
	// LogDriver is the executable that writes the containers' logs (the
	// provider's own binary: see internal/containerlog); empty means this
	// process's. It is copied under the data root once per version, and
	// the containers use that copy.
	LogDriver string
	// Registries are the settings of the registries images are pulled
	// from (registry.go).
	Registries Registries
}

// NetworkOptions configure the bridge network that containers in bridge
// mode join.
type NetworkOptions struct {
	Bridge string // bridge device; default "pouch0"
	Subnet string // IPv4 subnet of the bridge; default "10.88.0.0/16"
	// ConfFile is an existing CNI network list (.conflist) to use instead of
	// the network pouch writes for itself.
	ConfFile string
}

// Logger receives the engine's progress messages. The provider adapts it to
// tflog; the engine never logs environment values.
type Logger interface {
	Debug(ctx context.Context, msg string, fields map[string]any)
	Info(ctx context.Context, msg string, fields map[string]any)
}

type discardLogger struct{}

func (discardLogger) Debug(context.Context, string, map[string]any) {}
func (discardLogger) Info(context.Context, string, map[string]any)  {}

// Engine manages the containers of one containerd namespace.
type Engine struct {
	opts Options
	log  Logger

	host Host
	// faultHook, set only by tests, runs at the end of each upgrade phase;
	// an error it returns fails that phase.
	faultHook func(Phase) error

	mu       sync.Mutex
	client   *containerd.Client
	prepared bool   // the data root's directories exist, private
	driver   string // the installed log driver, once known
	locks    keyedMutex
	// stages are the images being pulled or unpacked, by name: one at a
	// time per image (image.go).
	stages singleflight.Group
}

// New returns an Engine for opts, or an error naming the option that
// cannot work. It does no I/O: the connection to containerd is made, and the
// data root prepared, on first use, so that a provider can be configured
// before its daemon exists.
func New(opts Options) (*Engine, error) {
	if opts.Address == "" {
		opts.Address = DefaultAddress
	}
	opts.Address = strings.TrimPrefix(opts.Address, "unix://")
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.Snapshotter == "" {
		opts.Snapshotter = DefaultSnapshotter
	}
	if opts.Runtime == "" {
		opts.Runtime = DefaultRuntime
	}
	if opts.DataRoot == "" {
		opts.DataRoot = DefaultDataRoot
	}
	if opts.LockWait <= 0 {
		opts.LockWait = DefaultLockWait
	}
	if err := CheckDataRoot(opts.DataRoot); err != nil {
		return nil, fmt.Errorf("data_root %w", err)
	}
	opts.DataRoot = filepath.Clean(opts.DataRoot)
	if err := CheckNamespace(opts.Namespace); err != nil {
		return nil, fmt.Errorf("namespace %w", err)
	}
	if err := CheckRegistries(opts.Registries); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = discardLogger{}
	}
	e := &Engine{opts: opts, log: log, faultHook: defaultFaultHook}
	e.host = opts.Host
	if e.host == nil {
		var err error
		if e.host, err = e.localHost(); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Options returns the options in effect, defaults filled in.
func (e *Engine) Options() Options { return e.opts }

// Close releases the connection to containerd, if one was made.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client == nil {
		return nil
	}
	err := e.client.Close()
	e.client = nil
	return err
}

// Ping connects to containerd if needed and checks that it answers.
func (e *Engine) Ping(ctx context.Context) error {
	_, _, err := e.connect(ctx)
	return err
}

// connect returns a client and a context carrying the engine's namespace.
func (e *Engine) connect(ctx context.Context) (*containerd.Client, context.Context, error) {
	ctx = namespaces.WithNamespace(ctx, e.opts.Namespace)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil {
		return e.client, ctx, nil
	}
	addr := e.opts.Address
	if _, err := os.Stat(addr); err != nil {
		return nil, ctx, e.unreachable(err)
	}
	client, err := containerd.New(addr,
		containerd.WithDefaultNamespace(e.opts.Namespace),
		containerd.WithDefaultRuntime(e.opts.Runtime),
		containerd.WithTimeout(connectTimeout))
	if err != nil {
		return nil, ctx, e.unreachable(err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if _, err := client.Version(pingCtx); err != nil {
		client.Close()
		return nil, ctx, e.unreachable(err)
	}
	if !e.prepared {
		if err := e.host.PrepareDataRoot(e.opts.DataRoot, dataRootDirs); err != nil {
			client.Close()
			return nil, ctx, fmt.Errorf("data_root %s: %w", e.opts.DataRoot, err)
		}
		e.prepared = true
	}
	e.client = client
	return client, ctx, nil
}

func (e *Engine) unreachable(cause error) error {
	return fmt.Errorf("%w at %s: %v. Start containerd (for example `systemctl start containerd`, "+
		"or `containerd &` as root) or point the provider's address (CONTAINERD_ADDRESS) at a running daemon",
		ErrUnreachable, e.opts.Address, cause)
}

// keyedMutex serialises work on one container ID.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*sync.Mutex{}
	}
	m, ok := k.locks[key]
	if !ok {
		m = &sync.Mutex{}
		k.locks[key] = m
	}
	k.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// defaultFaultHook is nil except in test builds (see fault_env.go).
var defaultFaultHook func(Phase) error

// hook runs the test-only fault hook at the end of phase.
func (e *Engine) hook(phase Phase) error {
	if e.faultHook == nil {
		return nil
	}
	return e.faultHook(phase)
}

// networkName is the CNI network name for a bridge: "pouch" for the default
// bridge, else one of its own, so that two networks on one host never share
// the iptables chains that CNI names after the network and container.
func networkName(bridge string) string {
	if bridge == "" || bridge == host.DefaultBridge {
		return host.DefaultNetworkName
	}
	return host.DefaultNetworkName + "-" + bridge
}
