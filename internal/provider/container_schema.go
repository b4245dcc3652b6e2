package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	fwpath "github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// What a change of an attribute does, as every description says.
const (
	// restartsInPlace: the task is recreated on the same container.
	restartsInPlace = "A change restarts the container in place: same container, same root filesystem " +
		"and same IP address; only the task is restarted."
	// resizesLive: the running task's cgroup limits are updated.
	resizesLive = "A change resizes live: the limit is updated in place on the running task, " +
		"without a restart (same PID)."
	// withoutRestart: recorded on the container, the task is not touched.
	withoutRestart = "A change updates the container in place without restarting the task."
)

// statefulAttributes are the pouch_container attributes for stateful
// services: networking, mounts, resources, restart policy and security.
func statefulAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"hostname": schema.StringAttribute{
			Description: "Host name of the container; defaults to `name`. " + restartsInPlace,
			Optional:    true,
			Computed:    true,
			PlanModifiers: []planmodifier.String{
				defaultFromAttribute{source: fwpath.Root("name")},
			},
			Validators: []validator.String{hostnameValidator},
		},
		"ip_address": schema.StringAttribute{
			Description: "IPv4 address of the container on the bridge network (`ipv4_address` when set); null for " +
				"`host` and `none`. It stays the same across restarts and image upgrades and only changes with " +
				"`network_mode` or `ipv4_address`. Computed.",
			Computed: true,
			PlanModifiers: []planmodifier.String{
				sameWhileAttributeUnchanged{source: fwpath.Root("network_mode"), more: []fwpath.Path{fwpath.Root("ipv4_address")}},
				copyOfAttribute{source: fwpath.Root("ipv4_address")},
			},
		},
		"ipv4_address": schema.StringAttribute{
			Description: "A fixed IPv4 address on the bridge network, for a service registered by its address: inside " +
				"the provider's `bridge_subnet` (checked at plan), neither its network, broadcast nor first address, and " +
				"held by no other container (checked at apply, naming the holder). Kept across restarts and image " +
				"upgrades; without it the network chooses one, which the container keeps too. " + restartsInPlace +
				" (on the new address).",
			Optional:   true,
			Validators: []validator.String{hostIPValidator},
		},
		"mac_address": schema.StringAttribute{
			Description: "MAC address of the container on the bridge network; null for `host` and `none`. " +
				"It stays the same across restarts and image upgrades and only changes with `network_mode`. Computed.",
			Computed: true,
			PlanModifiers: []planmodifier.String{
				sameWhileAttributeUnchanged{source: fwpath.Root("network_mode")},
			},
		},
		"ports": schema.ListNestedAttribute{
			Description: "Container ports published on the host. Only with `network_mode = \"bridge\"`. " +
				restartsInPlace,
			Optional: true,
			NestedObject: schema.NestedAttributeObject{
				Attributes: map[string]schema.Attribute{
					"internal": schema.Int64Attribute{
						Description: "Port in the container, 1 to 65535.",
						Required:    true,
						Validators:  []validator.Int64{portValidator},
					},
					"external": schema.Int64Attribute{
						Description: "Port on the host, 1 to 65535. No other container of the namespace may publish it " +
							"(checked when the container is created or its ports change).",
						Required:   true,
						Validators: []validator.Int64{portValidator},
					},
					"ip": schema.StringAttribute{
						Description: "Host address the port is published on, e.g. `127.0.0.1`; all addresses when left out.",
						Optional:    true,
						Validators:  []validator.String{hostIPValidator},
					},
					"protocol": schema.StringAttribute{
						Description: "`tcp` (the default) or `udp`.",
						Optional:    true,
						Computed:    true,
						Default:     stringdefault.StaticString(defaultProtocol),
						Validators:  []validator.String{stringvalidator.OneOf(engine.Protocols...)},
					},
				},
			},
		},
		"mounts": schema.ListNestedAttribute{
			Description: "Filesystems mounted into the container: named volumes (`pouch_volume`), host " +
				"directories (bind) and tmpfs. Their data is kept across restarts and image upgrades " +
				"(tmpfs excepted). " + restartsInPlace,
			Optional: true,
			NestedObject: schema.NestedAttributeObject{
				Attributes: map[string]schema.Attribute{
					"type": schema.StringAttribute{
						Description: "`volume`, `bind` or `tmpfs`.",
						Required:    true,
						Validators: []validator.String{stringvalidator.OneOf(
							string(engine.MountVolume), string(engine.MountBind), string(engine.MountTmpfs))},
					},
					"source": schema.StringAttribute{
						Description: "The volume's name (`volume`; the volume must exist, e.g. as a `pouch_volume`, " +
							"best referenced as `pouch_volume.<name>.name` so that it is created first and destroyed last) " +
							"or the absolute path of an existing host directory or file (`bind`); must be left out for `tmpfs`.",
						Optional: true,
					},
					"target": schema.StringAttribute{
						Description: "Absolute path in the container, other than `/` and outside `/proc` and `/sys`.",
						Required:    true,
						Validators:  []validator.String{mountTargetValidator},
					},
					"read_only": schema.BoolAttribute{
						Description: "Mount read-only. Defaults to false.",
						Optional:    true,
						Computed:    true,
						Default:     booldefault.StaticBool(false),
					},
					"tmpfs_size": schema.Int64Attribute{
						Description: "Size limit of a `tmpfs` in MiB; the kernel's default (half of RAM) when left out.",
						Optional:    true,
						Validators:  []validator.Int64{memoryValidator},
					},
				},
			},
		},
		"keep_image_volumes": schema.BoolAttribute{
			Description: "Keep the anonymous volumes made for the image's VOLUMEs (see `image_volumes`) " +
				"when the container is destroyed; they are removed by default. " + withoutRestart,
			Optional: true,
			Computed: true,
			Default:  booldefault.StaticBool(false),
		},
		// A computed list of objects, not a computed-only nested attribute:
		// `terraform plan -generate-config-out` crashes on those in
		// terraform 1.5 and OpenTofu up to 1.10 (hashicorp/terraform#34463,
		// opentofu/opentofu#3555). Schema version 1 reshaped it.
		"image_volumes": schema.ListAttribute{
			Description: "Anonymous volumes made for the VOLUMEs the image declares and no mount covers: " +
				"populated from the image's files when first made, kept across restarts and image " +
				"upgrades, removed on destroy unless `keep_image_volumes`. Each is an object with `target`, " +
				"the path in the container, and `path`, the directory on the host. Computed.",
			Computed:    true,
			ElementType: types.ObjectType{AttrTypes: imageVolumeAttrTypes},
			PlanModifiers: []planmodifier.List{
				sameWhileAttributeUnchanged{source: fwpath.Root("image"), image: true, more: []fwpath.Path{fwpath.Root("mounts")}},
			},
		},
		"log_path": schema.StringAttribute{
			Description: "File on the host that receives the task's standard output and error. It rotates at " +
				"`log_max_size`: the older files sit beside it, with a timestamp in their names. Computed.",
			Computed: true,
			PlanModifiers: []planmodifier.String{
				stringplanmodifier.UseStateForUnknown(),
			},
		},
		"log_max_size": schema.Int64Attribute{
			Description: fmt.Sprintf("Size in MiB at which the container's log rotates (default %d). ", engine.DefaultLogMaxSizeMiB) +
				"The provider's own binary, installed once under `data_root`, writes the log for containerd " +
				"(containerd's own log file never rotates). " + restartsInPlace,
			Optional:   true,
			Computed:   true,
			Default:    int64default.StaticInt64(engine.DefaultLogMaxSizeMiB),
			Validators: []validator.Int64{logMaxSizeValidator},
		},
		"log_max_files": schema.Int64Attribute{
			Description: fmt.Sprintf("Number of log files kept, the current one included (default %d): the log "+
				"takes at most `log_max_size` times this. ", engine.DefaultLogMaxFiles) + restartsInPlace,
			Optional:   true,
			Computed:   true,
			Default:    int64default.StaticInt64(engine.DefaultLogMaxFiles),
			Validators: []validator.Int64{logMaxFilesValidator},
		},
		"restart": schema.StringAttribute{
			Description: "What happens when the task exits on its own: `no` (the default), `always` " +
				"(containerd's restart monitor starts it again) or `unless-stopped` (likewise, unless " +
				"stopped with `running = false`). " + withoutRestart,
			Optional: true,
			Computed: true,
			Default:  stringdefault.StaticString(defaultRestart),
			Validators: []validator.String{stringvalidator.OneOf(
				string(engine.RestartNo), string(engine.RestartAlways), string(engine.RestartUnlessStopped))},
		},
		"stop_signal": schema.StringAttribute{
			Description: "Signal that asks the process to stop, e.g. `SIGTERM` (the default) or `SIGQUIT`. " +
				withoutRestart,
			Optional:   true,
			Computed:   true,
			Default:    stringdefault.StaticString(defaultStopSignal),
			Validators: []validator.String{signalValidator},
		},
		"memory": schema.Int64Attribute{
			Description: fmt.Sprintf("Memory limit in MiB (1 to %d); unlimited when left out. ", engine.MaxMemoryMiB) + resizesLive,
			Optional:    true,
			Validators:  []validator.Int64{memoryValidator},
		},
		"memory_swap": schema.Int64Attribute{
			Description: "Limit of memory plus swap in MiB: -1 for unlimited swap, else at least `memory`; " +
				"needs `memory`. " + resizesLive,
			Optional: true,
			Validators: []validator.Int64{
				memorySwapValidator,
				int64validator.AlsoRequires(fwpath.MatchRoot("memory")),
			},
		},
		"cpus": schema.Float64Attribute{
			Description: fmt.Sprintf("CPU quota in CPUs, e.g. `0.5` for half a CPU (%v to %v); unlimited when left out. ",
				engine.MinCPUs, engine.MaxCPUs) + resizesLive,
			Optional:   true,
			Validators: []validator.Float64{cpusValidator},
		},
		"cpu_shares": schema.Int64Attribute{
			Description: fmt.Sprintf("Relative CPU weight (cgroup cpu.shares), %d to %d. ", engine.MinCPUShares, engine.MaxCPUShares) +
				resizesLive,
			Optional:   true,
			Validators: []validator.Int64{cpuSharesValidator},
		},
		"pids_limit": schema.Int64Attribute{
			Description: fmt.Sprintf("Maximum number of processes in the container (1 to %d); unlimited when left out. ",
				engine.MaxPidsLimit) + resizesLive,
			Optional:   true,
			Validators: []validator.Int64{pidsLimitValidator},
		},
		"privileged": schema.BoolAttribute{
			Description: "Run with all capabilities, all devices and no seccomp filter. Defaults to false. " +
				restartsInPlace,
			Optional: true,
			Computed: true,
			Default:  booldefault.StaticBool(false),
		},
		"read_only_rootfs": schema.BoolAttribute{
			Description: "Mount the container's root filesystem read-only (mounts stay writable unless " +
				"`read_only`). Defaults to false. " + restartsInPlace,
			Optional: true,
			Computed: true,
			Default:  booldefault.StaticBool(false),
		},
		"capabilities": schema.SingleNestedAttribute{
			Description: "Linux capabilities added to or dropped from containerd's default set, e.g. " +
				"`NET_ADMIN` or `CAP_NET_ADMIN` (any case); `ALL` stands for every capability the host can give a container (its kernel's, as containerd holds them). " +
				"The drops apply first, then the additions (`drop = [\"ALL\"]` with `add = [\"NET_BIND_SERVICE\"]` " +
				"keeps that one only). A name the host cannot give fails the apply. " + restartsInPlace,
			Optional: true,
			Attributes: map[string]schema.Attribute{
				"add": schema.ListAttribute{
					Description: "Capabilities to add.",
					ElementType: types.StringType,
					Optional:    true,
					Validators:  []validator.List{listvalidator.ValueStringsAre(capabilityValidator)},
				},
				"drop": schema.ListAttribute{
					Description: "Capabilities to drop.",
					ElementType: types.StringType,
					Optional:    true,
					Validators:  []validator.List{listvalidator.ValueStringsAre(capabilityValidator)},
				},
			},
		},
		"seccomp_profile": schema.StringAttribute{
			Description: "Seccomp filter: `default` (containerd's default profile, the default), " +
				"`unconfined`, or the absolute path of a profile in Docker's JSON format. " + restartsInPlace,
			Optional:   true,
			Computed:   true,
			Default:    stringdefault.StaticString(defaultSeccomp),
			Validators: []validator.String{seccompValidator},
		},
		"no_new_privileges": schema.BoolAttribute{
			Description: "Set no_new_privileges: setuid binaries cannot gain privileges. Defaults to true. " +
				restartsInPlace,
			Optional: true,
			Computed: true,
			Default:  booldefault.StaticBool(true),
		},
	}
}

