package provider

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// attrs is a sketch of a pouch_container object: string, []string,
// map[string]string, bool, int64, nil (null) or a tftypes.Value (e.g.
// unknown) per attribute; attributes left out are null.
type attrs map[string]any

// emptyList is a known, empty list of any element type.
type emptyList struct{}

func containerObjectType(t *testing.T) tftypes.Object {
	t.Helper()
	ctx := context.Background()
	typ, ok := containerSchema(ctx).Type().TerraformType(ctx).(tftypes.Object)
	if !ok {
		t.Fatal("container schema type is not an object")
	}
	return typ
}

func toTF(t *testing.T, typ tftypes.Type, v any) tftypes.Value {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return tftypes.NewValue(typ, nil)
	case tftypes.Value:
		return v
	case string:
		return tftypes.NewValue(typ, v)
	case bool:
		return tftypes.NewValue(typ, v)
	case int64:
		return tftypes.NewValue(typ, new(big.Float).SetInt64(v))
	case float64:
		return tftypes.NewValue(typ, big.NewFloat(v))
	case emptyList:
		return tftypes.NewValue(typ, []tftypes.Value{})
	case []string:
		elems := []tftypes.Value{}
		for _, s := range v {
			elems = append(elems, tftypes.NewValue(tftypes.String, s))
		}
		return tftypes.NewValue(typ, elems)
	case map[string]string:
		elems := map[string]tftypes.Value{}
		for k, s := range v {
			elems[k] = tftypes.NewValue(tftypes.String, s)
		}
		return tftypes.NewValue(typ, elems)
	}
	t.Fatalf("unsupported value %T", v)
	return tftypes.Value{}
}

func containerValue(t *testing.T, a attrs) tftypes.Value {
	t.Helper()
	typ := containerObjectType(t)
	vals := map[string]tftypes.Value{}
	for name, at := range typ.AttributeTypes {
		vals[name] = toTF(t, at, a[name])
	}
	for name := range a {
		if _, ok := typ.AttributeTypes[name]; !ok {
			t.Fatalf("no attribute %q", name)
		}
	}
	return tftypes.NewValue(typ, vals)
}

func dynamic(t *testing.T, v tftypes.Value) *tfprotov6.DynamicValue {
	t.Helper()
	dv, err := tfprotov6.NewDynamicValue(containerObjectType(t), v)
	if err != nil {
		t.Fatal(err)
	}
	return &dv
}

