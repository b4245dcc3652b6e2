package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

var (
	_ resource.Resource                   = (*containerResource)(nil)
	_ resource.ResourceWithConfigure      = (*containerResource)(nil)
	_ resource.ResourceWithImportState    = (*containerResource)(nil)
	_ resource.ResourceWithValidateConfig = (*containerResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*containerResource)(nil)
)

// restoreTimeout bounds the read-back of a container after a failed update,
// which must work even when the update used up its own timeout.
const restoreTimeout = 30 * time.Second

// Summaries of engine errors.
const (
	summaryUnreachable  = "containerd is not reachable"
	summaryRolledBack   = "Container upgrade failed and was rolled back"
	summaryUpdateFailed = "Container update failed"
)

// NewContainerResource returns the pouch_container resource.
func NewContainerResource() resource.Resource {
	return &containerResource{}
}

type containerResource struct {
	data *providerData
}

func (r *containerResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_container"
}

func (r *containerResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = containerSchema(ctx)
}

func containerSchema(ctx context.Context) schema.Schema {
	s := schema.Schema{
		Version: containerSchemaVersion,
		Description: "A container on containerd, with a task that runs while `running` is true. " +
			"Changing `image` upgrades the container in place: it keeps its ID, its root filesystem " +
			"is swapped onto the new image and the task restarted; if the new image does not start (or fails " +
			"its `healthcheck` or `upgrade.verify_seconds`), the old image is restored and the apply fails. Data in mounts (named volumes, bind mounts and " +
			"the image's volumes) and the bridge network's IP and MAC address are kept across restarts and " +
			"upgrades. Only a change of `name` replaces the container.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Description: "The container ID in containerd, equal to `name`.",
				Computed:    true,
				PlanModifiers: []planmodifier.String{
					stringplanmodifier.UseStateForUnknown(),
				},
			},
			"name": schema.StringAttribute{
				Description: "Name of the container, used as its containerd ID and as the import ID: " +
					engine.NameRule + ". Changing it replaces the container.",
				Required: true,
				PlanModifiers: []planmodifier.String{
					stringplanmodifier.RequiresReplace(),
				},
				Validators: []validator.String{nameValidator},
			},
			"image": schema.StringAttribute{
				Description: "Image reference, e.g. `busybox:1.36` or `registry.example:5000/app@sha256:...`; " +
					"pulled when not present. Changing it upgrades the container in place (same ID, " +
					"task restarted on the new image, rolled back to the old image on failure).",
				Required:   true,
				Validators: []validator.String{imageValidator},
			},
			"pull_policy": schema.StringAttribute{
				Description: "When the image is pulled: `missing` (the default) when it is not on the host; `always` also " +
					"when its tag moved in the registry: each plan asks the registry for the tag's digest (a manifest " +
					"HEAD, nothing pulled), and a new one plans an in-place upgrade (a registry that cannot be asked " +
					"gives a warning and no change); `never` only uses an image already on the host. " + withoutRestart,
				Optional:   true,
				Computed:   true,
				Default:    stringdefault.StaticString(string(engine.PullMissing)),
				Validators: []validator.String{pullPolicyValidator},
			},
			"image_id": schema.StringAttribute{
				Description: "Content digest of the image the container runs (its manifest or index). " +
					"Computed; it changes when `image` changes or the container's image was changed outside Terraform.",
				Computed: true,
				PlanModifiers: []planmodifier.String{
					sameWhileImageUnchanged(),
				},
			},
			"entrypoint": schema.ListAttribute{
				Description: "Overrides the image's ENTRYPOINT. Setting `entrypoint` without `command` " +
					"drops the image's CMD (Docker's rule). When left out, the value set before is kept " +
					"(and the image's ENTRYPOINT applies if none was ever set; it is not shown in state); " +
					"set `[]` to clear it explicitly. " + restartsInPlace,
				ElementType: types.StringType,
				Optional:    true,
				Computed:    true,
				PlanModifiers: []planmodifier.List{
					listplanmodifier.UseStateForUnknown(),
					nullWhenUnsetOnCreate{},
				},
				Validators: []validator.List{listvalidator.ValueStringsAre(argValidator)},
			},
			"command": schema.ListAttribute{
				Description: "Overrides the image's CMD (the arguments of the entrypoint). Setting `command` " +
					"alone keeps the image's ENTRYPOINT. When left out, the value set before is kept " +
					"(and the image's CMD applies if none was ever set; it is not shown in state); " +
					"set `[]` to clear it explicitly. " + restartsInPlace,
				ElementType: types.StringType,
				Optional:    true,
				Computed:    true,
				PlanModifiers: []planmodifier.List{
					listplanmodifier.UseStateForUnknown(),
					nullWhenUnsetOnCreate{},
				},
				Validators: []validator.List{listvalidator.ValueStringsAre(argValidator)},
			},
			"env": schema.MapAttribute{
				Description: "Environment variables added to (or overriding) the image's environment. " +
					"Only these appear in state (and in plans, in full: use `secret_env` for secrets); the image's " +
					"own variables still apply. Keys must be non-empty and contain neither `=` nor NUL. " + restartsInPlace,
				ElementType: types.StringType,
				Optional:    true,
				Validators:  []validator.Map{mapRule{check: engine.CheckEnv, summary: "Invalid environment variable"}},
			},
			"secret_env": schema.MapAttribute{
				Description: "Environment variables whose values are secret (Terraform 1.11 or later: a write-only " +
					"attribute). The task gets them like `env`, but they never appear in the plan, the state, the " +
					"provider's logs or its errors, and pouch records only their names. Because Terraform keeps no " +
					"copy, it cannot tell when they change: they are applied when the container is created and when " +
					"`secret_env_version` changes (which restarts the container in place); other updates keep the " +
					"values the task has. A variable is set in `env` or here, not both. Older Terraform and OpenTofu " +
					"versions refuse the attribute; use `env` with a sensitive variable there (its value is then in state).",
				ElementType: types.StringType,
				Optional:    true,
				Sensitive:   true,
				WriteOnly:   true,
				Validators:  []validator.Map{mapRule{check: engine.CheckEnv, summary: "Invalid environment variable"}},
			},
			"secret_env_version": schema.StringAttribute{
				Description: "Any value of your choice, e.g. a version number or a hash of the secrets; change it to " +
					"apply new `secret_env` values. " + restartsInPlace,
				Optional: true,
			},
			"labels": schema.MapAttribute{
				Description: "Labels set on the containerd container. Keys must not start with `" +
					strings.Join(engine.ReservedLabelPrefixes(), "`, `") + "` (reserved: pouch and containerd act on " +
					"those), and a key and its value take at most 4096 bytes together. " + withoutRestart,
				ElementType: types.StringType,
				Optional:    true,
				Validators:  []validator.Map{mapRule{check: engine.CheckLabels, summary: "Invalid label"}},
			},
			"working_dir": schema.StringAttribute{
				Description: "Absolute working directory of the process; when left out the image's " +
					"WORKDIR applies (not shown in state). " + restartsInPlace,
				Optional:   true,
				Validators: []validator.String{absolutePathValidator},
			},
			"user": schema.StringAttribute{
				Description: "User (`name`, `uid`, `uid:gid` or `name:group`) the process runs as; when left " +
					"out the image's USER applies (not shown in state). " + restartsInPlace,
				Optional: true,
				Validators: []validator.String{
					stringvalidator.LengthAtLeast(1),
				},
			},
			"network_mode": schema.StringAttribute{
				Description: "Network of the task: `bridge` (the default: a network namespace of the container's " +
					"own on the provider's bridge, with an IP and MAC address kept for the container's whole life), " +
					"`host` (the host's network) or `none` (loopback only). A change restarts the container in place " +
					"(same container, same root filesystem); its IP and MAC address change with it.",
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString(defaultNetworkMode),
				Validators: []validator.String{
					stringvalidator.OneOf(string(engine.NetworkBridge), string(engine.NetworkHost), string(engine.NetworkNone)),
				},
			},
			"running": schema.BoolAttribute{
				Description: "Whether the container's task runs. `false` stops the task and keeps the " +
					"container. A task that stopped outside Terraform is started again on the next apply. " +
					"A change updates the container in place.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(defaultRunning),
			},
			"stop_timeout": schema.Int64Attribute{
				Description: "Seconds a stop waits after `stop_signal` before sending SIGKILL (default 10; " +
					"0 kills at once). " + withoutRestart,
				Optional:   true,
				Computed:   true,
				Default:    int64default.StaticInt64(defaultStopTimeout),
				Validators: []validator.Int64{stopTimeoutValidator},
			},
			"status": schema.StringAttribute{
				Description: "State of the container's task as last read: `running`, `stopped`, `created`, " +
					"`paused` or `unknown`. Computed.",
				Computed: true,
			},
			"timeouts": timeouts.Attributes(ctx, containerTimeouts),
		},
	}
	for name, a := range statefulAttributes() {
		s.Attributes[name] = a
	}
	for name, a := range upgradeAttributes() {
		s.Attributes[name] = a
	}
	for name, a := range serviceAttributes() {
		s.Attributes[name] = a
	}
	return s
}

