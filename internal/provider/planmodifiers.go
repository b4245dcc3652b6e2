package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// nullWhenUnsetOnCreate plans null for an Optional+Computed list that the
// configuration leaves out of a new resource: the image's default applies and
// state holds only what the user set. (On update,
// listplanmodifier.UseStateForUnknown keeps the previous value.)
type nullWhenUnsetOnCreate struct{}

var _ planmodifier.List = nullWhenUnsetOnCreate{}

func (nullWhenUnsetOnCreate) Description(context.Context) string {
	return "When not configured on a new resource, the image's default applies and the value stays null."
}

func (m nullWhenUnsetOnCreate) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (nullWhenUnsetOnCreate) PlanModifyList(_ context.Context, req planmodifier.ListRequest, resp *planmodifier.ListResponse) {
	if !req.State.Raw.IsNull() || !req.ConfigValue.IsNull() || !req.PlanValue.IsUnknown() {
		return
	}
	resp.PlanValue = types.ListNull(req.PlanValue.ElementType(context.Background()))
}

// sameWhileAttributeUnchanged keeps the prior state value of a computed
// attribute while another attribute (its source) is planned unchanged, and
// leaves it unknown otherwise. image_id uses it with `image`: the digest is
// only recomputed when the image reference changes.
type sameWhileAttributeUnchanged struct {
	source path.Path
}

var _ planmodifier.String = sameWhileAttributeUnchanged{}

func (m sameWhileAttributeUnchanged) Description(context.Context) string {
	return "Keeps the prior value unless " + m.source.String() + " changes."
}

func (m sameWhileAttributeUnchanged) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (m sameWhileAttributeUnchanged) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.State.Raw.IsNull() || req.Plan.Raw.IsNull() {
		return // create or destroy
	}
	if !req.PlanValue.IsUnknown() || req.StateValue.IsNull() {
		return
	}
	var planned, prior types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, m.source, &planned)...)
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, m.source, &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if planned.IsUnknown() || !planned.Equal(prior) {
		return
	}
	resp.PlanValue = req.StateValue
}
