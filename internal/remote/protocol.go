package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// ProtocolVersion is the version of the protocol between the provider and
// its agent. A change of a method, its parameters or its results bumps it;
// a provider refuses an agent of another version (and, when it installed
// the agent itself, installs its own).
const ProtocolVersion = 2

// agentArg is the argument that makes the provider binary serve as the
// agent: `<binary> pouch-agent`, run by the provider over SSH.
const agentArg = "pouch-agent"

// The methods of the protocol. The agent serves them over JSON-RPC 2.0 on
// its standard input and output; every call names itself (call) so that
// the log lines the agent sends back as notifications reach the request
// that caused them.
const (
	methodHello          = "hello"
	methodPing           = "ping"
	methodCreate         = "create"
	methodInspect        = "inspect"
	methodInspectAll     = "inspectAll"     // since protocol 2
	methodRegistryDigest = "registryDigest" // since protocol 2
	methodPullImage      = "pullImage"      // since protocol 2
	methodImportUpload   = "importUpload"   // since protocol 2
	methodImportImage    = "importImage"    // since protocol 2
	methodInspectImage   = "inspectImage"   // since protocol 2
	methodDeleteImage    = "deleteImage"    // since protocol 2
	methodUpdate         = "update"
	methodDelete         = "delete"
	methodCreateVolume   = "createVolume"
	methodInspectVolume  = "inspectVolume"
	methodDeleteVolume   = "deleteVolume"
	notifyLog            = "log"
)

// wireOptions are the engine options the agent's engine runs with: those of
// engine.Options that make sense on the host.
type wireOptions struct {
	Address     string                `json:"address"`
	Namespace   string                `json:"namespace"`
	Snapshotter string                `json:"snapshotter"`
	Runtime     string                `json:"runtime"`
	DataRoot    string                `json:"data_root"`
	Network     engine.NetworkOptions `json:"network"`
	LockWait    time.Duration         `json:"lock_wait"`
	// Registries carry the registries' passwords, to the agent only: the
	// agent's hello answers them redacted.
	Registries engine.Registries `json:"registries"`
}

func toWire(o engine.Options) wireOptions {
	return wireOptions{Address: o.Address, Namespace: o.Namespace, Snapshotter: o.Snapshotter, Runtime: o.Runtime,
		DataRoot: o.DataRoot, Network: o.Network, LockWait: o.LockWait, Registries: o.Registries}
}

func (w wireOptions) options() engine.Options {
	return engine.Options{Address: w.Address, Namespace: w.Namespace, Snapshotter: w.Snapshotter, Runtime: w.Runtime,
		DataRoot: w.DataRoot, Network: w.Network, LockWait: w.LockWait, Registries: w.Registries}
}

type helloParams struct {
	Protocol int         `json:"protocol"`
	Version  string      `json:"version"` // the provider's
	Options  wireOptions `json:"options"`
}

type helloResult struct {
	Protocol int         `json:"protocol"`
	Version  string      `json:"version"` // the agent's
	Options  wireOptions `json:"options"` // in effect, defaults filled in
	PID      int         `json:"pid"`
}

// callParams start every call's parameters.
type callParams struct {
	Call     string    `json:"call"`
	Deadline time.Time `json:"deadline,omitzero"`
}

// wireSpec is a ContainerSpec with what its JSON form leaves out: whether
// it runs, its secret variables and the contents of its uploads (never
// logged, on either side).
type wireSpec struct {
	Spec      engine.ContainerSpec `json:"spec"`
	Running   bool                 `json:"running"`
	SecretEnv map[string]string    `json:"secret_env,omitempty"`
	// Uploads are the contents of Spec.Uploads, in order (nil: read back).
	Uploads [][]byte `json:"uploads,omitempty"`
}

func specToWire(s engine.ContainerSpec) wireSpec {
	w := wireSpec{Spec: s, Running: s.Running, SecretEnv: s.SecretEnv}
	for _, u := range s.Uploads {
		w.Uploads = append(w.Uploads, u.Content)
	}
	return w
}

