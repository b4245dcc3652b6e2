package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// Defaults of the healthcheck and upgrade attributes; they are the engine's
// (a zero value in the engine means the same).
var (
	defaultHealthInterval = engine.DefaultHealthInterval.String()
	defaultHealthTimeout  = engine.DefaultHealthTimeout.String()
)

const (
	defaultHealthStartPeriod = "0s"
	defaultHealthRetries     = int64(engine.DefaultHealthRetries)
	defaultVerifySeconds     = int64(engine.DefaultVerifySeconds)
	defaultRollback          = true
	defaultKeepRevisions     = int64(0)
	defaultKeepRootfsChanges = false
	maxKeepRevisions         = engine.MaxKeepRevisions
)

// healthcheckModel is the healthcheck object.
type healthcheckModel struct {
	Command     types.List   `tfsdk:"command"`
	Interval    types.String `tfsdk:"interval"`
	Timeout     types.String `tfsdk:"timeout"`
	StartPeriod types.String `tfsdk:"start_period"`
	Retries     types.Int64  `tfsdk:"retries"`
}

var healthcheckAttrTypes = map[string]attr.Type{
	"command":      types.ListType{ElemType: types.StringType},
	"interval":     types.StringType,
	"timeout":      types.StringType,
	"start_period": types.StringType,
	"retries":      types.Int64Type,
}

// upgradeModel is the upgrade object.
type upgradeModel struct {
	VerifySeconds     types.Int64 `tfsdk:"verify_seconds"`
	Rollback          types.Bool  `tfsdk:"rollback"`
	KeepRevisions     types.Int64 `tfsdk:"keep_revisions"`
	KeepRootfsChanges types.Bool  `tfsdk:"keep_rootfs_changes"`
}

var upgradeAttrTypes = map[string]attr.Type{
	"verify_seconds":      types.Int64Type,
	"rollback":            types.BoolType,
	"keep_revisions":      types.Int64Type,
	"keep_rootfs_changes": types.BoolType,
}

// defaultUpgradeObject is the upgrade object when the configuration leaves
// it out.
func defaultUpgradeObject() types.Object {
	return types.ObjectValueMust(upgradeAttrTypes, map[string]attr.Value{
		"verify_seconds":      types.Int64Value(defaultVerifySeconds),
		"rollback":            types.BoolValue(defaultRollback),
		"keep_revisions":      types.Int64Value(defaultKeepRevisions),
		"keep_rootfs_changes": types.BoolValue(defaultKeepRootfsChanges),
	})
}

