package provider

import (
	"context"
	"regexp"
	"testing"

	fwresource "github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

func expectState(attr string, v knownvalue.Check) statecheck.StateCheck {
	return statecheck.ExpectKnownValue(testAddr, tfjsonpath.New(attr), v)
}

var notRunning = knownvalue.StringRegexp(regexp.MustCompile(`^(stopped|created)$`))

func TestAccContainer_basic(t *testing.T) {
	env := accEnv(t)
	const name = "acc-basic"
	v1 := testImage("basic", "v1")
	digest := env.ImportImage(t, v1)
	config := containerConfig(env, name, v1.Name)

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("id", knownvalue.StringExact(name)),
					expectState("name", knownvalue.StringExact(name)),
					expectState("image", knownvalue.StringExact(v1.Name)),
					expectState("image_id", knownvalue.StringExact(digest)),
					expectState("status", knownvalue.StringExact("running")),
					expectState("running", knownvalue.Bool(true)),
					expectState("network_mode", knownvalue.StringExact("bridge")),
					expectState("ip_address", knownvalue.NotNull()),
					expectState("hostname", knownvalue.StringExact(name)),
					expectState("restart", knownvalue.StringExact("no")),
					expectState("image_volumes", knownvalue.ListSizeExact(0)),
					expectState("stop_timeout", knownvalue.Int64Exact(10)),
					// The image's values are not the user's: none in state.
					expectState("command", knownvalue.Null()),
					expectState("entrypoint", knownvalue.Null()),
					expectState("env", knownvalue.Null()),
					expectState("working_dir", knownvalue.Null()),
					expectState("user", knownvalue.Null()),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					checkTaskStatus(t, env, name, "running"),
					checkNoLeakedSnapshots(t, env),
				),
			},
			{
				ResourceName:            testAddr,
				ImportState:             true,
				ImportStateId:           name,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				// An import block with the matching configuration plans no
				// change besides the import.
				Config:          config,
				ResourceName:    testAddr,
				ImportState:     true,
				ImportStateKind: resource.ImportBlockWithID,
				ImportStateId:   name,
			},
		},
	})
}

func TestAccContainer_upgradeInPlace(t *testing.T) {
	env := accEnv(t)
	const name = "acc-upgrade"
	v1, v2 := testImage("upgrade", "v1"), testImage("upgrade", "v2")
	digest1, digest2 := env.ImportImage(t, v1), env.ImportImage(t, v2)
	sameID := statecheck.CompareValue(compare.ValuesSame())
	imageIDChanged := statecheck.CompareValue(compare.ValuesDiffer())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name),
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					imageIDChanged.AddStateValue(testAddr, tfjsonpath.New("image_id")),
					expectState("image_id", knownvalue.StringExact(digest1)),
				},
				Check: checkExec(t, env, name, "v1\n", "cat", "/version"),
			},
			{
				Config: containerConfig(env, name, v2.Name),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("id"), knownvalue.StringExact(name)),
						plancheck.ExpectUnknownValue(testAddr, tfjsonpath.New("image_id")),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					imageIDChanged.AddStateValue(testAddr, tfjsonpath.New("image_id")),
					expectState("image", knownvalue.StringExact(v2.Name)),
					expectState("image_id", knownvalue.StringExact(digest2)),
					expectState("status", knownvalue.StringExact("running")),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v2\n", "cat", "/version"),
					checkTaskStatus(t, env, name, "running"),
					// The old read-write snapshot is gone.
					checkNoLeakedSnapshots(t, env),
				),
			},
		},
	})
}

func TestAccContainer_rollback(t *testing.T) {
	env := accEnv(t)
	const name = "acc-rollback"
	v1 := testImage("rollback", "v1")
	broken := imagebuild.Image{
		Name:       "docker.io/pouchtest/acc-rollback:broken",
		NoBusybox:  true,
		Entrypoint: []string{"/bin/missing"},
		Files:      map[string]string{"/version": "broken\n"},
	}
	digest1 := env.ImportImage(t, v1)
	env.ImportImage(t, broken)
	sameID := statecheck.CompareValue(compare.ValuesSame())
	var pid uint32

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config:            containerConfig(env, name, v1.Name),
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					func(*terraform.State) error { pid = env.TaskPID(t, name); return nil },
				),
			},
			{
				Config:      containerConfig(env, name, broken.Name),
				ExpectError: regexp.MustCompile("rolled back"),
			},
			{
				// The failed image was never recorded: the v1 config plans
				// nothing, and v1 still runs.
				Config: containerConfig(env, name, v1.Name),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					expectState("image", knownvalue.StringExact(v1.Name)),
					expectState("image_id", knownvalue.StringExact(digest1)),
					expectState("status", knownvalue.StringExact("running")),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					checkTaskStatus(t, env, name, "running"),
					func(*terraform.State) error {
						if pid == 0 || env.TaskPID(t, name) == 0 {
							t.Errorf("task pid before %d, now %d", pid, env.TaskPID(t, name))
						}
						return nil
					},
					checkNoLeakedSnapshots(t, env),
				),
			},
		},
	})
}

