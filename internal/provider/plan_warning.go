package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// Summaries of the plan warnings, after "pouch_container.<name>: ".
const (
	warnImage   = "image upgrade in place"
	warnRestart = "restart in place"
	warnResize  = "live resize"
)

// ModifyPlan plans an upgrade for a moved tag (pull_policy "always",
// moved_tag.go), then says, as a warning, what an in-place update will do
// to the running container: an image upgrade, a restart in place or a
// live resize (settings, labels and start/stop get no warning). The
// decision is engine.Classify's, as Update will make it.
func (r *containerResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return // destroy
	}
	r.checkFixedAddress(ctx, req, resp)
	if req.State.Raw.IsNull() || resp.Diagnostics.HasError() {
		return // create
	}
	r.planMovedTag(ctx, req, resp)
	if resp.Diagnostics.HasError() || resp.Plan.Raw.Equal(req.State.Raw) {
		return // no change, the common case of a plan: skip decoding both
	}
	var prior, plan containerModel
	if d := req.State.Get(ctx, &prior); d.HasError() {
		return
	}
	if d := resp.Plan.Get(ctx, &plan); d.HasError() {
		return
	}
	if summary, detail := planWarning(ctx, prior, plan); summary != "" {
		resp.Diagnostics.AddWarning(summary, detail)
	}
}

// checkFixedAddress judges ipv4_address against the provider's bridge
// network, which only the provider's configuration tells.
func (r *containerResource) checkFixedAddress(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	var ip types.String
	if d := req.Config.GetAttribute(ctx, path.Root("ipv4_address"), &ip); d.HasError() || ip.IsNull() || ip.IsUnknown() {
		return
	}
	if r.data == nil || r.data.engine == nil {
		return
	}
	if err := engine.CheckFixedAddress(ip.ValueString(), r.data.engine.Options().Network); err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("ipv4_address"), "Invalid ipv4_address",
			fmt.Sprintf("Attribute ipv4_address %v.", err))
	}
}

// planWarning is the warning for updating prior to plan in place, or "" when
// there is nothing to warn about or the plan is not known well enough.
func planWarning(ctx context.Context, prior, plan containerModel) (summary, detail string) {
	if plan.Name.IsUnknown() || !plan.Name.Equal(prior.Name) {
		return "", "" // a new name replaces the container
	}
	if plan.Image.IsUnknown() {
		return "", ""
	}
	oldSpec, d := prior.spec(ctx)
	if d.HasError() {
		return "", ""
	}
	newSpec, d := plan.spec(ctx)
	if d.HasError() {
		return "", ""
	}
	change := engine.Classify(oldSpec, newSpec)
	if change != engine.ChangeImage && !fullyKnown(ctx, plan.restartInputs()...) {
		return "", ""
	}
	name := plan.Name.ValueString()
	summary = "pouch_container." + name + ": "
	switch change {
	case engine.ChangeImage:
		return summary + warnImage, imageUpgradeDetail(ctx, oldSpec, newSpec, plan)
	case engine.ChangeRestart:
		return summary + warnRestart, restartDetail(oldSpec, newSpec, plan)
	case engine.ChangeResize:
		return summary + warnResize, resizeDetail(oldSpec.Running && newSpec.Running)
	}
	return "", ""
}

// restartInputs are the attributes that decide between a restart, a live
// resize and no restart.
func (m containerModel) restartInputs() []attr.Value {
	return []attr.Value{
		m.Entrypoint, m.Command, m.Env, m.WorkingDir, m.User, m.Hostname, m.NetworkMode, m.Ports, m.Mounts,
		m.Privileged, m.ReadOnlyRootfs, m.Capabilities, m.SeccompProfile, m.NoNewPrivileges,
		m.Memory, m.MemorySwap, m.CPUs, m.CPUShares, m.PidsLimit, m.Running,
	}
}

// fullyKnown reports whether no value is, or holds, an unknown.
func fullyKnown(ctx context.Context, values ...attr.Value) bool {
	for _, v := range values {
		if v == nil {
			continue
		}
		tv, err := v.ToTerraformValue(ctx)
		if err != nil || !tv.IsFullyKnown() {
			return false
		}
	}
	return true
}

// identity describes the network identity kept (or not) by a restart or an
// upgrade.
func identity(oldSpec, newSpec engine.ContainerSpec, modeKnown bool) string {
	switch {
	case !modeKnown:
		return "the same IP address and MAC address (unless network_mode changes)"
	case oldSpec.NetworkMode != newSpec.NetworkMode:
		return fmt.Sprintf("a new network identity, since network_mode changes from %s to %s",
			networkName(oldSpec.NetworkMode), networkName(newSpec.NetworkMode))
	case newSpec.NetworkMode == engine.NetworkBridge || newSpec.NetworkMode == "":
		return "the same IP address and MAC address"
	case newSpec.NetworkMode == engine.NetworkHost:
		return "the host's network, as before"
	}
	return "its own network namespace with loopback only, as before"
}

