package provider

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pouch/terraform-provider-pouch/internal/registry"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// TestAccCLI_privateRegistry: a container pulled from a registry that asks
// for a password over HTTPS with a CA of the test's, through the
// provider's registry_auth, created and upgraded in place; a wrong password
// fails the apply, naming the registry and registry_auth, and leaves the
// container as it was. Neither password is in any output, TF_LOG=trace log
// or state, in clear or in basic auth's base64.
func TestAccCLI_privateRegistry(t *testing.T) {
	env := accEnv(t)
	tf := newTFCLI(t)
	const name = "acc-private"
	const user, password, wrong = "deploy", "pr1vate-Pw-7x", "wr0ng-Pw-3k"
	ca := testenv.NewCA(t)
	cert := ca.Server(t, nil, net.IPv4(127, 0, 0, 1))
	reg := testenv.PrivateRegistry(t, registry.Options{Htpasswd: testenv.Htpasswd(t, user, password), Username: user,
		Password: password, CertFile: cert.CertFile, KeyFile: cert.KeyFile})
	refs := map[string]string{}
	for _, v := range []string{"v1", "v2", "v3"} {
		refs[v] = testenv.Push(t, reg, "pouchtest/private:"+v, testImage("private", v))
	}
	config := func(pw, image string) string {
		provider := strings.TrimSuffix(providerConfig(env), "}\n") + fmt.Sprintf(`  registry_auth = [{
    address  = %q
    username = %q
    password = %q
    ca_file  = %q
  }]
}
`, reg.Addr, user, pw, ca.PEMFile)
		return provider + fmt.Sprintf("\nresource \"pouch_container\" \"test\" {\n  name  = %q\n  image = %q\n}\n", name, image)
	}
	tf.destroyAtEnd(env, name)

	var readable []string // what a user can read
	traced := func(args ...string) (string, int) {
		t.Helper()
		logPath := filepath.Join(t.TempDir(), "trace.log")
		out, code := tf.run([]string{"TF_LOG=trace", "TF_LOG_PATH=" + logPath}, args...)
		log, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		readable = append(readable, out, string(log))
		if b, err := os.ReadFile(filepath.Join(tf.dir, "terraform.tfstate")); err == nil {
			readable = append(readable, string(b))
		}
		return out, code
	}

	tf.write(config(password, refs["v1"]))
	if out, code := traced("apply", "-auto-approve", "-no-color"); code != 0 {
		t.Fatalf("apply from the private registry: exit code %d\n%s", code, out)
	}
	pid := env.TaskPID(t, name)
	tf.write(config(password, refs["v2"]))
	if out, code := traced("apply", "-auto-approve", "-no-color"); code != 0 {
		t.Fatalf("upgrade from the private registry: exit code %d\n%s", code, out)
	}
	if got, err := env.Exec(t, name, "cat", "/version"); err != nil || got != "v2\n" {
		t.Fatalf("/version after the upgrade: %q, %v", got, err)
	}
	if env.TaskPID(t, name) == pid {
		t.Fatal("the task was not restarted on v2")
	}

	// A wrong password and a tag not pulled yet: refused, nothing changed.
	tf.write(config(wrong, refs["v3"]))
	out, code := traced("apply", "-auto-approve", "-no-color")
	if code == 0 || !strings.Contains(out, "refused the credentials") || !strings.Contains(out, "registry_auth") {
		t.Fatalf("apply with a wrong password: exit code %d, want a failure naming registry_auth\n%s", code, out)
	}
	if got, err := env.Exec(t, name, "cat", "/version"); err != nil || got != "v2\n" {
		t.Fatalf("/version after a refused pull: %q, %v; want v2 still running", got, err)
	}
	// A pouch_image pulls with the same credentials.
	tf.write(config(password, refs["v2"]) + fmt.Sprintf("\nresource \"pouch_image\" \"v3\" {\n  name = %q\n}\n", refs["v3"]))
	if out, code := traced("apply", "-auto-approve", "-no-color"); code != 0 {
		t.Fatalf("pouch_image from the private registry: exit code %d\n%s", code, out)
	}
	if _, err := env.Client.ImageService().Get(env.Context(), refs["v3"]); err != nil {
		t.Fatalf("the pouch_image's image is not on the host: %v", err)
	}

	for _, secret := range []string{password, wrong,
		base64.StdEncoding.EncodeToString([]byte(user + ":" + password)), base64.StdEncoding.EncodeToString([]byte(user + ":" + wrong))} {
		for _, text := range readable {
			if i := strings.Index(text, secret); i >= 0 {
				t.Fatalf("a registry secret is readable: ...%s...", text[max(0, i-200):min(len(text), i+len(secret)+50)])
			}
		}
	}
}

// TestAccCLI_movedTagWarnings: with pull_policy = "always", a real
// `terraform plan` after the tag moved warns with both digests; with the
// registry stopped, it warns that the registry was not asked, plans no
// change and exits 0.
func TestAccCLI_movedTagWarnings(t *testing.T) {
	env := accEnv(t)
	tf := newTFCLI(t)
	const name = "acc-moved-cli"
	reg := testenv.PrivateRegistry(t, registry.Options{})
	ref := testenv.Push(t, reg, "pouchtest/moved-cli:stable", testImage("moved-cli", "v1"))
	tf.write(containerConfig(env, name, ref, `pull_policy = "always"`))
	tf.destroyAtEnd(env, name)
	tf.mustRun("apply", "-auto-approve", "-no-color")
	testenv.Push(t, reg, "pouchtest/moved-cli:stable", testImage("moved-cli", "v2"))
	out, code := tf.run(nil, "plan", "-no-color", "-detailed-exitcode")
	if code != 2 || !strings.Contains(out, "image tag moved: upgrade in place") || strings.Count(out, "sha256:") < 2 {
		t.Fatalf("plan after the tag moved: exit code %d, want 2 with a warning naming both digests\n%s", code, out)
	}
	reg.Stop()
	out, code = tf.run(nil, "plan", "-no-color", "-detailed-exitcode")
	if code != 0 || !strings.Contains(out, "registry not checked for a moved tag") {
		t.Fatalf("plan with the registry stopped: exit code %d, want 0 with a warning\n%s", code, out)
	}
}
