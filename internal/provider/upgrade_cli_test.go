package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// These tests run the terraform CLI itself against a provider binary built
// from this module with the pouchfault tag, installed with dev_overrides:
// what a user sees in `terraform plan`, and what happens when the provider
// is killed in the middle of an upgrade.

// tfCommandTimeout bounds one terraform command.
const tfCommandTimeout = 5 * time.Minute

// tfCLI is a terraform working directory using a freshly built provider.
type tfCLI struct {
	t         *testing.T
	terraform string
	dir       string
	env       []string
}

// newTFCLI builds the provider (with -tags pouchfault) into a directory of
// its own and returns a working directory whose CLI configuration points
// terraform (TF_ACC_TERRAFORM_PATH) at it.
func newTFCLI(t *testing.T) *tfCLI {
	t.Helper()
	terraform := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if terraform == "" {
		var err error
		if terraform, err = exec.LookPath("terraform"); err != nil {
			t.Skip("no terraform: set TF_ACC_TERRAFORM_PATH")
		}
	}
	return newTFCLIWith(t, terraform)
}

// newTFCLIWith is newTFCLI for the client at terraform (a terraform or
// tofu binary).
func newTFCLIWith(t *testing.T, terraform string) *tfCLI {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH to build the provider")
	}
	pluginDir := t.TempDir()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), tfCommandTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, goBin, "build", "-tags", "pouchfault",
		"-o", filepath.Join(pluginDir, "terraform-provider-pouch"), ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the provider: %v\n%s", err, out)
	}
	rc := filepath.Join(pluginDir, "cli.tfrc")
	// OpenTofu reads "pouch/pouch" as registry.opentofu.org/pouch/pouch.
	cfg := fmt.Sprintf(`provider_installation {
  dev_overrides {
    "registry.terraform.io/pouch/pouch" = %[1]q
    "registry.opentofu.org/pouch/pouch" = %[1]q
  }
  direct {}
}
`, pluginDir)
	if err := os.WriteFile(rc, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "POUCH_ENGINE_FAULT=") || strings.HasPrefix(kv, "TF_CLI_CONFIG_FILE=") ||
			strings.HasPrefix(kv, "TF_LOG")
	})
	env = append(env, "TF_CLI_CONFIG_FILE="+rc, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1")
	return &tfCLI{t: t, terraform: terraform, dir: t.TempDir(), env: env}
}

// write replaces the working directory's configuration.
func (c *tfCLI) write(config string) {
	c.t.Helper()
	const header = `terraform {
  required_providers {
    pouch = {
      source = "pouch/pouch"
    }
  }
}

`
	if err := os.WriteFile(filepath.Join(c.dir, "main.tf"), []byte(header+config), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// run runs terraform with args (and extra environment variables) and
// returns its combined output and exit code.
func (c *tfCLI) run(extraEnv []string, args ...string) (string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tfCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.terraform, args...)
	cmd.Dir = c.dir
	cmd.Env = append(slices.Clone(c.env), extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit) && ctx.Err() == nil:
		return out.String(), exit.ExitCode()
	}
	c.t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out.String())
	return "", -1
}

