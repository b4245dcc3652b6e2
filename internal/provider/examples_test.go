package provider

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
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
		return resource.ComposeTestCheckFunc(
			checkExecContains(t, env, "pouch-stateful-web", []string{"env"}, "POUCH_DEMO_VERSION="+want),
			// The service settings, kept through the upgrade.
			checkExec(t, env, "pouch-stateful-web", "16384 128.0M 1024 pouch-init\nA:*\n", "sh", "-c",
				"echo $(ulimit -n) $(df -h /dev/shm | tail -n 1 | awk '{print $2}') $(cat /proc/sys/net/core/somaxconn) $(cat /proc/1/comm); cat /etc/httpd.conf"),
		)
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

// fleetImage is an image of the fleet example's service: busybox (whose
// httpd serves the volume) and /version. A bad release ships an httpd.conf
// that denies every client but one that does not exist: httpd runs, and
// its health check fails.
func fleetImage(tag string, bad bool) imagebuild.Image {
	img := imagebuild.Image{Name: "docker.io/pouch/fleet:" + tag, Files: map[string]string{"/version": tag}}
	if bad {
		img.Files["/etc/httpd.conf"] = "A:192.0.2.1\nD:*\n"
	}
	return img
}

// fleetHost is what the test knows of one host of the fleet: the task's
// pid, its address and the sum of the volume's data.
type fleetHost struct {
	pid  uint32
	ip   string
	data string
}

