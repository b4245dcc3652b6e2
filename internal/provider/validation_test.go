package provider

import (
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// These run terraform (plan only) but need no containerd: every bad input is
// refused at plan time, with the attribute named.

const validationProvider = `
provider "pouch" {
  address = "unix:///tmp/pouch-validation-does-not-exist.sock"
}
`

func validationStep(body, wantErr string) resource.TestStep {
	return resource.TestStep{
		Config: validationProvider + `
resource "pouch_container" "test" {
` + body + `
}
`,
		PlanOnly:    true,
		ExpectError: regexp.MustCompile(wantErr),
	}
}

// ws matches the words of a message literally, allowing Terraform's line
// wrapping between them.
func ws(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		words[i] = regexp.QuoteMeta(w)
	}
	return strings.Join(words, `\s+`)
}

func TestValidation_container(t *testing.T) {
	base := "  name  = \"web\"\n  image = \"busybox:1.36\"\n"
	cases := []struct {
		body, want string
	}{
		{`  name = "-web"` + "\n" + `  image = "busybox"`, `Attribute\s+name\s+` + ws("must be 1 to 76 letters and digits")},
		{`  name = "web"` + "\n" + `  image = "busybox latest"`, `Attribute\s+image\s+` + ws("must not contain whitespace")},
		{base + `  memory = 0`, `Attribute\s+memory\s+` + ws("must be between 1 and 1073741824 MiB, got 0")},
		{base + `  memory = -5`, `Attribute\s+memory\s+` + ws("must be between 1 and")},
		{base + `  memory = 17592186044416`, `Attribute\s+memory\s+` + ws("must be between 1 and 1073741824 MiB")},
		{base + `  cpus = 0`, `Attribute\s+cpus\s+` + ws("must be between 0.01 and 4096 CPUs")},
		{base + `  cpus = 1e30`, `Attribute\s+cpus\s+` + ws("must be between 0.01 and 4096 CPUs")},
		{base + `  env = { A = "a\u0000b" }`, `Attribute\s+env\["A"\]\s+` + ws("must not contain NUL")},
		{base + `  command = ["sh", "a\u0000b"]`, `Attribute\s+command\[1\]\s+` + ws("must not contain NUL")},
		{base + `  labels = { "containerd.io/restart.status" = "running" }`, `Attribute\s+labels\["containerd.io/restart.status"\]` + `(.|\n)*reserved`},
		{base + `  capabilities = { add = ["NET_MAGIC"] }`, `capabilities\.add\[0\](.|\n)*` + ws("must be a Linux capability")},
		{base + `  mounts = [{ type = "tmpfs", target = "/proc/sys" }]`, `Attribute\s+mounts\[0\]\.target\s+` + ws("must not be /proc or under it")},
		{base + `  memory_swap = 64`, `memory_swap(.|\n)*memory`},
		{base + "  memory = 128\n  memory_swap = 64", `Attribute\s+memory_swap\s+` + ws("(64 MiB) is memory plus swap")},
		{base + `  network_mode = "overlay"`, `Attribute\s+network_mode\s+` + ws("value must be one of")},
		{base + `  restart = "sometimes"`, `Attribute\s+restart\s+` + ws("value must be one of")},
		{base + `  stop_signal = "TERM"`, `Attribute\s+stop_signal\s+` + ws("must be a signal name")},
		{base + `  seccomp_profile = "relative.json"`, `Attribute\s+seccomp_profile\s+must\s+be`},

		{base + `  mounts = [{ type = "nfs", target = "/data" }]`, `Attribute\s+mounts\[0\]\.type\s+` + ws("value must be one of")},
		{base + `  mounts = [{ type = "tmpfs", target = "data" }]`, `Attribute\s+mounts\[0\]\.target\s+` + ws("must be an absolute path")},
		{base + `  mounts = [{ type = "bind", source = "srv", target = "/srv" }]`, `Attribute\s+mounts\[0\]\.source\s+` + ws("of a bind mount must be an absolute host path")},
		{base + `  mounts = [{ type = "volume", target = "/data" }]`, `Attribute\s+mounts\[0\]\.source\s+` + ws("must name the volume")},
		{base + `  mounts = [{ type = "volume", source = "../etc", target = "/data" }]`, `Attribute\s+mounts\[0\]\.source\s+` + ws("must be a volume name")},
		{base + `  mounts = [{ type = "tmpfs", source = "x", target = "/tmp" }]`, `Attribute\s+mounts\[0\]\.source\s+` + ws("must be left out for a tmpfs")},
		{base + `  mounts = [{ type = "volume", source = "d", target = "/data", tmpfs_size = 8 }]`, `Attribute\s+mounts\[0\]\.tmpfs_size\s+` + ws("only applies to tmpfs")},
		{base + `  mounts = [{ type = "tmpfs", target = "/tmp", tmpfs_size = 0 }]`, `Attribute\s+mounts\[0\]\.tmpfs_size\s+` + ws("must be between 1 and")},
		{base + `  mounts = [{ type = "tmpfs", target = "/data" }, { type = "tmpfs", target = "/data/" }]`, `Attribute\s+mounts\[1\]\.target\s+/data\s+` + ws("is already the target of mounts[0]")},
		{base + `  ports = [{ internal = 0, external = 80 }]`, `Attribute\s+ports\[0\]\.internal\s+` + ws("must be between 1 and 65535")},
		{base + `  ports = [{ internal = 80, external = 70000 }]`, `Attribute\s+ports\[0\]\.external\s+` + ws("must be between 1 and 65535")},
		{base + `  ports = [{ internal = 80, external = 8080, ip = "localhost" }]`, `Attribute\s+ports\[0\]\.ip\s+` + ws("must be an IP address")},
		{base + `  ports = [{ internal = 80, external = 8080, protocol = "sctp" }]`, `Attribute\s+ports\[0\]\.protocol\s+` + ws("value must be one of")},
		{base + "  network_mode = \"host\"\n  ports = [{ internal = 80, external = 8080 }]", `Attribute\s+ports\s+` + ws("publishes container ports, which only works with network_mode = \"bridge\"")},
		{base + "  network_mode = \"none\"\n  ports = [{ internal = 80, external = 8080 }]", `Attribute\s+ports\s+publishes`},
		{base + `  healthcheck = { command = ["true"], interval = "2 seconds" }`, `Attribute\s+healthcheck\.interval\s+` + ws(`must be a duration such as "2s"`)},
		{base + `  healthcheck = { command = ["true"], timeout = "0s" }`, `Attribute\s+healthcheck\.timeout\s+` + ws("must be greater than 0s")},
		{base + `  healthcheck = { command = ["true"], retries = 0 }`, `Attribute\s+healthcheck\.retries\s+` + ws("must be between 1 and 100")},
		{base + `  healthcheck = { command = [] }`, `Attribute\s+healthcheck\.command\s+` + ws("list must contain at least 1")},
		{base + `  healthcheck = { interval = "1s" }`, `(?i)healthcheck(.|\n)*command(.|\n)*required`},
		{base + `  upgrade = { keep_revisions = 11 }`, `Attribute\s+upgrade\.keep_revisions\s+` + ws("must be between 0 and 10")},
		{base + `  upgrade = { verify_seconds = -1 }`, `Attribute\s+upgrade\.verify_seconds\s+` + ws("must be between 0 and 3600")},
		{base + `  ports = [{ internal = 80, external = 8080 }, { internal = 81, external = 8080, ip = "0.0.0.0" }]`, `Attribute\s+ports\[1\]\.external\s+` + ws("publishes tcp port 8080 on all addresses, which ports[0] takes already")},
	}
	steps := make([]resource.TestStep, 0, len(cases))
	for _, c := range cases {
		steps = append(steps, validationStep(c.body, c.want))
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		Steps:                    steps,
	})
}

