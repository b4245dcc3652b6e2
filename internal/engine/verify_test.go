package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

// exitImage is an image whose process prints lines to stderr and exits
// with code at once.
func exitImage(name, code string, lines ...string) imagebuild.Image {
	script := ""
	for _, l := range lines {
		script += "echo '" + l + "' >&2; "
	}
	return imagebuild.Image{Name: name, Cmd: []string{"sh", "-c", script + "exit " + code}}
}

// A create whose process exits within the start window fails with the exit
// code and the end of the log, and leaves nothing behind.
func TestCreateOfAProcessThatExitsFails(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, exitImage("docker.io/pouchtest/exit-create:v1", "3", "config.yml: no such file", "giving up"))
	spec := engine.ContainerSpec{Name: "eng-exit-create", Image: "pouchtest/exit-create:v1", Running: true,
		Upgrade: engine.UpgradePolicy{VerifySeconds: engine.DefaultVerifySeconds}}
	_, err := e.Create(context.Background(), spec)
	if err == nil {
		t.Fatal("create succeeded, want the exit reported")
	}
	for _, want := range []string{"exited with code 3", "config.yml: no such file", "giving up", "verify_seconds = 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("create error %q does not say %q", err, want)
		}
	}
	assertNothingOf(t, e, env, spec.Name)
}

// A create whose binary does not exist fails with the runtime's reason and
// leaves nothing behind, in bridge mode too (network namespace and address
// released).
func TestCreateOfAMissingBinaryFails(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("exit-missing", "v1"))
	spec := engine.ContainerSpec{Name: "eng-exit-missing", Image: "pouchtest/exit-missing:v1", Running: true,
		Entrypoint: []string{"/bin/missing"}, Upgrade: engine.UpgradePolicy{VerifySeconds: 1}}
	_, err := e.Create(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "/bin/missing") {
		t.Fatalf("create: %v, want the missing binary named", err)
	}
	assertNothingOf(t, e, env, spec.Name)
}

// What a hostile process prints reaches the error quoted: no terminal
// escape sequence gets through to Terraform's output.
func TestExitErrorQuotesTheLogSafely(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, imagebuild.Image{Name: "docker.io/pouchtest/exit-escape:v1",
		Cmd: []string{"sh", "-c", `printf 'clear\033[2J\033]0;title\007 done\r\n'; exit 1`}})
	_, err := e.Create(context.Background(), engine.ContainerSpec{Name: "eng-exit-escape", Image: "pouchtest/exit-escape:v1",
		Running: true, Upgrade: engine.UpgradePolicy{VerifySeconds: 1}})
	if err == nil || !strings.Contains(err.Error(), "clear") {
		t.Fatalf("create: %v, want the log quoted", err)
	}
	if strings.ContainsAny(err.Error(), "\x1b\x07\r") {
		t.Fatalf("the error carries control characters: %q", err)
	}
}

// An upgrade whose new process exits within the default start window
// rolls back: the old image runs again, and the error quotes the new
// process's log.
func TestUpgradeToAProcessThatExitsRollsBack(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("exit-upgrade", "v1"))
	env.ImportImage(t, exitImage("docker.io/pouchtest/exit-upgrade:v2", "2", "v2 cannot start"))
	spec := engine.ContainerSpec{Name: "eng-exit-upgrade", Image: "pouchtest/exit-upgrade:v1", Running: true,
		NetworkMode: engine.NetworkNone, Upgrade: engine.UpgradePolicy{VerifySeconds: engine.DefaultVerifySeconds}}
	create(t, e, spec)
	spec.Image = "pouchtest/exit-upgrade:v2"
	_, err := e.Update(context.Background(), spec.Name, spec)
	if !errors.Is(err, engine.ErrRolledBack) || !strings.Contains(err.Error(), "exited with code 2") ||
		!strings.Contains(err.Error(), "v2 cannot start") {
		t.Fatalf("upgrade: %v, want a rollback with the exit code and the log", err)
	}
	if got := mustExec(t, env, spec.Name, "cat", "/version"); got != "v1" {
		t.Fatalf("after the rollback /version = %q", got)
	}
	st, err := e.Inspect(context.Background(), spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Spec.Image != "pouchtest/exit-upgrade:v1" || st.Status != engine.StatusRunning || !st.Spec.Running {
		t.Fatalf("state after the rollback: %+v", st)
	}
	assertNothingLeaked(t, e, env, spec.Name, 1)
}

// Starting a stopped container whose process exits fails too (there is no
// old task to go back to: it stays stopped, and the error says why).
func TestStartOfAProcessThatExitsFails(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, exitImage("docker.io/pouchtest/exit-start:v1", "5", "starting fails"))
	spec := engine.ContainerSpec{Name: "eng-exit-start", Image: "pouchtest/exit-start:v1", Running: false,
		NetworkMode: engine.NetworkNone, Upgrade: engine.UpgradePolicy{VerifySeconds: 1}}
	create(t, e, spec)
	spec.Running = true
	_, err := e.Update(context.Background(), spec.Name, spec)
	if err == nil || !strings.Contains(err.Error(), "exited with code 5") || !strings.Contains(err.Error(), "starting fails") {
		t.Fatalf("start: %v, want the exit reported", err)
	}
	st, err := e.Inspect(context.Background(), spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Spec.Running || st.Status == engine.StatusRunning {
		t.Fatalf("state after the failed start: %+v, want stopped", st)
	}
}

// A failing health check's error names its command by the first word
// only, and quotes nothing it printed: a password on its command line or
// in its output stays out of Terraform's output.
func TestHealthcheckErrorsHoldNoSecrets(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("health-secret", "v1"))
	env.ImportImage(t, versionImage("health-secret", "v2"))
	spec := engine.ContainerSpec{Name: "eng-health-secret", Image: "pouchtest/health-secret:v1", Running: true,
		NetworkMode: engine.NetworkNone}
	create(t, e, spec)
	spec.Image = "pouchtest/health-secret:v2"
	spec.Healthcheck = &engine.Healthcheck{Command: []string{"sh", "-c", "echo hunter2-out; echo hunter2-err >&2; exit 1", "--password=hunter2"},
		Interval: 10e6, Timeout: 5e9, Retries: 2}
	_, err := e.Update(context.Background(), spec.Name, spec)
	if !errors.Is(err, engine.ErrRolledBack) || !strings.Contains(err.Error(), `"sh" exited with code 1`) {
		t.Fatalf("upgrade: %v, want a rollback naming the check's first word and its exit code", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("the error holds the check's arguments or output: %q", err)
	}
}
