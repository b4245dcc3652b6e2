package provider

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// These tests cover the start window (upgrade.verify_seconds) as a user
// meets it: a create or an upgrade whose process exits at once fails with
// its exit code and log and leaves nothing behind (or the old container
// running), a one-shot container (verify_seconds = 0) that exited is not
// drift, and configurations a user writes in a form the provider could
// normalise apply consistently.

// inconsistentResult is what Terraform says when a provider returns a
// state that contradicts its plan or its configuration.
var inconsistentResult = regexp.MustCompile(`Provider produced inconsistent (result|final plan)`)

// stepFailure is a TestCase.ErrorCheck for a test with one step that must
// fail: the error must match every pattern of want and must not say that
// the provider produced an inconsistent result, which ExpectError cannot
// express. The step that fails is then treated as passed and the next
// step's PreConfig calls seen to make sure it did fail.
type stepFailure struct {
	want []*regexp.Regexp
	msg  string // the error, once seen
}

func (f *stepFailure) check(err error) error {
	if f.msg != "" {
		return fmt.Errorf("a second step failed: %w", err)
	}
	msg := err.Error()
	for _, re := range f.want {
		if !re.MatchString(msg) {
			return fmt.Errorf("the error lacks %s: %w", re, err)
		}
	}
	if inconsistentResult.MatchString(msg) {
		return fmt.Errorf("the failed apply also reports an inconsistent result: %w", err)
	}
	f.msg = msg
	return nil
}

// seen fails the test unless the failing step did fail.
func (f *stepFailure) seen(t *testing.T) {
	t.Helper()
	if f.msg == "" {
		t.Fatal("the step that should have failed succeeded")
	}
	t.Logf("the step failed as it should:\n%s", f.msg)
}

// nothingLeftOf checks that container name left nothing in containerd or
// on the host: no container, no snapshot or lease, no log, network
// namespace, image volume or lock file under the data root (see
// internal/engine/layout.go), no IP address reserved for it and nothing
// mounted under its directories.
func nothingLeftOf(t *testing.T, env *testenv.Env, name string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(env.Context(), 30*time.Second)
	defer cancel()
	var errs []error
	if _, err := env.Client.LoadContainer(ctx, name); err == nil {
		errs = append(errs, fmt.Errorf("container %s exists", name))
	} else if !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("load container %s: %w", name, err))
	}
	for _, key := range env.ActiveSnapshots(t) {
		if key == name || strings.HasPrefix(key, name+"-") {
			errs = append(errs, fmt.Errorf("snapshot %s of container %s left", key, name))
		}
	}
	for _, id := range env.Leases(t) {
		if !strings.HasPrefix(id, "pouch-lock-") {
			errs = append(errs, fmt.Errorf("lease %s left", id))
		}
	}
	ns := env.Namespace
	paths := []string{
		filepath.Join(env.DataRoot, "containers", ns, name),
		filepath.Join(env.DataRoot, "netns", ns, name),
		filepath.Join(env.DataRoot, "volumes", ns, "_anonymous", name),
		filepath.Join(env.DataRoot, "locks", ns, name+".lock"),
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			errs = append(errs, fmt.Errorf("%s left", p))
		} else if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("stat %s: %w", p, err))
		}
	}
	if mountinfo, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mountinfo), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 {
				continue
			}
			for _, p := range paths[:3] {
				if f[4] == p || strings.HasPrefix(f[4], p+"/") {
					errs = append(errs, fmt.Errorf("%s still mounted", f[4]))
				}
			}
		}
	}
	// host-local IPAM keeps one file per reserved address, holding the CNI
	// ID of its container: "<name>-<16 hex digits>".
	cniID := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `-[0-9a-f]{16}\s`)
	ipam := filepath.Join(env.DataRoot, "network")
	_ = filepath.WalkDir(ipam, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(p, string(filepath.Separator)+"cache"+string(filepath.Separator)) {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && cniID.Match(b) {
			errs = append(errs, fmt.Errorf("address reservation %s of container %s left", p, name))
		}
		return nil
	})
	_ = filepath.WalkDir(filepath.Join(ipam, "cache"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(filepath.Base(p), name+"-") {
			errs = append(errs, fmt.Errorf("CNI cache entry %s of container %s left", p, name))
		}
		return nil
	})
	return errors.Join(errs...)
}

