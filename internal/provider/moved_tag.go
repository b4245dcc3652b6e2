package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// Summaries of the moved-tag diagnostics, after "pouch_container.<name>: ".
const (
	warnTagMoved     = "image tag moved: upgrade in place"
	warnTagUnchecked = "registry not checked for a moved tag"
)

// registryCheckTimeout bounds the plan's question to the registry.
const registryCheckTimeout = 30 * time.Second

// planMovedTag plans, for a container with pull_policy = "always", that
// the apply may land on another digest of the same tag. When an update is
// planned anyway, image_id and image_volumes become unknown without asking
// the registry: the apply asks it, and a tag that moves between plan and
// apply must not make the plan wrong. Otherwise the registry is asked now:
// a new digest plans image_id, image_volumes and status as unknown, which
// Terraform shows as an update, and Update pulls and upgrades in place. A
// registry that cannot be asked gives a warning and no change.
func (r *containerResource) planMovedTag(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	var policy, image, name, prior types.String
	// Every plan of every container comes here: the policy first, the rest
	// only for "always".
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("pull_policy"), &policy)...)
	if resp.Diagnostics.HasError() || policy.ValueString() != string(engine.PullAlways) {
		return
	}
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("image"), &image)...)
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("name"), &name)...)
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("image_id"), &prior)...)
	if resp.Diagnostics.HasError() || prior.IsNull() || image.IsUnknown() || name.IsUnknown() {
		return
	}
	unknown := func(attrs ...string) {
		for _, a := range attrs {
			switch a {
			case "image_volumes":
				resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root(a), types.ListUnknown(types.ObjectType{AttrTypes: imageVolumeAttrTypes}))...)
			default:
				resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root(a), types.StringUnknown())...)
			}
		}
	}
	if !req.Plan.Raw.Equal(req.State.Raw) {
		unknown("image_id", "image_volumes")
		return
	}
	if r.data == nil || r.data.engine == nil {
		return // the provider's configuration is not known yet
	}
	summary := "pouch_container." + name.ValueString() + ": "
	ctx, cancel := context.WithTimeout(ctx, registryCheckTimeout)
	defer cancel()
	dgst, err := r.data.engine.RegistryDigest(ctx, image.ValueString())
	if err != nil {
		resp.Diagnostics.AddWarning(summary+warnTagUnchecked, fmt.Sprintf("pull_policy is \"always\", but the registry "+
			"could not be asked whether %s moved, so the plan keeps the container as it is: %v", image.ValueString(), err))
		return
	}
	if dgst == prior.ValueString() {
		return
	}
	tflog.Info(ctx, "the image's tag moved in its registry", map[string]any{
		"name": name.ValueString(), "image": image.ValueString(), "from": prior.ValueString(), "to": dgst})
	unknown("image_id", "image_volumes", "status")
	resp.Diagnostics.AddWarning(summary+warnTagMoved, fmt.Sprintf("The tag %s moved in its registry, from %s to %s "+
		"(pull_policy = \"always\"). The container is upgraded in place to the new digest: the same container ID, "+
		"network identity and volumes; if it fails to start or verify, it rolls back to the image it runs now.",
		image.ValueString(), prior.ValueString(), dgst))
}
