package provider

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// These need no containerd: the plan warning and the validation of the
// healthcheck and upgrade attributes, through the protocol server.

var healthcheckTFType = tftypes.Object{AttributeTypes: map[string]tftypes.Type{
	"command": tftypes.List{ElementType: tftypes.String}, "interval": tftypes.String,
	"timeout": tftypes.String, "start_period": tftypes.String, "retries": tftypes.Number,
}}

// healthcheckValue is a healthcheck object; nil fields are null.
func healthcheckValue(t *testing.T, command []string, interval, timeout, startPeriod, retries any) tftypes.Value {
	t.Helper()
	at := healthcheckTFType.AttributeTypes
	return tftypes.NewValue(healthcheckTFType, map[string]tftypes.Value{
		"command":      toTF(t, at["command"], command),
		"interval":     toTF(t, at["interval"], interval),
		"timeout":      toTF(t, at["timeout"], timeout),
		"start_period": toTF(t, at["start_period"], startPeriod),
		"retries":      toTF(t, at["retries"], retries),
	})
}

// runningContainer is the state of a running container on the bridge.
func runningContainer() attrs {
	a := priorContainer()
	a["running"] = true
	a["status"] = "running"
	a["memory"] = int64(64)
	a["env"] = map[string]string{"A": "1"}
	a["labels"] = map[string]string{"team": "a"}
	return a
}

// configOf is the configuration that matches a state.
func configOf(state attrs) attrs {
	cfg := attrs{}
	for _, k := range []string{"name", "image", "command", "running", "memory", "env", "labels", "upgrade", "healthcheck"} {
		if v, ok := state[k]; ok {
			cfg[k] = v
		}
	}
	return cfg
}

func warnings(resp *tfprotov6.PlanResourceChangeResponse) []*tfprotov6.Diagnostic {
	var out []*tfprotov6.Diagnostic
	for _, d := range resp.Diagnostics {
		if d.Severity == tfprotov6.DiagnosticSeverityWarning {
			out = append(out, d)
		}
	}
	return out
}

func TestContainer_planWarning(t *testing.T) {
	envT := tftypes.Map{ElementType: tftypes.String}
	cases := []struct {
		name    string
		change  func(cfg attrs)
		summary string   // "" for no warning
		detail  []string // words the detail must hold
	}{
		{"image", func(c attrs) { c["image"] = "docker.io/pouchtest/app:v2" }, "pouch_container.c1: image upgrade in place",
			[]string{"app:v1 to docker.io/pouchtest/app:v2", "same container ID", "same IP address and MAC address",
				"named volumes, bind mounts and the image's volumes", "discarded", "keep_rootfs_changes = true",
				"staged while the old task keeps serving", "restarts on the new image", "rolls back to the old container"}},
		{"image with policy", func(c attrs) {
			c["image"] = "docker.io/pouchtest/app:v2"
			c["upgrade"] = upgradeValue(5, false, 2, true)
			c["healthcheck"] = healthcheckValue(t, []string{"cat", "/healthy"}, "1s", nil, nil, int64(2))
		}, "pouch_container.c1: image upgrade in place",
			[]string{"carried over", "keep_revisions = 2", `health check ("cat" ...) must pass (up to 2 tries)`,
				"keep running for 5 seconds", "left in place", "rollback = false"}},
		{"image with unknown env", func(c attrs) {
			c["image"] = "docker.io/pouchtest/app:v2"
			c["env"] = tftypes.NewValue(envT, tftypes.UnknownValue)
		}, "pouch_container.c1: image upgrade in place", []string{"same container ID"}},
		{"env", func(c attrs) { c["env"] = map[string]string{"A": "2"} }, "pouch_container.c1: restart in place",
			[]string{"same root filesystem", "files written there are kept", "same IP address", "stopped and started again"}},
		{"network mode", func(c attrs) { c["network_mode"] = "host" }, "pouch_container.c1: restart in place",
			[]string{"network_mode changes from bridge to host"}},
		{"memory", func(c attrs) { c["memory"] = int64(128) }, "pouch_container.c1: live resize",
			[]string{"applied to the running task", "no restart"}},
		{"labels", func(c attrs) { c["labels"] = map[string]string{"team": "b"} }, "", nil},
		{"upgrade policy", func(c attrs) { c["upgrade"] = upgradeValue(3, true, 1, false) }, "", nil},
		{"healthcheck", func(c attrs) {
			c["healthcheck"] = healthcheckValue(t, []string{"true"}, nil, nil, nil, nil)
		}, "", nil},
		{"stop", func(c attrs) { c["running"] = false }, "", nil},
		{"no change", func(attrs) {}, "", nil},
		{"unknown env", func(c attrs) { c["env"] = tftypes.NewValue(envT, tftypes.UnknownValue) }, "", nil},
		{"new name", func(c attrs) { c["name"] = "c2"; c["image"] = "docker.io/pouchtest/app:v2" }, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state := runningContainer()
			cfg := configOf(state)
			tc.change(cfg)
			_, resp := planContainer(t, state, cfg)
			ws := warnings(resp)
			if tc.summary == "" {
				if len(ws) != 0 {
					t.Fatalf("want no warning, got:\n%s", diagText(ws))
				}
				return
			}
			if len(ws) != 1 {
				t.Fatalf("want one warning %q, got:\n%s", tc.summary, diagText(resp.Diagnostics))
			}
			if ws[0].Summary != tc.summary {
				t.Errorf("summary %q, want %q", ws[0].Summary, tc.summary)
			}
			for _, w := range tc.detail {
				if !strings.Contains(ws[0].Detail, w) {
					t.Errorf("detail lacks %q:\n%s", w, ws[0].Detail)
				}
			}
		})
	}
}

