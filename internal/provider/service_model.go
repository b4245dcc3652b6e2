package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// serviceModel holds the pouch_container attributes of serviceAttributes.
type serviceModel struct {
	Ulimits           types.List   `tfsdk:"ulimits"`
	ShmSize           types.Int64  `tfsdk:"shm_size"`
	Sysctls           types.Map    `tfsdk:"sysctls"`
	Devices           types.List   `tfsdk:"devices"`
	GroupAdd          types.List   `tfsdk:"group_add"`
	OOMScoreAdj       types.Int64  `tfsdk:"oom_score_adj"`
	CpusetCPUs        types.String `tfsdk:"cpuset_cpus"`
	CpusetMems        types.String `tfsdk:"cpuset_mems"`
	MemoryReservation types.Int64  `tfsdk:"memory_reservation"`
	DNS               types.List   `tfsdk:"dns"`
	DNSSearch         types.List   `tfsdk:"dns_search"`
	DNSOptions        types.List   `tfsdk:"dns_options"`
	ExtraHosts        types.Map    `tfsdk:"extra_hosts"`
	Init              types.Bool   `tfsdk:"init"`
	Uploads           types.List   `tfsdk:"uploads"`
}

// ulimitModel is one element of ulimits.
type ulimitModel struct {
	Name types.String `tfsdk:"name"`
	Soft types.Int64  `tfsdk:"soft"`
	Hard types.Int64  `tfsdk:"hard"`
}

var ulimitAttrTypes = map[string]attr.Type{"name": types.StringType, "soft": types.Int64Type, "hard": types.Int64Type}

// deviceModel is one element of devices.
type deviceModel struct {
	HostPath      types.String `tfsdk:"host_path"`
	ContainerPath types.String `tfsdk:"container_path"`
	Permissions   types.String `tfsdk:"permissions"`
}

var deviceAttrTypes = map[string]attr.Type{"host_path": types.StringType, "container_path": types.StringType,
	"permissions": types.StringType}

// unknown reports whether any attribute of m, or any part of one, is not
// known yet.
func (m serviceModel) unknown() bool {
	for _, v := range []attr.Value{m.Ulimits, m.ShmSize, m.Sysctls, m.Devices, m.GroupAdd, m.OOMScoreAdj, m.CpusetCPUs,
		m.CpusetMems, m.MemoryReservation, m.DNS, m.DNSSearch, m.DNSOptions, m.ExtraHosts, m.Init, m.Uploads} {
		if anyUnknown(v) {
			return true
		}
	}
	return false
}

// anyUnknown reports whether v, or an element or attribute of it, is
// unknown.
func anyUnknown(v attr.Value) bool {
	if v.IsUnknown() {
		return true
	}
	var parts []attr.Value
	switch v := v.(type) {
	case types.List:
		parts = v.Elements()
	case types.Map:
		for _, e := range v.Elements() {
			parts = append(parts, e)
		}
	case types.Object:
		for _, e := range v.Attributes() {
			parts = append(parts, e)
		}
	}
	for _, p := range parts {
		if anyUnknown(p) {
			return true
		}
	}
	return false
}

// serviceSpec is the part of the engine's spec that m's service settings
// make; known is false while any of them (or an element) is unknown.
func (m serviceModel) serviceSpec(ctx context.Context) (spec engine.ContainerSpec, known bool) {
	if m.unknown() {
		return spec, false
	}
	var diags diag.Diagnostics
	m.applyTo(ctx, &spec, &diags)
	return spec, !diags.HasError()
}