func TestAccContainer_imageDefaultsNoDiff(t *testing.T) {
	env := accEnv(t)
	const name = "acc-defaults"
	img := imagebuild.Image{
		Name:       "docker.io/pouchtest/acc-defaults:v1",
		Cmd:        []string{"sleep", "3600"},
		Env:        append(append([]string{}, imagebuild.DefaultEnv...), "FOO=bar"),
		WorkingDir: "/srv",
		User:       "app",
		Files:      map[string]string{"/version": "v1\n", "/srv/index.html": "hello\n"},
	}
	env.ImportImage(t, img)
	config := containerConfig(env, name, img.Name, `env = { EXTRA = "1" }`)

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("env", knownvalue.MapExact(map[string]knownvalue.Check{
						"EXTRA": knownvalue.StringExact("1"),
					})),
					expectState("working_dir", knownvalue.Null()),
					expectState("user", knownvalue.Null()),
					expectState("command", knownvalue.Null()),
					expectState("entrypoint", knownvalue.Null()),
				},
				// The image's defaults are in effect underneath.
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "/srv\n", "pwd"),
					checkExec(t, env, name, "1000\n", "id", "-u"),
					checkExecContains(t, env, name, []string{"env"}, "FOO=bar", "EXTRA=1"),
					checkExecContains(t, env, name, []string{"cat", "/proc/1/cmdline"}, "sleep\x003600\x00"),
				),
			},
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

func TestAccContainer_stoppedDrift(t *testing.T) {
	env := accEnv(t)
	const name = "acc-drift"
	v1 := testImage("drift", "v1")
	env.ImportImage(t, v1)
	config := containerConfig(env, name, v1.Name)
	sameID := statecheck.CompareValue(compare.ValuesSame())
	sameImageID := statecheck.CompareValue(compare.ValuesSame())
	var pid uint32

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					sameImageID.AddStateValue(testAddr, tfjsonpath.New("image_id")),
				},
				Check: func(*terraform.State) error { pid = env.TaskPID(t, name); return nil },
			},
			{
				PreConfig: func() { killTask(t, env, name) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("running"), knownvalue.Bool(true)),
						// Starting the task does not change the image.
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("image_id"), knownvalue.NotNull()),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					sameImageID.AddStateValue(testAddr, tfjsonpath.New("image_id")),
					expectState("status", knownvalue.StringExact("running")),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkTaskStatus(t, env, name, "running"),
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					func(*terraform.State) error {
						if now := env.TaskPID(t, name); now == 0 || now == pid {
							t.Errorf("task pid %d, before the kill %d: want a new task", now, pid)
						}
						return nil
					},
				),
			},
		},
	})
}

func TestAccContainer_deletedOutside(t *testing.T) {
	env := accEnv(t)
	const name = "acc-deleted"
	v1 := testImage("deleted", "v1")
	env.ImportImage(t, v1)
	config := containerConfig(env, name, v1.Name)

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: config,
				Check:  checkTaskStatus(t, env, name, "running"),
			},
			{
				PreConfig: func() { deleteOutside(t, env, name) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionCreate),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("id", knownvalue.StringExact(name)),
					expectState("status", knownvalue.StringExact("running")),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					checkNoLeakedSnapshots(t, env),
				),
			},
		},
	})
}

func TestAccContainer_pullFromRegistry(t *testing.T) {
	env := accEnv(t)
	const name = "acc-pull"
	ref := env.PushImage(t, "pouchtest/acc-pull:v1", testImage("pull", "v1"))

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, ref),
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("image", knownvalue.StringExact(ref)),
					expectState("image_id", knownvalue.StringRegexp(regexp.MustCompile(`^sha256:[0-9a-f]{64}$`))),
					expectState("status", knownvalue.StringExact("running")),
				},
				Check: checkExec(t, env, name, "v1\n", "cat", "/version"),
			},
		},
	})
}