func validateContainer(t *testing.T, cfg attrs) []*tfprotov6.Diagnostic {
	t.Helper()
	resp, err := protoServer(t).ValidateResourceConfig(context.Background(), &tfprotov6.ValidateResourceConfigRequest{
		TypeName: "pouch_container",
		Config:   dynamic(t, containerValue(t, cfg)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Diagnostics
}

func TestContainer_validation(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	valid := []attrs{
		{"name": "web", "image": "busybox"},
		{"name": "a", "image": "busybox:1.36"},
		{"name": "web-1.blue_x", "image": "docker.io/library/alpine:3.20"},
		{"name": strings.Repeat("a", 76), "image": "127.0.0.1:5000/pouchtest/app:v1"},
		{"name": "web", "image": "registry.example:5000/app@" + digest},
		{"name": "web", "image": "busybox", "env": map[string]string{"A": "1", "B_C": "x=y"}},
		{"name": "web", "image": "busybox", "labels": map[string]string{"app": "web", "io.other": "x"}},
		{"name": "web", "image": "busybox", "network_mode": "none", "stop_timeout": int64(0)},
		{"name": "web", "image": "busybox", "network_mode": "bridge", "hostname": "db-1.internal"},
		{"name": "web", "image": "busybox", "memory": int64(64), "memory_swap": int64(-1), "cpus": 0.5,
			"cpu_shares": int64(512), "pids_limit": int64(100)},
		{"name": "web", "image": "busybox", "memory": int64(64), "memory_swap": int64(64)},
		{"name": "web", "image": "busybox", "restart": "unless-stopped", "stop_signal": "SIGQUIT",
			"seccomp_profile": "/etc/seccomp.json", "no_new_privileges": false, "privileged": true},
		{"name": "web", "image": "busybox", "working_dir": "/srv", "user": "1000:1000"},
		{"name": "web", "image": "busybox", "command": []string{}, "entrypoint": []string{"sh", "-c"}},
		// Values not known yet are not rejected.
		{"name": tftypes.NewValue(tftypes.String, tftypes.UnknownValue),
			"image": tftypes.NewValue(tftypes.String, tftypes.UnknownValue)},
	}
	for _, cfg := range valid {
		if diags := validateContainer(t, cfg); len(diags) != 0 {
			t.Errorf("config %v: unexpected diagnostics:\n%s", cfg, diagText(diags))
		}
	}

	invalid := []struct {
		cfg  attrs
		attr string // the attribute the diagnostic must name
		want string // text the diagnostic must contain
	}{
		{attrs{"name": "-web", "image": "busybox"}, "name", "starting and ending with a letter or digit"},
		{attrs{"name": "web-", "image": "busybox"}, "name", "starting and ending with a letter or digit"},
		{attrs{"name": "web server", "image": "busybox"}, "name", "letters and digits"},
		{attrs{"name": "web/1", "image": "busybox"}, "name", "letters and digits"},
		{attrs{"name": "", "image": "busybox"}, "name", "1 to 76"},
		{attrs{"name": strings.Repeat("a", 77), "image": "busybox"}, "name", "1 to 76"},
		{attrs{"name": "web", "image": ""}, "image", "must not be empty"},
		{attrs{"name": "web", "image": "busybox latest"}, "image", "whitespace"},
		{attrs{"name": "web", "image": " busybox"}, "image", "whitespace"},
		{attrs{"name": "web", "image": "Busybox"}, "image", "image reference"},
		{attrs{"name": "web", "image": "busybox:"}, "image", "image reference"},
		{attrs{"name": "web", "image": "busybox@sha256:abc"}, "image", "image reference"},
		{attrs{"name": "web", "image": "busybox", "env": map[string]string{"A=B": "1"}}, "env", "must not contain '='"},
		{attrs{"name": "web", "image": "busybox", "env": map[string]string{"": "1"}}, "env", "must not be empty"},
		{attrs{"name": "web", "image": "busybox", "env": map[string]string{"A": "x\x00y"}}, "env", "must not contain NUL"},
		{attrs{"name": "web", "image": "busybox", "command": []string{"sh", "a\x00b"}}, "command", "must not contain NUL"},
		{attrs{"name": "web", "image": "busybox", "labels": map[string]string{"containerd.io/restart.status": "running"}}, "labels", "reserved"},
		{attrs{"name": "web", "image": "busybox", "labels": map[string]string{"io.containerd.x": "y"}}, "labels", "reserved"},
		{attrs{"name": "web", "image": "busybox", "labels": map[string]string{"big": strings.Repeat("v", 4094)}}, "labels", "4096 bytes"},
		{attrs{"name": "web", "image": "busybox", "memory": int64(1) << 44}, "memory", "between 1 and"},
		{attrs{"name": "web", "image": "busybox", "cpus": 1e30}, "cpus", "between 0.01 and 4096"},
		{attrs{"name": "web", "image": "busybox", "cpu_shares": int64(1) << 40}, "cpu_shares", "between 2 and 262144"},
		{attrs{"name": "web", "image": "busybox", "pids_limit": int64(1) << 40}, "pids_limit", "between 1 and"},
		{attrs{"name": "web", "image": "busybox", "labels": map[string]string{"io.pouch.record": "x"}}, "labels", "reserved"},
		{attrs{"name": "web", "image": "busybox", "network_mode": "overlay"}, "network_mode", "bridge"},
		{attrs{"name": "web", "image": "busybox", "memory": int64(0)}, "memory", "between 1 and"},
		{attrs{"name": "web", "image": "busybox", "memory": int64(64), "memory_swap": int64(32)}, "memory_swap", "at least memory"},
		{attrs{"name": "web", "image": "busybox", "memory_swap": int64(-1)}, "memory_swap", "memory"},
		{attrs{"name": "web", "image": "busybox", "cpus": float64(0)}, "cpus", "between 0.01 and"},
		{attrs{"name": "web", "image": "busybox", "cpus": float64(-0.5)}, "cpus", "between 0.01 and"},
		{attrs{"name": "web", "image": "busybox", "cpu_shares": int64(1)}, "cpu_shares", "between 2 and"},
		{attrs{"name": "web", "image": "busybox", "pids_limit": int64(0)}, "pids_limit", "between 1 and"},
		{attrs{"name": "web", "image": "busybox", "restart": "on-failure"}, "restart", "unless-stopped"},
		{attrs{"name": "web", "image": "busybox", "stop_signal": "TERM"}, "stop_signal", "SIGTERM"},
		{attrs{"name": "web", "image": "busybox", "seccomp_profile": "strict"}, "seccomp_profile", "unconfined"},
		{attrs{"name": "web", "image": "busybox", "hostname": "web server"}, "hostname", "host name"},
		{attrs{"name": "web", "image": "busybox", "stop_timeout": int64(-1)}, "stop_timeout", "between 0 and"},
		{attrs{"name": "web", "image": "busybox", "working_dir": "srv"}, "working_dir", "absolute path"},
		{attrs{"name": "web", "image": "busybox", "user": ""}, "user", "at least 1"},
	}
	for _, tc := range invalid {
		diags := validateContainer(t, tc.cfg)
		var found bool
		for _, d := range diags {
			if d.Severity != tfprotov6.DiagnosticSeverityError || d.Attribute == nil {
				continue
			}
			steps := d.Attribute.Steps()
			if len(steps) > 0 && steps[0] == tftypes.AttributeName(tc.attr) &&
				strings.Contains(d.Detail, tc.attr) && strings.Contains(d.Detail, tc.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("config %v: want an error on %s containing %q, got:\n%s", tc.cfg, tc.attr, tc.want, diagText(diags))
		}
	}
}

// planContainer runs PlanResourceChange the way Terraform does: the proposed
// new state is the configuration, with the prior values of computed
// attributes the configuration leaves null. prior nil plans a create.
func planContainer(t *testing.T, prior, config attrs) (map[string]tftypes.Value, *tfprotov6.PlanResourceChangeResponse) {
	t.Helper()
	ctx := context.Background()
	s := containerSchema(ctx)
	typ := containerObjectType(t)
	proposed := attrs{}
	for name, a := range s.Attributes {
		if v, ok := config[name]; ok && v != nil {
			proposed[name] = v
		} else if a.IsComputed() && prior != nil {
			proposed[name] = prior[name]
		}
	}
	priorVal := tftypes.NewValue(typ, nil)
	if prior != nil {
		priorVal = containerValue(t, prior)
	}
	resp, err := protoServer(t).PlanResourceChange(ctx, &tfprotov6.PlanResourceChangeRequest{
		TypeName:         "pouch_container",
		PriorState:       dynamic(t, priorVal),
		ProposedNewState: dynamic(t, containerValue(t, proposed)),
		Config:           dynamic(t, containerValue(t, config)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range resp.Diagnostics {
		if d.Severity == tfprotov6.DiagnosticSeverityError {
			t.Fatalf("plan diagnostics:\n%s", diagText(resp.Diagnostics))
		}
	}
	planned, err := resp.PlannedState.Unmarshal(typ)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]tftypes.Value{}
	if err := planned.As(&out); err != nil {
		t.Fatal(err)
	}
	return out, resp
}

func wantValue(t *testing.T, planned map[string]tftypes.Value, name string, want any) {
	t.Helper()
	typ := containerObjectType(t).AttributeTypes[name]
	if w := toTF(t, typ, want); !planned[name].Equal(w) {
		t.Errorf("planned %s = %v, want %v", name, planned[name], w)
	}
}

func unknown(typ tftypes.Type) tftypes.Value { return tftypes.NewValue(typ, tftypes.UnknownValue) }

// priorContainer is the state of a container created with command ["x"] and
// running = false.
func priorContainer() attrs {
	return attrs{
		"id": "c1", "name": "c1", "image": "docker.io/pouchtest/app:v1",
		"image_id": "sha256:aaa", "command": []string{"x"},
		"network_mode": "bridge", "running": false, "stop_timeout": int64(10), "status": "stopped",
		"ip_address": "10.88.0.5", "mac_address": "0a:58:0a:58:00:05", "hostname": "c1", "keep_image_volumes": false, "image_volumes": emptyList{},
		"log_path": "/var/lib/pouch/logs/c1/c1.log", "restart": "no", "stop_signal": "SIGTERM", "pull_policy": "missing",
		"privileged": false, "read_only_rootfs": false, "seccomp_profile": "default", "no_new_privileges": true,
		"upgrade": upgradeValue(1, true, 0, false), "log_max_size": int64(20), "log_max_files": int64(5),
	}
}

// upgradeValue is an upgrade object.
func upgradeValue(verify int64, rollback bool, keep int64, keepRootfs bool) tftypes.Value {
	typ := tftypes.Object{AttributeTypes: map[string]tftypes.Type{
		"verify_seconds": tftypes.Number, "rollback": tftypes.Bool,
		"keep_revisions": tftypes.Number, "keep_rootfs_changes": tftypes.Bool,
	}}
	return tftypes.NewValue(typ, map[string]tftypes.Value{
		"verify_seconds":      tftypes.NewValue(tftypes.Number, new(big.Float).SetInt64(verify)),
		"rollback":            tftypes.NewValue(tftypes.Bool, rollback),
		"keep_revisions":      tftypes.NewValue(tftypes.Number, new(big.Float).SetInt64(keep)),
		"keep_rootfs_changes": tftypes.NewValue(tftypes.Bool, keepRootfs),
	})
}

func TestContainer_planCreate(t *testing.T) {
	planned, _ := planContainer(t, nil, attrs{"name": "c1", "image": "busybox"})
	listT := tftypes.List{ElementType: tftypes.String}
	wantValue(t, planned, "hostname", "c1") // defaults to the name
	wantValue(t, planned, "restart", "no")
	wantValue(t, planned, "stop_signal", "SIGTERM")
	wantValue(t, planned, "pull_policy", "missing")
	wantValue(t, planned, "seccomp_profile", "default")
	wantValue(t, planned, "no_new_privileges", true)
	wantValue(t, planned, "privileged", false)
	wantValue(t, planned, "memory", nil)
	wantValue(t, planned, "ip_address", unknown(tftypes.String))
	// The image's entrypoint and command are not the user's: they stay null.
	wantValue(t, planned, "command", nil)
	wantValue(t, planned, "entrypoint", nil)
	wantValue(t, planned, "env", nil)
	wantValue(t, planned, "running", true)
	wantValue(t, planned, "network_mode", "bridge")
	wantValue(t, planned, "stop_timeout", int64(10))
	wantValue(t, planned, "id", unknown(tftypes.String))
	wantValue(t, planned, "image_id", unknown(tftypes.String))
	wantValue(t, planned, "status", unknown(tftypes.String))

	planned, _ = planContainer(t, nil, attrs{"name": "c1", "image": "busybox", "command": unknown(listT)})
	wantValue(t, planned, "command", unknown(listT))
}

func TestContainer_planNoChange(t *testing.T) {
	prior := priorContainer()
	planned, resp := planContainer(t, prior, attrs{"name": "c1", "image": "docker.io/pouchtest/app:v1", "running": false})
	for name, v := range prior {
		wantValue(t, planned, name, v)
	}
	if len(resp.RequiresReplace) != 0 {
		t.Errorf("requires replace: %v", resp.RequiresReplace)
	}
}

func TestContainer_planStartKeepsImageID(t *testing.T) {
	// running false -> true (the default), same image: image_id keeps its
	// value, status is unknown, command removed from the configuration keeps
	// the value set before.
	planned, resp := planContainer(t, priorContainer(), attrs{"name": "c1", "image": "docker.io/pouchtest/app:v1"})
	wantValue(t, planned, "running", true)
	wantValue(t, planned, "image_id", "sha256:aaa")
	wantValue(t, planned, "id", "c1")
	wantValue(t, planned, "command", []string{"x"})
	wantValue(t, planned, "status", unknown(tftypes.String))
	// The network identity and the image's volumes do not change.
	wantValue(t, planned, "ip_address", "10.88.0.5")
	wantValue(t, planned, "mac_address", "0a:58:0a:58:00:05")
	wantValue(t, planned, "image_volumes", emptyList{})
	wantValue(t, planned, "hostname", "c1")
	if len(resp.RequiresReplace) != 0 {
		t.Errorf("requires replace: %v", resp.RequiresReplace)
	}
}

func TestContainer_planImageChangeIsInPlace(t *testing.T) {
	planned, resp := planContainer(t, priorContainer(), attrs{
		"name": "c1", "image": "docker.io/pouchtest/app:v2", "running": false, "command": []string{},
	})
	wantValue(t, planned, "image_id", unknown(tftypes.String))
	wantValue(t, planned, "status", unknown(tftypes.String))
	wantValue(t, planned, "id", "c1")
	wantValue(t, planned, "command", []string{}) // explicitly cleared
	// The new image may declare other volumes; the network identity stays.
	wantValue(t, planned, "image_volumes", unknown(containerObjectType(t).AttributeTypes["image_volumes"]))
	wantValue(t, planned, "ip_address", "10.88.0.5")
	if len(resp.RequiresReplace) != 0 {
		t.Errorf("an image change must update in place, got requires replace %v", resp.RequiresReplace)
	}
}

func TestContainer_planNameChangeReplaces(t *testing.T) {
	_, resp := planContainer(t, priorContainer(), attrs{"name": "c2", "image": "docker.io/pouchtest/app:v1", "running": false})
	if len(resp.RequiresReplace) != 1 || !resp.RequiresReplace[0].Equal(tftypes.NewAttributePath().WithAttributeName("name")) {
		t.Errorf("requires replace %v, want [name]", resp.RequiresReplace)
	}
}

func TestContainer_modelRoundTrip(t *testing.T) {
	ctx := context.Background()
	plan := containerModel{
		Name:        types.StringValue("c1"),
		Image:       types.StringValue("busybox:1.36"),
		Entrypoint:  types.ListNull(types.StringType),
		Command:     stringsToList([]string{}, nil),
		Env:         types.MapValueMust(types.StringType, map[string]attr.Value{}),
		Labels:      types.MapNull(types.StringType),
		WorkingDir:  types.StringNull(),
		User:        types.StringValue("app"),
		NetworkMode: types.StringValue("none"),
		Running:     types.BoolValue(false),
		StopTimeout: types.Int64Value(0),
	}
	plan.Timeouts.Object = types.ObjectNull(timeoutsAttrTypes(ctx, containerTimeouts))
	spec, diags := plan.spec(ctx)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if spec.Entrypoint != nil || spec.Command == nil || len(spec.Command) != 0 {
		t.Errorf("entrypoint %#v (want nil: image default), command %#v (want empty, non-nil)", spec.Entrypoint, spec.Command)
	}
	if spec.StopTimeout != 0 {
		t.Errorf("stop_timeout 0 (kill at once) sent as %v", spec.StopTimeout)
	}
	if spec.NetworkMode != engine.NetworkNone || spec.Running || spec.User != "app" || spec.WorkingDir != "" {
		t.Errorf("spec %+v", spec)
	}

	// What containerd gives back: the record, plus the engine's own labels.
	recorded := spec
	recorded.Env = nil
	recorded.Labels = map[string]string{"io.pouch.internal": "x"}
	st := engine.State{ID: "c1", Spec: recorded, ImageDigest: "sha256:abc", Status: engine.StatusCreated}
	got, diags := containerFromState(ctx, st, plan)
	if diags.HasError() {
		t.Fatal(diags)
	}
	want := plan
	want.ID = types.StringValue("c1")
	want.ImageID = types.StringValue("sha256:abc")
	want.Status = types.StringValue("created")
	for _, c := range []struct {
		name      string
		got, want interface{ String() string }
	}{
		{"id", got.ID, want.ID}, {"name", got.Name, want.Name}, {"image", got.Image, want.Image},
		{"image_id", got.ImageID, want.ImageID}, {"entrypoint", got.Entrypoint, want.Entrypoint},
		{"command", got.Command, want.Command}, {"env", got.Env, want.Env}, {"labels", got.Labels, want.Labels},
		{"working_dir", got.WorkingDir, want.WorkingDir}, {"user", got.User, want.User},
		{"network_mode", got.NetworkMode, want.NetworkMode}, {"running", got.Running, want.Running},
		{"stop_timeout", got.StopTimeout, want.StopTimeout}, {"status", got.Status, want.Status},
	} {
		if c.got.String() != c.want.String() {
			t.Errorf("%s: read back %s, want %s", c.name, c.got, c.want)
		}
	}

	// Import: no prior values; the record and containerd's defaults fill in.
	st.Spec.StopTimeout = 10 * time.Second
	st.Spec.NetworkMode = ""
	st.Spec.Command = nil
	st.Status = engine.StatusRunning
	st.Spec.Running = true // the engine reads a running task as running
	imported := containerModel{Name: types.StringValue("c1"), ID: types.StringValue("c1")}
	imported.Timeouts.Object = types.ObjectNull(timeoutsAttrTypes(ctx, containerTimeouts))
	got, diags = containerFromState(ctx, st, imported)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if got.StopTimeout.ValueInt64() != 10 || got.NetworkMode.ValueString() != "bridge" ||
		!got.Running.ValueBool() || !got.Command.IsNull() || !got.Env.IsNull() || !got.Labels.IsNull() {
		t.Errorf("imported model %+v", got)
	}
}

func typesString(s string, null bool) types.String {
	if null {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func TestContainer_planNetworkModeChange(t *testing.T) {
	planned, resp := planContainer(t, priorContainer(), attrs{
		"name": "c1", "image": "docker.io/pouchtest/app:v1", "running": false, "network_mode": "host",
	})
	wantValue(t, planned, "ip_address", unknown(tftypes.String))
	wantValue(t, planned, "mac_address", unknown(tftypes.String))
	wantValue(t, planned, "image_id", "sha256:aaa")
	if len(resp.RequiresReplace) != 0 {
		t.Errorf("a network_mode change must restart in place, got requires replace %v", resp.RequiresReplace)
	}
	// hostname follows a new name when it is not set.
	planned, _ = planContainer(t, priorContainer(), attrs{"name": "c2", "image": "docker.io/pouchtest/app:v1"})
	wantValue(t, planned, "hostname", "c2")
	planned, _ = planContainer(t, priorContainer(), attrs{"name": "c1", "image": "docker.io/pouchtest/app:v1", "hostname": "db"})
	wantValue(t, planned, "hostname", "db")
}

func TestContainer_statefulRoundTrip(t *testing.T) {
	ctx := context.Background()
	st := engine.State{
		ID: "c1",
		Spec: engine.ContainerSpec{
			Name: "c1", Image: "busybox:1.36", NetworkMode: engine.NetworkBridge, StopTimeout: 10 * time.Second,
			Ports: []engine.PortMapping{
				{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
				{HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
			},
			Mounts: []engine.Mount{
				{Type: engine.MountVolume, Source: "data", Target: "/data"},
				{Type: engine.MountBind, Source: "/srv", Target: "/srv", ReadOnly: true},
				{Type: engine.MountTmpfs, Target: "/tmp", TmpfsSizeMiB: 16},
			},
			Resources: engine.Resources{MemoryMiB: 64, MemorySwapMiB: -1, CPUs: 0.5, CPUShares: 512, PidsLimit: 100},
			Security: engine.Security{
				ReadOnlyRootfs: true, CapAdd: []string{"NET_ADMIN"}, SeccompProfile: "unconfined", AllowNewPrivileges: true,
			},
			Restart: engine.RestartAlways, Hostname: "db", Running: true,
			Log: engine.LogOptions{MaxSizeMiB: 20, MaxFiles: 5},
		},
		IPAddress: "10.88.0.7", MACAddress: "0a:58:0a:58:00:07", LogPath: "/var/lib/pouch/logs/c1/c1.log",
		ImageVolumes: []engine.ImageVolume{{Target: "/var/lib/app", Path: "/var/lib/pouch/volumes/pouch/_anonymous/c1/x"}},
		Status:       engine.StatusRunning,
	}
	prior := containerModel{Name: types.StringValue("c1")}
	prior.Timeouts.Object = types.ObjectNull(timeoutsAttrTypes(ctx, containerTimeouts))
	m, diags := containerFromState(ctx, st, prior)
	if diags.HasError() {
		t.Fatal(diags)
	}
	spec, diags := m.spec(ctx)
	if diags.HasError() {
		t.Fatal(diags)
	}
	want := st.Spec
	want.StopSignal = defaultStopSignal // the defaults are written out
	want.PullPolicy = engine.PullMissing
	want.Running = true
	if fmt.Sprintf("%+v", spec) != fmt.Sprintf("%+v", want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", spec, want)
	}
	if m.IPAddress.ValueString() != "10.88.0.7" || m.LogPath.IsNull() || len(m.ImageVolumes.Elements()) != 1 ||
		m.Hostname.ValueString() != "db" || m.NoNewPrivileges.ValueBool() {
		t.Errorf("model %+v", m)
	}

	// Zero values read back as the schema's defaults, so that plans stay empty.
	m, diags = containerFromState(ctx, engine.State{ID: "c1", Spec: engine.ContainerSpec{Image: "busybox"}}, prior)
	if diags.HasError() {
		t.Fatal(diags)
	}
	for name, c := range map[string]struct{ got, want string }{
		"network_mode":      {m.NetworkMode.String(), `"bridge"`},
		"restart":           {m.Restart.String(), `"no"`},
		"stop_signal":       {m.StopSignal.String(), `"SIGTERM"`},
		"seccomp_profile":   {m.SeccompProfile.String(), `"default"`},
		"no_new_privileges": {m.NoNewPrivileges.String(), "true"},
		"hostname":          {m.Hostname.String(), `"c1"`},
		"ports":             {m.Ports.String(), "<null>"},
		"mounts":            {m.Mounts.String(), "<null>"},
		"capabilities":      {m.Capabilities.String(), "<null>"},
		"image_volumes":     {m.ImageVolumes.String(), "[]"},
		"memory":            {m.Memory.String(), "<null>"},
		"cpus":              {m.CPUs.String(), "<null>"},
	} {
		if c.got != c.want {
			t.Errorf("%s read back as %s, want %s", name, c.got, c.want)
		}
	}
}
