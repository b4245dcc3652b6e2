package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

var (
	_ resource.Resource                = (*imageResource)(nil)
	_ resource.ResourceWithConfigure   = (*imageResource)(nil)
	_ resource.ResourceWithImportState = (*imageResource)(nil)
)

// summaryImageInUse is the summary of a refused image removal.
const summaryImageInUse = "Image in use"

// defaultImagePullTimeout bounds a pull or import without timeouts.create.
const defaultImagePullTimeout = 20 * time.Minute

// imageTimeouts are the timeouts a pouch_image takes: a pull or import,
// a removal.
var imageTimeouts = timeouts.Opts{Create: true, Delete: true}

// NewImageResource returns the pouch_image resource.
func NewImageResource() resource.Resource { return &imageResource{} }

type imageResource struct {
	data *providerData
}

// imageModel is the Terraform data of a pouch_image.
type imageModel struct {
	ID            types.String `tfsdk:"id"`
	Name          types.String `tfsdk:"name"`
	Platform      types.String `tfsdk:"platform"`
	SourceArchive types.String `tfsdk:"source_archive"`
	PullTriggers  types.Set    `tfsdk:"pull_triggers"`
	KeepLocally   types.Bool   `tfsdk:"keep_locally"`
	imageConfigModel
	Timeouts timeouts.Value `tfsdk:"timeouts"`
}

func (r *imageResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_image"
}

func (r *imageResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	attrs := map[string]schema.Attribute{
		"id": schema.StringAttribute{
			Description: "The image's `reference_with_digest`.",
			Computed:    true,
			PlanModifiers: []planmodifier.String{
				stringplanmodifier.UseStateForUnknown(),
			},
		},
		"name": schema.StringAttribute{
			Description: "Image reference: pulled from its registry (with the provider's registry settings), or, with " +
				"`source_archive`, the name the archive's image is stored under, whatever names the archive gives " +
				"itself. Also the import ID. Changing it replaces the image.",
			Required:      true,
			PlanModifiers: replace,
			Validators:    []validator.String{imageValidator},
		},
		"platform": schema.StringAttribute{
			Description: "Platform of the image to pull or import, `os/arch[/variant]` such as `linux/arm64`; the " +
				"host's when not set. An image of a platform the host cannot run is stored, not unpacked. " +
				"Changing it replaces the image; removing it keeps the image of the platform it has.",
			Optional: true,
			Computed: true,
			PlanModifiers: []planmodifier.String{
				stringplanmodifier.UseStateForUnknown(),
				stringplanmodifier.RequiresReplaceIf(platformChanged, "A change of platform replaces the image.",
					"A change of platform replaces the image."),
			},
			Validators: []validator.String{stringvalidator.LengthAtLeast(1), platformValidator},
		},
		"source_archive": schema.StringAttribute{
			Description: "Path of an OCI image layout tar or a `docker save` tar, on the machine that runs Terraform, " +
				"to import instead of pulling (sent to the host over SSH with `host`). It must hold one image. " +
				"Changing the path replaces the image; to import a new archive at the same path, put " +
				"`filesha256(path)` in `pull_triggers`.",
			Optional:      true,
			PlanModifiers: replace,
			Validators:    []validator.String{stringvalidator.LengthAtLeast(1)},
		},
		"pull_triggers": schema.SetAttribute{
			Description: "Values whose change pulls (or imports) the image again, replacing this resource: a " +
				"`pouch_registry_image`'s `digest` pulls a tag when it moves, `filesha256()` of `source_archive` " +
				"imports a rebuilt archive. Containers given `reference_with_digest` then upgrade in place; give " +
				"this resource `lifecycle { create_before_destroy = true }` so that they move before the old image " +
				"is removed.",
			ElementType:   types.StringType,
			Optional:      true,
			PlanModifiers: []planmodifier.Set{setplanmodifier.RequiresReplace()},
		},
		"keep_locally": schema.BoolAttribute{
			Description: "Leave the image on the host when the resource is destroyed (default false). Without it, " +
				"destroy removes the names this resource stored (once no other pouch_image stores them), refused " +
				"while a container runs from one of them; an image that was on the host before pouch pulled it, or " +
				"imported with `terraform import`, is always left. A change updates in place.",
			Optional: true,
			Computed: true,
			Default:  booldefault.StaticBool(false),
		},
		"timeouts": timeouts.Attributes(ctx, imageTimeouts),
	}
	for name, desc := range imageConfigDescriptions {
		attrs[name] = imageConfigResourceAttribute(name, desc)
	}
	resp.Schema = schema.Schema{
		Description: "An image on the containerd host, pulled from its registry or imported from an archive, and " +
			"kept there: its digest, config and size, read without running it. A container given its " +
			"`reference_with_digest` upgrades in place when the image changes (a moved tag pulled again through " +
			"`pull_triggers`, a rebuilt archive).",
		Attributes: attrs,
	}
}