func (w wireSpec) spec() engine.ContainerSpec {
	s := w.Spec
	s.Running, s.SecretEnv = w.Running, w.SecretEnv
	if len(w.Uploads) == len(s.Uploads) {
		s.Uploads = slices.Clone(s.Uploads)
		for i := range s.Uploads {
			s.Uploads[i].Content = w.Uploads[i]
		}
	}
	return s
}

// wireState is a State with its spec's Running.
type wireState struct {
	State   engine.State `json:"state"`
	Running bool         `json:"running"`
}

func stateToWire(s engine.State) wireState { return wireState{State: s, Running: s.Spec.Running} }

func (w wireState) state() engine.State {
	s := w.State
	s.Spec.Running = w.Running
	return s
}

type containerParams struct {
	callParams
	ID   string   `json:"id,omitempty"`
	Spec wireSpec `json:"spec"`
}

type imageParams struct {
	callParams
	Ref    string           `json:"ref,omitempty"`
	Spec   engine.ImageSpec `json:"spec"`
	Digest string           `json:"digest,omitempty"`
	Owner  string           `json:"owner,omitempty"`
	// Upload names an archive sent with importUpload, for importImage,
	// which Abort gives up.
	Upload string `json:"upload,omitempty"`
	Abort  bool   `json:"abort,omitempty"`
}

// uploadParams carry one piece of an archive to import: Upload "" begins
// the import of Spec's image, and the agent answers the upload's name.
type uploadParams struct {
	callParams
	Upload string            `json:"upload,omitempty"`
	Spec   *engine.ImageSpec `json:"spec,omitempty"`
	Data   []byte            `json:"data"`
}

type volumeParams struct {
	callParams
	Name string            `json:"name,omitempty"`
	Spec engine.VolumeSpec `json:"spec"`
}

type logParams struct {
	Call   string         `json:"call"`
	Level  string         `json:"level"` // "debug" or "info"
	Msg    string         `json:"msg"`
	Fields map[string]any `json:"fields,omitempty"`
}

// errorKinds are the engine's errors that the protocol carries, so that
// errors.Is works on the provider's side as it does on the host's.
var errorKinds = map[string]error{
	"not-found":        engine.ErrNotFound,
	"unreachable":      engine.ErrUnreachable,
	"rolled-back":      engine.ErrRolledBack,
	"volume-in-use":    engine.ErrVolumeInUse,
	"image-in-use":     engine.ErrImageInUse,
	"invalid-spec":     engine.ErrInvalidSpec,
	"unrepresentable":  engine.ErrUnrepresentable,
	"deadline":         context.DeadlineExceeded,
	"canceled":         context.Canceled,
	"protocol-version": errProtocolVersion,
}

// errProtocolVersion is an agent's answer to a provider of another
// protocol version.
var errProtocolVersion = errors.New("protocol version mismatch")

// toRPCError turns an engine error into the protocol's.
func toRPCError(err error) *jsonrpc2.Error {
	var kinds []string
	for kind, target := range errorKinds {
		if errors.Is(err, target) {
			kinds = append(kinds, kind)
		}
	}
	e := &jsonrpc2.Error{Code: jsonrpc2.CodeInternalError, Message: err.Error()}
	e.SetError(kinds)
	return e
}

// remoteError is an error the agent returned: its text, and the engine's
// errors it wraps.
type remoteError struct {
	msg  string
	errs []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.errs }

// fromRPCError turns the protocol's error back into one errors.Is knows.
func fromRPCError(err error) error {
	var rpcErr *jsonrpc2.Error
	if !errors.As(err, &rpcErr) {
		return err
	}
	out := &remoteError{msg: rpcErr.Message}
	if rpcErr.Data != nil {
		var kinds []string
		if json.Unmarshal(*rpcErr.Data, &kinds) == nil {
			for _, k := range kinds {
				if target, ok := errorKinds[k]; ok {
					out.errs = append(out.errs, target)
				}
			}
		}
	}
	return out
}

// decode reads a request's parameters.
func decode(req *jsonrpc2.Request, v any) error {
	if req.Params == nil {
		return fmt.Errorf("%s: no parameters", req.Method)
	}
	if err := json.Unmarshal(*req.Params, v); err != nil {
		return fmt.Errorf("%s: decode the parameters: %w", req.Method, err)
	}
	return nil
}