// applyTo sets spec's service settings from m.
func (m serviceModel) applyTo(ctx context.Context, spec *engine.ContainerSpec, diags *diag.Diagnostics) {
	if !m.Ulimits.IsNull() && !m.Ulimits.IsUnknown() {
		var ls []ulimitModel
		diags.Append(m.Ulimits.ElementsAs(ctx, &ls, false)...)
		spec.Ulimits = make([]engine.Ulimit, 0, len(ls))
		for _, l := range ls {
			spec.Ulimits = append(spec.Ulimits, engine.Ulimit{Name: knownString(l.Name), Soft: l.Soft.ValueInt64(), Hard: l.Hard.ValueInt64()})
		}
	}
	spec.ShmSizeMiB = m.ShmSize.ValueInt64()
	spec.Sysctls = mapToStrings(ctx, m.Sysctls, diags)
	if !m.Devices.IsNull() && !m.Devices.IsUnknown() {
		var ds []deviceModel
		diags.Append(m.Devices.ElementsAs(ctx, &ds, false)...)
		spec.Devices = make([]engine.Device, 0, len(ds))
		for _, d := range ds {
			spec.Devices = append(spec.Devices, engine.Device{HostPath: knownString(d.HostPath),
				ContainerPath: knownString(d.ContainerPath), Permissions: knownString(d.Permissions)})
		}
	}
	spec.GroupAdd = listToStrings(ctx, m.GroupAdd, diags)
	spec.OOMScoreAdj = int(m.OOMScoreAdj.ValueInt64())
	spec.Resources.CpusetCPUs = knownString(m.CpusetCPUs)
	spec.Resources.CpusetMems = knownString(m.CpusetMems)
	spec.Resources.MemoryReservationMiB = m.MemoryReservation.ValueInt64()
	spec.DNS = engine.DNSConfig{
		Servers: listToStrings(ctx, m.DNS, diags),
		Search:  listToStrings(ctx, m.DNSSearch, diags),
		Options: listToStrings(ctx, m.DNSOptions, diags),
	}
	spec.ExtraHosts = mapToStrings(ctx, m.ExtraHosts, diags)
	spec.Init = m.Init.ValueBool()
	spec.Uploads = uploadsSpec(ctx, m.Uploads, diags)
}

// serviceFromSpec is the model of the service settings of a container read
// back; prior supplies what the record cannot tell apart (an empty list
// from no list) and does not keep (the uploads' contents).
func serviceFromSpec(ctx context.Context, spec engine.ContainerSpec, prior serviceModel, diags *diag.Diagnostics) serviceModel {
	list := func(s []string, prior types.List) types.List {
		if len(s) == 0 {
			return emptyListOr(prior, types.StringType)
		}
		return stringsToList(s, diags)
	}
	m := serviceModel{
		ShmSize:           optionalInt64(spec.ShmSizeMiB),
		Sysctls:           stringsToMap(spec.Sysctls, prior.Sysctls, diags),
		GroupAdd:          list(spec.GroupAdd, prior.GroupAdd),
		OOMScoreAdj:       zeroAsWritten(int64(spec.OOMScoreAdj), prior.OOMScoreAdj),
		CpusetCPUs:        optionalString(spec.Resources.CpusetCPUs),
		CpusetMems:        optionalString(spec.Resources.CpusetMems),
		MemoryReservation: optionalInt64(spec.Resources.MemoryReservationMiB),
		DNS:               list(spec.DNS.Servers, prior.DNS),
		DNSSearch:         list(spec.DNS.Search, prior.DNSSearch),
		DNSOptions:        list(spec.DNS.Options, prior.DNSOptions),
		ExtraHosts:        stringsToMap(spec.ExtraHosts, prior.ExtraHosts, diags),
		Init:              types.BoolNull(),
		Uploads:           uploadsToList(ctx, spec.Uploads, prior.Uploads, diags),
	}
	if spec.Init || !prior.Init.IsNull() && !prior.Init.IsUnknown() {
		m.Init = types.BoolValue(spec.Init) // false as the user wrote it
	}
	ulimitType := types.ObjectType{AttrTypes: ulimitAttrTypes}
	if len(spec.Ulimits) == 0 {
		m.Ulimits = emptyListOr(prior.Ulimits, ulimitType)
	} else {
		ls := make([]ulimitModel, 0, len(spec.Ulimits))
		for _, u := range spec.Ulimits {
			ls = append(ls, ulimitModel{Name: types.StringValue(u.Name), Soft: types.Int64Value(u.Soft), Hard: types.Int64Value(u.Hard)})
		}
		l, d := types.ListValueFrom(context.Background(), ulimitType, ls)
		diags.Append(d...)
		m.Ulimits = l
	}
	deviceType := types.ObjectType{AttrTypes: deviceAttrTypes}
	if len(spec.Devices) == 0 {
		m.Devices = emptyListOr(prior.Devices, deviceType)
	} else {
		ds := make([]deviceModel, 0, len(spec.Devices))
		for _, d := range spec.Devices {
			ds = append(ds, deviceModel{HostPath: types.StringValue(d.HostPath), ContainerPath: optionalString(d.ContainerPath),
				Permissions: optionalString(d.Permissions)})
		}
		l, d := types.ListValueFrom(context.Background(), deviceType, ds)
		diags.Append(d...)
		m.Devices = l
	}
	return m
}

// zeroAsWritten is v, null when 0 unless prior is a known 0 (the user
// wrote the default).
func zeroAsWritten(v int64, prior types.Int64) types.Int64 {
	if v == 0 && !prior.IsNull() && !prior.IsUnknown() && prior.ValueInt64() == 0 {
		return prior
	}
	return optionalInt64(v)
}
