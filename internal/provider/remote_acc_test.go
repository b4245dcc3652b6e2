package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// remoteProvider is a provider block for host h (with alias, if not ""):
// its SSH URL, key and known_hosts file, and its containerd, data root,
// namespace and bridge, which are the host's.
func remoteProvider(h *testenv.SSHHost, alias string, sshExtra ...string) string {
	aliasLine := ""
	if alias != "" {
		aliasLine = fmt.Sprintf("alias = %q\n  ", alias)
	}
	ssh := fmt.Sprintf("private_key_file = %q\n    known_hosts_file = %q", h.ClientKey, h.KnownHosts)
	if len(sshExtra) > 0 {
		ssh = strings.Join(sshExtra, "\n    ")
	}
	return fmt.Sprintf(`provider "pouch" {
  %shost           = %q
  remote_address = %q
  namespace      = %q
  data_root      = %q
  bridge_name    = %q
  bridge_subnet  = %q
  ssh = {
    %s
  }
}
`, aliasLine, h.URL, h.Env.Address, h.Env.Namespace, h.Env.DataRoot, h.Env.Bridge, h.Env.Subnet, ssh)
}

// remoteHosts starts n hosts, each with its own sshd, host key, containerd,
// data root, namespace and bridge, with the images imported.
func remoteHosts(t *testing.T, env *testenv.Env, n int, imgs ...imagebuild.Image) []*testenv.SSHHost {
	t.Helper()
	hosts := make([]*testenv.SSHHost, n)
	for i := range hosts {
		hosts[i] = env.NewSSHHost(t, testenv.SSHHostOptions{Name: string(rune('a' + i))})
		for _, img := range imgs {
			hosts[i].Env.ImportImage(t, img)
		}
	}
	return hosts
}

// remoteTestConfig is a volume and a container using it on host h.
func remoteTestConfig(h *testenv.SSHHost, name, image string) string {
	return remoteProvider(h, "") + fmt.Sprintf(`
resource "pouch_volume" "data" {
  name = "%[1]s-data"
}

resource "pouch_container" "test" {
  name   = %[1]q
  image  = %[2]q
  mounts = [{ type = "volume", source = pouch_volume.data.name, target = "/data" }]
}
`, name, image)
}

// TestAccRemote_lifecycle: a host reached over SSH, with a containerd of
// its own: create, upgrade in place (same container, IP and volume bytes),
// rollback, refresh, import and destroy all happen in that containerd, and
// nothing in the containerd of the machine running terraform. (Several
// hosts in one configuration, each a provider alias, are in
// TestAccExample_fleet: in-process tests serve every alias from one
// provider instance.)
func TestAccRemote_lifecycle(t *testing.T) {
	env := accEnv(t)
	v1, v2 := testImage("remote", "v1"), testImage("remote", "v2")
	broken := imagebuild.Image{Name: "docker.io/pouchtest/acc-remote:broken", NoBusybox: true,
		Entrypoint: []string{"/bin/missing"}, Files: map[string]string{"/version": "broken\n"}}
	h := remoteHosts(t, env, 1, v1, v2, broken)[0]
	const name, res = "acc-remote", "pouch_container.test"
	sameIP := statecheck.CompareValue(compare.ValuesSame())
	sameID := statecheck.CompareValue(compare.ValuesSame())
	// same compares, each step it is in, the ID and IP with the steps before.
	same := func() []statecheck.StateCheck {
		return []statecheck.StateCheck{
			sameIP.AddStateValue(res, tfjsonpath.New("ip_address")),
			sameID.AddStateValue(res, tfjsonpath.New("id")),
		}
	}
	// The bytes written to the volume on the host, checked after every change.
	var sum string
	writeData := func(*terraform.State) error {
		out, err := h.Env.Exec(t, name, "sh", "-c", "head -c 4096 /dev/urandom > /data/own && sha256sum /data/own")
		sum = out
		return err
	}
	dataKept := func(*terraform.State) error {
		if out, err := h.Env.Exec(t, name, "sha256sum", "/data/own"); err != nil || out != sum {
			return fmt.Errorf("the volume's data: %q (%v), want %q", out, err, sum)
		}
		return nil
	}
	notHere := func(*terraform.State) error {
		if _, err := env.Client.LoadContainer(env.Context(), name); err == nil {
			return fmt.Errorf("container %s is in the containerd of the machine running terraform", name)
		}
		return nil
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, h.Env, name),
		Steps: []resource.TestStep{
			{
				Config:            remoteTestConfig(h, name, v1.Name),
				ConfigStateChecks: same(),
				Check:             resource.ComposeTestCheckFunc(checkExec(t, h.Env, name, "v1\n", "cat", "/version"), writeData, notHere),
			},
			{
				Config: remoteTestConfig(h, name, v2.Name),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate)}},
				ConfigStateChecks: same(),
				Check:             resource.ComposeTestCheckFunc(checkExec(t, h.Env, name, "v2\n", "cat", "/version"), dataKept, notHere),
			},
			{
				Config:      remoteTestConfig(h, name, broken.Name),
				ExpectError: regexp.MustCompile(ws("rolled back")),
			},
			{
				// Rolled back on the host: v2 runs, and the configuration
				// that names it plans nothing.
				Config:            remoteTestConfig(h, name, v2.Name),
				ConfigPlanChecks:  resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: same(),
				Check:             resource.ComposeTestCheckFunc(checkExec(t, h.Env, name, "v2\n", "cat", "/version"), dataKept),
			},
			{
				// Stopped on the host, outside terraform: refresh sees it,
				// and apply starts it again, the same container.
				PreConfig: func() { killTask(t, h.Env, name) },
				Config:    remoteTestConfig(h, name, v2.Name),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate)}},
				ConfigStateChecks: same(),
				Check:             resource.ComposeTestCheckFunc(checkTaskStatus(t, h.Env, name, "running"), dataKept),
			},
			{
				Config:                  remoteTestConfig(h, name, v2.Name),
				ResourceName:            res,
				ImportState:             true,
				ImportStateId:           name,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
		},
	})
}