func TestContainer_upgradeValidation(t *testing.T) {
	base := func(extra attrs) attrs {
		a := attrs{"name": "web", "image": "busybox"}
		for k, v := range extra {
			a[k] = v
		}
		return a
	}
	valid := []attrs{
		base(attrs{"healthcheck": healthcheckValue(t, []string{"cat", "/healthy"}, "100ms", "1m30s", "0s", int64(1))}),
		base(attrs{"healthcheck": healthcheckValue(t, []string{"true"}, nil, nil, nil, nil)}),
		base(attrs{"upgrade": upgradeValue(0, false, 10, true)}),
	}
	for _, cfg := range valid {
		if diags := validateContainer(t, cfg); len(diags) != 0 {
			t.Errorf("config %v: unexpected diagnostics:\n%s", cfg, diagText(diags))
		}
	}
	invalid := []struct {
		cfg  attrs
		attr string // the path the diagnostic must name
		want string
	}{
		{base(attrs{"healthcheck": healthcheckValue(t, []string{"true"}, "2 seconds", nil, nil, nil)}),
			"healthcheck.interval", `must be a duration such as "2s"`},
		{base(attrs{"healthcheck": healthcheckValue(t, []string{"true"}, nil, "5", nil, nil)}),
			"healthcheck.timeout", `got "5"`},
		{base(attrs{"healthcheck": healthcheckValue(t, []string{"true"}, "0s", nil, nil, nil)}),
			"healthcheck.interval", "greater than 0s"},
		{base(attrs{"healthcheck": healthcheckValue(t, []string{"true"}, nil, nil, "-1s", nil)}),
			"healthcheck.start_period", "at least 0s"},
		{base(attrs{"healthcheck": healthcheckValue(t, []string{"true"}, nil, nil, nil, int64(0))}),
			"healthcheck.retries", "between 1 and 100"},
		{base(attrs{"healthcheck": healthcheckValue(t, []string{}, nil, nil, nil, nil)}),
			"healthcheck.command", "at least 1"},
		{base(attrs{"upgrade": upgradeValue(0, true, 11, false)}), "upgrade.keep_revisions", "between 0 and 10"},
		{base(attrs{"upgrade": upgradeValue(-1, true, 0, false)}), "upgrade.verify_seconds", "between 0 and 3600"},
	}
	for _, tc := range invalid {
		diags := validateContainer(t, tc.cfg)
		var found bool
		for _, d := range diags {
			if d.Severity == tfprotov6.DiagnosticSeverityError && d.Attribute != nil &&
				strings.Contains(d.Detail, tc.attr) && strings.Contains(d.Detail, tc.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("want an error on %s containing %q, got:\n%s", tc.attr, tc.want, diagText(diags))
		}
	}
}

func TestContainer_upgradeRoundTrip(t *testing.T) {
	ctx := context.Background()
	prior := containerModel{Name: types.StringValue("c1")}
	prior.Timeouts.Object = types.ObjectNull(timeoutsAttrTypes(ctx, containerTimeouts))

	// Nothing recorded (an import, or a container of an earlier version):
	// no health check, the default policy but for the start window, which
	// such a container does not have (it reads as 0, and a configuration
	// that keeps the default plans a settings change to 1).
	m, diags := containerFromState(ctx, engine.State{ID: "c1", Spec: engine.ContainerSpec{Image: "busybox"}}, prior)
	if diags.HasError() {
		t.Fatal(diags)
	}
	noWindow := defaultUpgradeObject().Attributes()
	noWindow["verify_seconds"] = types.Int64Value(0)
	if want := types.ObjectValueMust(upgradeAttrTypes, noWindow); !m.Healthcheck.IsNull() || !m.Upgrade.Equal(want) {
		t.Errorf("healthcheck %s, upgrade %s", m.Healthcheck, m.Upgrade)
	}
	// A health check recorded with zero values reads back as the defaults.
	st := engine.State{ID: "c1", Spec: engine.ContainerSpec{Image: "busybox",
		Healthcheck: &engine.Healthcheck{Command: []string{"true"}},
		Upgrade:     engine.UpgradePolicy{VerifySeconds: 4, NoRollback: true, KeepRevisions: 2, KeepRootfsChanges: true},
	}}
	m, diags = containerFromState(ctx, st, prior)
	if diags.HasError() {
		t.Fatal(diags)
	}
	want := `{"command":["true"],"interval":"30s","retries":3,"start_period":"0s","timeout":"30s"}`
	if got := m.Healthcheck.String(); got != want {
		t.Errorf("healthcheck read back as %s, want %s", got, want)
	}
	if got, want := m.Upgrade.String(), `{"keep_revisions":2,"keep_rootfs_changes":true,"rollback":false,"verify_seconds":4}`; got != want {
		t.Errorf("upgrade read back as %s, want %s", got, want)
	}
	spec, diags := m.spec(ctx)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if hc := spec.Healthcheck; hc == nil || hc.Interval != 30*time.Second || hc.Timeout != 30*time.Second ||
		hc.Retries != 3 || hc.StartPeriod != 0 || spec.Upgrade != st.Spec.Upgrade {
		t.Errorf("spec %+v %+v", spec.Healthcheck, spec.Upgrade)
	}

	// The user's spelling of a duration is kept when its value is.
	st.Spec.Healthcheck = &engine.Healthcheck{Command: []string{"true"}, Interval: time.Minute,
		Timeout: 1500 * time.Millisecond, Retries: 2, StartPeriod: 90 * time.Second}
	prior.Healthcheck = m.Healthcheck
	hcPrior, d := types.ObjectValue(healthcheckAttrTypes, map[string]attr.Value{
		"command": stringsToList([]string{"true"}, nil), "interval": types.StringValue("1m"),
		"timeout": types.StringValue("1500ms"), "start_period": types.StringValue("1m30s"), "retries": types.Int64Value(2),
	})
	if d.HasError() {
		t.Fatal(d)
	}
	prior.Healthcheck = hcPrior
	m, diags = containerFromState(ctx, st, prior)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if got := m.Healthcheck.String(); got != hcPrior.String() {
		t.Errorf("healthcheck read back as %s, want %s", got, hcPrior)
	}
}
