package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

// demoImage is what tools/demo.sh builds with tools/mkimage.
func demoImage(tag string) imagebuild.Image {
	return imagebuild.Image{
		Name:  "docker.io/pouch/demo:" + tag,
		Env:   []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "POUCH_DEMO_VERSION=" + tag},
		Files: map[string]string{"/version": tag, "/var/www/index.html": tag},
		Cmd:   []string{"httpd", "-f", "-p", "127.0.0.1:8089", "-h", "/var/www"},
	}
}

// exampleConfig reads an example and points it at the test's containerd:
// the terraform block (the registry source) and the empty provider block
// give way to the test's provider configuration.
func exampleConfig(t *testing.T, file, providerBlock string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", file))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	s = regexp.MustCompile(`(?s)terraform \{.*?\n\}\n`).ReplaceAllString(s, "")
	if !strings.Contains(s, `provider "pouch" {}`) {
		t.Fatalf("%s: no `provider \"pouch\" {}` to replace", file)
	}
	return strings.Replace(s, `provider "pouch" {}`, providerBlock, 1)
}

// TestAccExample_stateful applies examples/stateful as written (but for the
// provider block) with the demo's images, then upgrades it to v2: the page
// written to the volume on first start is still served, from the same IP.
func TestAccExample_stateful(t *testing.T) {
	env := accEnv(t)
	env.ImportImage(t, demoImage("v1"))
	env.ImportImage(t, demoImage("v2"))
	cfg := exampleConfig(t, "examples/stateful/main.tf", providerConfig(env))
	const web = "pouch_container.web"
	sameIP := statecheck.CompareValue(compare.ValuesSame())
	serves := func(*terraform.State) error {
		return httpGet("http://127.0.0.1:8090/", "hello from pouch-stateful-web\n", 15*time.Second)
	}
	version := func(want string) resource.TestCheckFunc {
		return checkExecContains(t, env, "pouch-stateful-web", []string{"env"}, "POUCH_DEMO_VERSION="+want)
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, "pouch-stateful-web"),
		Steps: []resource.TestStep{
			{
				Config:            cfg,
				ConfigStateChecks: []statecheck.StateCheck{sameIP.AddStateValue(web, tfjsonpath.New("ip_address"))},
				Check:             resource.ComposeTestCheckFunc(serves, version("v1")),
			},
			{
				Config:          cfg,
				ConfigVariables: config.Variables{"image": config.StringVariable("docker.io/pouch/demo:v2")},
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(web, plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{sameIP.AddStateValue(web, tfjsonpath.New("ip_address"))},
				Check: resource.ComposeTestCheckFunc(serves, version("v2"), func(s *terraform.State) error {
					ip, err := stateAttr(s, web, "ip_address")
					if err != nil {
						return err
					}
					return httpGet(fmt.Sprintf("http://%s:80/", ip), "hello from pouch-stateful-web\n", 15*time.Second)
				}),
			},
		},
	})
}