// TestAccRemote_refusals: a host whose key is unknown or changed, and a
// user the host refuses, fail with errors that say what to do; nothing is
// created.
func TestAccRemote_refusals(t *testing.T) {
	env := accEnv(t)
	img := testImage("remote-refuse", "v1")
	hosts := remoteHosts(t, env, 2, img)
	h, other := hosts[0], hosts[1]
	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	container := fmt.Sprintf(`
resource "pouch_container" "test" {
  name  = "acc-remote-refuse"
  image = %q
}
`, img.Name)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, h.Env, "acc-remote-refuse"),
		Steps: []resource.TestStep{
			{
				Config: remoteProvider(h, "", fmt.Sprintf("private_key_file = %q", h.ClientKey),
					fmt.Sprintf("known_hosts_file = %q", empty)) + container,
				ExpectError: regexp.MustCompile(`(?s)is not known.*` + regexp.QuoteMeta(h.HostKeyFingerprint) + `.*ssh\.host_key`),
			},
			{
				Config: remoteProvider(h, "", fmt.Sprintf("private_key_file = %q", h.ClientKey),
					fmt.Sprintf("host_key = %q", other.HostKey)) + container,
				ExpectError: regexp.MustCompile(ws("THE HOST KEY CHANGED")),
			},
			{
				Config:      strings.Replace(remoteProvider(h, ""), "ssh://root@", "ssh://nobody@", 1) + container,
				ExpectError: regexp.MustCompile(ws("refused the offered keys")),
			},
			{
				// The host's key pinned: it works.
				Config: remoteProvider(h, "", fmt.Sprintf("private_key_file = %q", h.ClientKey),
					fmt.Sprintf("host_key = %q", h.HostKey)) + container,
				Check: checkTaskStatus(t, h.Env, "acc-remote-refuse", "running"),
			},
		},
	})
}

// TestAccRemote_imageArchive: a source_archive on the machine running
// terraform, bigger than one piece of the upload, is imported on the host
// over SSH; a container there runs its bytes, with an upload's content
// sent along, and the machine running terraform gets no image.
func TestAccRemote_imageArchive(t *testing.T) {
	env := accEnv(t)
	h := remoteHosts(t, env, 1)[0]
	const name = "acc-remote-archive"
	img := testImage("remote-archive", "v1")
	img.PadBytes, img.PadSeed = 3<<20, name
	archive, _ := testenv.OCIArchive(t, img)
	const imported = "docker.io/pouchtest/acc-remote-archive:local"
	config := remoteProvider(h, "") + fmt.Sprintf(`
resource "pouch_image" "app" {
  name           = %q
  source_archive = %q
}

resource "pouch_container" "test" {
  name    = %q
  image   = pouch_image.app.reference_with_digest
  uploads = [{ file = "/etc/app.conf", content = "sent over ssh" }]
}
`, imported, archive, name)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeTestCheckFunc(
				func(*terraform.State) error {
					out, err := h.Env.Exec(t, name, "sha256sum", "/pad")
					want := imagebuild.PadSHA256(img.PadBytes, img.PadSeed) + "  /pad\n"
					if err != nil || out != want {
						return fmt.Errorf("the archive's /pad on the host: %q (%v), want %q", out, err, want)
					}
					return nil
				},
				checkExec(t, h.Env, name, "sent over ssh", "cat", "/etc/app.conf"),
				func(*terraform.State) error {
					if _, err := env.Client.ImageService().Get(env.Context(), imported); err == nil {
						return fmt.Errorf("image %s is in the containerd of the machine running terraform", imported)
					}
					return nil
				},
			),
		}},
	})
}