// TestAccStartWindow_createOfAProcessThatExits: the image's process exits
// with code 3 at once. The create fails with the exit code, the end of the
// log and the hint for one-shot jobs (and no inconsistent result), and
// leaves nothing behind (network namespace and address, image volume, log,
// lock, snapshot); a working image then creates the same name.
func TestAccStartWindow_createOfAProcessThatExits(t *testing.T) {
	env := accEnv(t)
	const name = "acc-sw-exit"
	bad := testImage("sw-exit", "v1")
	bad.Cmd = []string{"sh", "-c", "echo 'db.conf: no such file' >&2; exit 3"}
	bad.Volumes = []string{"/var/lib/db"} // an image volume the failed create must remove
	good := testImage("sw-exit", "v2")
	env.ImportImage(t, bad)
	env.ImportImage(t, good)
	failure := &stepFailure{want: []*regexp.Regexp{
		regexp.MustCompile(ws("Container creation failed")),
		regexp.MustCompile(ws("the process of container " + name + " exited with code 3 within 1 s of its start (upgrade.verify_seconds)")),
		regexp.MustCompile(ws("the end of its log:") + `\s+` + regexp.QuoteMeta("db.conf: no such file")),
		regexp.MustCompile(ws("upgrade.verify_seconds = 0")),
	}}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		ErrorCheck:               failure.check,
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				// Must fail: see failure (ExpectError cannot also refuse
				// "inconsistent result").
				Config: containerConfig(env, name, bad.Name),
			},
			{
				PreConfig: func() {
					failure.seen(t)
					if err := nothingLeftOf(t, env, name); err != nil {
						t.Fatalf("after the failed create: %v", err)
					}
				},
				Config: containerConfig(env, name, good.Name),
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("status", knownvalue.StringExact("running")),
					expectState("running", knownvalue.Bool(true)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v2\n", "cat", "/version"),
					checkTaskStatus(t, env, name, "running"),
					checkNoLeakedSnapshots(t, env),
				),
			},
		},
	})
}

// TestAccStartWindow_upgradeToAProcessThatExitsRollsBack: v2's process
// exits with code 2 at once, within the default start window of 1 s: the
// upgrade is rolled back and v1 runs again, with nothing left to plan.
func TestAccStartWindow_upgradeToAProcessThatExitsRollsBack(t *testing.T) {
	env := accEnv(t)
	const name = "acc-sw-rollback"
	v1, v2 := testImage("sw-rollback", "v1"), testImage("sw-rollback", "v2")
	v2.Cmd = []string{"sh", "-c", "echo 'v2 cannot start' >&2; exit 2"}
	digest1 := env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	var ip string

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name),
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					func(s *terraform.State) (err error) { ip, err = stateAttr(s, testAddr, "ip_address"); return err },
				),
			},
			{
				Config: containerConfig(env, name, v2.Name),
				ExpectError: regexp.MustCompile(`(?s)` + ws("Container upgrade failed and was rolled back") + `.*` +
					ws("exited with code 2 within 1 s of its start") + `.*` + regexp.QuoteMeta("v2 cannot start")),
			},
			{
				Config: containerConfig(env, name, v1.Name),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("image", knownvalue.StringExact(v1.Name)),
					expectState("image_id", knownvalue.StringExact(digest1)),
					expectState("status", knownvalue.StringExact("running")),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					checkTaskStatus(t, env, name, "running"),
					resource.TestCheckResourceAttrWith(testAddr, "ip_address", func(v string) error {
						if v != ip {
							return fmt.Errorf("ip_address %s after the rollback, was %s", v, ip)
						}
						return nil
					}),
					checkNoLeakedSnapshots(t, env),
				),
			},
		},
	})
}

