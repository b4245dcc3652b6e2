package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/pouch/terraform-provider-pouch/internal/registry"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// TestAccContainer_movedTag: a tag moved in its registry after the apply.
// With pull_policy = "missing" the plan is empty; with "always" it plans an
// update with image_id unknown, and the apply upgrades the container in
// place (same ID, same IP) to the new digest; with the registry stopped,
// the plan still succeeds, with no change.
func TestAccContainer_movedTag(t *testing.T) {
	env := accEnv(t)
	const name = "acc-moved"
	reg := testenv.PrivateRegistry(t, registry.Options{}) // stopped by a step
	push := func(version string) string {
		t.Helper()
		return testenv.Push(t, reg, "pouchtest/moved:stable", testImage("moved", version))
	}
	ref := push("v1")
	missing := containerConfig(env, name, ref)
	always := containerConfig(env, name, ref, `pull_policy = "always"`)
	stopped := containerConfig(env, name, ref, `pull_policy = "always"`, `running = false`)
	sameID := statecheck.CompareValue(compare.ValuesSame())
	sameIP := statecheck.CompareValue(compare.ValuesSame())
	moved := statecheck.CompareValue(compare.ValuesDiffer())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: missing,
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("pull_policy", knownvalue.StringExact("missing")),
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					sameIP.AddStateValue(testAddr, tfjsonpath.New("ip_address")),
					moved.AddStateValue(testAddr, tfjsonpath.New("image_id")),
				},
				Check: checkExec(t, env, name, "v1\n", "cat", "/version"),
			},
			{
				PreConfig: func() { push("v2") },
				Config:    missing,
				PlanOnly:  true, // the tag moved: nothing planned with "missing"
			},
			{
				Config: always,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
						plancheck.ExpectUnknownValue(testAddr, tfjsonpath.New("image_id")),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					sameIP.AddStateValue(testAddr, tfjsonpath.New("ip_address")),
					moved.AddStateValue(testAddr, tfjsonpath.New("image_id")),
				},
				Check: checkExec(t, env, name, "v2\n", "cat", "/version"),
			},
			{
				Config:   always,
				PlanOnly: true, // the tag has not moved since
			},
			{
				PreConfig: func() { push("v3") },
				Config:    always,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectUnknownValue(testAddr, tfjsonpath.New("image_id"))},
				},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check:             checkExec(t, env, name, "v3\n", "cat", "/version"),
			},
			{
				// The tag moves and the container is stopped in the same
				// apply: image_id is unknown without asking the registry.
				PreConfig: func() { push("v4") },
				Config:    stopped,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectUnknownValue(testAddr, tfjsonpath.New("image_id"))},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					moved.AddStateValue(testAddr, tfjsonpath.New("image_id")),
				},
			},
			{
				// A stopped container's tag moves: its status is planned
				// unknown too (the upgrade replaces its task).
				PreConfig: func() { push("v5") },
				Config:    stopped,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectUnknownValue(testAddr, tfjsonpath.New("image_id")),
						plancheck.ExpectUnknownValue(testAddr, tfjsonpath.New("status")),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{moved.AddStateValue(testAddr, tfjsonpath.New("image_id"))},
			},
			{
				PreConfig: reg.Stop,
				Config:    stopped,
				PlanOnly:  true, // a warning, no failed plan, no change
			},
		},
	})
}

// TestAccRegistryImage_pinsAndTriggers: pouch_registry_image reads a tag's
// digest without pulling; a container whose image is its pinned_reference
// runs that digest, and when the tag moves the next plan upgrades the
// container in place to the new digest.
func TestAccRegistryImage_pinsAndTriggers(t *testing.T) {
	env := accEnv(t)
	const name = "acc-pinned"
	reg := testenv.PrivateRegistry(t, registry.Options{})
	push := func(version string) string {
		t.Helper()
		return testenv.Push(t, reg, "pouchtest/pinned:stable", testImage("pinned", version))
	}
	ref := push("v1")
	config := providerConfig(env) + fmt.Sprintf(`
data "pouch_registry_image" "app" {
  name = %q
}

resource "pouch_container" "test" {
  name  = %q
  image = data.pouch_registry_image.app.pinned_reference
}
`, ref, name)
	const dataAddr = "data.pouch_registry_image.app"
	pinned := func() statecheck.StateCheck {
		return statecheck.CompareValuePairs(dataAddr, tfjsonpath.New("digest"), testAddr, tfjsonpath.New("image_id"), compare.ValuesSame())
	}
	sameID := statecheck.CompareValue(compare.ValuesSame())
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					pinned(),
					statecheck.ExpectKnownValue(dataAddr, tfjsonpath.New("pinned_reference"),
						knownvalue.StringRegexp(regexp.MustCompile(`^`+regexp.QuoteMeta(reg.Addr)+`/pouchtest/pinned@sha256:[0-9a-f]{64}$`))),
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
				},
				Check: checkExec(t, env, name, "v1\n", "cat", "/version"),
			},
			{
				PreConfig: func() { push("v2") },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{pinned(), sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check:             checkExec(t, env, name, "v2\n", "cat", "/version"),
			},
		},
	})
}
