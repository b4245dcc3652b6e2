package provider

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// containerSchemaVersion is the version of pouch_container's schema. Every
// change of the schema that a state written before it does not fit bumps
// it and adds the step from the previous version to UpgradeState, tested
// from a state that the previous release wrote.
//
//   - 0: pouch 0.1.0.
//   - 1: pouch 0.2.0. image_volumes is a computed list of objects (it was a
//     computed nested attribute, which crashes config generation in
//     terraform 1.5 and OpenTofu up to 1.10); log_max_size, log_max_files,
//     secret_env, secret_env_version and pull_policy are new.
const containerSchemaVersion = 1

var _ resource.ResourceWithUpgradeState = (*containerResource)(nil)

// UpgradeState upgrades the states that earlier versions of the schema
// wrote.
func (r *containerResource) UpgradeState(context.Context) map[int64]resource.StateUpgrader {
	return map[int64]resource.StateUpgrader{
		0: {StateUpgrader: upgradeContainerStateV0},
	}
}

// upgradeContainerStateV0 upgrades a state of pouch 0.1.0. image_volumes
// holds the same list of objects in JSON, in either shape. The new
// attributes get what the container has: the log options their defaults
// (which the engine also reads a record of 0.1.0 as), no secret
// variables. The state is read as raw JSON, without the old schema, so
// that no copy of that schema has to be kept.
func upgradeContainerStateV0(ctx context.Context, req resource.UpgradeStateRequest, resp *resource.UpgradeStateResponse) {
	if req.RawState == nil || req.RawState.JSON == nil {
		resp.Diagnostics.AddError("Cannot upgrade the state", "The state of version 0 has no JSON form. This is a bug in the provider.")
		return
	}
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(req.RawState.JSON, &attrs); err != nil {
		resp.Diagnostics.AddError("Cannot upgrade the state", fmt.Sprintf("Decode the state of version 0: %v.", err))
		return
	}
	setDefault := func(name string, v any) {
		if old, ok := attrs[name]; ok && string(old) != "null" {
			return
		}
		b, _ := json.Marshal(v)
		attrs[name] = b
	}
	setDefault("log_max_size", engine.DefaultLogMaxSizeMiB)
	setDefault("log_max_files", engine.DefaultLogMaxFiles)
	setDefault("pull_policy", engine.PullMissing)
	upgraded, err := json.Marshal(attrs)
	if err != nil {
		resp.Diagnostics.AddError("Cannot upgrade the state", err.Error())
		return
	}
	typ := containerSchema(ctx).Type().TerraformType(ctx)
	// Attributes the new schema does not have are dropped; those it has and
	// the old state lacks are null.
	val, err := tftypes.ValueFromJSONWithOpts(upgraded, typ, tftypes.ValueFromJSONOpts{IgnoreUndefinedAttributes: true})
	if err != nil {
		resp.Diagnostics.AddError("Cannot upgrade the state", fmt.Sprintf("The state of version 0 does not fit version %d: %v.",
			containerSchemaVersion, err))
		return
	}
	dv, err := tfprotov6.NewDynamicValue(typ, val)
	if err != nil {
		resp.Diagnostics.AddError("Cannot upgrade the state", err.Error())
		return
	}
	resp.DynamicValue = &dv
}
