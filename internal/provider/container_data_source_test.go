package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// TestAccContainerDataSource: the pouch_container data source reads a
// container by name (its address, image digest, status and labels, as the
// resource has them); a name that no container has fails the plan, saying
// what to do.
func TestAccContainerDataSource(t *testing.T) {
	env := accEnv(t)
	const name = "acc-container-data"
	env.ImportImage(t, testImage("container-data", "v1"))
	const dataAddr = "data.pouch_container.read"
	config := containerConfig(env, name, "docker.io/pouchtest/acc-container-data:v1", `labels = { tier = "db" }`) + `
data "pouch_container" "read" {
  name = pouch_container.test.name
}
`
	same := func(attr string) statecheck.StateCheck {
		return statecheck.CompareValuePairs(testAddr, tfjsonpath.New(attr), dataAddr, tfjsonpath.New(attr), compare.ValuesSame())
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					same("ip_address"), same("mac_address"), same("image_id"), same("id"), same("log_path"),
					statecheck.ExpectKnownValue(dataAddr, tfjsonpath.New("ip_address"), knownvalue.StringRegexp(regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`))),
					statecheck.ExpectKnownValue(dataAddr, tfjsonpath.New("status"), knownvalue.StringExact("running")),
					statecheck.ExpectKnownValue(dataAddr, tfjsonpath.New("labels"), knownvalue.MapExact(map[string]knownvalue.Check{
						"tier": knownvalue.StringExact("db")})),
				},
			},
			{
				Config: config + `
data "pouch_container" "missing" {
  name = "acc-no-such-container"
}
`,
				ExpectError: regexp.MustCompile(`Container not found(.|\n)*pouch_container resource`),
			},
		},
	})
}