// imageConfigResourceAttribute is the computed attribute name of the
// resource, which keeps its value until the image is replaced.
func imageConfigResourceAttribute(name, desc string) schema.Attribute {
	desc += " Computed."
	switch name {
	case "entrypoint", "cmd", "env", "volumes":
		return schema.ListAttribute{Description: desc, ElementType: types.StringType, Computed: true,
			PlanModifiers: []planmodifier.List{listplanmodifier.UseStateForUnknown()}}
	case "size":
		return schema.Int64Attribute{Description: desc, Computed: true,
			PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown()}}
	}
	return schema.StringAttribute{Description: desc, Computed: true,
		PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}}
}

// platformChanged replaces the image when the configuration names a
// platform other than the one in the state; one left out keeps it.
func platformChanged(_ context.Context, req planmodifier.StringRequest, resp *stringplanmodifier.RequiresReplaceIfFuncResponse) {
	resp.RequiresReplace = !req.ConfigValue.IsNull() && !req.StateValue.IsNull() && !req.ConfigValue.Equal(req.StateValue)
}

func (r *imageResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configuredData(req.ProviderData, &resp.Diagnostics)
}

// engine returns the configured engine, or adds an error when there is none.
func (r *imageResource) engine(diags *diag.Diagnostics) engine.API {
	return engineOf(r.data, "images", diags)
}

// fromEngine is m with what img says of the image.
func (m imageModel) fromEngine(ctx context.Context, img engine.Image, diags *diag.Diagnostics) imageModel {
	m.imageConfigModel = imageConfigFromEngine(img, diags)
	m.ID = types.StringValue(img.PinnedReference)
	if m.Platform.IsNull() || m.Platform.IsUnknown() || m.Platform.ValueString() == "" {
		m.Platform = types.StringValue(img.Platform) // as configured, else as read
	}
	if m.KeepLocally.IsNull() || m.KeepLocally.IsUnknown() {
		m.KeepLocally = types.BoolValue(false)
	}
	m.Timeouts = timeoutsOrNull(ctx, m.Timeouts, imageTimeouts)
	return m
}

func (r *imageResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan imageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	eng := r.engine(&resp.Diagnostics)
	timeout, diags := plan.Timeouts.Create(ctx, defaultImagePullTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(withEngineLogging(ctx), timeout)
	defer cancel()
	// The image is stored for this resource instance alone: another
	// pouch_image of the same image (its replacement, with
	// create_before_destroy) owns it too, and the image stays until the
	// last owner is destroyed.
	owner, err := newImageOwner()
	if err != nil {
		resp.Diagnostics.AddError("Image creation failed", err.Error())
		return
	}
	spec := engine.ImageSpec{Name: plan.Name.ValueString(), Owner: owner}
	if !plan.Platform.IsUnknown() {
		spec.Platform = plan.Platform.ValueString()
	}
	var img engine.Image
	if archive := plan.SourceArchive.ValueString(); archive != "" {
		tflog.Info(ctx, "importing image", map[string]any{"image": spec.Name, "archive": archive})
		img, err = importArchive(ctx, eng, spec, archive)
	} else {
		tflog.Info(ctx, "pulling image", map[string]any{"image": spec.Name})
		img, err = eng.PullImage(ctx, spec)
	}
	if err != nil {
		addEngineError(&resp.Diagnostics, "Image creation failed", err)
		return
	}
	model := plan.fromEngine(ctx, img, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &model)...)
	resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateImageOwner, []byte(strconv.Quote(owner)))...)
}

