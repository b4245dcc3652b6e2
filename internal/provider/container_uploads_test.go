package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAccCLI_uploads: a real terraform writes a configuration file (content,
// sensitive) and a secret (source, a file of the machine running
// terraform) into a container before its task starts, with their modes; a
// new secret file is a planned change that restarts the container in
// place on it; neither the secret's bytes nor the content reach the plan's
// output or the logs, and the secret is not in the state either.
func TestAccCLI_uploads(t *testing.T) {
	env := accEnv(t)
	tf := newTFCLI(t)
	const name = "acc-uploads"
	const conf, secret, newSecret = "listen = 6379 # c0nf-Mark", "upl0ad-S3cret-1", "upl0ad-S3cret-2"
	env.ImportImage(t, testImage("uploads", "v1"))
	secretFile := filepath.Join(t.TempDir(), "db-password")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	tf.write(containerConfig(env, name, "docker.io/pouchtest/acc-uploads:v1", fmt.Sprintf(`uploads = [
    { file = "/etc/app/app.conf", content = %q, mode = "0640" },
    { file = "/run/secrets/db", source = %q, mode = "0600" },
  ]`, conf, secretFile)))
	tf.destroyAtEnd(env, name)

	var readable, states []string
	traced := func(args ...string) (string, int) {
		t.Helper()
		logPath := filepath.Join(t.TempDir(), "trace.log")
		out, code := tf.run([]string{"TF_LOG=trace", "TF_LOG_PATH=" + logPath}, args...)
		log, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		readable = append(readable, out, string(log))
		for _, f := range []string{"terraform.tfstate", "terraform.tfstate.backup"} {
			if b, err := os.ReadFile(filepath.Join(tf.dir, f)); err == nil {
				states = append(states, string(b))
			}
		}
		return out, code
	}
	inside := func(want string) {
		t.Helper()
		for cmd, want := range map[string]string{
			"cat /etc/app/app.conf":                                 conf,
			"cat /run/secrets/db":                                   want,
			"stat -c '%a %u' /etc/app/app.conf /run/secrets/db":     "640 0\n600 0",
			"echo x >> /run/secrets/db 2>/dev/null || echo refused": "refused",
		} {
			if got, err := env.Exec(t, name, "sh", "-c", cmd); err != nil || strings.TrimSpace(got) != want {
				t.Errorf("%s: %q (%v), want %q", cmd, got, err, want)
			}
		}
	}
	if out, code := traced("apply", "-auto-approve", "-no-color"); code != 0 {
		t.Fatalf("apply: exit code %d\n%s", code, out)
	}
	inside(secret)
	pid := env.TaskPID(t, name)
	if out, code := tf.run(nil, "plan", "-no-color", "-detailed-exitcode"); code != 0 {
		t.Fatalf("plan after the apply: exit code %d, want no changes\n%s", code, out)
	}

	if err := os.WriteFile(secretFile, []byte(newSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := traced("plan", "-no-color", "-detailed-exitcode")
	if code != 2 || !strings.Contains(out, "sha256") || !strings.Contains(out, "restart in place") {
		t.Fatalf("plan after the secret file changed: exit code %d, want 2 with sha256 changing and a restart\n%s", code, out)
	}
	if out, code := traced("apply", "-auto-approve", "-no-color"); code != 0 {
		t.Fatalf("apply of the new secret: exit code %d\n%s", code, out)
	}
	inside(newSecret)
	if env.TaskPID(t, name) == pid {
		t.Error("the new secret did not restart the task")
	}

	// A saved plan, then the file changes: the apply refuses the bytes
	// the plan did not read (terraform, planning again at apply, sees
	// another sha256: an inconsistent final plan), and the container is not
	// touched.
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := traced("plan", "-no-color", "-out", "saved.tfplan"); code != 0 {
		t.Fatalf("plan -out: exit code %d\n%s", code, out)
	}
	if err := os.WriteFile(secretFile, []byte("n0t-planned"), 0o600); err != nil {
		t.Fatal(err)
	}
	pid = env.TaskPID(t, name)
	if out, code := traced("apply", "-no-color", "saved.tfplan"); code == 0 || !strings.Contains(out, "inconsistent final plan") ||
		!strings.Contains(out, ".uploads") {
		t.Fatalf("apply of a saved plan after the file changed: exit code %d, want a refusal\n%s", code, out)
	}
	inside(newSecret)
	if env.TaskPID(t, name) != pid {
		t.Error("the refused apply restarted the task")
	}
	for _, s := range []string{secret, newSecret, conf} {
		for _, text := range readable {
			if strings.Contains(text, s) {
				t.Errorf("%q is in terraform's output or log:\n%s", s, linesWith(text, s))
			}
		}
	}
	for _, s := range []string{secret, newSecret} {
		for _, text := range states {
			if strings.Contains(text, s) {
				t.Errorf("the secret file's bytes %q are in the state", s)
			}
		}
	}
}
