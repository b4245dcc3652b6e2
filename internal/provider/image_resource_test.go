package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/registry"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

const imageAddr = "pouch_image.app"

// checkImageGone fails while the daemon still has image name.
func checkImageGone(env *testenv.Env, name *string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		_, err := env.Client.ImageService().Get(env.Context(), *name)
		if !errdefs.IsNotFound(err) {
			return fmt.Errorf("image %s is still on the host (%v)", *name, err)
		}
		return nil
	}
}

// stateValue stores an attribute of the state in *to.
func stateValue(addr, attr string, to *string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[addr]
		if !ok {
			return fmt.Errorf("%s not in the state", addr)
		}
		*to = rs.Primary.Attributes[attr]
		return nil
	}
}

// TestAccImage_pullTriggers: a pouch_image pulled from a private registry
// gives its container the image pinned to its digest. When the tag moves,
// pull_triggers (the registry's digest) replace the pouch_image, the
// container upgrades in place to the new digest (same ID, same IP), and the
// old image is removed from the host. Removing a pouch_image that a
// container still runs from is refused, naming the container.
func TestAccImage_pullTriggers(t *testing.T) {
	env := accEnv(t)
	const name = "acc-image-triggers"
	reg := testenv.PrivateRegistry(t, registry.Options{})
	push := func(version string) string {
		t.Helper()
		return testenv.Push(t, reg, "pouchtest/image-triggers:stable", testImage("image-triggers", version))
	}
	ref := push("v1")
	config := providerConfig(env) + fmt.Sprintf(`
data "pouch_registry_image" "app" {
  name = %[1]q
}

resource "pouch_image" "app" {
  name          = %[1]q
  pull_triggers = [data.pouch_registry_image.app.digest]
  lifecycle {
    create_before_destroy = true
  }
}

resource "pouch_container" "test" {
  name  = %[2]q
  image = pouch_image.app.reference_with_digest
}
`, ref, name)
	var oldPinned string
	sameID := statecheck.CompareValue(compare.ValuesSame())
	sameIP := statecheck.CompareValue(compare.ValuesSame())
	digests := func() statecheck.StateCheck {
		return statecheck.CompareValuePairs("data.pouch_registry_image.app", tfjsonpath.New("digest"),
			imageAddr, tfjsonpath.New("digest"), compare.ValuesSame())
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             resource.ComposeTestCheckFunc(checkDestroyed(t, env, name), checkImageGone(env, &ref)),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					digests(),
					statecheck.CompareValuePairs(imageAddr, tfjsonpath.New("digest"), testAddr, tfjsonpath.New("image_id"), compare.ValuesSame()),
					statecheck.ExpectKnownValue(imageAddr, tfjsonpath.New("cmd"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringExact("sleep"), knownvalue.StringExact("3600")})),
					statecheck.ExpectKnownValue(imageAddr, tfjsonpath.New("size"), knownvalue.Int64Func(func(v int64) error {
						if v < 100<<10 {
							return fmt.Errorf("size %d, want the busybox layer's at least", v)
						}
						return nil
					})),
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					sameIP.AddStateValue(testAddr, tfjsonpath.New("ip_address")),
				},
				Check: resource.ComposeTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					stateValue(imageAddr, "reference_with_digest", &oldPinned),
				),
			},
			{
				Config:   config,
				PlanOnly: true, // nothing moved
			},
			{
				PreConfig: func() { push("v2") },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(imageAddr, plancheck.ResourceActionCreateBeforeDestroy),
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					digests(),
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					sameIP.AddStateValue(testAddr, tfjsonpath.New("ip_address")),
				},
				Check: resource.ComposeTestCheckFunc(
					checkExec(t, env, name, "v2\n", "cat", "/version"),
					checkImageGone(env, &oldPinned),
				),
			},
			{
				// The pouch_image leaves the configuration while the
				// container still runs from it (given the same pinned
				// reference by the registry's data source).
				Config: providerConfig(env) + fmt.Sprintf(`
data "pouch_registry_image" "app" {
  name = %q
}

resource "pouch_container" "test" {
  name  = %q
  image = data.pouch_registry_image.app.pinned_reference
}
`, ref, name),
				ExpectError: regexp.MustCompile(`Image in use(.|\n)*` + name + `(.|\n)*create_before_destroy`),
			},
			{
				// Nothing was removed: back to the configuration, with
				// nothing to change, the container still runs v2 (and
				// the container depends on the image again, for the
				// destroy).
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check:            checkExec(t, env, name, "v2\n", "cat", "/version"),
			},
		},
	})
}

// TestAccImage_sourceArchive: an archive imported under the name asked
// runs in a container given its reference_with_digest; a rebuilt archive
// (filesha256 in pull_triggers) upgrades the container in place; the image
// imports by its reference; destroy removes it.
func TestAccImage_sourceArchive(t *testing.T) {
	env := accEnv(t)
	const name = "acc-image-archive"
	archive := t.TempDir() + "/app.tar"
	build := func(version string) {
		t.Helper()
		img := testImage("image-archive", version)
		img.Name = "docker.io/pouchtest/what-the-archive-says:v0"
		if _, err := imagebuild.WriteArchiveFile(archive, img); err != nil {
			t.Fatal(err)
		}
	}
	build("v1")
	config := providerConfig(env) + fmt.Sprintf(`
resource "pouch_image" "app" {
  name           = "pouchtest/acc-image-archive:local"
  source_archive = %[1]q
  pull_triggers  = [filesha256(%[1]q)]
  lifecycle {
    create_before_destroy = true
  }
}

resource "pouch_container" "test" {
  name  = %[2]q
  image = pouch_image.app.reference_with_digest
}
`, archive, name)
	sameID := statecheck.CompareValue(compare.ValuesSame())
	imported := "docker.io/pouchtest/acc-image-archive:local"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             resource.ComposeTestCheckFunc(checkDestroyed(t, env, name), checkImageGone(env, &imported)),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(imageAddr, tfjsonpath.New("reference_with_digest"),
						knownvalue.StringRegexp(regexp.MustCompile(`^docker\.io/pouchtest/acc-image-archive@sha256:[0-9a-f]{64}$`))),
					statecheck.ExpectKnownValue(imageAddr, tfjsonpath.New("platform"), knownvalue.StringRegexp(regexp.MustCompile(`^linux/`))),
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
				},
				Check: resource.ComposeTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					func(*terraform.State) error {
						what := "docker.io/pouchtest/what-the-archive-says:v0"
						return checkImageGone(env, &what)(nil)
					},
				),
			},
			{
				PreConfig: func() { build("v2") },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(imageAddr, plancheck.ResourceActionCreateBeforeDestroy),
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check:             checkExec(t, env, name, "v2\n", "cat", "/version"),
			},
			{
				ResourceName:                         imageAddr,
				ImportState:                          true,
				ImportStateId:                        "pouchtest/acc-image-archive:local",
				ImportStateVerify:                    true,
				ImportStateVerifyIdentifierAttribute: "reference_with_digest",
				ImportStateVerifyIgnore:              []string{"name", "source_archive", "pull_triggers", "timeouts"},
			},
		},
	})
}