// ValidateConfig checks what single attribute validators cannot, with the
// engine's rules for the whole value: ports (on the bridge network only,
// none published twice), mounts (each consistent, no target twice) and
// memory_swap against memory.
func (r *containerResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg containerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	validatePorts(ctx, cfg, &resp.Diagnostics)
	if mounts, ok := knownMounts(ctx, cfg.Mounts); ok {
		if err := engine.CheckMounts(mounts); err != nil {
			addEngineRuleError(&resp.Diagnostics, fwpath.Empty(), "Invalid mount", err)
		}
	}
	validateService(ctx, cfg, &resp.Diagnostics)
	if !cfg.IPv4Address.IsNull() && !cfg.IPv4Address.IsUnknown() && !cfg.NetworkMode.IsUnknown() &&
		stringOrDefault(knownString(cfg.NetworkMode), defaultNetworkMode) != string(engine.NetworkBridge) {
		resp.Diagnostics.AddAttributeError(fwpath.Root("ipv4_address"), "ipv4_address needs the bridge network",
			fmt.Sprintf("Attribute ipv4_address is an address on the bridge network; network_mode is %q. Remove "+
				"ipv4_address, or use network_mode = \"bridge\".", cfg.NetworkMode.ValueString()))
	}
	if !cfg.Memory.IsNull() && !cfg.Memory.IsUnknown() && !cfg.MemorySwap.IsNull() && !cfg.MemorySwap.IsUnknown() {
		if err := engine.CheckMemorySwapMiB(cfg.MemorySwap.ValueInt64(), cfg.Memory.ValueInt64()); err != nil {
			resp.Diagnostics.AddAttributeError(fwpath.Root("memory_swap"), "Invalid memory_swap",
				fmt.Sprintf("Attribute memory_swap %v.", err))
		}
	}
}

