package provider

import (
	"context"
	"errors"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// containerDataSource is the pouch_container data source: a container's
// state, read by name, for modules that compose (a client given its
// server's address).
type containerDataSource struct {
	data *providerData
}

// NewContainerDataSource returns the pouch_container data source.
func NewContainerDataSource() datasource.DataSource { return &containerDataSource{} }

type containerDataModel struct {
	Name        types.String `tfsdk:"name"`
	ID          types.String `tfsdk:"id"`
	Image       types.String `tfsdk:"image"`
	ImageID     types.String `tfsdk:"image_id"`
	Status      types.String `tfsdk:"status"`
	Running     types.Bool   `tfsdk:"running"`
	NetworkMode types.String `tfsdk:"network_mode"`
	IPAddress   types.String `tfsdk:"ip_address"`
	MACAddress  types.String `tfsdk:"mac_address"`
	Hostname    types.String `tfsdk:"hostname"`
	Labels      types.Map    `tfsdk:"labels"`
	LogPath     types.String `tfsdk:"log_path"`
}

func (d *containerDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_container"
}

func (d *containerDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Description: desc, Computed: true}
	}
	resp.Schema = schema.Schema{
		Description: "A container on the host, read by name: its image, state and address, for modules that compose " +
			"(a client given its server's `ip_address`). Nothing is changed; a container that does not exist fails " +
			"the read.",
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{
				Description: "The container's name.",
				Required:    true,
				Validators:  []validator.String{nameValidator},
			},
			"id":           computed("The container's ID (its name)."),
			"image":        computed("The image reference the container was given."),
			"image_id":     computed("Content digest of the image the container runs."),
			"status":       computed("State of its task: `running`, `stopped`, `created`, `paused` or `unknown`."),
			"running":      schema.BoolAttribute{Description: "Whether the container is meant to run.", Computed: true},
			"network_mode": computed("`bridge`, `host` or `none`."),
			"ip_address":   computed("Its address on the bridge network; null for host and none."),
			"mac_address":  computed("Its MAC address on the bridge network; null for host and none."),
			"hostname":     computed("Its host name."),
			"labels": schema.MapAttribute{Description: "The labels the user gave it.", ElementType: types.StringType,
				Computed: true},
			"log_path": computed("The file on the host that receives its output."),
		},
	}
}

func (d *containerDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, _ *datasource.ConfigureResponse) {
	if data, ok := req.ProviderData.(*providerData); ok {
		d.data = data
	}
}

func (d *containerDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m containerDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if d.data == nil || d.data.engine == nil {
		resp.Diagnostics.AddError("Provider not configured", "The pouch provider's configuration is not known yet, "+
			"so the container cannot be read: make the provider's settings known at plan time.")
		return
	}
	ctx = withEngineLogging(ctx)
	name := m.Name.ValueString()
	st, err := d.data.engine.Inspect(ctx, name)
	if errors.Is(err, engine.ErrNotFound) {
		resp.Diagnostics.AddError("Container not found", err.Error()+" in namespace "+d.data.engine.Options().Namespace+
			": create it (a pouch_container resource, and depend on it), or check the name and the provider's namespace.")
		return
	}
	if err != nil {
		addEngineError(&resp.Diagnostics, "Reading the container failed", err)
		return
	}
	var diags diag.Diagnostics
	m = containerDataModel{
		Name:        m.Name,
		ID:          types.StringValue(st.ID),
		Image:       types.StringValue(st.Spec.Image),
		ImageID:     types.StringValue(st.ImageDigest),
		Status:      types.StringValue(string(st.Status)),
		Running:     types.BoolValue(st.Spec.Running),
		NetworkMode: types.StringValue(string(networkModeOf(st.Spec))),
		IPAddress:   optionalString(st.IPAddress),
		MACAddress:  optionalString(st.MACAddress),
		Hostname:    types.StringValue(stringOrDefault(st.Spec.Hostname, name)),
		Labels:      stringsToMap(userLabels(st.Spec.Labels), types.MapNull(types.StringType), &diags),
		LogPath:     optionalString(st.LogPath),
	}
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// networkModeOf is spec's network mode, the default when unset.
func networkModeOf(spec engine.ContainerSpec) engine.NetworkMode {
	if spec.NetworkMode == "" {
		return engine.NetworkMode(defaultNetworkMode)
	}
	return spec.NetworkMode
}
