package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	fwpath "github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// serviceAttributes are the pouch_container attributes of what a real
// service asks of its process: limits, /dev/shm, kernel parameters,
// devices, groups, CPU pinning and its own DNS settings.
func serviceAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"ulimits": schema.ListNestedAttribute{
			Description: "Process limits (setrlimit) of the task, each replacing the runtime's default of its name " +
				"(nofile is 1024 by default). A hard limit above containerd's own needs containerd to have " +
				"CAP_SYS_RESOURCE. " + restartsInPlace,
			Optional: true,
			NestedObject: schema.NestedAttributeObject{
				Attributes: map[string]schema.Attribute{
					"name": schema.StringAttribute{
						Description: "The limit: " + strings.Join(engine.UlimitNames(), ", ") + ".",
						Required:    true,
						Validators:  []validator.String{stringvalidator.OneOf(engine.UlimitNames()...)},
					},
					"soft": schema.Int64Attribute{
						Description: "Soft limit, at most `hard`; -1 is unlimited.",
						Required:    true,
					},
					"hard": schema.Int64Attribute{
						Description: "Hard limit; -1 is unlimited.",
						Required:    true,
					},
				},
			},
		},
		"shm_size": schema.Int64Attribute{
			Description: "Size of `/dev/shm` in MiB (the runtime's default is 64). " + restartsInPlace,
			Optional:    true,
			Validators:  []validator.Int64{shmSizeValidator},
		},
		"sysctls": schema.MapAttribute{
			Description: "Kernel parameters of the container's own namespaces: `net.*` (not with `network_mode = " +
				"\"host\"`), `fs.mqueue.*` and the IPC ones (`kernel.shmmax`, `kernel.sem`...). Any other " +
				"(`vm.max_map_count`...) is the whole host's and is refused at plan: set it on the host. A `net.*` value " +
				"lives in the container's network namespace, which lasts as long as the container: removing it leaves " +
				"the value until the container is replaced. " + restartsInPlace,
			ElementType: types.StringType,
			Optional:    true,
		},
		"devices": schema.ListNestedAttribute{
			Description: "Host device nodes made in the container, with the cgroup's access rights. " + restartsInPlace,
			Optional:    true,
			NestedObject: schema.NestedAttributeObject{
				Attributes: map[string]schema.Attribute{
					"host_path": schema.StringAttribute{
						Description: "The device node on the host, e.g. `/dev/fuse` (a directory adds every device in it).",
						Required:    true,
						Validators:  []validator.String{absolutePathValidator},
					},
					"container_path": schema.StringAttribute{
						Description: "Where it is made in the container; `host_path` when not set.",
						Optional:    true,
						Validators:  []validator.String{mountTargetValidator},
					},
					"permissions": schema.StringAttribute{
						Description: "Access rights: some of `r` (read), `w` (write) and `m` (mknod); `rwm` when not set.",
						Optional:    true,
						Validators:  []validator.String{devicePermissionsValidator},
					},
				},
			},
		},
		"group_add": schema.ListAttribute{
			Description: "Supplementary groups of the process: gids, or names of the image's `/etc/group`. " + restartsInPlace,
			ElementType: types.StringType,
			Optional:    true,
			Validators:  []validator.List{listvalidator.ValueStringsAre(groupValidator)},
		},
		"oom_score_adj": schema.Int64Attribute{
			Description: "The process's `oom_score_adj`, -1000 (never killed for lack of memory) to 1000 (killed first). " +
				restartsInPlace,
			Optional:   true,
			Validators: []validator.Int64{oomScoreAdjValidator},
		},
		"cpuset_cpus": schema.StringAttribute{
			Description: "CPUs the task may run on, in the kernel's list format: `0-2,4`. " + resizesLive,
			Optional:    true,
			Validators:  []validator.String{cpusetValidator},
		},
		"cpuset_mems": schema.StringAttribute{
			Description: "Memory nodes (NUMA) the task may allocate from, in the kernel's list format: `0`. " + resizesLive,
			Optional:    true,
			Validators:  []validator.String{cpusetValidator},
		},
		"memory_reservation": schema.Int64Attribute{
			Description: "Soft memory limit in MiB, at most `memory`: what the kernel takes the task back to when the " +
				"host is short of memory. " + resizesLive + " Removing it restarts the container in place.",
			Optional:   true,
			Validators: []validator.Int64{memoryValidator},
		},
		"uploads": schema.ListNestedAttribute{
			Description: "Files written for the container before its task starts, such as configuration files: each " +
				"owned by root, mounted read-only at `file`, kept across restarts and image upgrades. `content` and " +
				"`content_base64` are sensitive: not in the plan's output, but in the state, as every sensitive value; a " +
				"`source` file's bytes are in neither (the state keeps its `sha256`). Their contents are never in the " +
				"container's record on the host. " + restartsInPlace,
			Optional: true,
			NestedObject: schema.NestedAttributeObject{
				Attributes: map[string]schema.Attribute{
					"file": schema.StringAttribute{
						Description: "Absolute path of the file in the container.",
						Required:    true,
						Validators:  []validator.String{mountTargetValidator},
					},
					"content": schema.StringAttribute{
						Description: "The file's text. One of `content`, `content_base64` and `source`.",
						Optional:    true,
						Sensitive:   true,
						Validators:  []validator.String{exactlyOneUploadSource()},
					},
					"content_base64": schema.StringAttribute{
						Description: "The file's bytes in base64 (`filebase64()`, binary files).",
						Optional:    true,
						Sensitive:   true,
						Validators:  []validator.String{exactlyOneUploadSource(), base64Validator},
					},
					"source": schema.StringAttribute{
						Description: "A file on the machine that runs Terraform, read at plan and at apply (sent over SSH " +
							"with `host`); a change of its bytes is planned through `sha256`. A file that changes between a saved " +
							"plan and its apply is refused (terraform reports an inconsistent final plan for `uploads`): plan again.",
						Optional:   true,
						Validators: []validator.String{exactlyOneUploadSource(), stringvalidator.LengthAtLeast(1)},
					},
					"mode": schema.StringAttribute{
						Description: "Permission bits in octal, such as `\"0640\"`; `0644` when not set. No setuid or setgid.",
						Optional:    true,
						Validators:  []validator.String{uploadModeValidator},
					},
					"sha256": schema.StringAttribute{
						Description:   "Hex SHA-256 of the file's bytes (sensitive: a short secret could be found from it). Computed.",
						Computed:      true,
						Sensitive:     true,
						PlanModifiers: []planmodifier.String{uploadSHA256{}},
					},
				},
			},
		},
		"init": schema.BoolAttribute{
			Description: "Run a minimal init as PID 1, which forwards signals to the process and reaps the zombies it " +
				"leaves: the containerd host's static tini (Debian's tini package), mounted read-only at " +
				"`" + engine.InitTarget + "`. The stop signal still reaches the service. " + restartsInPlace,
			Optional: true,
		},
		"dns": schema.ListAttribute{
			Description: fmt.Sprintf("Name servers' IP addresses (at most %d) of a resolv.conf of the container's own; the "+
				"host's name servers when not set. Any of `dns`, `dns_search` and `dns_options` gives the container its own "+
				"resolv.conf, read-only, instead of the host's. ", engine.MaxDNSServers) + restartsInPlace,
			ElementType: types.StringType,
			Optional:    true,
			Validators:  []validator.List{listvalidator.SizeAtMost(engine.MaxDNSServers), listvalidator.ValueStringsAre(hostIPValidator)},
		},
		"dns_search": schema.ListAttribute{
			Description: "Search domains of the container's resolv.conf; the host's when not set. " + restartsInPlace,
			ElementType: types.StringType,
			Optional:    true,
		},
		"dns_options": schema.ListAttribute{
			Description: "Resolver options of the container's resolv.conf, such as `ndots:2`; the host's when not set. " +
				restartsInPlace,
			ElementType: types.StringType,
			Optional:    true,
		},
		"extra_hosts": schema.MapAttribute{
			Description: "Host names and their IP addresses added to the container's `/etc/hosts` (the host's, with " +
				"these after it, read-only). " + restartsInPlace,
			ElementType: types.StringType,
			Optional:    true,
			Validators:  []validator.Map{mapvalidator.SizeAtLeast(1)},
		},
	}
}

