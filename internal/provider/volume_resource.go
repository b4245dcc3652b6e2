package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

var (
	_ resource.Resource                = (*volumeResource)(nil)
	_ resource.ResourceWithConfigure   = (*volumeResource)(nil)
	_ resource.ResourceWithImportState = (*volumeResource)(nil)
)

// summaryVolumeInUse is the summary of a refused volume deletion.
const summaryVolumeInUse = "Volume in use"

// NewVolumeResource returns the pouch_volume resource.
func NewVolumeResource() resource.Resource {
	return &volumeResource{}
}

type volumeResource struct {
	data *providerData
}

// volumeModel is the Terraform data of a pouch_volume.
type volumeModel struct {
	ID         types.String `tfsdk:"id"`
	Name       types.String `tfsdk:"name"`
	Labels     types.Map    `tfsdk:"labels"`
	Mountpoint types.String `tfsdk:"mountpoint"`
}

func (m volumeModel) spec(ctx context.Context) (engine.VolumeSpec, diag.Diagnostics) {
	var diags diag.Diagnostics
	spec := engine.VolumeSpec{Name: m.Name.ValueString()}
	spec.Labels = mapToStrings(ctx, m.Labels, &diags)
	return spec, diags
}

func volumeFromEngine(v engine.Volume, prior volumeModel) (volumeModel, diag.Diagnostics) {
	var diags diag.Diagnostics
	m := volumeModel{
		ID:         types.StringValue(v.Name),
		Name:       types.StringValue(v.Name),
		Labels:     stringsToMap(v.Labels, prior.Labels, &diags),
		Mountpoint: types.StringValue(v.Mountpoint),
	}
	return m, diags
}

func (r *volumeResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_volume"
}

func (r *volumeResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A named volume: a directory under the provider's `data_root` that containers mount " +
			"(`mounts { type = \"volume\" }`). Its data outlives the containers that mount it, their " +
			"restarts and their image upgrades; destroying the volume deletes the data, and is refused " +
			"while a container mounts it.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Description: "The volume's name.",
				Computed:    true,
				PlanModifiers: []planmodifier.String{
					stringplanmodifier.UseStateForUnknown(),
				},
			},
			"name": schema.StringAttribute{
				Description: "Name of the volume, used in mounts and as the import ID: " + engine.NameRule +
					". Changing it replaces the volume (and deletes the old one's data).",
				Required: true,
				PlanModifiers: []planmodifier.String{
					stringplanmodifier.RequiresReplace(),
				},
				Validators: []validator.String{
					nameValidator,
				},
			},
			"labels": schema.MapAttribute{
				Description: "Labels recorded on the volume. A change updates the volume in place (its data is kept).",
				ElementType: types.StringType,
				Optional:    true,
				Validators: []validator.Map{
					mapvalidator.KeysAre(stringvalidator.LengthAtLeast(1)),
				},
			},
			"mountpoint": schema.StringAttribute{
				Description: "Directory on the host that holds the volume's data. Computed.",
				Computed:    true,
				PlanModifiers: []planmodifier.String{
					stringplanmodifier.UseStateForUnknown(),
				},
			},
		},
	}
}

func (r *volumeResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configuredData(req.ProviderData, &resp.Diagnostics)
}

// engine returns the configured engine, or adds an error when there is none.
func (r *volumeResource) engine(diags *diag.Diagnostics) engine.API {
	return engineOf(r.data, "volumes", diags)
}

func (r *volumeResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	r.apply(ctx, req.Plan.Get, &resp.State, &resp.Diagnostics, "Volume creation failed")
}

func (r *volumeResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	r.apply(ctx, req.Plan.Get, &resp.State, &resp.Diagnostics, "Volume update failed")
}

// apply creates the volume or updates its labels (CreateVolume does both).
func (r *volumeResource) apply(ctx context.Context, get func(context.Context, any) diag.Diagnostics,
	state interface {
		Set(context.Context, any) diag.Diagnostics
	}, diags *diag.Diagnostics, summary string) {
	var plan volumeModel
	diags.Append(get(ctx, &plan)...)
	if diags.HasError() {
		return
	}
	eng := r.engine(diags)
	spec, d := plan.spec(ctx)
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	ctx = withEngineLogging(ctx)
	tflog.Info(ctx, "creating volume", map[string]any{"volume": spec.Name})
	v, err := eng.CreateVolume(ctx, spec)
	if err != nil {
		addEngineError(diags, summary, err)
		return
	}
	model, d := volumeFromEngine(v, plan)
	diags.Append(d...)
	diags.Append(state.Set(ctx, &model)...)
}

func (r *volumeResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state volumeModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if r.data == nil || r.data.engine == nil {
		tflog.Debug(ctx, "provider not configured; volume not refreshed")
		return
	}
	name := state.Name.ValueString()
	if name == "" {
		name = state.ID.ValueString()
	}
	ctx = withEngineLogging(ctx)
	v, err := r.data.engine.InspectVolume(ctx, name)
	if errors.Is(err, engine.ErrNotFound) {
		tflog.Warn(ctx, "volume not found; it was deleted outside Terraform and will be created again",
			map[string]any{"volume": name})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addEngineError(&resp.Diagnostics, "Reading the volume failed", err)
		return
	}
	model, diags := volumeFromEngine(v, state)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &model)...)
}

func (r *volumeResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state volumeModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	eng := r.engine(&resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx = withEngineLogging(ctx)
	name := state.Name.ValueString()
	tflog.Info(ctx, "deleting volume", map[string]any{"volume": name})
	err := eng.DeleteVolume(ctx, name)
	switch {
	case errors.Is(err, engine.ErrVolumeInUse):
		resp.Diagnostics.AddError(summaryVolumeInUse,
			err.Error()+". Remove the mount or the container first, then destroy the volume.")
	case err != nil:
		addEngineError(&resp.Diagnostics, "Volume deletion failed", err)
	}
}

func (r *volumeResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if err := engine.CheckName(req.ID); err != nil {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("The import ID is the volume's name, which %v.", err))
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("name"), req, resp)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
}
