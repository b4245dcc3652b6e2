// Package provider implements the pouch Terraform provider: the Terraform
// side (schema, plan, diagnostics, logging) of containers that the engine
// package runs on containerd.
package provider

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/remote"
)

// Environment variables read for provider settings left out of the
// configuration.
const (
	envAddress   = "CONTAINERD_ADDRESS"
	envNamespace = "CONTAINERD_NAMESPACE"
)

var _ provider.Provider = (*pouchProvider)(nil)

// New returns a constructor of the pouch provider, as providerserver wants.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &pouchProvider{version: version}
	}
}

type pouchProvider struct {
	version string
}

// providerModel is the provider configuration.
type providerModel struct {
	Address     types.String `tfsdk:"address"`
	Namespace   types.String `tfsdk:"namespace"`
	Snapshotter types.String `tfsdk:"snapshotter"`
	Runtime     types.String `tfsdk:"runtime"`
	DataRoot    types.String `tfsdk:"data_root"`

	BridgeName    types.String `tfsdk:"bridge_name"`
	BridgeSubnet  types.String `tfsdk:"bridge_subnet"`
	CNIConfigFile types.String `tfsdk:"cni_config_file"`

	Host          types.String `tfsdk:"host"`
	RemoteAddress types.String `tfsdk:"remote_address"`
	AgentPath     types.String `tfsdk:"agent_path"`
	SSH           types.Object `tfsdk:"ssh"`

	RegistryAuth       types.List `tfsdk:"registry_auth"`
	InsecureRegistries types.List `tfsdk:"insecure_registries"`
}

// providerData is what Configure hands to resources. engine is nil when the
// configuration was not known yet (plan time with values computed from other
// resources): resources then keep their prior state on refresh.
type providerData struct {
	engine engine.API
}

func (p *pouchProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "pouch"
	resp.Version = p.version
}

func (p *pouchProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	nonEmpty := []validator.String{stringvalidator.LengthAtLeast(1)}
	defaultBridgeName, defaultBridgeSubnet := engine.DefaultBridge, engine.DefaultSubnet
	resp.Schema = schema.Schema{
		Description: "Runs containers on containerd and upgrades them in place: changing a container's " +
			"image swaps its root filesystem onto the new image while keeping the container ID, " +
			"and rolls back if the new image does not start.",
		Attributes: map[string]schema.Attribute{
			"address": schema.StringAttribute{
				Description: "Path of the containerd socket, optionally with a `unix://` prefix. Defaults to " +
					"the `" + envAddress + "` environment variable, else `" + engine.DefaultAddress + "`.",
				Optional:   true,
				Validators: nonEmpty,
			},
			"namespace": schema.StringAttribute{
				Description: "containerd namespace holding the provider's containers, images and snapshots. " +
					"Defaults to the `" + envNamespace + "` environment variable, else `" + engine.DefaultNamespace + "`. " +
					"Several provider configurations may share a data root and a bridge with different namespaces: " +
					"their containers' network state is kept apart, and containers of the same name in two " +
					"namespaces get two addresses.",
				Optional:   true,
				Validators: []validator.String{namespaceValidator},
			},
			"snapshotter": schema.StringAttribute{
				Description: "containerd snapshotter for container root filesystems. Defaults to `" +
					engine.DefaultSnapshotter + "`.",
				Optional:   true,
				Validators: nonEmpty,
			},
			"runtime": schema.StringAttribute{
				Description: "containerd runtime (shim) that runs the tasks. Defaults to `" + engine.DefaultRuntime + "`.",
				Optional:    true,
				Validators:  nonEmpty,
			},
			"data_root": schema.StringAttribute{
				Description: "Absolute path of the directory where the provider keeps its own files: container logs, " +
					"named and anonymous volumes, network state, locks. Defaults to `" + engine.DefaultDataRoot + "`. " +
					"It is created owner-only (0700) when missing, and refused if another user owns it or can write to it; " +
					"every directory pouch makes in it is 0700. Every provider configuration that manages a namespace " +
					"must use the same data root.",
				Optional:   true,
				Validators: []validator.String{dataRootValidator},
			},
			"bridge_name": schema.StringAttribute{
				Description: "Linux bridge that containers with `network_mode = \"bridge\"` join; created when " +
					"missing. Defaults to `" + defaultBridgeName + "`. Ignored with `cni_config_file`.",
				Optional:   true,
				Validators: []validator.String{bridgeNameValidator},
			},
			"bridge_subnet": schema.StringAttribute{
				Description: "IPv4 subnet of the bridge network, in CIDR notation; containers get their " +
					"addresses from it. Defaults to `" + defaultBridgeSubnet + "`. Ignored with `cni_config_file`.",
				Optional:   true,
				Validators: []validator.String{subnetValidator},
			},
			"cni_config_file": schema.StringAttribute{
				Description: "Absolute path of an existing CNI network list (`.conflist`) that bridge containers " +
					"join instead of the network pouch writes for itself from `bridge_name` and `bridge_subnet`.",
				Optional:   true,
				Validators: []validator.String{absolutePathValidator},
			},
		},
	}
	for name, a := range remoteAttributes() {
		resp.Schema.Attributes[name] = a
	}
	for name, a := range registryAttributes() {
		resp.Schema.Attributes[name] = a
	}
}

