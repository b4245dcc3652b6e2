package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// registryAuthModel is one registry_auth entry.
type registryAuthModel struct {
	Address    types.String `tfsdk:"address"`
	Username   types.String `tfsdk:"username"`
	Password   types.String `tfsdk:"password"`
	ConfigFile types.String `tfsdk:"config_file"`
	CAFile     types.String `tfsdk:"ca_file"`
}

var registryAddressValidator = stringRule(engine.CheckRegistryAddress, "Invalid registry address",
	"value must be a registry's host[:port]")

// registryAttributes are the provider's registry settings.
func registryAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"registry_auth": schema.ListNestedAttribute{
			Description: "Settings of the registries images are pulled from, one entry per registry: its credentials " +
				"(`username` and `password`, or a Docker `config_file`) and the CA of its certificate (`ca_file`). " +
				"With `host`, the pulls, the files and the credential helpers are on the host.",
			Optional: true,
			NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
				"address": schema.StringAttribute{
					Description: "The registry as image references name it: `host[:port]` (`registry.example:5000`, " +
						"`ghcr.io`, `docker.io`).",
					Required:   true,
					Validators: []validator.String{registryAddressValidator},
				},
				"username": schema.StringAttribute{
					Description: "User name to log in with; with `password`.",
					Optional:    true,
				},
				"password": schema.StringAttribute{
					Description: "Password or token to log in with; with `username`. Sensitive: never in the plan, " +
						"the logs or an error.",
					Optional:  true,
					Sensitive: true,
				},
				"config_file": schema.StringAttribute{
					Description: "Absolute path of a Docker `config.json` whose credentials for the registry serve " +
						"instead of `username` and `password`: its `auths`, or the `docker-credential-NAME` helper its " +
						"`credHelpers` or `credsStore` name (run from `PATH`).",
					Optional:   true,
					Validators: []validator.String{absolutePathValidator},
				},
				"ca_file": schema.StringAttribute{
					Description: "Absolute path of a PEM file of the CA that signs the registry's certificate, trusted " +
						"besides the system's. A registry on localhost is reached over plain HTTP unless it has a `ca_file`.",
					Optional:   true,
					Validators: []validator.String{absolutePathValidator},
				},
			}},
		},
		"insecure_registries": schema.ListAttribute{
			Description: "Registries (`host[:port]`) served over plain HTTP, beyond those on localhost, which always are " +
				"unless they have a `ca_file`. Their traffic, credentials included, is not encrypted.",
			Optional:    true,
			ElementType: types.StringType,
		},
	}
}

// registries reads the registry settings; known is false while some are
// unknown (computed from other resources).
func registries(ctx context.Context, auth, insecure types.List, diags *diag.Diagnostics) (_ engine.Registries, known bool) {
	var out engine.Registries
	for _, v := range []attr.Value{auth, insecure} {
		if !fullyKnown(ctx, v) {
			return out, false
		}
	}
	var entries []registryAuthModel
	diags.Append(auth.ElementsAs(ctx, &entries, false)...)
	for _, m := range entries {
		out.Hosts = append(out.Hosts, engine.RegistryHost{Address: m.Address.ValueString(), Username: m.Username.ValueString(),
			Password: m.Password.ValueString(), ConfigFile: m.ConfigFile.ValueString(), CAFile: m.CAFile.ValueString()})
	}
	diags.Append(insecure.ElementsAs(ctx, &out.Insecure, false)...)
	return out, true
}

// ValidateConfig judges the registry settings as a whole with the
// engine's rule: credentials in pairs, one source of them, each registry
// once.
func (p *pouchProvider) ValidateConfig(ctx context.Context, req provider.ValidateConfigRequest, resp *provider.ValidateConfigResponse) {
	var auth, insecure types.List
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("registry_auth"), &auth)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("insecure_registries"), &insecure)...)
	regs, known := registries(ctx, auth, insecure, &resp.Diagnostics)
	if !known || resp.Diagnostics.HasError() {
		return
	}
	if err := engine.CheckRegistries(regs); err != nil {
		addEngineRuleError(&resp.Diagnostics, path.Empty(), "Invalid registry settings", err)
	}
}

var _ provider.ProviderWithValidateConfig = (*pouchProvider)(nil)
