package provider

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	fwpath "github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
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
	capName := stringvalidator.RegexMatches(capabilityRegexp,
		`must be a capability name such as "NET_ADMIN" or "CAP_NET_ADMIN"`)
	return map[string]schema.Attribute{
		"hostname": schema.StringAttribute{
			Description: "Host name of the container; defaults to `name`. " + restartsInPlace,
			Optional:    true,
			Computed:    true,
			PlanModifiers: []planmodifier.String{
				defaultFromAttribute{source: fwpath.Root("name")},
			},
			Validators: []validator.String{
				stringvalidator.LengthBetween(1, 253),
				stringvalidator.RegexMatches(hostnameRegexp, hostnameRule),
			},
		},
		"ip_address": schema.StringAttribute{
			Description: "IPv4 address of the container on the bridge network; null for `host` and `none`. " +
				"It stays the same across restarts and image upgrades and only changes with `network_mode`. Computed.",
			Computed: true,
			PlanModifiers: []planmodifier.String{
				sameWhileAttributeUnchanged{source: fwpath.Root("network_mode")},
			},
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
						Validators:  []validator.Int64{int64validator.Between(1, 65535)},
					},
					"external": schema.Int64Attribute{
						Description: "Port on the host, 1 to 65535.",
						Required:    true,
						Validators:  []validator.Int64{int64validator.Between(1, 65535)},
					},
					"ip": schema.StringAttribute{
						Description: "Host address the port is published on, e.g. `127.0.0.1`; all addresses when left out.",
						Optional:    true,
						Validators:  []validator.String{ipAddress{}},
					},
					"protocol": schema.StringAttribute{
						Description: "`tcp` (the default) or `udp`.",
						Optional:    true,
						Computed:    true,
						Default:     stringdefault.StaticString(defaultProtocol),
						Validators:  []validator.String{stringvalidator.OneOf("tcp", "udp")},
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
						Description: "Absolute path in the container.",
						Required:    true,
						Validators:  []validator.String{absolutePath{}},
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
						Validators:  []validator.Int64{int64validator.AtLeast(1)},
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
		"image_volumes": schema.ListNestedAttribute{
			Description: "Anonymous volumes made for the VOLUMEs the image declares and no mount covers: " +
				"populated from the image's files when first made, kept across restarts and image " +
				"upgrades, removed on destroy unless `keep_image_volumes`. Computed.",
			Computed: true,
			NestedObject: schema.NestedAttributeObject{
				Attributes: map[string]schema.Attribute{
					"target": schema.StringAttribute{
						Description: "Path in the container.",
						Computed:    true,
					},
					"path": schema.StringAttribute{
						Description: "Directory on the host.",
						Computed:    true,
					},
				},
			},
			PlanModifiers: []planmodifier.List{
				sameWhileAttributeUnchanged{source: fwpath.Root("image"), more: []fwpath.Path{fwpath.Root("mounts")}},
			},
		},
		"log_path": schema.StringAttribute{
			Description: "File on the host that receives the task's standard output and error. Computed.",
			Computed:    true,
			PlanModifiers: []planmodifier.String{
				stringplanmodifier.UseStateForUnknown(),
			},
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
			Validators: []validator.String{stringvalidator.OneOf(knownSignals...)},
		},
		"memory": schema.Int64Attribute{
			Description: "Memory limit in MiB; unlimited when left out. " + resizesLive,
			Optional:    true,
			Validators:  []validator.Int64{int64validator.AtLeast(1)},
		},
		"memory_swap": schema.Int64Attribute{
			Description: "Limit of memory plus swap in MiB: -1 for unlimited swap, else at least `memory`; " +
				"needs `memory`. " + resizesLive,
			Optional: true,
			Validators: []validator.Int64{
				int64validator.AtLeast(-1),
				int64validator.NoneOf(0),
				int64validator.AlsoRequires(fwpath.MatchRoot("memory")),
			},
		},
		"cpus": schema.Float64Attribute{
			Description: "CPU quota in CPUs, e.g. `0.5` for half a CPU; unlimited when left out. " + resizesLive,
			Optional:    true,
			Validators:  []validator.Float64{positiveFloat{}},
		},
		"cpu_shares": schema.Int64Attribute{
			Description: "Relative CPU weight (cgroup cpu.shares), at least 2. " + resizesLive,
			Optional:    true,
			Validators:  []validator.Int64{int64validator.AtLeast(2)},
		},
		"pids_limit": schema.Int64Attribute{
			Description: "Maximum number of processes in the container; unlimited when left out. " + resizesLive,
			Optional:    true,
			Validators:  []validator.Int64{int64validator.AtLeast(1)},
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
				"`NET_ADMIN` or `CAP_NET_ADMIN`. " + restartsInPlace,
			Optional: true,
			Attributes: map[string]schema.Attribute{
				"add": schema.ListAttribute{
					Description: "Capabilities to add.",
					ElementType: types.StringType,
					Optional:    true,
					Validators:  []validator.List{listvalidator.ValueStringsAre(capName)},
				},
				"drop": schema.ListAttribute{
					Description: "Capabilities to drop.",
					ElementType: types.StringType,
					Optional:    true,
					Validators:  []validator.List{listvalidator.ValueStringsAre(capName)},
				},
			},
		},
		"seccomp_profile": schema.StringAttribute{
			Description: "Seccomp filter: `default` (containerd's default profile, the default), " +
				"`unconfined`, or the absolute path of a profile in Docker's JSON format. " + restartsInPlace,
			Optional:   true,
			Computed:   true,
			Default:    stringdefault.StaticString(defaultSeccomp),
			Validators: []validator.String{seccompProfile{}},
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

// ValidateConfig checks what single attribute validators cannot: ports only
// on the bridge network, unique published ports, the consistency of each
// mount, unique mount targets and memory_swap against memory.
func (r *containerResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg containerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	validatePorts(ctx, cfg, &resp.Diagnostics)
	validateMounts(ctx, cfg.Mounts, &resp.Diagnostics)

	if !cfg.Memory.IsNull() && !cfg.Memory.IsUnknown() && !cfg.MemorySwap.IsNull() && !cfg.MemorySwap.IsUnknown() {
		if swap, mem := cfg.MemorySwap.ValueInt64(), cfg.Memory.ValueInt64(); swap != -1 && swap < mem {
			resp.Diagnostics.AddAttributeError(fwpath.Root("memory_swap"), "Invalid memory_swap",
				fmt.Sprintf("Attribute memory_swap (%d MiB) is memory plus swap: it must be -1 (unlimited swap) "+
					"or at least memory (%d MiB).", swap, mem))
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
	seen := map[string]int{}
	for i, p := range ports {
		if p.External.IsUnknown() || p.IP.IsUnknown() || p.Protocol.IsUnknown() {
			continue
		}
		ip := knownString(p.IP)
		if a, err := netip.ParseAddr(ip); err == nil && a.IsUnspecified() {
			ip = ""
		}
		proto := knownString(p.Protocol)
		if proto == "" {
			proto = defaultProtocol
		}
		key := fmt.Sprintf("%s|%d|%s", ip, p.External.ValueInt64(), proto)
		if j, ok := seen[key]; ok {
			addr := ip
			if addr == "" {
				addr = "all addresses"
			}
			diags.AddAttributeError(fwpath.Root("ports").AtListIndex(i).AtName("external"), "Duplicate published port",
				fmt.Sprintf("Attribute ports[%d] publishes %s port %d on %s, as ports[%d] does already.",
					i, proto, p.External.ValueInt64(), addr, j))
			continue
		}
		seen[key] = i
	}
}

func validateMounts(ctx context.Context, mounts types.List, diags *diag.Diagnostics) {
	if mounts.IsNull() || mounts.IsUnknown() {
		return
	}
	var ms []mountModel
	if d := mounts.ElementsAs(ctx, &ms, false); d.HasError() {
		return
	}
	targets := map[string]int{}
	for i, m := range ms {
		at := func(name string) fwpath.Path { return fwpath.Root("mounts").AtListIndex(i).AtName(name) }
		typ := m.Type.ValueString()
		known := !m.Type.IsUnknown() && !m.Source.IsUnknown()
		src := knownString(m.Source)
		switch {
		case !known:
		case typ == string(engine.MountTmpfs) && !m.Source.IsNull():
			diags.AddAttributeError(at("source"), "Invalid mount",
				fmt.Sprintf("Attribute mounts[%d].source must be left out for a tmpfs mount, got %q.", i, src))
		case typ == string(engine.MountBind) && checkAbsolutePath(src) != "":
			diags.AddAttributeError(at("source"), "Invalid mount",
				fmt.Sprintf("Attribute mounts[%d].source of a bind mount must be an absolute host path, got %q.", i, src))
		case typ == string(engine.MountVolume) && m.Source.IsNull():
			diags.AddAttributeError(at("source"), "Invalid mount",
				fmt.Sprintf("Attribute mounts[%d].source must name the volume of a volume mount "+
					"(for example pouch_volume.data.name).", i))
		case typ == string(engine.MountVolume) && !containerNameRegexp.MatchString(src):
			diags.AddAttributeError(at("source"), "Invalid mount",
				fmt.Sprintf("Attribute mounts[%d].source must be a volume name, which %s; got %q.", i, volumeNameRule, src))
		}
		if !m.Type.IsUnknown() && typ != string(engine.MountTmpfs) && !m.TmpfsSize.IsNull() {
			diags.AddAttributeError(at("tmpfs_size"), "Invalid mount",
				fmt.Sprintf("Attribute mounts[%d].tmpfs_size only applies to tmpfs mounts, this one is %q.", i, typ))
		}
		if m.Target.IsUnknown() || m.Target.IsNull() || checkAbsolutePath(m.Target.ValueString()) != "" {
			continue
		}
		target := path.Clean(m.Target.ValueString())
		if target == "/" {
			diags.AddAttributeError(at("target"), "Invalid mount",
				fmt.Sprintf("Attribute mounts[%d].target must not be the root directory.", i))
			continue
		}
		if j, ok := targets[target]; ok {
			diags.AddAttributeError(at("target"), "Duplicate mount target",
				fmt.Sprintf("Attribute mounts[%d].target %s is already the target of mounts[%d].", i, target, j))
			continue
		}
		targets[target] = i
	}
}

// hostnameRegexp is an RFC 1123 host name (underscores tolerated).
var hostnameRegexp = regexp.MustCompile(
	`^[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)*$`)

const hostnameRule = "must be a host name: labels of letters, digits and '-', separated by '.'"
