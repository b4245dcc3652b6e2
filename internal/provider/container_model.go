package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// Defaults of pouch_container attributes.
const (
	defaultNetworkMode   = string(engine.NetworkBridge)
	defaultRestart       = string(engine.RestartNo)
	defaultStopSignal    = engine.DefaultStopSignal
	defaultSeccomp       = engine.SeccompDefault
	defaultRunning       = true
	defaultStopTimeout   = int64(engine.DefaultStopTimeout / time.Second)
	defaultCreateTimeout = 5 * time.Minute
	defaultUpdateTimeout = 5 * time.Minute
	defaultDeleteTimeout = 2 * time.Minute
)

// defaultProtocol is the protocol of a published port that names none.
var defaultProtocol = engine.Protocols[0]

// containerModel is the Terraform data of a pouch_container. It holds only
// what the user asked for: the image's defaults (its entrypoint, command,
// environment, working directory and user) apply underneath, in the engine,
// and never appear here.
type containerModel struct {
	ID         types.String `tfsdk:"id"`
	Name       types.String `tfsdk:"name"`
	Image      types.String `tfsdk:"image"`
	PullPolicy types.String `tfsdk:"pull_policy"`
	ImageID    types.String `tfsdk:"image_id"`
	Entrypoint types.List   `tfsdk:"entrypoint"`
	Command    types.List   `tfsdk:"command"`
	Env        types.Map    `tfsdk:"env"`
	Labels     types.Map    `tfsdk:"labels"`

	// SecretEnv is write-only: always null in plans and state; its values
	// are read from the configuration when the container changes.
	SecretEnv        types.Map      `tfsdk:"secret_env"`
	SecretEnvVersion types.String   `tfsdk:"secret_env_version"`
	WorkingDir       types.String   `tfsdk:"working_dir"`
	User             types.String   `tfsdk:"user"`
	NetworkMode      types.String   `tfsdk:"network_mode"`
	Running          types.Bool     `tfsdk:"running"`
	StopTimeout      types.Int64    `tfsdk:"stop_timeout"`
	Status           types.String   `tfsdk:"status"`
	Timeouts         timeouts.Value `tfsdk:"timeouts"`

	Hostname         types.String `tfsdk:"hostname"`
	IPAddress        types.String `tfsdk:"ip_address"`
	IPv4Address      types.String `tfsdk:"ipv4_address"`
	MACAddress       types.String `tfsdk:"mac_address"`
	Ports            types.List   `tfsdk:"ports"`
	Mounts           types.List   `tfsdk:"mounts"`
	KeepImageVolumes types.Bool   `tfsdk:"keep_image_volumes"`
	ImageVolumes     types.List   `tfsdk:"image_volumes"`
	LogPath          types.String `tfsdk:"log_path"`
	LogMaxSize       types.Int64  `tfsdk:"log_max_size"`
	LogMaxFiles      types.Int64  `tfsdk:"log_max_files"`
	Restart          types.String `tfsdk:"restart"`
	StopSignal       types.String `tfsdk:"stop_signal"`

	Memory     types.Int64   `tfsdk:"memory"`
	MemorySwap types.Int64   `tfsdk:"memory_swap"`
	CPUs       types.Float64 `tfsdk:"cpus"`
	CPUShares  types.Int64   `tfsdk:"cpu_shares"`
	PidsLimit  types.Int64   `tfsdk:"pids_limit"`

	Privileged      types.Bool   `tfsdk:"privileged"`
	ReadOnlyRootfs  types.Bool   `tfsdk:"read_only_rootfs"`
	Capabilities    types.Object `tfsdk:"capabilities"`
	SeccompProfile  types.String `tfsdk:"seccomp_profile"`
	NoNewPrivileges types.Bool   `tfsdk:"no_new_privileges"`

	Healthcheck types.Object `tfsdk:"healthcheck"`
	Upgrade     types.Object `tfsdk:"upgrade"`

	serviceModel
}

// portModel is one element of ports.
type portModel struct {
	Internal types.Int64  `tfsdk:"internal"`
	External types.Int64  `tfsdk:"external"`
	IP       types.String `tfsdk:"ip"`
	Protocol types.String `tfsdk:"protocol"`
}

var portAttrTypes = map[string]attr.Type{
	"internal": types.Int64Type,
	"external": types.Int64Type,
	"ip":       types.StringType,
	"protocol": types.StringType,
}