func TestValidation_validConfigPlans(t *testing.T) {
	// Everything at once is accepted: a create plans without the daemon.
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		Steps: []resource.TestStep{{
			Config: validationProvider + `
resource "pouch_container" "test" {
  name         = "web"
  image        = "busybox:1.36"
  hostname     = "web.internal"
  network_mode = "bridge"
  ports = [
    { internal = 80, external = 8080, ip = "127.0.0.1" },
    { internal = 80, external = 8080, ip = "127.0.0.2" },
    { internal = 53, external = 8080, protocol = "udp" },
  ]
  mounts = [
    { type = "volume", source = "data", target = "/data" },
    { type = "bind", source = "/srv", target = "/srv", read_only = true },
    { type = "tmpfs", target = "/tmp", tmpfs_size = 16 },
  ]
  memory            = 64
  memory_swap       = -1
  cpus              = 0.5
  cpu_shares        = 512
  pids_limit        = 100
  restart           = "unless-stopped"
  stop_signal       = "SIGQUIT"
  read_only_rootfs  = true
  capabilities      = { add = ["NET_ADMIN"], drop = ["CAP_MKNOD"] }
  seccomp_profile   = "unconfined"
  no_new_privileges = false
}
`,
			PlanOnly:           true,
			ExpectNonEmptyPlan: true,
		}},
	})
}

