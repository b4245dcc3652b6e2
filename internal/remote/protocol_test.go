package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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
		engine.ErrVolumeInUse, engine.ErrImageInUse, engine.ErrUnreachable, engine.ErrUnrepresentable} {
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

// The registry settings reach the agent's engine whole, passwords
// included, and come back from the hello redacted.
func TestHelloCarriesRegistriesAndAnswersThemRedacted(t *testing.T) {
	regs := engine.Registries{Hosts: []engine.RegistryHost{{Address: "registry.example:5000", Username: "ci", Password: "pw-s3cr3t",
		CAFile: "/etc/ca.pem"}}, Insecure: []string{"10.0.0.5:5000"}}
	a := &agent{version: "test"}
	res, err := a.hello(nil, requestOf(t, methodHello, helloParams{Protocol: ProtocolVersion, Version: "test",
		Options: toWire(engine.Options{DataRoot: t.TempDir(), Registries: regs})}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.engine.Close() })
	if got := a.engine.Options().Registries; !reflect.DeepEqual(got, regs) {
		t.Fatalf("the agent's engine has registries %+v, want %+v", got, regs)
	}
	answered := res.(helloResult).Options.Registries
	if answered.Hosts[0].Password != "(secret)" || answered.Hosts[0].Username != "ci" || answered.Insecure[0] != "10.0.0.5:5000" {
		t.Fatalf("the hello answered registries %+v, want them with the password redacted", answered)
	}
}