// containerTimeouts are the timeouts a pouch_container takes.
var containerTimeouts = timeouts.Opts{Create: true, Update: true, Delete: true}

// timeoutsAttrTypes are the attribute types of the timeouts object of
// opts.
func timeoutsAttrTypes(ctx context.Context, opts timeouts.Opts) map[string]attr.Type {
	t, ok := timeouts.Attributes(ctx, opts).GetType().(attr.TypeWithAttributeTypes)
	if !ok {
		return nil
	}
	return t.AttributeTypes()
}

// timeoutsOrNull is v, or a null timeouts object of opts when v is unknown
// or has no type (a model built from nothing, on import).
func timeoutsOrNull(ctx context.Context, v timeouts.Value, opts timeouts.Opts) timeouts.Value {
	if v.IsUnknown() || v.Object.AttributeTypes(ctx) == nil {
		return timeouts.Value{Object: types.ObjectNull(timeoutsAttrTypes(ctx, opts))}
	}
	return v
}

func (r *containerResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configuredData(req.ProviderData, &resp.Diagnostics)
}

// engine returns the configured engine, or adds an error when there is none.
func (r *containerResource) engine(diags *diag.Diagnostics) engine.API {
	return engineOf(r.data, "containers", diags)
}

func (r *containerResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan containerModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	eng := r.engine(&resp.Diagnostics)
	timeout, diags := plan.Timeouts.Create(ctx, defaultCreateTimeout)
	resp.Diagnostics.Append(diags...)
	spec, diags := plan.spec(ctx)
	resp.Diagnostics.Append(diags...)
	readUploadSources(ctx, &spec, plan.Uploads, &resp.Diagnostics)
	spec.SecretEnv = secretEnv(ctx, req.Config, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}

	ctx, cancel := context.WithTimeout(withEngineLogging(ctx), timeout)
	defer cancel()
	tflog.Info(ctx, "creating container", map[string]any{"name": spec.Name, "image": spec.Image})

	st, err := eng.Create(ctx, spec)
	if err != nil {
		addEngineError(&resp.Diagnostics, "Container creation failed", err)
		return
	}
	model, diags := containerFromState(ctx, st, plan)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &model)...)
	tflog.Info(ctx, "created container", map[string]any{
		"name": spec.Name, "image_id": st.ImageDigest, "status": string(st.Status),
	})
}

