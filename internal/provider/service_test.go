package provider

import (
	"fmt"
	"net/netip"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// serviceLines are the service settings of TestAccContainer_serviceSettings
// with cpus as cpuset_cpus and nofile as the soft nofile limit.
func serviceLines(cpus string, nofile int) []string {
	return []string{
		fmt.Sprintf(`ulimits = [{ name = "nofile", soft = %d, hard = 16384 }, { name = "memlock", soft = 4194304, hard = 4194304 }]`, nofile),
		`shm_size = 256`,
		`sysctls = { "net.core.somaxconn" = "1234" }`,
		`devices = [{ host_path = "/dev/fuse", container_path = "/dev/pouch-fuse", permissions = "r" }]`,
		`group_add = ["1234"]`,
		`oom_score_adj = 500`,
		fmt.Sprintf(`cpuset_cpus = %q`, cpus),
		`memory = 256`,
		`memory_reservation = 64`,
		`dns = ["10.0.0.53"]`,
		`dns_search = ["svc.example"]`,
		`dns_options = ["ndots:2"]`,
		`extra_hosts = { "db.internal" = "10.1.2.3" }`,
		`init = true`,
	}
}

// checkServiceInside asserts the settings of serviceLines from inside the
// container.
func checkServiceInside(t *testing.T, name, cpus string, nofile int) resource.TestCheckFunc {
	env := accEnv(t)
	checks := []resource.TestCheckFunc{}
	for _, c := range []struct{ cmd, want string }{
		{"ulimit -n", fmt.Sprint(nofile)},
		{"ulimit -l", "4096"},
		{"df -k /dev/shm | tail -n 1 | awk '{print $2}'", "262144"},
		{"cat /proc/sys/net/core/somaxconn", "1234"},
		{"(exec 3</dev/pouch-fuse) && (exec 3>/dev/pouch-fuse) 2>/dev/null && echo rw || echo r", "r"},
		{"echo $(grep ^Groups: /proc/1/status | cut -f2)", "0 1234"},
		{"cat /proc/1/oom_score_adj", "500"},
		{"grep ^Cpus_allowed_list: /proc/1/status | cut -f2", cpus},
		{"grep -v '^#' /etc/resolv.conf", "nameserver 10.0.0.53\nsearch svc.example\noptions ndots:2"},
		{"tail -n 1 /etc/hosts", "10.1.2.3\tdb.internal"},
		{"cat /proc/1/comm", "pouch-init"},
	} {
		checks = append(checks, checkExec(t, env, name, c.want+"\n", "sh", "-c", c.cmd))
	}
	return resource.ComposeTestCheckFunc(checks...)
}

// TestAccContainer_serviceSettings: every service setting reaches the
// task, as asserted from inside it; a new cpuset resizes live (same PID),
// a new ulimit restarts in place (same container and IP), an image
// upgrade keeps them all, and import reads them back.
func TestAccContainer_serviceSettings(t *testing.T) {
	env := accEnv(t)
	const name = "acc-service"
	env.ImportImage(t, testImage("service", "v1"))
	env.ImportImage(t, testImage("service", "v2"))
	image := func(v string) string { return "docker.io/pouchtest/acc-service:" + v }
	var pid uint32
	samePID := func(*terraform.State) error {
		if now := env.TaskPID(t, name); now != pid {
			return fmt.Errorf("task PID %d, was %d: the change restarted the task", now, pid)
		}
		return nil
	}
	newPID := func(*terraform.State) error {
		if now := env.TaskPID(t, name); now == pid || now == 0 {
			return fmt.Errorf("task PID %d, was %d: the change did not restart the task", now, pid)
		}
		return nil
	}
	recordPID := func(*terraform.State) error { pid = env.TaskPID(t, name); return nil }
	sameID := statecheck.CompareValue(compare.ValuesSame())
	sameIP := statecheck.CompareValue(compare.ValuesSame())
	same := func() []statecheck.StateCheck {
		return []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
			sameIP.AddStateValue(testAddr, tfjsonpath.New("ip_address"))}
	}
	update := resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
		plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate)}}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config:            containerConfig(env, name, image("v1"), serviceLines("0", 16384)...),
				ConfigStateChecks: same(),
				Check:             resource.ComposeTestCheckFunc(checkServiceInside(t, name, "0", 16384), recordPID),
			},
			{
				Config:            containerConfig(env, name, image("v1"), serviceLines("1", 16384)...),
				ConfigPlanChecks:  update,
				ConfigStateChecks: same(),
				Check:             resource.ComposeTestCheckFunc(samePID, checkServiceInside(t, name, "1", 16384)),
			},
			{
				Config:            containerConfig(env, name, image("v1"), serviceLines("1", 4096)...),
				ConfigPlanChecks:  update,
				ConfigStateChecks: same(),
				Check:             resource.ComposeTestCheckFunc(newPID, checkServiceInside(t, name, "1", 4096), recordPID),
			},
			{
				Config:            containerConfig(env, name, image("v2"), serviceLines("1", 4096)...),
				ConfigPlanChecks:  update,
				ConfigStateChecks: same(),
				Check: resource.ComposeTestCheckFunc(newPID, checkExec(t, env, name, "v2\n", "cat", "/version"),
					checkServiceInside(t, name, "1", 4096)),
			},
			{
				ResourceName:            testAddr,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
		},
	})
}