// upgradeAttributes are the pouch_container attributes that tune image
// upgrades: the health check that gates them and the upgrade policy.
func upgradeAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"healthcheck": schema.SingleNestedAttribute{
			Description: "A command run in the container to tell whether it is healthy. It gates upgrades: " +
				"after an image upgrade or a restart in place, the new task must pass it (the Verify phase) " +
				"or the change is rolled back (see `upgrade.rollback`). It is not a continuous monitor: " +
				"nothing runs it between updates. " + withoutRestart,
			Optional: true,
			Attributes: map[string]schema.Attribute{
				"command": schema.ListAttribute{
					Description: "Command and arguments run in the container, e.g. `[\"cat\", \"/healthy\"]`; " +
						"exit code 0 is healthy. Not run through a shell (use `[\"sh\", \"-c\", \"...\"]` for one). " +
						"Sensitive, as a command line may carry a password: plans do not show it, and errors and logs " +
						"name it by its first word only; its output is discarded.",
					ElementType: types.StringType,
					Required:    true,
					Sensitive:   true,
					Validators:  []validator.List{listvalidator.SizeAtLeast(1), listvalidator.ValueStringsAre(argValidator)},
				},
				"interval": schema.StringAttribute{
					Description: "Time between two runs of the command, a Go duration such as `2s` or `500ms`. " +
						"Defaults to `" + defaultHealthInterval + "`.",
					Optional:   true,
					Computed:   true,
					Default:    stringdefault.StaticString(defaultHealthInterval),
					Validators: []validator.String{goDuration{positive: true}},
				},
				"timeout": schema.StringAttribute{
					Description: "How long one run of the command may take, a Go duration. Defaults to `" +
						defaultHealthTimeout + "`.",
					Optional:   true,
					Computed:   true,
					Default:    stringdefault.StaticString(defaultHealthTimeout),
					Validators: []validator.String{goDuration{positive: true}},
				},
				"start_period": schema.StringAttribute{
					Description: "Time given to the new task to start before the first run, a Go duration. " +
						"Defaults to `" + defaultHealthStartPeriod + "`.",
					Optional:   true,
					Computed:   true,
					Default:    stringdefault.StaticString(defaultHealthStartPeriod),
					Validators: []validator.String{goDuration{}},
				},
				"retries": schema.Int64Attribute{
					Description: fmt.Sprintf("How many runs may fail before the check fails, 1 to %d. Defaults to %d.",
						engine.MaxHealthRetries, defaultHealthRetries),
					Optional:   true,
					Computed:   true,
					Default:    int64default.StaticInt64(defaultHealthRetries),
					Validators: []validator.Int64{retriesValidator},
				},
			},
		},
		"upgrade": schema.SingleNestedAttribute{
			Description: "How an image upgrade (or a restart in place) is verified, what happens when it fails, " +
				"and what it keeps. See the upgrade semantics guide. " + withoutRestart,
			Optional: true,
			Computed: true,
			Default:  objectdefault.StaticValue(defaultUpgradeObject()),
			Attributes: map[string]schema.Attribute{
				"verify_seconds": schema.Int64Attribute{
					Description: fmt.Sprintf("The start window, in seconds (default %d, at most %d). After every start "+
						"of a task (create, image upgrade, restart in place, start of a stopped container), the task must "+
						"still run that many seconds after it started (and after the health check passed, if any), or the "+
						"change fails with the exit code and the end of the container's log: an upgrade or a restart rolls "+
						"back to the old container, a create removes what it made. Set it higher for a service that takes "+
						"longer to fail on a bad configuration. `0` turns the window off, for a container whose process is "+
						"meant to exit (a one-shot job): its task is started and not watched, and once it exits with code 0 "+
						"it is done, not drift (`running` stays true, `status` says `stopped`); a non-zero exit is drift, and "+
						"the next apply runs it again.", defaultVerifySeconds, engine.MaxVerifySeconds),
					Optional:   true,
					Computed:   true,
					Default:    int64default.StaticInt64(defaultVerifySeconds),
					Validators: []validator.Int64{verifyValidator},
				},
				"rollback": schema.BoolAttribute{
					Description: "Roll a failed upgrade back to the old container (the default). With `false`, a " +
						"new container that fails to start or to verify is left in place, for debugging, and the " +
						"apply fails; a failure before the new task starts is still rolled back.",
					Optional: true,
					Computed: true,
					Default:  booldefault.StaticBool(defaultRollback),
				},
				"keep_revisions": schema.Int64Attribute{
					Description: fmt.Sprintf("Keep the root filesystems of that many previous images (0 to %d, "+
						"default 0). Going back to one of those images reuses its root filesystem, with the files "+
						"written in it.", maxKeepRevisions),
					Optional:   true,
					Computed:   true,
					Default:    int64default.StaticInt64(defaultKeepRevisions),
					Validators: []validator.Int64{keepRevValidator},
				},
				"keep_rootfs_changes": schema.BoolAttribute{
					Description: "Carry the files changed in the old root filesystem (outside mounts) over onto " +
						"the new image's. Off by default: an upgrade starts from the new image's files.",
					Optional: true,
					Computed: true,
					Default:  booldefault.StaticBool(defaultKeepRootfsChanges),
				},
			},
		},
	}
}

// goDuration validates a Go duration string ("2s", "500ms", "1m30s"),
// positive or at least zero.
type goDuration struct {
	positive bool
}

var _ validator.String = goDuration{}

func (v goDuration) Description(context.Context) string {
	if v.positive {
		return "value must be a positive Go duration such as `2s` or `500ms`"
	}
	return "value must be a Go duration such as `2s` or `500ms`, at least `0s`"
}

func (v goDuration) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v goDuration) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration",
			fmt.Sprintf("Attribute %s must be a duration such as \"2s\", \"500ms\" or \"1m30s\" (units ns, us, ms, s, m, h), got %q.",
				req.Path, s))
	case d < 0 || (v.positive && d == 0):
		want := "at least 0s"
		if v.positive {
			want = "greater than 0s"
		}
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration",
			fmt.Sprintf("Attribute %s must be %s, got %q.", req.Path, want, s))
	}
}

// knownDuration parses a validated duration attribute; null, unknown or
// unparsable values give def.
func knownDuration(v types.String, def time.Duration) time.Duration {
	if v.IsNull() || v.IsUnknown() {
		return def
	}
	d, err := time.ParseDuration(v.ValueString())
	if err != nil {
		return def
	}
	return d
}

// mustDuration parses one of the default duration constants.
func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

