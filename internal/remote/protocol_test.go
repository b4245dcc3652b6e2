package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// requestOf is a request with params, as the agent receives it.
func requestOf(t *testing.T, method string, params any) *jsonrpc2.Request {
	t.Helper()
	req := &jsonrpc2.Request{Method: method}
	if err := req.SetParams(params); err != nil {
		t.Fatal(err)
	}
	return req
}

// The engine's errors keep their kinds across the protocol, so that the
// provider's errors.Is (not found, rolled back, ...) work as on the host.
func TestErrorKindsRoundTrip(t *testing.T) {
	for _, target := range []error{engine.ErrNotFound, engine.ErrRolledBack, engine.ErrInvalidSpec,
		engine.ErrVolumeInUse, engine.ErrUnreachable, engine.ErrUnrepresentable} {
		err := fmt.Errorf("%w: upgrade of web: %w", engine.ErrRolledBack, target)
		wire, jerr := json.Marshal(toRPCError(err))
		if jerr != nil {
			t.Fatal(jerr)
		}
		var back jsonrpc2.Error
		if err := json.Unmarshal(wire, &back); err != nil {
			t.Fatal(err)
		}
		got := fromRPCError(&back)
		if !errors.Is(got, target) || !errors.Is(got, engine.ErrRolledBack) || got.Error() != err.Error() {
			t.Errorf("%v came back as %v (is %v: %v)", err, got, target, errors.Is(got, target))
		}
	}
	if errors.Is(fromRPCError(toRPCError(errors.New("plain"))), engine.ErrNotFound) {
		t.Error("a plain error came back as not found")
	}
}

// What a ContainerSpec's JSON leaves out (Running, SecretEnv) crosses the
// protocol.
func TestWireSpecKeepsRunningAndSecrets(t *testing.T) {
	s := engine.ContainerSpec{Name: "web", Running: true, SecretEnv: map[string]string{"A": "1"}}
	b, _ := json.Marshal(specToWire(s))
	var w wireSpec
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	if got := w.spec(); !got.Running || got.SecretEnv["A"] != "1" {
		t.Fatalf("spec after the wire: %+v", got)
	}
	st := engine.State{ID: "web", Spec: engine.ContainerSpec{Running: true}}
	b, _ = json.Marshal(stateToWire(st))
	var ws wireState
	if err := json.Unmarshal(b, &ws); err != nil {
		t.Fatal(err)
	}
	if !ws.state().Spec.Running {
		t.Fatal("state lost Running on the wire")
	}
}

func TestParseHost(t *testing.T) {
	for in, want := range map[string]Target{
		"ssh://root@host.example:2222": {User: "root", Addr: "host.example:2222"},
		"ssh://ops@10.0.0.5":           {User: "ops", Addr: "10.0.0.5:22"},
		"ssh://host.example":           {User: "root", Addr: "host.example:22"},
		"ssh://root@[fd00::5]:22":      {User: "root", Addr: "[fd00::5]:22"},
	} {
		if got, err := ParseHost(in); err != nil || got != want {
			t.Errorf("ParseHost(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"host.example", "tcp://host:22", "ssh://", "ssh://root@host:99999", "ssh://root@host/path"} {
		if _, err := ParseHost(in); err == nil || !strings.Contains(err.Error(), "SSH URL") && !strings.Contains(err.Error(), "port") {
			t.Errorf("ParseHost(%q): %v, want a refusal", in, err)
		}
	}
	for in, want := range map[string]Target{
		"bastion":                {User: "root", Addr: "bastion:22"},
		"ops@bastion:2200":       {User: "ops", Addr: "bastion:2200"},
		"ssh://ops@bastion:2200": {User: "ops", Addr: "bastion:2200"},
	} {
		if got, err := parseJump(in); err != nil || got != want {
			t.Errorf("parseJump(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote("/var/lib/it's here"); got != `'/var/lib/it'\''s here'` {
		t.Fatalf("shellQuote: %s", got)
	}
}
