package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// The validators here hold no rule of their own: each calls the engine's
// rule for the value (see internal/engine/rules.go), so that what the plan
// refuses is what the engine would refuse at apply, in the same words.

// rule validates a string, an int64 or a float64 attribute with one of the
// engine's rules; summary is the diagnostic's summary.
type rule[T any] struct {
	check   func(T) error
	summary string
	desc    string
}

func stringRule(check func(string) error, summary, desc string) rule[string] {
	return rule[string]{check: check, summary: summary, desc: desc}
}

func int64Rule(check func(int64) error, summary, desc string) rule[int64] {
	return rule[int64]{check: check, summary: summary, desc: desc}
}

var (
	_ validator.String  = rule[string]{}
	_ validator.Int64   = rule[int64]{}
	_ validator.Float64 = rule[float64]{}
)

func (r rule[T]) Description(context.Context) string { return r.desc }

func (r rule[T]) MarkdownDescription(ctx context.Context) string { return r.Description(ctx) }

func (r rule[T]) add(p path.Path, v T, diags *diag.Diagnostics) {
	if err := r.check(v); err != nil {
		diags.AddAttributeError(p, r.summary, fmt.Sprintf("Attribute %s %v.", p, err))
	}
}

func (r rule[T]) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if v, ok := any(r).(rule[string]); ok && !req.ConfigValue.IsNull() && !req.ConfigValue.IsUnknown() {
		v.add(req.Path, req.ConfigValue.ValueString(), &resp.Diagnostics)
	}
}

func (r rule[T]) ValidateInt64(_ context.Context, req validator.Int64Request, resp *validator.Int64Response) {
	if v, ok := any(r).(rule[int64]); ok && !req.ConfigValue.IsNull() && !req.ConfigValue.IsUnknown() {
		v.add(req.Path, req.ConfigValue.ValueInt64(), &resp.Diagnostics)
	}
}

func (r rule[T]) ValidateFloat64(_ context.Context, req validator.Float64Request, resp *validator.Float64Response) {
	if v, ok := any(r).(rule[float64]); ok && !req.ConfigValue.IsNull() && !req.ConfigValue.IsUnknown() {
		v.add(req.Path, req.ConfigValue.ValueFloat64(), &resp.Diagnostics)
	}
}

// The rules of single attributes.
var (
	nameValidator              = stringRule(engine.CheckName, "Invalid name", "value must be "+engine.NameRule)
	pullPolicyValidator        = stringRule(engine.CheckPullPolicy, "Invalid pull policy", "value must be missing, always or never")
	shmSizeValidator           = int64Rule(engine.CheckShmSizeMiB, "Invalid shm_size", "value must be a size in MiB")
	oomScoreAdjValidator       = int64Rule(engine.CheckOOMScoreAdj, "Invalid oom_score_adj", "value must be between -1000 and 1000")
	cpusetValidator            = stringRule(engine.CheckCpuset, "Invalid cpuset", "value must be a list such as `0-2,4`")
	groupValidator             = stringRule(engine.CheckGroup, "Invalid group", "value must be a gid or a group name")
	devicePermissionsValidator = stringRule(engine.CheckDevicePermissions, "Invalid device permissions",
		"value must be some of r, w and m")
	platformValidator = stringRule(engine.CheckPlatform, "Invalid platform", "value must be a platform such as `linux/amd64`")
	imageValidator    = stringRule(engine.CheckImageReference, "Invalid image reference",
		"value must be an image reference such as `busybox:1.36` or `registry.example:5000/app@sha256:...`")
	absolutePathValidator = stringRule(engine.CheckAbsolutePath, "Invalid path", "value must be an absolute path")
	dataRootValidator     = stringRule(engine.CheckDataRoot, "Invalid path", "value must be an absolute path other than /")
	namespaceValidator    = stringRule(engine.CheckNamespace, "Invalid namespace", "value must be a containerd namespace name")
	mountTargetValidator  = stringRule(engine.CheckMountTarget, "Invalid mount", "value must be an absolute path outside /proc and /sys")
	hostIPValidator       = stringRule(engine.CheckHostIP, "Invalid IP address", "value must be an IP address")
	hostnameValidator     = stringRule(engine.CheckHostname, "Invalid host name", "value must be a host name")
	signalValidator       = stringRule(engine.CheckSignal, "Invalid signal", "value must be a signal name such as `SIGTERM`")
	capabilityValidator   = stringRule(engine.CheckCapability, "Invalid capability",
		"value must be a Linux capability such as `NET_ADMIN`, or `ALL`")
	seccompValidator = stringRule(engine.CheckSeccompProfile, "Invalid seccomp profile",
		"value must be `default`, `unconfined` or the absolute path of a profile")
	argValidator         = stringRule(engine.CheckArg, "Invalid argument", "value must hold no NUL and fit the kernel's limit")
	bridgeNameValidator  = stringRule(engine.CheckBridgeName, "Invalid bridge name", "value must be a network interface name")
	subnetValidator      = stringRule(engine.CheckSubnet, "Invalid subnet", "value must be an IPv4 network in CIDR notation")
	portValidator        = int64Rule(engine.CheckPortNumber, "Invalid port", "value must be between 1 and 65535")
	memoryValidator      = int64Rule(engine.CheckMemoryMiB, "Invalid memory size", "value must be a size in MiB")
	cpuSharesValidator   = int64Rule(engine.CheckCPUShares, "Invalid cpu_shares", "value must be a CPU weight")
	pidsLimitValidator   = int64Rule(engine.CheckPidsLimit, "Invalid pids_limit", "value must be a process count")
	stopTimeoutValidator = int64Rule(engine.CheckStopTimeoutSeconds, "Invalid stop_timeout", "value must be a number of seconds")
	verifyValidator      = int64Rule(engine.CheckVerifySeconds, "Invalid verify_seconds", "value must be a number of seconds")
	keepRevValidator     = int64Rule(engine.CheckKeepRevisions, "Invalid keep_revisions", "value must be a small count")
	retriesValidator     = int64Rule(engine.CheckHealthRetries, "Invalid retries", "value must be a small count")
	logMaxSizeValidator  = int64Rule(engine.CheckLogMaxSizeMiB, "Invalid log_max_size", "value must be a size in MiB")
	logMaxFilesValidator = int64Rule(engine.CheckLogMaxFiles, "Invalid log_max_files", "value must be a file count")
	cpusValidator        = rule[float64]{check: engine.CheckCPUs, summary: "Invalid cpus", desc: "value must be a number of CPUs"}
	memorySwapValidator  = int64Rule(func(v int64) error { return engine.CheckMemorySwapMiB(v, 1) }, "Invalid memory_swap",
		"value must be -1 or a size in MiB")
)

