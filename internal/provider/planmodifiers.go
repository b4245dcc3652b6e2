package provider

import (
	"context"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
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
// attribute while other attributes (its sources) are planned unchanged, and
// leaves it unknown otherwise. image_id uses it with `image`: the digest is
// only recomputed when the image reference changes; ip_address with
// `network_mode`; image_volumes with `image` and `mounts`.
type sameWhileAttributeUnchanged struct {
	source path.Path
	// more are further sources.
	more []path.Path
	// image says that source is an image reference, unchanged while it
	// names the same image as the engine resolves it ("busybox" and
	// "docker.io/library/busybox:latest" are one image): the engine's
	// decision, so that the plan shows what Update does.
	image bool
}

// sameWhileImageUnchanged keeps image_id while image names the same image.
func sameWhileImageUnchanged() sameWhileAttributeUnchanged {
	return sameWhileAttributeUnchanged{source: path.Root("image"), image: true}
}

var (
	_ planmodifier.String = sameWhileAttributeUnchanged{}
	_ planmodifier.List   = sameWhileAttributeUnchanged{}
)

func (m sameWhileAttributeUnchanged) sources() []path.Path {
	return append([]path.Path{m.source}, m.more...)
}

func (m sameWhileAttributeUnchanged) Description(context.Context) string {
	names := []string{}
	for _, p := range m.sources() {
		names = append(names, p.String())
	}
	return "Keeps the prior value unless " + strings.Join(names, " or ") + " changes."
}

func (m sameWhileAttributeUnchanged) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

// unchanged reports whether every source is planned equal to its prior
// value.
func (m sameWhileAttributeUnchanged) unchanged(ctx context.Context, plan tfsdk.Plan, state tfsdk.State, diags *diag.Diagnostics) bool {
	for i, p := range m.sources() {
		var planned, prior attr.Value
		d := plan.GetAttribute(ctx, p, &planned)
		d.Append(state.GetAttribute(ctx, p, &prior)...)
		diags.Append(d...)
		if d.HasError() || planned == nil || prior == nil || planned.IsUnknown() {
			return false
		}
		if i == 0 && m.image {
			a, okA := planned.(types.String)
			b, okB := prior.(types.String)
			if !okA || !okB || !engine.SameImage(a.ValueString(), b.ValueString()) {
				return false
			}
			continue
		}
		if !planned.Equal(prior) {
			return false
		}
	}
	return true
}

func (m sameWhileAttributeUnchanged) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.State.Raw.IsNull() || req.Plan.Raw.IsNull() {
		return // create or destroy
	}
	if !req.PlanValue.IsUnknown() {
		return
	}
	if m.unchanged(ctx, req.Plan, req.State, &resp.Diagnostics) {
		resp.PlanValue = req.StateValue
	}
}

func (m sameWhileAttributeUnchanged) PlanModifyList(ctx context.Context, req planmodifier.ListRequest, resp *planmodifier.ListResponse) {
	if req.State.Raw.IsNull() || req.Plan.Raw.IsNull() {
		return // create or destroy
	}
	if !req.PlanValue.IsUnknown() {
		return
	}
	if m.unchanged(ctx, req.Plan, req.State, &resp.Diagnostics) {
		resp.PlanValue = req.StateValue
	}
}

// defaultFromAttribute plans the value of another attribute (the source) for
// an Optional+Computed string the configuration leaves out: hostname defaults
// to name.
type defaultFromAttribute struct {
	source path.Path
}

var _ planmodifier.String = defaultFromAttribute{}

func (m defaultFromAttribute) Description(context.Context) string {
	return "Defaults to the value of " + m.source.String() + "."
}

func (m defaultFromAttribute) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (m defaultFromAttribute) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.Plan.Raw.IsNull() || !req.ConfigValue.IsNull() {
		return // destroy, or set in the configuration
	}
	var src types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, m.source, &src)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.PlanValue = src
}

// copyOfAttribute plans the value of source when the configuration sets
// it: ip_address is ipv4_address when that is fixed.
type copyOfAttribute struct {
	source path.Path
}

var _ planmodifier.String = copyOfAttribute{}

func (m copyOfAttribute) Description(context.Context) string {
	return "Is the value of " + m.source.String() + " when that is set."
}

func (m copyOfAttribute) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }

func (m copyOfAttribute) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var src types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, m.source, &src)...)
	if resp.Diagnostics.HasError() || src.IsNull() {
		return
	}
	resp.PlanValue = src // known, or unknown until apply
}