// logContains waits until the log file at the state's log_path holds
// want.
func logContains(t *testing.T, want string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		path, err := stateAttr(s, testAddr, "log_path")
		if err != nil {
			return err
		}
		testenv.Eventually(t, 15*time.Second, fmt.Sprintf("log %s holds %q", path, want), func() bool {
			b, err := os.ReadFile(path)
			return err == nil && strings.Contains(string(b), want)
		})
		return nil
	}
}

// waitTaskStopped waits until the container's task has exited.
func waitTaskStopped(t *testing.T, env *testenv.Env, id string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		testenv.Eventually(t, 15*time.Second, "task of "+id+" stopped", func() bool {
			return env.TaskStatus(t, id) == "stopped"
		})
		return nil
	}
}

// TestAccStartWindow_oneShot: with verify_seconds = 0 a process that exits
// with code 0 is a finished job: the apply succeeds, the exited task is not
// drift (running stays true, status says stopped), and an image change
// upgrades it in place and runs the new job.
func TestAccStartWindow_oneShot(t *testing.T) {
	env := accEnv(t)
	const name = "acc-sw-oneshot"
	v1, v2 := testImage("sw-oneshot", "v1"), testImage("sw-oneshot", "v2")
	v1.Cmd = []string{"sh", "-c", "echo one-shot-v1-ran; exit 0"}
	v2.Cmd = []string{"sh", "-c", "echo one-shot-v2-ran; exit 0"}
	env.ImportImage(t, v1)
	digest2 := env.ImportImage(t, v2)
	policy := `upgrade = { verify_seconds = 0 }`
	done := []statecheck.StateCheck{
		expectState("running", knownvalue.Bool(true)),
		expectState("status", knownvalue.StringExact("stopped")),
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name, policy),
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("running", knownvalue.Bool(true)),
					expectState("upgrade", knownvalue.ObjectPartial(map[string]knownvalue.Check{
						"verify_seconds": knownvalue.Int64Exact(0),
					})),
				},
				Check: resource.ComposeTestCheckFunc(
					logContains(t, "one-shot-v1-ran"),
					waitTaskStopped(t, env, name),
				),
			},
			{
				// The job has exited: a refresh reads it as done.
				RefreshState: true,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAddr, "running", "true"),
					resource.TestCheckResourceAttr(testAddr, "status", "stopped"),
				),
			},
			{
				Config: containerConfig(env, name, v1.Name, policy),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: done,
				Check:             checkTaskStatus(t, env, name, "stopped"),
			},
			{
				Config: containerConfig(env, name, v2.Name, policy),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("running", knownvalue.Bool(true)),
					expectState("image_id", knownvalue.StringExact(digest2)),
				},
				Check: resource.ComposeTestCheckFunc(
					logContains(t, "one-shot-v2-ran"),
					waitTaskStopped(t, env, name),
					checkNoLeakedSnapshots(t, env),
				),
			},
			{
				Config: containerConfig(env, name, v2.Name, policy),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: done,
			},
		},
	})
}