// healthcheckSpec converts the healthcheck object; null is no health check.
func healthcheckSpec(ctx context.Context, o types.Object, diags *diag.Diagnostics) *engine.Healthcheck {
	if o.IsNull() || o.IsUnknown() {
		return nil
	}
	var hc healthcheckModel
	diags.Append(o.As(ctx, &hc, basetypes.ObjectAsOptions{UnhandledUnknownAsEmpty: true})...)
	retries := defaultHealthRetries
	if !hc.Retries.IsNull() && !hc.Retries.IsUnknown() {
		retries = hc.Retries.ValueInt64()
	}
	return &engine.Healthcheck{
		Command:     listToStrings(ctx, hc.Command, diags),
		Interval:    knownDuration(hc.Interval, mustDuration(defaultHealthInterval)),
		Timeout:     knownDuration(hc.Timeout, mustDuration(defaultHealthTimeout)),
		StartPeriod: knownDuration(hc.StartPeriod, mustDuration(defaultHealthStartPeriod)),
		Retries:     int(retries),
	}
}

// upgradeSpec converts the upgrade object; null or unknown values are the
// defaults.
func upgradeSpec(ctx context.Context, o types.Object, diags *diag.Diagnostics) engine.UpgradePolicy {
	var p engine.UpgradePolicy
	if o.IsNull() || o.IsUnknown() {
		return p
	}
	var u upgradeModel
	diags.Append(o.As(ctx, &u, basetypes.ObjectAsOptions{UnhandledUnknownAsEmpty: true})...)
	if !u.VerifySeconds.IsNull() && !u.VerifySeconds.IsUnknown() {
		p.VerifySeconds = int(u.VerifySeconds.ValueInt64())
	}
	if !u.Rollback.IsNull() && !u.Rollback.IsUnknown() {
		p.NoRollback = !u.Rollback.ValueBool()
	}
	if !u.KeepRevisions.IsNull() && !u.KeepRevisions.IsUnknown() {
		p.KeepRevisions = int(u.KeepRevisions.ValueInt64())
	}
	if !u.KeepRootfsChanges.IsNull() && !u.KeepRootfsChanges.IsUnknown() {
		p.KeepRootfsChanges = u.KeepRootfsChanges.ValueBool()
	}
	return p
}

// healthcheckToObject is the healthcheck object of a recorded health check.
// Zero values read back as the defaults; a duration equal to the prior
// value keeps the prior spelling ("1m" stays "1m", not "1m0s").
func healthcheckToObject(ctx context.Context, hc *engine.Healthcheck, prior types.Object, diags *diag.Diagnostics) types.Object {
	if hc == nil {
		return types.ObjectNull(healthcheckAttrTypes)
	}
	var p healthcheckModel
	if !prior.IsNull() && !prior.IsUnknown() {
		diags.Append(prior.As(ctx, &p, basetypes.ObjectAsOptions{UnhandledUnknownAsEmpty: true})...)
	}
	duration := func(d time.Duration, def string, prior types.String) types.String {
		if d <= 0 && def != defaultHealthStartPeriod {
			d = mustDuration(def)
		}
		if d < 0 {
			d = 0
		}
		if !prior.IsNull() && !prior.IsUnknown() {
			if pd, err := time.ParseDuration(prior.ValueString()); err == nil && pd == d {
				return prior
			}
		}
		if d == mustDuration(def) {
			return types.StringValue(def)
		}
		return types.StringValue(d.String())
	}
	retries := int64(hc.Retries)
	if retries <= 0 {
		retries = defaultHealthRetries
	}
	command := hc.Command
	if command == nil {
		command = []string{}
	}
	o, d := types.ObjectValueFrom(ctx, healthcheckAttrTypes, healthcheckModel{
		Command:     stringsToList(command, diags),
		Interval:    duration(hc.Interval, defaultHealthInterval, p.Interval),
		Timeout:     duration(hc.Timeout, defaultHealthTimeout, p.Timeout),
		StartPeriod: duration(hc.StartPeriod, defaultHealthStartPeriod, p.StartPeriod),
		Retries:     types.Int64Value(retries),
	})
	diags.Append(d...)
	return o
}

// upgradeToObject is the upgrade object of a recorded policy; it is always
// known, with the defaults for zero values.
func upgradeToObject(ctx context.Context, p engine.UpgradePolicy, diags *diag.Diagnostics) types.Object {
	verify := int64(p.VerifySeconds)
	if verify < 0 {
		verify = 0
	}
	o, d := types.ObjectValueFrom(ctx, upgradeAttrTypes, upgradeModel{
		VerifySeconds:     types.Int64Value(verify),
		Rollback:          types.BoolValue(!p.NoRollback),
		KeepRevisions:     types.Int64Value(int64(p.KeepRevisions)),
		KeepRootfsChanges: types.BoolValue(p.KeepRootfsChanges),
	})
	diags.Append(d...)
	return o
}