func (r *containerResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state containerModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if r.data == nil || r.data.engine == nil {
		// Provider configuration unknown at plan time: keep the prior state.
		tflog.Debug(ctx, "provider not configured; container not refreshed")
		return
	}
	name := state.Name.ValueString()
	if name == "" {
		name = state.ID.ValueString()
	}

	ctx = withEngineLogging(ctx)
	st, err := r.data.engine.Inspect(ctx, name)
	if errors.Is(err, engine.ErrNotFound) {
		tflog.Warn(ctx, "container not found; it was deleted outside Terraform and will be created again",
			map[string]any{"name": name})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addEngineError(&resp.Diagnostics, "Reading the container failed", err)
		return
	}
	model, diags := containerFromState(ctx, st, state)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &model)...)
}

func (r *containerResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, prior containerModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	eng := r.engine(&resp.Diagnostics)
	timeout, diags := plan.Timeouts.Update(ctx, defaultUpdateTimeout)
	resp.Diagnostics.Append(diags...)
	spec, diags := plan.spec(ctx)
	resp.Diagnostics.Append(diags...)
	readUploadSources(ctx, &spec, plan.Uploads, &resp.Diagnostics)
	spec.SecretEnv = secretEnv(ctx, req.Config, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		// resp.State starts as the plan: record the prior state instead.
		resp.State.Raw = req.State.Raw.Copy()
		return
	}

	reqCtx := withEngineLogging(ctx)
	ctx, cancel := context.WithTimeout(reqCtx, timeout)
	defer cancel()
	name := prior.Name.ValueString()
	tflog.Info(ctx, "updating container in place", map[string]any{
		"name": name, "from_image": prior.Image.ValueString(), "to_image": spec.Image,
	})

	st, err := eng.Update(ctx, name, spec)
	if err != nil {
		// The framework would record the plan, with the image that failed:
		// record what the container is instead.
		r.restoreState(reqCtx, eng, name, prior, req, resp)
		summary := summaryUpdateFailed
		if errors.Is(err, engine.ErrRolledBack) {
			summary = summaryRolledBack
		}
		addEngineError(&resp.Diagnostics, summary, err)
		return
	}
	model, diags := containerFromState(ctx, st, plan)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &model)...)
	tflog.Info(ctx, "updated container", map[string]any{
		"name": name, "image_id": st.ImageDigest, "status": string(st.Status),
	})
}