// TestAccStartWindow_oddInputsAreConsistent: values a user writes in a
// form other than the provider's (a short image name, capabilities in
// lower case and with the CAP_ prefix, a mount target with a trailing
// slash, empty maps and lists, defaults written out) apply without an
// inconsistent result and plan nothing afterwards; writing the same image
// in full updates the container without restarting its task.
func TestAccStartWindow_oddInputsAreConsistent(t *testing.T) {
	env := accEnv(t)
	const name = "acc-sw-odd"
	v1 := testImage("sw-odd", "v1") // docker.io/pouchtest/acc-sw-odd:v1
	digest := env.ImportImage(t, v1)
	const short = "pouchtest/acc-sw-odd:v1"
	if "docker.io/"+short != v1.Name {
		t.Fatalf("image %s is not docker.io/%s", v1.Name, short)
	}
	port := freePort(t)
	odd := []string{
		`capabilities = { add = ["net_admin"], drop = ["CAP_NET_RAW"] }`,
		`mounts       = [{ type = "tmpfs", target = "/data/" }]`,
		`env          = {}`,
		`labels       = {}`,
		`entrypoint   = ["sleep", "3600"]`,
		`command      = []`,
		fmt.Sprintf(`hostname     = %q`, name),
		`stop_signal  = "SIGQUIT"`,
		`network_mode = "bridge"`,
		fmt.Sprintf(`ports        = [{ internal = 8080, external = %d, ip = "0.0.0.0" }]`, port),
		`memory       = 64`,
		`cpus         = 0.5`,
	}
	const capNetAdmin, capNetRaw = 12, 13
	pid := &pidTracker{t: t, env: env, id: name}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, short, odd...),
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("image", knownvalue.StringExact(short)),
					expectState("image_id", knownvalue.StringExact(digest)),
					expectState("env", knownvalue.MapExact(map[string]knownvalue.Check{})),
					expectState("labels", knownvalue.MapExact(map[string]knownvalue.Check{})),
					expectState("command", knownvalue.ListExact([]knownvalue.Check{})),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					checkExec(t, env, name, name+"\n", "hostname"),
					checkExecContains(t, env, name, []string{"sh", "-c", "grep ' /data ' /proc/mounts | cut -d' ' -f1,3"}, "tmpfs tmpfs"),
					checkProcStatus(t, env, name, "CapEff", capBit(capNetAdmin)),
					checkProcStatus(t, env, name, "CapEff", not(capBit(capNetRaw))),
					func(*terraform.State) error {
						if got, err := memoryLimit(t, env, name); err != nil || got != 64<<20 {
							return fmt.Errorf("memory limit %d (%v), want %d", got, err, 64<<20)
						}
						return nil
					},
				),
			},
			{
				Config: containerConfig(env, name, short, odd...),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: pid.record,
			},
			{
				// The same image, written in full: recorded, not an upgrade.
				Config: containerConfig(env, name, v1.Name, odd...),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("image_id"), knownvalue.StringExact(digest)),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("image", knownvalue.StringExact(v1.Name)),
					expectState("image_id", knownvalue.StringExact(digest)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					pid.same,
					checkTaskStatus(t, env, name, "running"),
					checkNoLeakedSnapshots(t, env),
				),
			},
		},
	})
}

// providerConfigWithCNI is providerConfig with a cni_config_file.
func providerConfigWithCNI(env *testenv.Env, cniConfigFile string) string {
	cfg := providerConfig(env)
	i := strings.LastIndex(cfg, "}")
	return cfg[:i] + fmt.Sprintf("  cni_config_file = %q\n", cniConfigFile) + cfg[i:]
}

// TestAccStartWindow_failedCreateLeavesNothing: a bridge container whose
// network cannot be set up (the CNI configuration file is missing) fails
// to create and leaves nothing: no container, no network namespace, no
// log directory, no lock file. The name can then be created normally.
func TestAccStartWindow_failedCreateLeavesNothing(t *testing.T) {
	env := accEnv(t)
	const name = "acc-sw-nocni"
	const missing = "/nonexistent/pouch.conflist"
	v1 := testImage("sw-nocni", "v1")
	env.ImportImage(t, v1)
	if _, err := os.Stat(missing); err == nil {
		t.Fatalf("%s exists", missing)
	}
	container := fmt.Sprintf("\nresource \"pouch_container\" \"test\" {\n  name  = %q\n  image = %q\n}\n", name, v1.Name)
	failure := &stepFailure{want: []*regexp.Regexp{
		regexp.MustCompile(ws("Container creation failed")),
		regexp.MustCompile(regexp.QuoteMeta(missing)),
	}}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		ErrorCheck:               failure.check,
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				// Must fail: see failure.
				Config: providerConfigWithCNI(env, missing) + container,
			},
			{
				PreConfig: func() {
					failure.seen(t)
					if err := nothingLeftOf(t, env, name); err != nil {
						t.Fatalf("after the failed create: %v", err)
					}
				},
				Config: containerConfig(env, name, v1.Name, `network_mode = "host"`),
				Check: resource.ComposeAggregateTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					checkNoLeakedSnapshots(t, env),
				),
			},
		},
	})
}