func TestValidation_providerAndVolume(t *testing.T) {
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		Steps: []resource.TestStep{
			{
				Config: `
provider "pouch" {
  bridge_subnet = "10.88.0.0"
}
resource "pouch_volume" "data" {
  name = "data"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+bridge_subnet\s+` + ws("must be an IPv4 network in CIDR notation")),
			},
			{
				Config: `
provider "pouch" {
  bridge_subnet = "fd00::/64"
}
resource "pouch_volume" "data" {
  name = "data"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+bridge_subnet\s+` + ws("must be an IPv4 network")),
			},
			{
				Config: `
provider "pouch" {
  cni_config_file = "pouch.conflist"
}
resource "pouch_volume" "data" {
  name = "data"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+cni_config_file\s+` + ws("must be an absolute path")),
			},
			{
				Config: `
provider "pouch" {
  bridge_name = "a-bridge-name-that-is-too-long"
}
resource "pouch_volume" "data" {
  name = "data"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+bridge_name\s+` + ws("must be a network interface name")),
			},
			{
				Config: `
provider "pouch" {
  registry_auth = [{ address = "https://registry.example" }]
}
resource "pouch_volume" "data" {
  name = "data"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+registry_auth\[0\]\.address\s+` + ws("must be a registry's host[:port]")),
			},
			{
				Config: `
provider "pouch" {
  registry_auth = [{ address = "registry.example", username = "ci" }]
}
resource "pouch_volume" "data" {
  name = "data"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+registry_auth\[0\]\.password\s+` + ws("and username must be set together")),
			},
			{
				Config: `
provider "pouch" {
  registry_auth = [{ address = "registry.example", config_file = "/c.json" }, { address = "registry.example" }]
}
resource "pouch_volume" "data" {
  name = "data"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+registry_auth\[1\]\.address\s+` + ws("must name each registry once")),
			},
			{
				Config: `
provider "pouch" {
  insecure_registries = ["http://10.0.0.5:5000"]
}
resource "pouch_volume" "data" {
  name = "data"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+insecure_registries\[0\]\s+` + ws("must be a registry's host[:port]")),
			},
			{
				Config: validationProvider + `
resource "pouch_volume" "data" {
  name = "my data"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+name\s+` + ws("must be 1 to 76 letters and digits")),
			},
		},
	})
}

func TestValidation_image(t *testing.T) {
	image := func(body string) string {
		return validationProvider + "resource \"pouch_image\" \"app\" {\n" + body + "\n}\n"
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		Steps: []resource.TestStep{
			{
				Config:      image(`  name = "busybox latest"`),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+name\s+` + ws("must not contain whitespace")),
			},
			{
				Config:      image("  name = \"busybox:1.36\"\n  platform = \"amd64\""),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+platform\s+` + ws(`must be a platform such as "linux/amd64"`)),
			},
			{
				Config:      image("  name = \"busybox:1.36\"\n  source_archive = \"\""),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+source_archive\s+` + ws("string length must be at least 1")),
			},
			{
				Config: validationProvider + `
data "pouch_image" "app" {
  name     = "busybox:1.36"
  platform = "linux/amd64/v9/extra"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Attribute\s+platform\s+` + ws("must be a platform")),
			},
		},
	})
}