// mustRun runs terraform and fails the test unless it exits 0.
func (c *tfCLI) mustRun(args ...string) string {
	c.t.Helper()
	out, code := c.run(nil, args...)
	if code != 0 {
		c.t.Fatalf("terraform %s: exit code %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// hide makes every later command run where dirs are hidden: terraform
// (and the provider it starts) runs in a mount namespace of its own with an
// empty read-only tmpfs over each of them. It fails the test unless the
// directories are hidden there.
func (c *tfCLI) hide(dirs ...string) {
	c.t.Helper()
	var mounts strings.Builder
	for _, d := range dirs {
		fmt.Fprintf(&mounts, "mount -t tmpfs -o ro,size=4k,mode=0555 pouch-hidden '%s' || exit 125\n", d)
	}
	script := func(command string) string {
		return "#!/bin/sh\nexec unshare --mount --propagation private -- sh -c '" +
			strings.ReplaceAll(mounts.String(), "'", `'"'"'`) + `exec "$0" "$@"' ` + command + ` "$@"` + "\n"
	}
	dir := c.t.TempDir()
	check := filepath.Join(dir, "check")
	wrapped := filepath.Join(dir, filepath.Base(c.terraform))
	for path, command := range map[string]string{check: "ls", wrapped: c.terraform} {
		if err := os.WriteFile(path, []byte(script(command)), 0o755); err != nil {
			c.t.Fatal(err)
		}
	}
	for _, d := range dirs {
		if out, err := exec.Command(check, "-A", d).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
			c.t.Fatalf("%s is not hidden: %v\n%s", d, err, out)
		}
	}
	c.terraform = wrapped
}

// destroyAtEnd destroys what the working directory manages when the test
// ends, whatever happened.
func (c *tfCLI) destroyAtEnd(env *testenv.Env, name string) {
	c.t.Cleanup(func() {
		if out, code := c.run(nil, "destroy", "-auto-approve", "-no-color"); code != 0 {
			c.t.Errorf("terraform destroy: exit code %d\n%s", code, out)
			return
		}
		if err := checkDestroyed(c.t, env, name)(nil); err != nil {
			c.t.Error(err)
		}
	})
}

// TestAccCLI_planWarning: a real `terraform plan` of an image change shows
// the provider's warning, in plain words.
func TestAccCLI_planWarning(t *testing.T) {
	env := accEnv(t)
	const name = "acc-cli-plan"
	v1, v2 := testImage("cliplan", "v1"), testImage("cliplan", "v2")
	env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	tf := newTFCLI(t)
	tf.destroyAtEnd(env, name)

	tf.write(containerConfig(env, name, v1.Name))
	tf.mustRun("apply", "-auto-approve", "-no-color")

	tf.write(containerConfig(env, name, v2.Name))
	out, code := tf.run(nil, "plan", "-no-color", "-detailed-exitcode")
	t.Logf("terraform plan:\n%s", out)
	if code != 2 {
		t.Fatalf("plan of an image change: exit code %d, want 2 (changes)\n%s", code, out)
	}
	for _, want := range []string{
		`Warning: pouch_container\.` + name + `: image upgrade in place`,
		ws("same container ID"),
		ws("same IP address and MAC address"),
		ws("the new root filesystem starts from the new image's files"),
		ws("staged while the old task keeps serving"),
		ws("rolls back to the old container"),
		ws("1 to change, 0 to destroy"),
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("plan output lacks %s:\n%s", want, out)
		}
	}

	// A label change plans without a warning of ours.
	tf.write(containerConfig(env, name, v1.Name, `labels = { team = "a" }`))
	out, code = tf.run(nil, "plan", "-no-color", "-detailed-exitcode")
	if code != 2 || strings.Contains(out, "Warning: pouch_container") {
		t.Errorf("plan of a label change: exit code %d, want 2 and no pouch_container warning\n%s", code, out)
	}
}

// crashConfig is a container on the bridge network with a named volume,
// and outputs of what must survive a crash.
func crashConfig(env *testenv.Env, name, image string) string {
	return providerConfig(env) + fmt.Sprintf(`
resource "pouch_volume" "data" {
  name = %[1]q
}

resource "pouch_container" "test" {
  name   = %[1]q
  image  = %[2]q
  mounts = [{ type = "volume", source = pouch_volume.data.name, target = "/data" }]
}

output "ip" {
  value = pouch_container.test.ip_address
}
`, name, image)
}

// TestAccCLI_crashRecovery kills the provider (SIGKILL, through the
// pouchfault build's POUCH_ENGINE_FAULT) at the end of an upgrade's Swap
// phase, then at the end of its Commit phase. The next apply recovers: a
// crash after Swap is rolled back to the old container, a crash after
// Commit is finished; the IP address and the volume's data are kept, and
// nothing leaks.
func TestAccCLI_crashRecovery(t *testing.T) {
	env := accEnv(t)
	const name = "acc-cli-crash"
	v1, v2 := testImage("clicrash", "v1"), testImage("clicrash", "v2")
	env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	tf := newTFCLI(t)
	tf.destroyAtEnd(env, name)

	tf.write(crashConfig(env, name, v1.Name))
	tf.mustRun("apply", "-auto-approve", "-no-color")
	ip := strings.TrimSpace(tf.mustRun("output", "-raw", "ip"))
	if ip == "" {
		t.Fatal("no IP address")
	}
	sum, err := execOut(t, env, name, "sh", "-c",
		"dd if=/dev/urandom of=/data/blob bs=1024 count=256 2>/dev/null && sync && sha256sum /data/blob")
	if err != nil {
		t.Fatal(err)
	}

	// check verifies the container after a recovery.
	check := func(stage, version string) {
		t.Helper()
		if got, err := execOut(t, env, name, "cat", "/version"); err != nil || got != version {
			t.Errorf("%s: /version = %q (%v), want %s", stage, got, err, version)
		}
		if got := strings.TrimSpace(tf.mustRun("output", "-raw", "ip")); got != ip {
			t.Errorf("%s: IP address %s, was %s", stage, got, ip)
		}
		if got, err := execOut(t, env, name, "sha256sum", "/data/blob"); err != nil || got != sum {
			t.Errorf("%s: volume data %q (%v), want %q", stage, got, err, sum)
		}
		if got := env.TaskStatus(t, name); got != "running" {
			t.Errorf("%s: task %s, want running", stage, got)
		}
		if err := checkNoLeakedSnapshots(t, env)(nil); err != nil {
			t.Errorf("%s: %v", stage, err)
		}
		if leases := env.Leases(t); len(leases) != 0 {
			t.Errorf("%s: leases left: %v", stage, leases)
		}
		if out, code := tf.run(nil, "plan", "-no-color", "-detailed-exitcode"); code != 0 {
			t.Errorf("%s: plan -detailed-exitcode: exit code %d, want 0 (no changes)\n%s", stage, code, out)
		}
	}
	// What terraform says when the provider dies during an apply.
	crashed := regexp.MustCompile(`(?i)ApplyResourceChange\s+request\s+was\s+cancelled|plugin\s+(crashed|did\s+not\s+respond)`)
	// midway checks that the crash left an upgrade half done: the staged
	// (or old) snapshot and the upgrade's lease (besides the container's
	// lock) are still there.
	midway := func(stage string) {
		t.Helper()
		leases := slices.DeleteFunc(env.Leases(t), func(id string) bool { return strings.HasPrefix(id, "pouch-lock-") })
		if snaps := env.ActiveSnapshots(t); len(snaps) != 2 || len(leases) != 1 {
			t.Errorf("%s: active snapshots %v and leases %v; want two snapshots and the upgrade's lease", stage, snaps, leases)
		}
	}

	// Killed after Swap: the container points at v2 and no task runs.
	tf.write(crashConfig(env, name, v2.Name))
	out, code := tf.run([]string{"POUCH_ENGINE_FAULT=swap:kill"}, "apply", "-auto-approve", "-no-color")
	if code == 0 || !crashed.MatchString(out) {
		t.Fatalf("apply with the provider killed after swap: exit code %d, want a plugin crash\n%s", code, out)
	}
	t.Logf("apply killed after swap:\n%s", out)
	midway("after the crash in swap")
	if got := env.TaskStatus(t, name); got == "running" {
		t.Errorf("after the crash in swap: the task is %s; the old one should be stopped, the new one not started", got)
	}
	// The next apply, of the old configuration, rolls the upgrade back.
	tf.write(crashConfig(env, name, v1.Name))
	tf.mustRun("apply", "-auto-approve", "-no-color")
	check("after the crash in swap", "v1")

	// Killed after Commit: the upgrade is done but for the cleanup; the
	// next apply of the new configuration finishes it.
	tf.write(crashConfig(env, name, v2.Name))
	out, code = tf.run([]string{"POUCH_ENGINE_FAULT=commit:kill"}, "apply", "-auto-approve", "-no-color")
	if code == 0 || !crashed.MatchString(out) {
		t.Fatalf("apply with the provider killed after commit: exit code %d, want a plugin crash\n%s", code, out)
	}
	t.Logf("apply killed after commit:\n%s", out)
	midway("after the crash in commit")
	tf.mustRun("apply", "-auto-approve", "-no-color")
	check("after the crash in commit", "v2")
}