// TestAccExample_fleet applies examples/fleet as written, with the real
// terraform CLI (each provider alias is a provider process of its own),
// to three hosts reached over SSH, each with its own containerd, sharing
// one client key; terraform runs where the hosts' directories (their
// sockets and data roots) and the local containerd are hidden, so all that
// happens, happens on the hosts. A release that fails its health check is
// rolled back on host a and the apply stops there: hosts b and c are not
// touched. A good release upgrades a, then b, then c, each in place:
// same address, same volume bytes. Each host's container imports again.
func TestAccExample_fleet(t *testing.T) {
	env := accEnv(t)
	v1, v2, bad := fleetImage("v1", false), fleetImage("v2", false), fleetImage("v3-bad", true)
	hosts := remoteHosts(t, env, 3, v1, v2, bad)
	for _, h := range hosts[1:] {
		h.Authorize(t, hosts[0])
	}
	tf := newTFCLI(t)
	if err := os.CopyFS(tf.dir, os.DirFS(filepath.Join("..", "..", "examples", "fleet"))); err != nil {
		t.Fatal(err)
	}
	type hostVars struct {
		URL           string `json:"url"`
		HostKey       string `json:"host_key"`
		RemoteAddress string `json:"remote_address"`
		Namespace     string `json:"namespace"`
		DataRoot      string `json:"data_root"`
		BridgeName    string `json:"bridge_name"`
		BridgeSubnet  string `json:"bridge_subnet"`
	}
	vars := map[string]any{"ssh_private_key": hosts[0].ClientKeyPEM}
	hv := map[string]hostVars{}
	hidden := []string{env.Dir}
	for _, h := range hosts {
		hv[h.Name] = hostVars{URL: h.URL, HostKey: h.HostKey, RemoteAddress: h.Env.Address,
			Namespace: h.Env.Namespace, DataRoot: h.Env.DataRoot, BridgeName: h.Env.Bridge, BridgeSubnet: h.Env.Subnet}
		hidden = append(hidden, h.Dir)
	}
	vars["hosts"] = hv
	b, err := json.Marshal(vars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tf.dir, "fleet.auto.tfvars.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	tf.hide(hidden...)
	t.Cleanup(func() {
		if out, code := tf.run(nil, "destroy", "-auto-approve", "-no-color", "-var", "image="+v2.Name); code != 0 {
			t.Errorf("terraform destroy: exit code %d\n%s", code, out)
			return
		}
		for _, h := range hosts {
			if err := checkDestroyed(t, h.Env, "web")(nil); err != nil {
				t.Errorf("host %s: %v", h.Name, err)
			}
		}
	})
	const service = "web"
	observe := func() map[string]fleetHost {
		t.Helper()
		var addrs map[string]string
		if err := json.Unmarshal([]byte(tf.mustRun("output", "-json", "addresses")), &addrs); err != nil {
			t.Fatal(err)
		}
		seen := map[string]fleetHost{}
		for _, h := range hosts {
			data, err := h.Env.Exec(t, service, "sha256sum", "/data/index.html", "/data/marker")
			if err != nil {
				t.Fatalf("host %s: the volume's data: %v", h.Name, err)
			}
			seen[h.Name] = fleetHost{pid: h.Env.TaskPID(t, service), ip: addrs[h.Name], data: data}
		}
		return seen
	}
	version := func(h *testenv.SSHHost) string {
		t.Helper()
		out, err := h.Env.Exec(t, service, "cat", "/version")
		if err != nil {
			t.Fatalf("host %s: %v", h.Name, err)
		}
		return out
	}
	apply := func(image string) (string, int) {
		return tf.run(nil, "apply", "-auto-approve", "-no-color", "-var", "image="+image)
	}

	// The modules; dev_overrides stand for the provider, which init would look up.
	tf.mustRun("get", "-no-color")
	if out, code := apply(v1.Name); code != 0 {
		t.Fatalf("apply v1: exit code %d\n%s", code, out)
	}
	for _, h := range hosts {
		if got := version(h); got != "v1" {
			t.Fatalf("host %s runs %q, want v1", h.Name, got)
		}
		// The service answers on its host's bridge, from the page it
		// seeded in its volume.
		if out, err := h.Env.Exec(t, service, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/"); err != nil || !strings.HasPrefix(out, "web on ") {
			t.Fatalf("host %s serves %q (%v)", h.Name, out, err)
		}
		if _, err := h.Env.Exec(t, service, "sh", "-c", "head -c 4096 /dev/urandom > /data/marker"); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Client.LoadContainer(env.Context(), service); err == nil {
			t.Fatal("the service is in the containerd of the machine running terraform")
		}
	}
	before := observe()
	for name, h := range before {
		if h.pid == 0 || net.ParseIP(h.ip) == nil {
			t.Fatalf("host %s: pid %d, address %q", name, h.pid, h.ip)
		}
	}

	// The bad release: rolled back on host a, the apply stops.
	out, code := apply(bad.Name)
	if code == 0 {
		t.Fatalf("apply of a release that fails its health check succeeded\n%s", out)
	}
	if !regexp.MustCompile(ws("upgrade rolled back: container web is back on image " + v1.Name)).MatchString(out) {
		t.Fatalf("the apply's error does not say the upgrade was rolled back:\n%s", out)
	}
	for _, m := range []string{"module.host_b", "module.host_c"} {
		if strings.Contains(out, m+".pouch_container.service: Modifying") {
			t.Fatalf("%s was upgraded after host a failed:\n%s", m, out)
		}
	}
	after := observe()
	for _, h := range hosts {
		if got := version(h); got != "v1" {
			t.Fatalf("host %s runs %q after the failed release, want v1", h.Name, got)
		}
		was, is := before[h.Name], after[h.Name]
		if is.ip != was.ip || is.data != was.data {
			t.Fatalf("host %s after the failed release: %+v, was %+v", h.Name, is, was)
		}
		// Hosts b and c were not touched: the same process runs.
		if h.Name != "a" && is.pid != was.pid {
			t.Fatalf("host %s: task pid %d, was %d: it was touched", h.Name, is.pid, was.pid)
		}
	}
	if after["a"].pid == before["a"].pid {
		t.Fatal("host a's task was never replaced: the bad release was not tried")
	}
	// The state still has the old image everywhere: the release is planned
	// again on every host.
	if out, code := tf.run(nil, "plan", "-detailed-exitcode", "-no-color", "-var", "image="+bad.Name); code != 2 ||
		!strings.Contains(out, "0 to add, 3 to change, 0 to destroy") {
		t.Fatalf("plan after the failed release: exit code %d, want 2 with three updates\n%s", code, out)
	}

	// The good release: a, then b, then c, in place.
	out, code = apply(v2.Name)
	if code != 0 {
		t.Fatalf("apply v2: exit code %d\n%s", code, out)
	}
	done := func(m string) int { return strings.Index(out, m+".pouch_container.service: Modifications complete") }
	started := func(m string) int { return strings.Index(out, m+".pouch_container.service: Modifying") }
	for _, pair := range [][2]string{{"module.host_a", "module.host_b"}, {"module.host_b", "module.host_c"}} {
		if d, s := done(pair[0]), started(pair[1]); d < 0 || s < 0 || s < d {
			t.Fatalf("%s started before %s was done (or one is missing):\n%s", pair[1], pair[0], out)
		}
	}
	upgraded := observe()
	for _, h := range hosts {
		if got := version(h); got != "v2" {
			t.Fatalf("host %s runs %q, want v2", h.Name, got)
		}
		was, is := before[h.Name], upgraded[h.Name]
		if is.ip != was.ip || is.data != was.data {
			t.Fatalf("host %s after the upgrade: %+v, was %+v", h.Name, is, was)
		}
	}
	if out, code := tf.run(nil, "plan", "-detailed-exitcode", "-no-color", "-var", "image="+v2.Name); code != 0 {
		t.Fatalf("plan after the upgrade: exit code %d, want 0 (no changes)\n%s", code, out)
	}

	// Each host's container, forgotten by the state, imported again from
	// its host: the plan is empty, and nothing was restarted.
	for _, h := range hosts {
		addr := "module.host_" + h.Name + ".pouch_container.service"
		tf.mustRun("state", "rm", "-no-color", addr)
		tf.mustRun("import", "-no-color", "-var", "image="+v2.Name, addr, service)
	}
	if out, code := tf.run(nil, "plan", "-detailed-exitcode", "-no-color", "-var", "image="+v2.Name); code != 0 {
		t.Fatalf("plan after the imports: exit code %d, want 0 (no changes)\n%s", code, out)
	}
	for name, h := range observe() {
		if h != upgraded[name] {
			t.Fatalf("host %s after the imports: %+v, was %+v", name, h, upgraded[name])
		}
	}
}

// TestAccExamples_valid: every example configuration is valid for the
// provider's schema, as terraform validate says with the provider built
// from this module (an example without a terraform block gets one).
// Terraform validates a provider block only when a resource uses it, so
// every example's provider block has one.
func TestAccExamples_valid(t *testing.T) {
	root := filepath.Join("..", "..", "examples")
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "modules" {
			return fs.SkipDir // used by their examples
		}
		if !d.IsDir() && strings.HasSuffix(path, ".tf") && !slices.Contains(dirs, filepath.Dir(path)) {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 6 {
		t.Fatalf("found only the examples %v", dirs)
	}
	tf := newTFCLI(t)
	for _, dir := range dirs {
		rel, _ := filepath.Rel(root, dir)
		t.Run(rel, func(t *testing.T) {
			tf.t = t
			tf.dir = t.TempDir()
			if err := os.CopyFS(tf.dir, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(tf.dir, "*.tf"))
			hasBlock := false
			for _, f := range files {
				b, _ := os.ReadFile(f)
				hasBlock = hasBlock || strings.Contains(string(b), "required_providers")
			}
			if !hasBlock {
				tf.write("") // main.tf: the terraform block only
				for _, f := range files {
					if filepath.Base(f) == "main.tf" {
						t.Fatalf("%s has a main.tf without a terraform block", rel)
					}
				}
			}
			tf.mustRun("get", "-no-color")
			if out := tf.mustRun("validate", "-no-color"); !strings.Contains(out, "The configuration is valid") {
				t.Fatalf("terraform validate:\n%s", out)
			}
		})
	}
}