func networkName(m engine.NetworkMode) string {
	if m == "" {
		return string(engine.NetworkBridge)
	}
	return string(m)
}

// imageUpgradeDetail says what an image upgrade does, step by step.
func imageUpgradeDetail(ctx context.Context, oldSpec, newSpec engine.ContainerSpec, plan containerModel) string {
	var b strings.Builder
	policyKnown := fullyKnown(ctx, plan.Upgrade, plan.Healthcheck)
	fmt.Fprintf(&b, "The image changes from %s to %s. The container is upgraded in place: the same container ID, %s, "+
		"and its volumes are kept (named volumes, bind mounts and the image's volumes). ",
		oldSpec.Image, newSpec.Image, identity(oldSpec, newSpec, fullyKnown(ctx, plan.NetworkMode)))
	switch {
	case !policyKnown:
		b.WriteString("Files written in the root filesystem outside volumes are discarded unless " +
			"upgrade.keep_rootfs_changes = true, which carries them over. ")
	case newSpec.Upgrade.KeepRootfsChanges:
		b.WriteString("Files written in the root filesystem outside volumes are carried over onto the new image " +
			"(upgrade.keep_rootfs_changes = true). ")
	default:
		b.WriteString("Files written in the root filesystem outside volumes are discarded: the new root filesystem " +
			"starts from the new image's files (set upgrade.keep_rootfs_changes = true to carry them over). ")
	}
	if policyKnown && newSpec.Upgrade.KeepRevisions > 0 {
		fmt.Fprintf(&b, "The old root filesystem is kept as a revision (upgrade.keep_revisions = %d): going back to "+
			"%s later reuses it, with its files. ", newSpec.Upgrade.KeepRevisions, oldSpec.Image)
	}
	b.WriteString("The new image is pulled and staged while the old task keeps serving; then the task is stopped ")
	if !newSpec.Running && fullyKnown(ctx, plan.Running) {
		b.WriteString("and the container is swapped onto the new image; it stays stopped (running = false). ")
	} else {
		b.WriteString("and restarts on the new image. ")
		var checks []string
		if policyKnown && newSpec.Healthcheck != nil && len(newSpec.Healthcheck.Command) > 0 {
			// The command's first word only: its arguments may hold secrets.
			checks = append(checks, fmt.Sprintf("the health check (%q ...) must pass (up to %d tries)",
				newSpec.Healthcheck.Command[0], newSpec.Healthcheck.Retries))
		}
		if policyKnown && newSpec.Upgrade.VerifySeconds > 0 {
			checks = append(checks, fmt.Sprintf("the new task must keep running for %d seconds (upgrade.verify_seconds)",
				newSpec.Upgrade.VerifySeconds))
		}
		if len(checks) > 0 {
			b.WriteString("Then " + strings.Join(checks, ", and ") + ". ")
		}
	}
	b.WriteString(failureSentence(ctx, newSpec, plan))
	return b.String()
}

// failureSentence says what a failed update does, as upgrade.rollback asks.
func failureSentence(ctx context.Context, newSpec engine.ContainerSpec, plan containerModel) string {
	if fullyKnown(ctx, plan.Upgrade) && newSpec.Upgrade.NoRollback {
		return "If the new task fails to start or to verify, the failed new container is left in place for " +
			"debugging (upgrade.rollback = false) and the apply fails; a failure before that still rolls back " +
			"to the old container."
	}
	return "If any step fails, the update rolls back to the old container (its image, root filesystem, " +
		"settings and task) and the apply fails."
}

// restartDetail says what a restart in place does.
func restartDetail(oldSpec, newSpec engine.ContainerSpec, plan containerModel) string {
	var b strings.Builder
	fmt.Fprintf(&b, "The container is restarted in place: the same container ID, the same root filesystem "+
		"(files written there are kept), %s, and its volumes. ", identity(oldSpec, newSpec, true))
	if newSpec.Running {
		b.WriteString("The task is stopped and started again with the new settings")
		if newSpec.Healthcheck != nil || newSpec.Upgrade.VerifySeconds > 0 {
			b.WriteString(", then verified (health check, upgrade.verify_seconds)")
		}
		b.WriteString(". ")
	} else {
		b.WriteString("The container stays stopped (running = false); the new settings apply when it starts. ")
	}
	b.WriteString(failureSentence(context.Background(), newSpec, plan))
	return b.String()
}

// resizeDetail says what a live resize does.
func resizeDetail(running bool) string {
	if !running {
		return "The new cgroup limits (memory, memory_swap, cpus, cpu_shares, pids_limit) are recorded on the " +
			"container without a restart; they apply to the task when it starts."
	}
	return "The new cgroup limits (memory, memory_swap, cpus, cpu_shares, pids_limit) are applied to the " +
		"running task: no restart, the same process keeps running. If the limits cannot be applied, the old " +
		"ones are restored and the apply fails."
}
