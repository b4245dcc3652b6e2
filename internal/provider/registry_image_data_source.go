package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// registryImageDataSource is pouch_registry_image: the digest an image
// reference has in its registry now, asked without pulling.
type registryImageDataSource struct {
	data *providerData
}

// NewRegistryImageDataSource returns the pouch_registry_image data source.
func NewRegistryImageDataSource() datasource.DataSource { return &registryImageDataSource{} }

type registryImageModel struct {
	Name            types.String `tfsdk:"name"`
	Digest          types.String `tfsdk:"digest"`
	PinnedReference types.String `tfsdk:"pinned_reference"`
}

func (d *registryImageDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_registry_image"
}

func (d *registryImageDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "The digest that an image reference has in its registry now, asked with a manifest HEAD: " +
			"nothing is pulled. Use `pinned_reference` as a container's `image` to pin it, and to upgrade the " +
			"container in place when the tag moves. With `host`, the registry is asked from the host, with the " +
			"provider's registry settings.",
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{
				Description: "Image reference, e.g. `registry.example:5000/team/app:1.4`.",
				Required:    true,
				Validators:  []validator.String{imageValidator},
			},
			"digest": schema.StringAttribute{
				Description: "Content digest of the manifest (or index) the reference names now, `sha256:...`.",
				Computed:    true,
			},
			"pinned_reference": schema.StringAttribute{
				Description: "The reference pinned to that digest, `registry.example:5000/team/app@sha256:...`.",
				Computed:    true,
			},
		},
	}
}

func (d *registryImageDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, _ *datasource.ConfigureResponse) {
	if data, ok := req.ProviderData.(*providerData); ok {
		d.data = data
	}
}

func (d *registryImageDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m registryImageModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if d.data == nil || d.data.engine == nil {
		resp.Diagnostics.AddError("Provider not configured", "The pouch provider's configuration is not known yet, "+
			"so the registry cannot be asked: make the provider's settings known at plan time.")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, registryCheckTimeout)
	defer cancel()
	start := time.Now()
	dgst, err := d.data.engine.RegistryDigest(ctx, m.Name.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("Cannot read the image's digest", err.Error())
		return
	}
	pinned, err := engine.PinnedReference(m.Name.ValueString(), dgst)
	if err != nil {
		resp.Diagnostics.AddError("Cannot pin the image reference", err.Error())
		return
	}
	tflog.Debug(ctx, "read the image's digest in its registry", map[string]any{
		"image": m.Name.ValueString(), "digest": dgst, "took": time.Since(start).String()})
	m.Digest, m.PinnedReference = types.StringValue(dgst), types.StringValue(pinned)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