// mountModel is one element of mounts.
type mountModel struct {
	Type      types.String `tfsdk:"type"`
	Source    types.String `tfsdk:"source"`
	Target    types.String `tfsdk:"target"`
	ReadOnly  types.Bool   `tfsdk:"read_only"`
	TmpfsSize types.Int64  `tfsdk:"tmpfs_size"`
}

var mountAttrTypes = map[string]attr.Type{
	"type":       types.StringType,
	"source":     types.StringType,
	"target":     types.StringType,
	"read_only":  types.BoolType,
	"tmpfs_size": types.Int64Type,
}

// imageVolumeModel is one element of image_volumes.
type imageVolumeModel struct {
	Target types.String `tfsdk:"target"`
	Path   types.String `tfsdk:"path"`
}

var imageVolumeAttrTypes = map[string]attr.Type{
	"target": types.StringType,
	"path":   types.StringType,
}

// capabilitiesModel is the capabilities object.
type capabilitiesModel struct {
	Add  types.List `tfsdk:"add"`
	Drop types.List `tfsdk:"drop"`
}

var capabilitiesAttrTypes = map[string]attr.Type{
	"add":  types.ListType{ElemType: types.StringType},
	"drop": types.ListType{ElemType: types.StringType},
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

	spec.Hostname = knownString(m.Hostname)
	spec.IPv4Address = knownString(m.IPv4Address)
	spec.KeepImageVolumes = m.KeepImageVolumes.ValueBool()
	spec.PullPolicy = engine.PullPolicy(stringOrDefault(knownString(m.PullPolicy), string(engine.PullMissing)))
	spec.Restart = engine.RestartPolicy(knownString(m.Restart))
	if spec.Restart == "" {
		spec.Restart = engine.RestartPolicy(defaultRestart)
	}
	spec.StopSignal = knownString(m.StopSignal)
	if spec.StopSignal == "" {
		spec.StopSignal = defaultStopSignal
	}
	if !m.Ports.IsNull() && !m.Ports.IsUnknown() {
		var ports []portModel
		diags.Append(m.Ports.ElementsAs(ctx, &ports, false)...)
		spec.Ports = make([]engine.PortMapping, 0, len(ports))
		for _, p := range ports {
			spec.Ports = append(spec.Ports, portMapping(p))
		}
	}
	if !m.Mounts.IsNull() && !m.Mounts.IsUnknown() {
		var mounts []mountModel
		diags.Append(m.Mounts.ElementsAs(ctx, &mounts, false)...)
		spec.Mounts = make([]engine.Mount, 0, len(mounts))
		for _, mt := range mounts {
			spec.Mounts = append(spec.Mounts, mountSpec(mt))
		}
	}
	spec.SecretEnvVersion = knownString(m.SecretEnvVersion)
	spec.Log = engine.LogOptions{
		MaxSizeMiB: int(int64Or(m.LogMaxSize, engine.DefaultLogMaxSizeMiB)),
		MaxFiles:   int(int64Or(m.LogMaxFiles, engine.DefaultLogMaxFiles)),
	}
	spec.Resources = engine.Resources{
		MemoryMiB:     m.Memory.ValueInt64(),
		MemorySwapMiB: m.MemorySwap.ValueInt64(),
		CPUs:          m.CPUs.ValueFloat64(),
		CPUShares:     m.CPUShares.ValueInt64(),
		PidsLimit:     m.PidsLimit.ValueInt64(),
	}
	spec.Security = engine.Security{
		Privileged:         m.Privileged.ValueBool(),
		ReadOnlyRootfs:     m.ReadOnlyRootfs.ValueBool(),
		SeccompProfile:     knownString(m.SeccompProfile),
		AllowNewPrivileges: !m.NoNewPrivileges.IsNull() && !m.NoNewPrivileges.IsUnknown() && !m.NoNewPrivileges.ValueBool(),
	}
	if spec.Security.SeccompProfile == "" {
		spec.Security.SeccompProfile = defaultSeccomp
	}
	if !m.Capabilities.IsNull() && !m.Capabilities.IsUnknown() {
		var caps capabilitiesModel
		diags.Append(m.Capabilities.As(ctx, &caps, basetypes.ObjectAsOptions{})...)
		spec.Security.CapAdd = listToStrings(ctx, caps.Add, &diags)
		spec.Security.CapDrop = listToStrings(ctx, caps.Drop, &diags)
	}
	spec.Healthcheck = healthcheckSpec(ctx, m.Healthcheck, &diags)
	spec.Upgrade = upgradeSpec(ctx, m.Upgrade, &diags)
	m.serviceModel.applyTo(ctx, &spec, &diags)
	return spec, diags
}