func TestValidation_service(t *testing.T) {
	base := "  name  = \"web\"\n  image = \"busybox:1.36\"\n"
	cases := []struct {
		body, want string
	}{
		{base + `  sysctls = { "vm.max_map_count" = "262144" }`, `Attribute\s+sysctls\["vm.max_map_count"\]\s+` + ws("is not namespaced")},
		{base + "  network_mode = \"host\"\n" + `  sysctls = { "net.core.somaxconn" = "1024" }`,
			`sysctls\["net.core.somaxconn"\]\s+` + ws("cannot be set with network_mode host")},
		{base + `  ulimits = [{ name = "files", soft = 1, hard = 1 }]`, `ulimits\[0\]\.name(.|\n)*nofile`},
		{base + `  ulimits = [{ name = "nofile", soft = 2048, hard = 1024 }]`, `Attribute\s+ulimits\[0\]\.soft\s+` + ws("(2048) must not be more than hard")},
		{base + `  ulimits = [{ name = "nofile", soft = 1, hard = 1 }, { name = "nofile", soft = 2, hard = 2 }]`,
			`Attribute\s+ulimits\[1\]\.name\s+` + ws(`"nofile" is set by ulimits[0] already`)},
		{base + `  shm_size = 0`, `Attribute\s+shm_size\s+` + ws("must be between 1 and")},
		{base + `  devices = [{ host_path = "/dev/fuse", permissions = "x" }]`, `devices\[0\]\.permissions(.|\n)*` + ws("some of r (read)")},
		{base + `  devices = [{ host_path = "dev/fuse" }]`, `devices\[0\]\.host_path(.|\n)*absolute`},
		{base + `  group_add = ["no such"]`, `group_add\[0\](.|\n)*` + ws("gid or a group name")},
		{base + `  oom_score_adj = 5000`, `Attribute\s+oom_score_adj\s+` + ws("must be between -1000 and 1000")},
		{base + `  cpuset_cpus = "all"`, `Attribute\s+cpuset_cpus\s+` + ws("must be a list of CPU")},
		{base + "  memory = 64\n  memory_reservation = 128", `Attribute\s+memory_reservation\s+` + ws("(128 MiB) is a soft limit")},
		{base + `  dns = ["dns.example"]`, `dns\[0\](.|\n)*IP\s+address`},
		{base + `  dns = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]`, `Attribute\s+dns\s+` + ws("list must contain at most 3")},
		{base + `  dns_options = ["ndots 2"]`, `Attribute\s+dns_options\[0\]\s+` + ws("must be a resolver option")},
		{base + `  extra_hosts = { db = "10.1.2" }`, `Attribute\s+extra_hosts\["db"\]\s+` + ws("must be an IP address")},
		{base + `  uploads = [{ file = "etc/app.conf", content = "x" }]`, `uploads\[0\]\.file(.|\n)*absolute`},
		{base + `  uploads = [{ file = "/etc/app.conf", content = "x", mode = "4755" }]`, `uploads\[0\]\.mode(.|\n)*` + ws("no setuid or setgid")},
		{base + `  uploads = [{ file = "/etc/app.conf", content = "x", source = "/etc/hostname" }]`, ws("2 attributes specified when one (and only one) of")},
		{base + `  uploads = [{ file = "/etc/app.conf" }]`, `uploads\[0\](.|\n)*` + ws("No attribute specified when one (and only one) of")},
		{base + "  mounts = [{ type = \"tmpfs\", target = \"/etc/app\" }]\n" + `  uploads = [{ file = "/etc/app", content = "x" }]`,
			`Attribute\s+uploads\[0\]\.file\s+` + ws("/etc/app is the target of mounts[0]")},
		{base + "  network_mode = \"host\"\n  ipv4_address = \"10.88.0.9\"", `Attribute\s+ipv4_address\s+` + ws("is an address on the bridge network")},
		{base + `  ipv4_address = "10.88.0.1"`, `Attribute\s+ipv4_address\s+` + ws("(10.88.0.1) is the bridge's own address")},
	}
	steps := make([]resource.TestStep, 0, len(cases))
	for _, c := range cases {
		steps = append(steps, validationStep(c.body, c.want))
	}
	resource.UnitTest(t, resource.TestCase{ProtoV6ProviderFactories: protoV6Factories(), Steps: steps})
}