func validatePorts(ctx context.Context, cfg containerModel, diags *diag.Diagnostics) {
	if cfg.Ports.IsNull() || cfg.Ports.IsUnknown() {
		return
	}
	if mode := cfg.NetworkMode; !mode.IsUnknown() && !mode.IsNull() && mode.ValueString() != string(engine.NetworkBridge) {
		diags.AddAttributeError(fwpath.Root("ports"), "Ports need the bridge network",
			fmt.Sprintf("Attribute ports publishes container ports, which only works with network_mode = \"bridge\"; "+
				"network_mode is %q. Remove ports (with host, the container's ports are the host's) or use the bridge.",
				mode.ValueString()))
		return
	}
	var ports []portModel
	if d := cfg.Ports.ElementsAs(ctx, &ports, false); d.HasError() {
		return // unknown elements
	}
	spec := make([]engine.PortMapping, 0, len(ports))
	for _, p := range ports {
		if p.External.IsUnknown() || p.Internal.IsUnknown() || p.IP.IsUnknown() || p.Protocol.IsUnknown() {
			return
		}
		spec = append(spec, portMapping(p))
	}
	if err := engine.CheckPorts(spec); err != nil {
		addEngineRuleError(diags, fwpath.Empty(), "Invalid port", err)
	}
}

// knownMounts converts the mounts of a configuration; ok is false while
// any part of them is unknown.
func knownMounts(ctx context.Context, l types.List) ([]engine.Mount, bool) {
	if l.IsNull() || l.IsUnknown() {
		return nil, false
	}
	var ms []mountModel
	if d := l.ElementsAs(ctx, &ms, false); d.HasError() {
		return nil, false
	}
	out := make([]engine.Mount, 0, len(ms))
	for _, m := range ms {
		if m.Type.IsUnknown() || m.Source.IsUnknown() || m.Target.IsUnknown() || m.TmpfsSize.IsUnknown() {
			return nil, false
		}
		out = append(out, mountSpec(m))
	}
	return out, true
}