// portMapping is the engine's form of a published port.
func portMapping(p portModel) engine.PortMapping {
	return engine.PortMapping{
		HostIP:        knownString(p.IP),
		HostPort:      int(p.External.ValueInt64()),
		ContainerPort: int(p.Internal.ValueInt64()),
		Protocol:      stringOrDefault(knownString(p.Protocol), defaultProtocol),
	}
}

// mountSpec is the engine's form of a mount.
func mountSpec(m mountModel) engine.Mount {
	return engine.Mount{
		Type:         engine.MountType(knownString(m.Type)),
		Source:       knownString(m.Source),
		Target:       knownString(m.Target),
		ReadOnly:     m.ReadOnly.ValueBool(),
		TmpfsSizeMiB: m.TmpfsSize.ValueInt64(),
	}
}

// int64Or is v's value, def when null or unknown.
func int64Or(v types.Int64, def int64) int64 {
	if v.IsNull() || v.IsUnknown() {
		return def
	}
	return v.ValueInt64()
}

// knownString is v's value, "" when null or unknown.
func knownString(v types.String) string {
	if v.IsNull() || v.IsUnknown() {
		return ""
	}
	return v.ValueString()
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
		Running:     types.BoolValue(st.Spec.Running),
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

	m.Hostname = types.StringValue(stringOrDefault(st.Spec.Hostname, name))
	m.IPAddress = optionalString(st.IPAddress)
	m.IPv4Address = optionalString(st.Spec.IPv4Address)
	m.MACAddress = optionalString(st.MACAddress)
	m.LogPath = optionalString(st.LogPath)
	m.SecretEnv = types.MapNull(types.StringType)
	m.SecretEnvVersion = optionalString(st.Spec.SecretEnvVersion)
	logOpts := st.Spec.Log
	m.LogMaxSize = types.Int64Value(int64(intOr(logOpts.MaxSizeMiB, engine.DefaultLogMaxSizeMiB)))
	m.LogMaxFiles = types.Int64Value(int64(intOr(logOpts.MaxFiles, engine.DefaultLogMaxFiles)))
	m.KeepImageVolumes = types.BoolValue(st.Spec.KeepImageVolumes)
	m.PullPolicy = types.StringValue(stringOrDefault(string(st.Spec.PullPolicy), string(engine.PullMissing)))
	m.Restart = types.StringValue(stringOrDefault(string(st.Spec.Restart), defaultRestart))
	m.StopSignal = types.StringValue(stringOrDefault(st.Spec.StopSignal, defaultStopSignal))
	m.Ports = portsToList(st.Spec.Ports, prior.Ports, &diags)
	m.Mounts = mountsToList(st.Spec.Mounts, prior.Mounts, &diags)
	m.ImageVolumes = imageVolumesToList(st.ImageVolumes, &diags)

	r := st.Spec.Resources
	m.Memory = optionalInt64(r.MemoryMiB)
	m.MemorySwap = optionalInt64(r.MemorySwapMiB)
	m.CPUShares = optionalInt64(r.CPUShares)
	m.PidsLimit = optionalInt64(r.PidsLimit)
	m.CPUs = types.Float64Null()
	if r.CPUs != 0 {
		m.CPUs = types.Float64Value(r.CPUs)
	}

	sec := st.Spec.Security
	m.Privileged = types.BoolValue(sec.Privileged)
	m.ReadOnlyRootfs = types.BoolValue(sec.ReadOnlyRootfs)
	m.SeccompProfile = types.StringValue(stringOrDefault(sec.SeccompProfile, defaultSeccomp))
	m.NoNewPrivileges = types.BoolValue(!sec.AllowNewPrivileges)
	m.Capabilities = capabilitiesToObject(ctx, sec.CapAdd, sec.CapDrop, prior.Capabilities, &diags)
	m.Healthcheck = healthcheckToObject(ctx, st.Spec.Healthcheck, prior.Healthcheck, &diags)
	m.Upgrade = upgradeToObject(ctx, st.Spec.Upgrade, &diags)
	m.serviceModel = serviceFromSpec(ctx, st.Spec, prior.serviceModel, &diags)
	m.Timeouts = timeoutsOrNull(ctx, m.Timeouts, containerTimeouts)
	return m, diags
}

