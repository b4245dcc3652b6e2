package provider

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// client is a Terraform or OpenTofu binary the tests run.
type client struct {
	name, path string
}

// clients are the clients this machine has for the tests: the main
// terraform (TF_ACC_TERRAFORM_PATH), and terraform 1.5 and OpenTofu when
// tools/clients.sh built them (TF_ACC_TERRAFORM_1_5_PATH,
// TF_ACC_TOFU_PATH; make test sets them).
func clients(t *testing.T) []client {
	t.Helper()
	var out []client
	for _, c := range []struct{ name, env string }{
		{"terraform", "TF_ACC_TERRAFORM_PATH"},
		{"terraform-1.5", "TF_ACC_TERRAFORM_1_5_PATH"},
		{"tofu", "TF_ACC_TOFU_PATH"},
	} {
		if p := os.Getenv(c.env); p != "" {
			out = append(out, client{c.name, p})
		} else {
			t.Logf("%s not set: %s not tested", c.env, c.name)
		}
	}
	if len(out) == 0 {
		t.Skip("no terraform: set TF_ACC_TERRAFORM_PATH")
	}
	return out
}

// TestAccCLI_generateConfig: `plan -generate-config-out` after an import
// block writes a configuration for the container on every client, and
// the next plan imports it without replacing it. Terraform 1.5 and
// OpenTofu up to 1.10 crash there on a computed-only nested attribute,
// which image_volumes was until schema version 1.
func TestAccCLI_generateConfig(t *testing.T) {
	env := accEnv(t)
	img := testImage("genconf", "v1")
	img.Volumes = []string{"/var/lib/app"}
	env.ImportImage(t, img)
	for _, c := range clients(t) {
		t.Run(c.name, func(t *testing.T) {
			name := "acc-genconf-" + strings.ReplaceAll(c.name, ".", "")
			made := newTFCLIWith(t, c.path)
			made.destroyAtEnd(env, name)
			made.write(containerConfig(env, name, img.Name))
			made.mustRun("apply", "-auto-approve", "-no-color")

			gen := newTFCLIWith(t, c.path)
			gen.write(providerConfig(env) + `
import {
  to = pouch_container.test
  id = "` + name + `"
}
`)
			out, code := gen.run(nil, "plan", "-no-color", "-generate-config-out=generated.tf")
			crash := regexp.MustCompile(`(?i)panic:|crash|stack trace|nil pointer`)
			if crash.MatchString(out) || (code != 0 && code != 2) {
				t.Fatalf("plan -generate-config-out: exit code %d\n%s", code, out)
			}
			b, err := os.ReadFile(filepath.Join(gen.dir, "generated.tf"))
			if err != nil {
				t.Fatalf("no generated configuration: %v\n%s", err, out)
			}
			for _, want := range []string{`resource "pouch_container" "test"`, `name`, name, img.Name} {
				if !strings.Contains(string(b), want) {
					t.Errorf("the generated configuration lacks %q:\n%s", want, b)
				}
			}
			// The generated configuration is valid and imports the
			// container as it is.
			out, code = gen.run(nil, "plan", "-no-color")
			if code != 0 || !regexp.MustCompile(`1 to import, 0 to add, \d+ to change, 0 to destroy`).MatchString(out) {
				t.Fatalf("plan with the generated configuration: exit code %d, want 1 to import and nothing replaced\n%s", code, out)
			}
		})
	}
}
