package provider

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// TestAccCLI_remoteConnectionLost: the SSH connection to the host dies in
// the middle of an upgrade, while the new task is being verified. The
// agent on the host goes on with the upgrade; the provider connects again,
// repeats the update, which waits for the first one and finds nothing left
// to do; the apply succeeds with the container upgraded in place, the plan
// after it is empty, and every agent on the host exits once terraform is
// done.
func TestAccCLI_remoteConnectionLost(t *testing.T) {
	env := accEnv(t)
	v1, v2 := testImage("cli-remote-drop", "v1"), testImage("cli-remote-drop", "v2")
	h := remoteHosts(t, env, 1, v1, v2)[0]
	const name = "cli-remote-drop"
	tf := newTFCLI(t)
	tf.write(remoteProvider(h, "") + `
variable "image" {
  type    = string
  default = "` + v1.Name + `"
}

resource "pouch_container" "test" {
  name  = "` + name + `"
  image = var.image
  # The verify window the connection dies in.
  healthcheck = {
    command      = ["true"]
    start_period = "3s"
    interval     = "1s"
    timeout      = "5s"
  }
}

output "ip" {
  value = pouch_container.test.ip_address
}
`)
	tf.destroyAtEnd(h.Env, name)
	tf.mustRun("apply", "-auto-approve", "-no-color", "-var", "image="+v1.Name)
	ip := strings.TrimSpace(tf.mustRun("output", "-raw", "ip"))

	ctx, cancel := context.WithTimeout(context.Background(), tfCommandTimeout)
	defer cancel()
	apply := exec.CommandContext(ctx, tf.terraform, "apply", "-auto-approve", "-no-color", "-var", "image="+v2.Name)
	apply.Dir = tf.dir
	apply.Env = append(slices.Clone(tf.env), "TF_LOG=INFO")
	var out bytes.Buffer
	apply.Stdout, apply.Stderr = &out, &out
	if err := apply.Start(); err != nil {
		t.Fatal(err)
	}
	applied := make(chan error, 1)
	go func() { applied <- apply.Wait() }()
	testenv.Eventually(t, time.Minute, "the new task runs (the upgrade verifies it)", func() bool {
		got, err := h.Env.Exec(t, name, "cat", "/version")
		return err == nil && got == "v2\n"
	})
	h.KillSessions(t)
	if err := <-applied; err != nil {
		t.Fatalf("apply after the connection died: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "the connection to the host dropped: connecting again"); n != 1 {
		t.Fatalf("the provider connected again %d times, want 1\n%s", n, out.String())
	}

	if got, err := h.Env.Exec(t, name, "cat", "/version"); err != nil || got != "v2\n" {
		t.Fatalf("the container runs %q (%v), want v2", got, err)
	}
	if got := strings.TrimSpace(tf.mustRun("output", "-raw", "ip")); got != ip {
		t.Fatalf("address %s after the upgrade, was %s", got, ip)
	}
	if got, code := tf.run(nil, "plan", "-detailed-exitcode", "-no-color", "-var", "image="+v2.Name); code != 0 {
		t.Fatalf("plan after the apply: exit code %d, want 0 (no changes)\n%s", code, got)
	}
	if leases := h.Env.Leases(t); len(leases) != 0 {
		t.Fatalf("leases left on the host: %v", leases)
	}
	if err := checkNoLeakedSnapshots(t, h.Env)(nil); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "every agent on the host exits", func() bool { return len(h.Started()) == 0 })
}