// userLabels drops the labels users cannot set (pouch's and containerd's
// own), which the engine reads back with the user's.
func userLabels(labels map[string]string) map[string]string {
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		if engine.CheckLabelKey(k) == nil {
			out[k] = v
		}
	}
	return out
}

func intOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func optionalString(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func stringOrDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func optionalInt64(v int64) types.Int64 {
	if v == 0 {
		return types.Int64Null()
	}
	return types.Int64Value(v)
}

// emptyListOr returns prior when it is a known empty list (the user wrote
// `[]`, which containerd does not tell from no list), else a null list of
// elemType.
func emptyListOr(prior types.List, elemType attr.Type) types.List {
	if !prior.IsNull() && !prior.IsUnknown() && len(prior.Elements()) == 0 {
		return prior
	}
	return types.ListNull(elemType)
}

func portsToList(ports []engine.PortMapping, prior types.List, diags *diag.Diagnostics) types.List {
	elemType := types.ObjectType{AttrTypes: portAttrTypes}
	if len(ports) == 0 {
		return emptyListOr(prior, elemType)
	}
	out := make([]portModel, 0, len(ports))
	for _, p := range ports {
		out = append(out, portModel{
			Internal: types.Int64Value(int64(p.ContainerPort)),
			External: types.Int64Value(int64(p.HostPort)),
			IP:       optionalString(p.HostIP),
			Protocol: types.StringValue(stringOrDefault(p.Protocol, defaultProtocol)),
		})
	}
	l, d := types.ListValueFrom(context.Background(), elemType, out)
	diags.Append(d...)
	return l
}

func mountsToList(mounts []engine.Mount, prior types.List, diags *diag.Diagnostics) types.List {
	elemType := types.ObjectType{AttrTypes: mountAttrTypes}
	if len(mounts) == 0 {
		return emptyListOr(prior, elemType)
	}
	out := make([]mountModel, 0, len(mounts))
	for _, mt := range mounts {
		out = append(out, mountModel{
			Type:      types.StringValue(string(mt.Type)),
			Source:    optionalString(mt.Source),
			Target:    types.StringValue(mt.Target),
			ReadOnly:  types.BoolValue(mt.ReadOnly),
			TmpfsSize: optionalInt64(mt.TmpfsSizeMiB),
		})
	}
	l, d := types.ListValueFrom(context.Background(), elemType, out)
	diags.Append(d...)
	return l
}

// imageVolumesToList is always a known list, empty when the image declares
// no volume.
func imageVolumesToList(vols []engine.ImageVolume, diags *diag.Diagnostics) types.List {
	out := make([]imageVolumeModel, 0, len(vols))
	for _, v := range vols {
		out = append(out, imageVolumeModel{Target: types.StringValue(v.Target), Path: types.StringValue(v.Path)})
	}
	l, d := types.ListValueFrom(context.Background(), types.ObjectType{AttrTypes: imageVolumeAttrTypes}, out)
	diags.Append(d...)
	return l
}

// capabilitiesToObject builds the capabilities object; prior keeps the form
// the user wrote (no object, or lists that are null or empty).
func capabilitiesToObject(ctx context.Context, add, drop []string, prior types.Object, diags *diag.Diagnostics) types.Object {
	var priorCaps capabilitiesModel
	priorKnown := !prior.IsNull() && !prior.IsUnknown()
	if priorKnown {
		diags.Append(prior.As(ctx, &priorCaps, basetypes.ObjectAsOptions{})...)
	}
	if len(add) == 0 && len(drop) == 0 && !priorKnown {
		return types.ObjectNull(capabilitiesAttrTypes)
	}
	list := func(s []string, prior types.List) types.List {
		if len(s) == 0 {
			return emptyListOr(prior, types.StringType)
		}
		return stringsToList(s, diags)
	}
	o, d := types.ObjectValueFrom(ctx, capabilitiesAttrTypes, capabilitiesModel{
		Add:  list(add, priorCaps.Add),
		Drop: list(drop, priorCaps.Drop),
	})
	diags.Append(d...)
	return o
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
