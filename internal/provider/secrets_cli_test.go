package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// These tests run the terraform CLI, so that what a user can read (the
// output of every command, TF_LOG=trace logs, the state file) can be
// searched for the values of secret_env.

// terraformVersion returns the major and minor version of a terraform
// binary, from `terraform version -json`.
func terraformVersion(t *testing.T, terraform string) (major, minor int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tfCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, terraform, "version", "-json")
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	out, err := cmd.Output() // stdout only: CLI configuration warnings go to stderr
	if err != nil {
		t.Fatalf("%s version -json: %v", terraform, err)
	}
	var v struct {
		Version string `json:"terraform_version"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%s version -json: %v\n%s", terraform, err, out)
	}
	parts := strings.SplitN(v.Version, ".", 3)
	if len(parts) < 2 {
		t.Fatalf("%s: version %q", terraform, v.Version)
	}
	if major, err = strconv.Atoi(parts[0]); err == nil {
		minor, err = strconv.Atoi(parts[1])
	}
	if err != nil {
		t.Fatalf("%s: version %q: %v", terraform, v.Version, err)
	}
	return major, minor
}

// taskEnv returns the environment of the container's task, read from
// /proc/1/environ: what the running process really got, not the spec an
// exec would reuse.
func taskEnv(t *testing.T, env *testenv.Env, id string) map[string]string {
	t.Helper()
	out, err := env.Exec(t, id, "sh", "-c", "tr '\\000' '\\n' < /proc/1/environ")
	if err != nil {
		t.Fatalf("environment of the task of %s: %v", id, err)
	}
	vars := map[string]string{}
	for _, kv := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	return vars
}

// secretsConfig is the container of TestAccSecrets_neverInPlanStateOrLogs.
func secretsConfig(env *testenv.Env, name, image, token, version, plain string) string {
	return containerConfig(env, name, image,
		`command            = ["sleep", "3600"]`,
		fmt.Sprintf(`secret_env         = { API_TOKEN = %q }`, token),
		fmt.Sprintf(`secret_env_version = %q`, version),
		fmt.Sprintf(`env                = { PLAIN = %q }`, plain),
		`healthcheck        = { command = ["sh", "-c", "test -n \"$API_TOKEN\" || echo hc-s3cr3t-Qz7 ; exit 0"], interval = "200ms" }`,
	)
}

// TestAccSecrets_neverInPlanStateOrLogs: the values of secret_env reach the
// task and nothing a user can read: no command output, no TF_LOG=trace
// log, no state. They change only with secret_env_version. The health
// check's arguments (which may hold a secret too) are in the state, as
// configuration is, but in no log line nor in the provider's messages.
func TestAccSecrets_neverInPlanStateOrLogs(t *testing.T) {
	env := accEnv(t)
	tf := newTFCLI(t)
	if major, minor := terraformVersion(t, tf.terraform); major < 1 || major == 1 && minor < 11 {
		t.Skipf("terraform %d.%d has no write-only attributes (1.11 or later needed)", major, minor)
	}
	const name = "acc-sec-never"
	const (
		token     = "s3cr3t-Xy9-token"
		newToken  = "n3w-s3cr3t"
		unapplied = "unv3rsi0ned-s3cr3t" // changed without a new secret_env_version
		hcSecret  = "hc-s3cr3t-Qz7"
	)
	v1, v2 := testImage("sec-never", "v1"), testImage("sec-never", "v2")
	env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	tf.destroyAtEnd(env, name)

	// What a user can read, by the step it comes from.
	type text struct{ what, body string }
	var outputs, states []text
	nLogs := 0
	// traced runs terraform with TF_LOG=trace into a log file of its own
	// and records its output and log.
	traced := func(args ...string) (string, int) {
		t.Helper()
		nLogs++
		logPath := filepath.Join(t.TempDir(), fmt.Sprintf("trace-%d.log", nLogs))
		out, code := tf.run([]string{"TF_LOG=trace", "TF_LOG_PATH=" + logPath}, args...)
		what := "terraform " + strings.Join(args, " ")
		outputs = append(outputs, text{"output of " + what, out})
		log, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatalf("%s: read its log: %v", what, err)
		}
		if !strings.Contains(string(log), "[TRACE]") {
			t.Fatalf("%s: %s holds no trace lines: TF_LOG did not apply", what, logPath)
		}
		outputs = append(outputs, text{"TF_LOG=trace log of " + what, string(log)})
		return out, code
	}
	apply := func(stage string) string {
		t.Helper()
		out, code := traced("apply", "-auto-approve", "-no-color")
		if code != 0 {
			t.Fatalf("%s: apply: exit code %d\n%s", stage, code, out)
		}
		for _, f := range []string{"terraform.tfstate", "terraform.tfstate.backup"} {
			if b, err := os.ReadFile(filepath.Join(tf.dir, f)); err == nil {
				states = append(states, text{f + " after " + stage, string(b)})
			}
		}
		show, code := tf.run(nil, "show", "-json", "-no-color")
		if code != 0 {
			t.Fatalf("%s: show -json: exit code %d\n%s", stage, code, show)
		}
		states = append(states, text{"terraform show -json after " + stage, show})
		return out
	}
	checkTaskEnv := func(stage string, want map[string]string) map[string]string {
		t.Helper()
		got := taskEnv(t, env, name)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: the task has %s=%q, want %q", stage, k, got[k], v)
			}
		}
		return got
	}

	// 1. Create.
	tf.write(secretsConfig(env, name, v1.Name, token, "1", "visible"))
	out := apply("create")
	if !regexp.MustCompile(`secret_env\s+=\s+\(write-only attribute\)`).MatchString(out) {
		t.Errorf("the plan of the create does not show secret_env as write-only:\n%s", out)
	}
	checkTaskEnv("create", map[string]string{"API_TOKEN": token, "PLAIN": "visible"})
	pid1 := env.TaskPID(t, name)

	// 2. A plan of a new secret_env_version shows the version, not the value.
	tf.write(secretsConfig(env, name, v1.Name, token, "2", "visible"))
	out, code := traced("plan", "-no-color", "-detailed-exitcode")
	if code != 2 {
		t.Fatalf("plan of a new secret_env_version: exit code %d, want 2 (changes)\n%s", code, out)
	}
	for _, want := range []string{
		`~\s+secret_env_version\s+=\s+"1"\s+->\s+"2"`,
		ws("1 to change, 0 to destroy"),
		ws("pouch_container." + name + ": restart in place"),
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("plan of a new secret_env_version lacks %s:\n%s", want, out)
		}
	}
	if env.TaskPID(t, name) != pid1 {
		t.Error("a plan restarted the task")
	}

	// 3. An image upgrade, with the health check in the plan's warning and
	// run in the Verify phase; the secrets are carried over.
	tf.write(secretsConfig(env, name, v2.Name, token, "1", "visible"))
	out = apply("image upgrade")
	for _, want := range []string{
		ws("Warning: pouch_container." + name + ": image upgrade in place"),
		ws(`the health check ("sh" ...) must pass`),
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("apply of an image upgrade lacks %s:\n%s", want, out)
		}
	}
	// The provider's own log lines are in the trace log, where the health
	// check ran: what is searched below is not an empty log.
	if log := outputs[len(outputs)-1].body; !strings.Contains(log, "upgrade: waiting for the health check") {
		t.Errorf("the trace log of the image upgrade lacks the provider's log line of the health check")
	}
	if got, err := execOut(t, env, name, "cat", "/version"); err != nil || got != "v2" {
		t.Errorf("after the image upgrade: /version = %q (%v), want v2", got, err)
	}
	checkTaskEnv("image upgrade", map[string]string{"API_TOKEN": token, "PLAIN": "visible"})

	// 4. A new secret with a new secret_env_version reaches the task.
	tf.write(secretsConfig(env, name, v2.Name, newToken, "2", "visible"))
	apply("new secret_env_version")
	checkTaskEnv("new secret_env_version", map[string]string{"API_TOKEN": newToken, "PLAIN": "visible"})
	pid4 := env.TaskPID(t, name)

	// 5. A changed secret without a new secret_env_version is not applied,
	// even though another change restarts the task.
	tf.write(secretsConfig(env, name, v2.Name, unapplied, "2", "changed"))
	apply("env change with an unversioned secret change")
	checkTaskEnv("env change with an unversioned secret change", map[string]string{"API_TOKEN": newToken, "PLAIN": "changed"})
	if env.TaskPID(t, name) == pid4 {
		t.Error("the env change did not restart the task")
	}
	if out, code := tf.run(nil, "plan", "-no-color", "-detailed-exitcode"); code != 0 {
		t.Errorf("plan after the last apply: exit code %d, want 0 (no changes)\n%s", code, out)
	}

	// 6. Destroy.
	out, code = traced("destroy", "-auto-approve", "-no-color")
	if code != 0 {
		t.Fatalf("destroy: exit code %d\n%s", code, out)
	}
	if err := checkDestroyed(t, env, name)(nil); err != nil {
		t.Error(err)
	}

	// No secret_env value anywhere.
	for _, secret := range []string{token, newToken, unapplied} {
		for _, x := range slices.Concat(outputs, states) {
			if strings.Contains(x.body, secret) {
				t.Errorf("the %s holds the secret_env value %q:\n%s", x.what, secret, linesWith(x.body, secret))
			}
		}
	}
	// The health check's arguments are in no log and no output: the
	// command is sensitive, so the plans of the create and the destroy do
	// not show it either, and the provider's messages name it by its
	// first word only.
	for _, x := range outputs {
		if strings.Contains(x.body, hcSecret) {
			t.Errorf("the %s holds the health check's argument %q:\n%s", x.what, hcSecret, linesWith(x.body, hcSecret))
		}
	}
}

// linesWith returns the lines of s that hold needle.
func linesWith(s, needle string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, needle) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAccSecrets_refusedWithoutWriteOnlySupport: a terraform older than
// 1.11 (its path in TF_ACC_TERRAFORM_1_5_PATH) cannot send write-only
// values; a plan with secret_env fails with a clear error instead of
// treating the secret as a plain attribute.
func TestAccSecrets_refusedWithoutWriteOnlySupport(t *testing.T) {
	old := os.Getenv("TF_ACC_TERRAFORM_1_5_PATH")
	if old == "" {
		t.Skip("set TF_ACC_TERRAFORM_1_5_PATH to a terraform binary older than 1.11 to run this test")
	}
	env := accEnv(t)
	tf := newTFCLI(t)
	tf.terraform = old
	if major, minor := terraformVersion(t, old); major > 1 || major == 1 && minor >= 11 {
		t.Fatalf("TF_ACC_TERRAFORM_1_5_PATH=%s is terraform %d.%d, not older than 1.11", old, major, minor)
	}
	v1 := testImage("sec-old", "v1")
	env.ImportImage(t, v1)
	tf.write(containerConfig(env, "acc-sec-old", v1.Name, `secret_env = { API_TOKEN = "s3cr3t-0ld" }`, `secret_env_version = "1"`))
	out, code := tf.run(nil, "plan", "-no-color")
	if code == 0 || !regexp.MustCompile(`(?i)write-?only`).MatchString(out) || !strings.Contains(out, "secret_env") {
		t.Fatalf("plan with secret_env on terraform older than 1.11: exit code %d, want an error naming secret_env as write-only\n%s", code, out)
	}
	// Terraform quotes the configuration's line under the error (the
	// user's own file, as written): the message itself must not hold the
	// value.
	quoted := regexp.MustCompile(`(?m)^\s+\d+:\s.*$`)
	if strings.Contains(quoted.ReplaceAllString(out, ""), "s3cr3t-0ld") {
		t.Errorf("the error shows the secret:\n%s", out)
	}
	if err := checkDestroyed(t, env, "acc-sec-old")(nil); err != nil {
		t.Error(err)
	}
}