// TestAccContainer_fixedAddress: ipv4_address is the container's address,
// known at plan, inside its namespace, through an image upgrade; a new one
// moves the container in place; one outside the subnet is refused at
// plan, and one another container holds at apply, naming the holder.
func TestAccContainer_fixedAddress(t *testing.T) {
	env := accEnv(t)
	const name = "acc-fixed"
	env.ImportImage(t, testImage("fixed", "v1"))
	env.ImportImage(t, testImage("fixed", "v2"))
	prefix := netip.MustParsePrefix(env.Subnet).Masked().Addr().As4()
	addr := func(last byte) string {
		return netip.AddrFrom4([4]byte{prefix[0], prefix[1], prefix[2], last}).String()
	}
	first, second := addr(210), addr(211)
	config := func(image, ip string) string {
		return containerConfig(env, name, "docker.io/pouchtest/acc-fixed:"+image, fmt.Sprintf("ipv4_address = %q", ip))
	}
	inside := func(ip string) resource.TestCheckFunc {
		return checkExec(t, env, name, ip+"\n", "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1")
	}
	sameID := statecheck.CompareValue(compare.ValuesSame())
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: config("v1", first),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("ip_address"), knownvalue.StringExact(first))}},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check:             inside(first),
			},
			{
				Config: config("v2", first),
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("ip_address"), knownvalue.StringExact(first))},
				Check: resource.ComposeTestCheckFunc(inside(first), checkExec(t, env, name, "v2\n", "cat", "/version")),
			},
			{
				Config: config("v2", second),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("ip_address"), knownvalue.StringExact(second))}},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check:             inside(second),
			},
			{
				Config:      config("v2", "192.0.2.10"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Invalid ipv4_address(.|\n)*` + ws("must be inside the bridge network's subnet")),
			},
			{
				Config: config("v2", second) + fmt.Sprintf(`
resource "pouch_container" "other" {
  name         = "acc-fixed-other"
  image        = "docker.io/pouchtest/acc-fixed:v1"
  ipv4_address = %q
}
`, second),
				ExpectError: regexp.MustCompile(ws("is held by container " + name)),
			},
		},
	})
}
