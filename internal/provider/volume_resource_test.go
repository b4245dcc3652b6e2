package provider

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

const volumeAddr = "pouch_volume.data"

// volumeConfig is the provider block, pouch_volume.data (unless
// withVolume is false) and, when image is set, pouch_container.test
// mounting the volume at /data. The container names the volume through the
// resource when it exists, else by its literal name.
func volumeConfig(env *testenv.Env, volume string, withVolume bool, labels, name, image string) string {
	var b strings.Builder
	b.WriteString(providerConfig(env))
	source := fmt.Sprintf("%q", volume)
	if withVolume {
		fmt.Fprintf(&b, "\nresource \"pouch_volume\" \"data\" {\n  name = %q\n", volume)
		if labels != "" {
			fmt.Fprintf(&b, "  labels = %s\n", labels)
		}
		b.WriteString("}\n")
		source = "pouch_volume.data.name"
	}
	if image != "" {
		fmt.Fprintf(&b, `
resource "pouch_container" "test" {
  name   = %q
  image  = %q
  mounts = [{ type = "volume", source = %s, target = "/data" }]
}
`, name, image, source)
	}
	return b.String()
}

// volumeGone is a CheckDestroy part: the volume's directory is gone.
func volumeGone(mountpoint *string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		if *mountpoint == "" {
			return errors.New("the volume's mountpoint was never recorded")
		}
		if _, err := os.Stat(*mountpoint); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("volume directory %s after destroy: %v; want it removed", *mountpoint, err)
		}
		return nil
	}
}

func recordMountpoint(mountpoint *string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		var err error
		*mountpoint, err = stateAttr(s, volumeAddr, "mountpoint")
		return err
	}
}

func TestAccVolume_basic(t *testing.T) {
	env := accEnv(t)
	const volume = "acc-vol-basic"
	var mountpoint string

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             volumeGone(&mountpoint),
		Steps: []resource.TestStep{
			{
				Config: volumeConfig(env, volume, true, `{ app = "db" }`, "", ""),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(volumeAddr, tfjsonpath.New("id"), knownvalue.StringExact(volume)),
					statecheck.ExpectKnownValue(volumeAddr, tfjsonpath.New("mountpoint"),
						knownvalue.StringRegexp(regexp.MustCompile("^"+regexp.QuoteMeta(env.DataRoot)+"/.*"+volume))),
				},
				Check: resource.ComposeTestCheckFunc(
					recordMountpoint(&mountpoint),
					func(*terraform.State) error {
						if st, err := os.Stat(mountpoint); err != nil || !st.IsDir() {
							return fmt.Errorf("mountpoint %s: %v", mountpoint, err)
						}
						return os.WriteFile(filepath.Join(mountpoint, "kept"), []byte("kept"), 0o644)
					},
				),
			},
			{
				// Labels change in place; the data stays.
				Config: volumeConfig(env, volume, true, `{ app = "db", tier = "2" }`, "", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(volumeAddr, plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(volumeAddr, tfjsonpath.New("labels"), knownvalue.MapExact(map[string]knownvalue.Check{
						"app": knownvalue.StringExact("db"), "tier": knownvalue.StringExact("2"),
					})),
				},
				Check: func(*terraform.State) error {
					if b, err := os.ReadFile(filepath.Join(mountpoint, "kept")); err != nil || string(b) != "kept" {
						return fmt.Errorf("volume data after a label change: %q, %v", b, err)
					}
					return nil
				},
			},
			{
				ResourceName:      volumeAddr,
				ImportState:       true,
				ImportStateId:     volume,
				ImportStateVerify: true,
			},
		},
	})
}

// TestAccVolume_survivesUpgrade: data in a named volume survives an image
// upgrade, and the volume cannot be destroyed while a container mounts it.
func TestAccVolume_survivesUpgrade(t *testing.T) {
	env := accEnv(t)
	const name, volume = "acc-volup", "acc-volup-data"
	v1, v2 := testImage("volup", "v1"), testImage("volup", "v2")
	env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	var sum, mountpoint string
	sameID := statecheck.CompareValue(compare.ValuesSame())
	checksum := func(*terraform.State) error {
		out, err := execOut(t, env, name, "sha256sum", "/data/blob")
		if err != nil {
			return err
		}
		got, _, _ := strings.Cut(out, " ")
		if sum == "" {
			sum = got
		} else if got != sum {
			return fmt.Errorf("sha256 of /data/blob is %s, was %s", got, sum)
		}
		return nil
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             resource.ComposeTestCheckFunc(checkDestroyed(t, env, name), volumeGone(&mountpoint)),
		Steps: []resource.TestStep{
			{
				Config:            volumeConfig(env, volume, true, "", name, v1.Name),
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check: resource.ComposeTestCheckFunc(
					recordMountpoint(&mountpoint),
					func(*terraform.State) error {
						_, err := env.Exec(t, name, "dd", "if=/dev/urandom", "of=/data/blob", "bs=1k", "count=64")
						return err
					},
					checksum,
					// The bytes are in the volume's directory on the host.
					func(*terraform.State) error {
						st, err := os.Stat(filepath.Join(mountpoint, "blob"))
						if err != nil || st.Size() != 64<<10 {
							return fmt.Errorf("blob in the volume on the host: %v, %v", st, err)
						}
						return nil
					},
				),
			},
			{
				Config: volumeConfig(env, volume, true, "", name, v2.Name),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction(volumeAddr, plancheck.ResourceActionNoop),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check:             resource.ComposeTestCheckFunc(checkExec(t, env, name, "v2\n", "cat", "/version"), checksum),
			},
			{
				// The volume leaves the configuration while the container
				// still mounts it (by its literal name): refused.
				Config:      volumeConfig(env, volume, false, "", name, v2.Name),
				ExpectError: regexp.MustCompile(`Volume in use(.|\n)*container\s+` + name + `(.|\n)*Remove\s+the\s+mount\s+or\s+the\s+container`),
			},
			{
				// Nothing was lost.
				Config: volumeConfig(env, volume, true, "", name, v2.Name),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: checksum,
			},
		},
	})
}