// privateImageOwner is the private state key of the owner a pouch_image
// stored its image for; an imported one has none.
const privateImageOwner = "owner"

// newImageOwner names a new owner of an image.
func newImageOwner() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make an owner name for the image: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// imageOwner reads the owner from a resource's private state, "" if none.
func imageOwner(ctx context.Context, private interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}, diags *diag.Diagnostics) string {
	raw, d := private.GetKey(ctx, privateImageOwner)
	diags.Append(d...)
	if len(raw) == 0 {
		return ""
	}
	owner, err := strconv.Unquote(string(raw))
	if err != nil {
		diags.AddError("Unreadable private state", fmt.Sprintf("The image's owner in the resource's private state is %q: %v. "+
			"This is a bug in the provider.", raw, err))
	}
	return owner
}

// importArchive imports the archive file at path as spec's image.
func importArchive(ctx context.Context, eng engine.API, spec engine.ImageSpec, path string) (engine.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return engine.Image{}, fmt.Errorf("open source_archive: %w", err)
	}
	defer f.Close()
	return eng.ImportImage(ctx, spec, f)
}

// Update changes only keep_locally and timeouts: every other attribute
// replaces the image.
func (r *imageResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state imageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	state.KeepLocally, state.Timeouts = plan.KeepLocally, plan.Timeouts
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *imageResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state imageModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if r.data == nil || r.data.engine == nil {
		tflog.Debug(ctx, "provider not configured; image not refreshed")
		return
	}
	ctx = withEngineLogging(ctx)
	// The image this resource stored is the one at its digest, whatever
	// its name names now (a later pull may have moved the tag): its pinned
	// name, or its name while that still is the image (an image imported
	// into the state that pouch did not store has no pinned name); an
	// import reads the name.
	name, platform := state.Name.ValueString(), state.Platform.ValueString()
	ref := state.ReferenceWithDigest.ValueString()
	if ref == "" {
		ref = name
	}
	img, err := r.data.engine.InspectImage(ctx, engine.ImageSpec{Name: ref, Platform: platform})
	if errors.Is(err, engine.ErrNotFound) && ref != name {
		byName, nerr := r.data.engine.InspectImage(ctx, engine.ImageSpec{Name: name, Platform: platform})
		if nerr == nil && byName.Digest == state.Digest.ValueString() {
			img, err = byName, nil
		}
	}
	if errors.Is(err, engine.ErrNotFound) {
		tflog.Warn(ctx, "image not found; it was removed outside Terraform and will be pulled again",
			map[string]any{"image": ref})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addEngineError(&resp.Diagnostics, "Reading the image failed", err)
		return
	}
	model := state.fromEngine(ctx, img, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &model)...)
}

func (r *imageResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state imageModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx = withEngineLogging(ctx)
	name := state.Name.ValueString()
	if state.KeepLocally.ValueBool() {
		tflog.Info(ctx, "keep_locally: the image is left on the host", map[string]any{"image": name})
		return
	}
	owner := imageOwner(ctx, req.Private, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	if owner == "" {
		tflog.Info(ctx, "the image was imported, not stored by this resource: it is left on the host", map[string]any{"image": name})
		return
	}
	eng := r.engine(&resp.Diagnostics)
	timeout, diags := state.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tflog.Info(ctx, "removing image", map[string]any{"image": name, "digest": state.Digest.ValueString()})
	err := eng.DeleteImage(ctx, name, state.Digest.ValueString(), owner)
	switch {
	case errors.Is(err, engine.ErrImageInUse):
		resp.Diagnostics.AddError(summaryImageInUse, err.Error()+
			". Or set keep_locally = true to leave the image on the host when this resource is destroyed.")
	case err != nil:
		addEngineError(&resp.Diagnostics, "Image removal failed", err)
	}
}

// ImportState imports an image on the host by its reference; the digest
// it has there then is the one the resource keeps.
func (r *imageResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if err := engine.CheckImageReference(req.ID); err != nil {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("The import ID is the image's reference, which %v.", err))
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("name"), req, resp)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("keep_locally"), false)...)
}
