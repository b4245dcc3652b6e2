package provider

import (
	"context"
	"errors"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// imageDataSource is the pouch_image data source: an image already on the
// host, read without pulling.
type imageDataSource struct {
	data *providerData
}

// NewImageDataSource returns the pouch_image data source.
func NewImageDataSource() datasource.DataSource { return &imageDataSource{} }

type imageDataModel struct {
	Name     types.String `tfsdk:"name"`
	Platform types.String `tfsdk:"platform"`
	imageConfigModel
}

func (d *imageDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_image"
}

func (d *imageDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := map[string]schema.Attribute{
		"name": schema.StringAttribute{
			Description: "Reference of an image on the containerd host, e.g. `registry.example:5000/team/app:1.4`.",
			Required:    true,
			Validators:  []validator.String{imageValidator},
		},
		"platform": schema.StringAttribute{
			Description: "Platform whose config is read, `os/arch[/variant]`; the host's when not set.",
			Optional:    true,
			Computed:    true,
			Validators:  []validator.String{stringvalidator.LengthAtLeast(1), platformValidator},
		},
	}
	for name, desc := range imageConfigDescriptions {
		switch name {
		case "entrypoint", "cmd", "env", "volumes":
			attrs[name] = schema.ListAttribute{Description: desc, ElementType: types.StringType, Computed: true}
		case "size":
			attrs[name] = schema.Int64Attribute{Description: desc, Computed: true}
		default:
			attrs[name] = schema.StringAttribute{Description: desc, Computed: true}
		}
	}
	resp.Schema = schema.Schema{
		Description: "An image already on the containerd host (pulled by a `pouch_image` or a container, imported by " +
			"hand): its digest and config, for modules that need them. Nothing is pulled; an image not on the host " +
			"fails the read.",
		Attributes: attrs,
	}
}

func (d *imageDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, _ *datasource.ConfigureResponse) {
	if data, ok := req.ProviderData.(*providerData); ok {
		d.data = data
	}
}

func (d *imageDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m imageDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if d.data == nil || d.data.engine == nil {
		resp.Diagnostics.AddError("Provider not configured", "The pouch provider's configuration is not known yet, "+
			"so the image cannot be read: make the provider's settings known at plan time.")
		return
	}
	ctx = withEngineLogging(ctx)
	img, err := d.data.engine.InspectImage(ctx, engine.ImageSpec{Name: m.Name.ValueString(), Platform: m.Platform.ValueString()})
	if errors.Is(err, engine.ErrNotFound) {
		resp.Diagnostics.AddError("Image not on the host", err.Error()+": pull it first, with a pouch_image resource "+
			"(and depend on it), or read its registry's digest with the pouch_registry_image data source instead.")
		return
	}
	if err != nil {
		addEngineError(&resp.Diagnostics, "Reading the image failed", err)
		return
	}
	m.imageConfigModel = imageConfigFromEngine(img, &resp.Diagnostics)
	if m.Platform.IsNull() || m.Platform.ValueString() == "" {
		m.Platform = types.StringValue(img.Platform) // as configured, else as read
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