func TestAccContainer_stoppedStaysStopped(t *testing.T) {
	env := accEnv(t)
	const name = "acc-stopped"
	v1, v2 := testImage("stopped", "v1"), testImage("stopped", "v2")
	env.ImportImage(t, v1)
	digest2 := env.ImportImage(t, v2)
	sameID := statecheck.CompareValue(compare.ValuesSame())
	sameStatus := statecheck.CompareValue(compare.ValuesSame())
	notStarted := func(*terraform.State) error {
		if st := env.TaskStatus(t, name); st == "running" {
			t.Errorf("task of %s is running; running = false", name)
		}
		return nil
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name, "running = false"),
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					sameStatus.AddStateValue(testAddr, tfjsonpath.New("status")),
					expectState("running", knownvalue.Bool(false)),
					expectState("status", notRunning),
				},
				Check: notStarted,
			},
			{
				Config: containerConfig(env, name, v2.Name, "running = false"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					sameStatus.AddStateValue(testAddr, tfjsonpath.New("status")),
					expectState("running", knownvalue.Bool(false)),
					expectState("status", notRunning),
					expectState("image_id", knownvalue.StringExact(digest2)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(notStarted, checkNoLeakedSnapshots(t, env)),
			},
		},
	})
}

// TestAccContainer_failedUpdateRecordsTruth calls the resource's Update
// directly (terraform would refresh before the next plan and hide the
// difference): after a rolled-back upgrade, the state it returns holds the
// image the container runs, never the one that failed.
func TestAccContainer_failedUpdateRecordsTruth(t *testing.T) {
	env := accEnv(t)
	const name = "acc-truth"
	v1 := testImage("truth", "v1")
	broken := imagebuild.Image{
		Name:       "docker.io/pouchtest/acc-truth:broken",
		NoBusybox:  true,
		Entrypoint: []string{"/bin/missing"},
		Files:      map[string]string{"/version": "broken\n"},
	}
	digest1 := env.ImportImage(t, v1)
	env.ImportImage(t, broken)

	ctx := context.Background()
	eng, err := engine.New(engine.Options{
		Address: env.Address, Namespace: env.Namespace, Snapshotter: env.Snapshotter, DataRoot: env.DataRoot,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := eng.Delete(ctx, name); err != nil {
			t.Errorf("delete: %v", err)
		}
		eng.Close()
	})
	if _, err := eng.Create(ctx, engine.ContainerSpec{
		Name: name, Image: v1.Name, NetworkMode: engine.NetworkHost, Running: true,
	}); err != nil {
		t.Fatal(err)
	}

	s := containerSchema(ctx)
	prior := attrs{
		"id": name, "name": name, "image": v1.Name, "image_id": digest1,
		"network_mode": "host", "running": true, "stop_timeout": int64(10), "status": "running",
	}
	planned := attrs{}
	for k, v := range prior {
		planned[k] = v
	}
	planned["image"] = broken.Name
	planned["image_id"] = unknown(tftypes.String)
	planned["status"] = unknown(tftypes.String)
	planVal := containerValue(t, planned)
	req := fwresource.UpdateRequest{
		Config: tfsdk.Config{Schema: s, Raw: containerValue(t, attrs{"name": name, "image": broken.Name})},
		Plan:   tfsdk.Plan{Schema: s, Raw: planVal},
		State:  tfsdk.State{Schema: s, Raw: containerValue(t, prior)},
	}
	// As the framework does: the response state starts as the plan.
	resp := fwresource.UpdateResponse{State: tfsdk.State{Schema: s, Raw: planVal.Copy()}}
	r := &containerResource{data: &providerData{engine: eng}}
	r.Update(ctx, req, &resp)

	if !resp.Diagnostics.HasError() || resp.Diagnostics.Errors()[0].Summary() != summaryRolledBack {
		t.Fatalf("diagnostics %v, want %q", resp.Diagnostics, summaryRolledBack)
	}
	var got containerModel
	if d := resp.State.Get(ctx, &got); d.HasError() {
		t.Fatal(d)
	}
	if got.Image.ValueString() != v1.Name || got.ImageID.ValueString() != digest1 || got.Status.ValueString() != "running" {
		t.Errorf("state after the failed update: image %s, image_id %s, status %s; want %s, %s, running",
			got.Image, got.ImageID, got.Status, v1.Name, digest1)
	}
	if out, err := env.Exec(t, name, "cat", "/version"); err != nil || out != "v1\n" {
		t.Errorf("cat /version: %q, %v", out, err)
	}
}