// restoreState writes the container as it is after a failed update into the
// response state, or the prior state when it cannot be read.
func (r *containerResource) restoreState(ctx context.Context, eng engine.API, name string,
	prior containerModel, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	st, err := eng.Inspect(ctx, name)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		tflog.Warn(ctx, "container is gone after the failed update", map[string]any{"name": name})
		resp.State.RemoveResource(ctx)
		return
	case err != nil:
		tflog.Warn(ctx, "cannot read the container after the failed update; keeping the prior state",
			map[string]any{"name": name, "error": err.Error()})
		resp.State.Raw = req.State.Raw.Copy()
		return
	}
	model, diags := containerFromState(ctx, st, prior)
	if diags.HasError() {
		resp.State.Raw = req.State.Raw.Copy()
		return
	}
	if d := resp.State.Set(ctx, &model); d.HasError() {
		resp.State.Raw = req.State.Raw.Copy()
	}
}

func (r *containerResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state containerModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	eng := r.engine(&resp.Diagnostics)
	timeout, diags := state.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}

	ctx, cancel := context.WithTimeout(withEngineLogging(ctx), timeout)
	defer cancel()
	name := state.Name.ValueString()
	tflog.Info(ctx, "deleting container", map[string]any{"name": name})
	if err := eng.Delete(ctx, name); err != nil && !errors.Is(err, engine.ErrNotFound) {
		addEngineError(&resp.Diagnostics, "Container deletion failed", err)
	}
}

func (r *containerResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if err := engine.CheckName(req.ID); err != nil {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("The import ID is the container's name, which %v.", err))
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("name"), req, resp)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
}

// secretEnv reads the write-only secret_env from the configuration, the
// only place Terraform passes it; nil when it is not set.
func secretEnv(ctx context.Context, config tfsdk.Config, diags *diag.Diagnostics) map[string]string {
	var m types.Map
	diags.Append(config.GetAttribute(ctx, path.Root("secret_env"), &m)...)
	return mapToStrings(ctx, m, diags)
}

// addEngineError adds err as one error diagnostic. An unreachable daemon
// gets its own summary whatever the operation; err's text already names the
// address and how to start containerd.
func addEngineError(diags *diag.Diagnostics, summary string, err error) {
	if errors.Is(err, engine.ErrUnreachable) {
		summary = summaryUnreachable
	}
	diags.AddError(summary, err.Error())
}