// mapRule validates a map of strings with an engine rule over the whole
// map, whose verdict names the key; values not known yet are left out.
type mapRule struct {
	check   func(map[string]string) error
	summary string
}

var _ validator.Map = mapRule{}

func (r mapRule) Description(context.Context) string {
	return "keys and values must pass the engine's rule"
}

func (r mapRule) MarkdownDescription(ctx context.Context) string { return r.Description(ctx) }

func (r mapRule) ValidateMap(_ context.Context, req validator.MapRequest, resp *validator.MapResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	m := map[string]string{}
	for k, v := range req.ConfigValue.Elements() {
		if s, ok := v.(types.String); ok && !s.IsUnknown() {
			m[k] = s.ValueString()
		} else {
			m[k] = ""
		}
	}
	if err := r.check(m); err != nil {
		addEngineRuleError(&resp.Diagnostics, req.Path, r.summary, err)
	}
}

// addEngineRuleError adds a diagnostic for an engine rule's verdict on a
// value made of several attributes or elements: at the attribute that the
// verdict's field path (in attribute names, such as "mounts[1].target")
// names below base, else at base. base is path.Empty() for the resource's
// ValidateConfig.
func addEngineRuleError(diags *diag.Diagnostics, base path.Path, summary string, err error) {
	var fe *engine.FieldError
	if errors.As(err, &fe) {
		if p, ok := fieldPath(base, fe.Field); ok {
			diags.AddAttributeError(p, summary, fmt.Sprintf("Attribute %s %v.", p, fe.Err))
			return
		}
	}
	if len(base.Steps()) == 0 {
		diags.AddError(summary, err.Error()+".")
		return
	}
	diags.AddAttributeError(base, summary, fmt.Sprintf("Attribute %s %v.", base, err))
}

// fieldRegexp matches one step of an engine field path: a name, a list
// index or a map key.
var fieldRegexp = regexp.MustCompile(`^(?:\.?([a-z_]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\])`)

// fieldPath turns an engine field path ("mounts[1].target", `["A"]`) into
// the attribute path it names below base.
func fieldPath(base path.Path, field string) (path.Path, bool) {
	p := base
	for root := len(base.Steps()) == 0; field != ""; root = false {
		m := fieldRegexp.FindStringSubmatch(field)
		switch {
		case m == nil || root && m[1] == "":
			return base, false
		case root:
			p = path.Root(m[1])
		case m[1] != "":
			p = p.AtName(m[1])
		case m[2] != "":
			i, _ := strconv.Atoi(m[2])
			p = p.AtListIndex(i)
		default:
			k, err := strconv.Unquote(m[3])
			if err != nil {
				return base, false
			}
			p = p.AtMapKey(k)
		}
		field = field[len(m[0]):]
	}
	return p, true
}
