package provider

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// Defaults of pouch_container attributes.
const (
	defaultNetworkMode   = string(engine.NetworkHost)
	defaultRunning       = true
	defaultStopTimeout   = int64(engine.DefaultStopTimeout / time.Second)
	defaultCreateTimeout = 5 * time.Minute
	defaultUpdateTimeout = 5 * time.Minute
	defaultDeleteTimeout = 2 * time.Minute
)

// containerModel is the Terraform data of a pouch_container. It holds only
// what the user asked for: the image's defaults (its entrypoint, command,
// environment, working directory and user) apply underneath, in the engine,
// and never appear here.
type containerModel struct {
	ID          types.String   `tfsdk:"id"`
	Name        types.String   `tfsdk:"name"`
	Image       types.String   `tfsdk:"image"`
	ImageID     types.String   `tfsdk:"image_id"`
	Entrypoint  types.List     `tfsdk:"entrypoint"`
	Command     types.List     `tfsdk:"command"`
	Env         types.Map      `tfsdk:"env"`
	Labels      types.Map      `tfsdk:"labels"`
	WorkingDir  types.String   `tfsdk:"working_dir"`
	User        types.String   `tfsdk:"user"`
	NetworkMode types.String   `tfsdk:"network_mode"`
	Running     types.Bool     `tfsdk:"running"`
	StopTimeout types.Int64    `tfsdk:"stop_timeout"`
	Status      types.String   `tfsdk:"status"`
	Timeouts    timeouts.Value `tfsdk:"timeouts"`
}

// spec converts the planned model to the engine's desired container.
func (m containerModel) spec(ctx context.Context) (engine.ContainerSpec, diag.Diagnostics) {
	var diags diag.Diagnostics
	spec := engine.ContainerSpec{
		Name:        m.Name.ValueString(),
		Image:       m.Image.ValueString(),
		WorkingDir:  m.WorkingDir.ValueString(),
		User:        m.User.ValueString(),
		NetworkMode: engine.NetworkMode(m.NetworkMode.ValueString()),
		Running:     defaultRunning,
		StopTimeout: engine.DefaultStopTimeout,
	}
	if spec.NetworkMode == "" {
		spec.NetworkMode = engine.NetworkMode(defaultNetworkMode)
	}
	if !m.Running.IsNull() && !m.Running.IsUnknown() {
		spec.Running = m.Running.ValueBool()
	}
	if !m.StopTimeout.IsNull() && !m.StopTimeout.IsUnknown() {
		spec.StopTimeout = time.Duration(m.StopTimeout.ValueInt64()) * time.Second
	}
	spec.Entrypoint = listToStrings(ctx, m.Entrypoint, &diags)
	spec.Command = listToStrings(ctx, m.Command, &diags)
	spec.Env = mapToStrings(ctx, m.Env, &diags)
	spec.Labels = mapToStrings(ctx, m.Labels, &diags)
	return spec, diags
}

// containerFromState builds the model of a container read back from the
// engine. prior is the model Terraform had (the plan, the prior state, or an
// almost empty model on import): it supplies what containerd cannot tell
// apart (an empty map from no map, the timeouts).
func containerFromState(ctx context.Context, st engine.State, prior containerModel) (containerModel, diag.Diagnostics) {
	var diags diag.Diagnostics
	name := st.ID
	if name == "" {
		name = st.Spec.Name
	}
	if name == "" {
		name = prior.Name.ValueString()
	}
	m := containerModel{
		ID:          types.StringValue(name),
		Name:        types.StringValue(name),
		Image:       types.StringValue(st.Spec.Image),
		ImageID:     types.StringValue(st.ImageDigest),
		WorkingDir:  optionalString(st.Spec.WorkingDir),
		User:        optionalString(st.Spec.User),
		Running:     types.BoolValue(st.Status == engine.StatusRunning),
		Status:      types.StringValue(string(st.Status)),
		Timeouts:    prior.Timeouts,
		Entrypoint:  stringsToList(st.Spec.Entrypoint, &diags),
		Command:     stringsToList(st.Spec.Command, &diags),
		Env:         stringsToMap(st.Spec.Env, prior.Env, &diags),
		Labels:      stringsToMap(userLabels(st.Spec.Labels), prior.Labels, &diags),
		NetworkMode: types.StringValue(string(st.Spec.NetworkMode)),
	}
	if st.Spec.NetworkMode == "" {
		m.NetworkMode = knownOr(prior.NetworkMode, defaultNetworkMode)
	}
	m.StopTimeout = types.Int64Value(int64(st.Spec.StopTimeout / time.Second))
	if m.Timeouts.IsUnknown() || m.Timeouts.Object.AttributeTypes(ctx) == nil {
		m.Timeouts = timeouts.Value{Object: types.ObjectNull(timeoutsAttrTypes(ctx))}
	}
	return m, diags
}

// userLabels drops the engine's own labels, which users cannot set.
func userLabels(labels map[string]string) map[string]string {
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		if !strings.HasPrefix(k, reservedLabelPrefix) {
			out[k] = v
		}
	}
	return out
}

func optionalString(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func knownOr(v types.String, def string) types.String {
	if v.IsNull() || v.IsUnknown() {
		return types.StringValue(def)
	}
	return v
}

// listToStrings returns nil for a null (or unknown) list and a non-nil slice
// for a set one, so that `[]` stays an explicit empty value.
func listToStrings(ctx context.Context, l types.List, diags *diag.Diagnostics) []string {
	if l.IsNull() || l.IsUnknown() {
		return nil
	}
	out := []string{}
	diags.Append(l.ElementsAs(ctx, &out, false)...)
	if out == nil {
		out = []string{}
	}
	return out
}

func mapToStrings(ctx context.Context, m types.Map, diags *diag.Diagnostics) map[string]string {
	if m.IsNull() || m.IsUnknown() {
		return nil
	}
	out := map[string]string{}
	diags.Append(m.ElementsAs(ctx, &out, false)...)
	return out
}

// stringsToList is the inverse of listToStrings: nil is "not set" (null).
func stringsToList(s []string, diags *diag.Diagnostics) types.List {
	if s == nil {
		return types.ListNull(types.StringType)
	}
	l, d := types.ListValueFrom(context.Background(), types.StringType, s)
	diags.Append(d...)
	return l
}

// stringsToMap converts a map read back from containerd, which does not tell
// an empty map from no map: an empty one keeps the prior value's form.
func stringsToMap(s map[string]string, prior types.Map, diags *diag.Diagnostics) types.Map {
	if len(s) == 0 {
		if !prior.IsNull() && !prior.IsUnknown() && len(prior.Elements()) == 0 {
			return prior
		}
		return types.MapNull(types.StringType)
	}
	m, d := types.MapValueFrom(context.Background(), types.StringType, s)
	diags.Append(d...)
	return m
}
