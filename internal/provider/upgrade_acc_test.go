package provider

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// TestAccContainer_healthcheckRollback: v2 lacks the file the health check
// reads, so the upgrade fails its Verify phase and is rolled back; the v1
// configuration then plans nothing and v1 still runs.
func TestAccContainer_healthcheckRollback(t *testing.T) {
	env := accEnv(t)
	const name = "acc-health"
	v1, v2 := testImage("health", "v1"), testImage("health", "v2")
	v1.Files["/healthy"] = "ok\n"
	digest1 := env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	hc := `healthcheck = { command = ["cat", "/healthy"], interval = "100ms", retries = 2 }`
	sameIP := statecheck.CompareValue(compare.ValuesSame())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name, hc),
				ConfigStateChecks: []statecheck.StateCheck{
					sameIP.AddStateValue(testAddr, tfjsonpath.New("ip_address")),
					expectState("healthcheck", knownvalue.ObjectExact(map[string]knownvalue.Check{
						"command":      knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("cat"), knownvalue.StringExact("/healthy")}),
						"interval":     knownvalue.StringExact("100ms"),
						"timeout":      knownvalue.StringExact("30s"),
						"start_period": knownvalue.StringExact("0s"),
						"retries":      knownvalue.Int64Exact(2),
					})),
					expectState("upgrade", knownvalue.ObjectExact(map[string]knownvalue.Check{
						"verify_seconds":      knownvalue.Int64Exact(1),
						"rollback":            knownvalue.Bool(true),
						"keep_revisions":      knownvalue.Int64Exact(0),
						"keep_rootfs_changes": knownvalue.Bool(false),
					})),
				},
				Check: checkExec(t, env, name, "v1\n", "cat", "/version"),
			},
			{
				Config:      containerConfig(env, name, v2.Name, hc),
				ExpectError: regexp.MustCompile(ws("health check failed") + `(.|\n)*` + ws("rolled back") + `|` + ws("rolled back") + `(.|\n)*` + ws("health check failed")),
			},
			{
				Config: containerConfig(env, name, v1.Name, hc),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					sameIP.AddStateValue(testAddr, tfjsonpath.New("ip_address")),
					expectState("image_id", knownvalue.StringExact(digest1)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					checkTaskStatus(t, env, name, "running"),
					checkNoLeakedSnapshots(t, env),
				),
			},
		},
	})
}

// TestAccContainer_verifySecondsRollback: v2's task exits at once, so it
// does not survive upgrade.verify_seconds and the upgrade is rolled back.
func TestAccContainer_verifySecondsRollback(t *testing.T) {
	env := accEnv(t)
	const name = "acc-verify"
	v1 := testImage("verify", "v1")
	v2 := testImage("verify", "v2")
	v2.Cmd = []string{"sh", "-c", "exit 3"}
	env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	policy := `upgrade = { verify_seconds = 2 }`
	var pid pidTracker

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name, policy),
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("upgrade", knownvalue.ObjectExact(map[string]knownvalue.Check{
						"verify_seconds":      knownvalue.Int64Exact(2),
						"rollback":            knownvalue.Bool(true),
						"keep_revisions":      knownvalue.Int64Exact(0),
						"keep_rootfs_changes": knownvalue.Bool(false),
					})),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					func(s *terraform.State) error { pid = pidTracker{t: t, env: env, id: name}; return pid.record(s) },
				),
			},
			{
				Config:      containerConfig(env, name, v2.Name, policy),
				ExpectError: regexp.MustCompile(ws("exited with code 3")),
			},
			{
				Config: containerConfig(env, name, v1.Name, policy),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					checkTaskStatus(t, env, name, "running"),
					// The old task was stopped for the upgrade and started again.
					func(s *terraform.State) error { return pid.changed(s) },
					checkNoLeakedSnapshots(t, env),
				),
			},
		},
	})
}

// TestAccContainer_revisions: with upgrade.keep_revisions = 1, going back
// to the previous image reuses its root filesystem, with a file written in
// it before the upgrade.
func TestAccContainer_revisions(t *testing.T) {
	env := accEnv(t)
	const name = "acc-revisions"
	v1, v2 := testImage("revisions", "v1"), testImage("revisions", "v2")
	env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	policy := `upgrade = { keep_revisions = 1 }`
	// activeSnapshots: the container's root filesystem plus the kept one.
	activeSnapshots := func(want int) resource.TestCheckFunc {
		return func(*terraform.State) error {
			if got := env.ActiveSnapshots(t); len(got) != want {
				return fmt.Errorf("active snapshots %v, want %d", got, want)
			}
			return nil
		}
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		// The kept revision's snapshot is only referenced by the container
		// record: containerd's garbage collector removes it shortly after
		// the container is deleted.
		CheckDestroy: func(s *terraform.State) error {
			deadline := time.Now().Add(15 * time.Second)
			for {
				err := checkDestroyed(t, env, name)(s)
				if err == nil || time.Now().After(deadline) {
					return err
				}
				time.Sleep(200 * time.Millisecond)
			}
		},
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name, policy),
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					func(*terraform.State) error {
						_, err := env.Exec(t, name, "sh", "-c", "echo written-on-v1 > /notes.txt")
						return err
					},
				),
			},
			{
				Config: containerConfig(env, name, v2.Name, policy),
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v2\n", "cat", "/version"),
					// An upgrade starts from the new image's files.
					checkExec(t, env, name, "absent\n", "sh", "-c", "test -e /notes.txt && echo present || echo absent"),
					activeSnapshots(2),
				),
			},
			{
				Config: containerConfig(env, name, v1.Name, policy),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate)},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					checkExec(t, env, name, "written-on-v1\n", "cat", "/notes.txt"),
					activeSnapshots(2),
				),
			},
			{
				Config: containerConfig(env, name, v1.Name, policy),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}