// validateService checks, with the engine's rules, what single attribute
// validators cannot: the whole ulimits and devices, the sysctls against
// network_mode, the DNS settings, the extra hosts and memory_reservation
// against memory.
func validateService(ctx context.Context, cfg containerModel, diags *diag.Diagnostics) {
	spec, known := cfg.serviceSpec(ctx)
	if !known {
		return
	}
	if err := engine.CheckUlimits(spec.Ulimits); err != nil {
		addEngineRuleError(diags, fwpath.Empty(), "Invalid ulimit", err)
	}
	if err := engine.CheckDevices(spec.Devices); err != nil {
		addEngineRuleError(diags, fwpath.Empty(), "Invalid device", err)
	}
	if !cfg.NetworkMode.IsUnknown() {
		mode := engine.NetworkMode(stringOrDefault(knownString(cfg.NetworkMode), defaultNetworkMode))
		if err := engine.CheckSysctls(spec.Sysctls, mode); err != nil {
			addEngineRuleError(diags, fwpath.Empty(), "Invalid sysctl", err)
		}
	}
	if err := engine.CheckDNS(spec.DNS); err != nil {
		addEngineRuleError(diags, fwpath.Empty(), "Invalid DNS setting", err)
	}
	if err := engine.CheckExtraHosts(spec.ExtraHosts); err != nil {
		addEngineRuleError(diags, fwpath.Empty(), "Invalid extra host", err)
	}
	if mounts, ok := knownMounts(ctx, cfg.Mounts); ok || cfg.Mounts.IsNull() {
		if err := engine.CheckUploads(spec.Uploads, mounts); err != nil {
			addEngineRuleError(diags, fwpath.Empty(), "Invalid upload", err)
		}
	}
	if !cfg.Memory.IsNull() && !cfg.Memory.IsUnknown() && !cfg.MemoryReservation.IsNull() && !cfg.MemoryReservation.IsUnknown() {
		if err := engine.CheckMemoryReservationMiB(cfg.MemoryReservation.ValueInt64(), cfg.Memory.ValueInt64()); err != nil {
			addEngineRuleError(diags, fwpath.Root("memory_reservation"), "Invalid memory_reservation", err)
		}
	}
}