func (p *pouchProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}

	// Values computed from other resources are unknown at plan time. That is
	// not an error: resources keep their prior state until the values are
	// known, and apply always runs with a known configuration.
	for _, v := range []attr.Value{cfg.Address, cfg.Namespace, cfg.Snapshotter, cfg.Runtime, cfg.DataRoot,
		cfg.BridgeName, cfg.BridgeSubnet, cfg.CNIConfigFile, cfg.Host, cfg.RemoteAddress, cfg.AgentPath, cfg.SSH,
		cfg.RegistryAuth, cfg.InsecureRegistries} {
		if !fullyKnown(ctx, v) {
			tflog.Debug(ctx, "provider configuration not known yet; containers will not be refreshed in this plan")
			data := &providerData{}
			resp.ResourceData = data
			resp.DataSourceData = data
			return
		}
	}

	opts := engine.Options{
		Address:     stringOr(cfg.Address, os.Getenv(envAddress), engine.DefaultAddress),
		Namespace:   stringOr(cfg.Namespace, os.Getenv(envNamespace), engine.DefaultNamespace),
		Snapshotter: stringOr(cfg.Snapshotter, engine.DefaultSnapshotter),
		Runtime:     stringOr(cfg.Runtime, engine.DefaultRuntime),
		DataRoot:    stringOr(cfg.DataRoot, engine.DefaultDataRoot),
		Network: engine.NetworkOptions{
			Bridge:   stringOr(cfg.BridgeName, engine.DefaultBridge),
			Subnet:   stringOr(cfg.BridgeSubnet, engine.DefaultSubnet),
			ConfFile: stringOr(cfg.CNIConfigFile),
		},
		Logger: engineLogger{},
	}
	opts.Registries, _ = registries(ctx, cfg.RegistryAuth, cfg.InsecureRegistries, &resp.Diagnostics)
	// Neither engine.New nor remote.New does I/O: the connection is made on
	// first use, so a missing daemon or host is reported by the resource
	// operation that needs it.
	var eng engine.API
	var err error
	if rc := remoteConfig(ctx, cfg, p.version, opts, &resp.Diagnostics); rc != nil {
		eng, err = remote.New(*rc)
		if err == nil {
			tflog.Debug(ctx, "configured pouch provider for a remote host", map[string]any{
				"host": rc.Host, "address": rc.Engine.Address, "namespace": rc.Engine.Namespace, "data_root": rc.Engine.DataRoot})
		}
	} else {
		eng, err = engine.New(opts)
		if err == nil {
			o := eng.Options()
			tflog.Debug(ctx, "configured pouch provider", map[string]any{
				"address":     o.Address,
				"namespace":   o.Namespace,
				"snapshotter": o.Snapshotter,
				"runtime":     o.Runtime,
				"data_root":   o.DataRoot,
				"bridge":      o.Network.Bridge,
				"subnet":      o.Network.Subnet,
				"cni_config":  o.Network.ConfFile,
			})
		}
	}
	if err != nil {
		resp.Diagnostics.AddError("Invalid provider configuration", err.Error()+
			" (the value may come from the "+envAddress+", "+envNamespace+" or "+envHost+" environment variable).")
		return
	}
	if resp.Diagnostics.HasError() {
		return
	}

	data := &providerData{engine: eng}
	resp.ResourceData = data
	resp.DataSourceData = data
}

func (p *pouchProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewContainerResource,
		NewVolumeResource,
		NewImageResource,
	}
}

func (p *pouchProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewRegistryImageDataSource,
		NewImageDataSource,
		NewContainerDataSource,
	}
}

// stringOr returns v's value when it is set, else the first non-empty
// fallback.
func stringOr(v types.String, fallbacks ...string) string {
	if !v.IsNull() && !v.IsUnknown() && v.ValueString() != "" {
		return v.ValueString()
	}
	for _, f := range fallbacks {
		if f != "" {
			return f
		}
	}
	return ""
}

// configuredData is what a resource's Configure keeps of the provider's
// data: nil before the provider is configured (validation).
func configuredData(v any, diags *diag.Diagnostics) *providerData {
	if v == nil {
		return nil
	}
	data, ok := v.(*providerData)
	if !ok {
		diags.AddError("Unexpected provider data",
			fmt.Sprintf("Expected *providerData, got %T. This is a bug in the provider.", v))
	}
	return data
}

// engineOf returns data's engine, or adds an error saying that what (the
// resources of a type, "containers") cannot be changed without one.
func engineOf(data *providerData, what string, diags *diag.Diagnostics) engine.API {
	if data == nil || data.engine == nil {
		diags.AddError("Provider not configured",
			"The pouch provider's configuration is not known, so "+what+" cannot be changed. "+
				"This is a bug in the provider or in Terraform.")
		return nil
	}
	return data.engine
}
