package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// TestAccImageDataSource: the pouch_image data source reads an image on
// the host (imported by hand, never pulled): its digest and config; an
// image not on the host fails the plan, saying how to get it there.
func TestAccImageDataSource(t *testing.T) {
	env := accEnv(t)
	img := testImage("image-data", "v1")
	img.Entrypoint, img.Env, img.Volumes, img.WorkingDir = []string{"/bin/sh", "-c"}, []string{"PATH=/bin", "MODE=data"},
		[]string{"/var/lib/data"}, "/srv"
	dgst := env.ImportImage(t, img)
	const addr = "data.pouch_image.app"
	config := func(name string) string {
		return providerConfig(env) + fmt.Sprintf("data \"pouch_image\" \"app\" {\n  name = %q\n}\n", name)
	}
	list := func(vals ...string) knownvalue.Check {
		checks := make([]knownvalue.Check, len(vals))
		for i, v := range vals {
			checks[i] = knownvalue.StringExact(v)
		}
		return knownvalue.ListExact(checks)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		Steps: []resource.TestStep{
			{
				Config: config("pouchtest/acc-image-data:v1"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("digest"), knownvalue.StringExact(dgst)),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("reference_with_digest"),
						knownvalue.StringExact("docker.io/pouchtest/acc-image-data@"+dgst)),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("entrypoint"), list("/bin/sh", "-c")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("cmd"), list("sleep", "3600")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("env"), list("PATH=/bin", "MODE=data")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("volumes"), list("/var/lib/data")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("working_dir"), knownvalue.StringExact("/srv")),
				},
			},
			{
				Config:      config("pouchtest/acc-image-data:never-pulled"),
				ExpectError: regexp.MustCompile(`Image not on the host(.|\n)*pouch_image resource`),
			},
		},
	})
}
