package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/remote"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// The acceptance tests run terraform against a private containerd started by
// testenv. They do not run in parallel: several of them count every active
// snapshot and container of the namespace.

// TestMain serves as the agent when the acceptance tests of remote hosts
// upload this test binary (the provider they run in process) to a host.
func TestMain(m *testing.M) {
	remote.ServeIfAgent("test")
	os.Exit(testenv.Main(m, "provider"))
}

// testAddr is the address of the container in every acceptance config.
const testAddr = "pouch_container.test"

func protoV6Factories() map[string]func() (tfprotov6.ProviderServer, error) {
	return map[string]func() (tfprotov6.ProviderServer, error){
		"pouch": providerserver.NewProtocol6WithError(New("test")()),
	}
}

// accEnv skips the test unless TF_ACC is set (as resource.Test would), and
// otherwise returns the private containerd, starting it on first use.
func accEnv(t *testing.T) *testenv.Env {
	t.Helper()
	if os.Getenv(resource.EnvTfAcc) == "" {
		t.Skipf("acceptance test: set %s=1 (and TF_ACC_TERRAFORM_PATH) to run it", resource.EnvTfAcc)
	}
	// terraform-exec starts terraform with Pdeathsig = SIGKILL, which the
	// kernel sends when the OS thread that forked it exits. The provider
	// runs in this process, and creating a network namespace ends an OS
	// thread on purpose (containerd's pkg/netns): terraform would be killed
	// whenever it was forked from that thread. Forking it from a thread the
	// test keeps locked, which never exits during the test, avoids that.
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	return testenv.Get(t)
}

// testImage is a busybox image "docker.io/pouchtest/acc-<test>:<tag>" whose
// Cmd sleeps for an hour and whose /version holds "<tag>\n".
func testImage(test, tag string) imagebuild.Image {
	return imagebuild.Image{
		Name:  fmt.Sprintf("docker.io/pouchtest/acc-%s:%s", test, tag),
		Cmd:   []string{"sleep", "3600"},
		Files: map[string]string{"/version": tag + "\n"},
	}
}

// providerConfig configures the provider for the private containerd, with
// a bridge network of this test process's own (the engine's tests, running
// at the same time, use others).
func providerConfig(env *testenv.Env) string {
	return fmt.Sprintf(`provider "pouch" {
  address       = %q
  namespace     = %q
  snapshotter   = %q
  data_root     = %q
  bridge_name   = %q
  bridge_subnet = %q
}
`, env.Address, env.Namespace, env.Snapshotter, env.DataRoot, env.Bridge, env.Subnet)
}

// containerConfig is the provider block plus pouch_container.test with name,
// image and extra attribute lines.
func containerConfig(env *testenv.Env, name, image string, extra ...string) string {
	var b strings.Builder
	b.WriteString(providerConfig(env))
	fmt.Fprintf(&b, "\nresource \"pouch_container\" \"test\" {\n  name  = %q\n  image = %q\n", name, image)
	for _, line := range extra {
		b.WriteString("  " + line + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// checkExec runs args in the container's task and compares the output.
func checkExec(t *testing.T, env *testenv.Env, id, want string, args ...string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		got, err := env.Exec(t, id, args...)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%v in %s: got %q, want %q", args, id, got, want)
		}
		return nil
	}
}

// checkExecContains runs args in the container's task and looks for lines.
func checkExecContains(t *testing.T, env *testenv.Env, id string, args []string, lines ...string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		got, err := env.Exec(t, id, args...)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, l := range strings.Split(got, "\n") {
			have[l] = true
		}
		for _, l := range lines {
			if !have[l] {
				return fmt.Errorf("%v in %s: no line %q in %q", args, id, l, got)
			}
		}
		return nil
	}
}

func checkTaskStatus(t *testing.T, env *testenv.Env, id, want string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		if got := env.TaskStatus(t, id); got != want {
			return fmt.Errorf("task of %s is %q, want %q", id, got, want)
		}
		return nil
	}
}

// checkNoLeakedSnapshots checks that the namespace has exactly one active
// snapshot (the root filesystem) per container.
func checkNoLeakedSnapshots(t *testing.T, env *testenv.Env) resource.TestCheckFunc {
	return func(*terraform.State) error {
		ctx, cancel := context.WithTimeout(env.Context(), 30*time.Second)
		defer cancel()
		containers, err := env.Client.Containers(ctx)
		if err != nil {
			return err
		}
		snaps := env.ActiveSnapshots(t)
		if len(snaps) != len(containers) {
			ids := make([]string, 0, len(containers))
			for _, c := range containers {
				ids = append(ids, c.ID())
			}
			return fmt.Errorf("%d active snapshots %v for %d containers %v", len(snaps), snaps, len(containers), ids)
		}
		return nil
	}
}

// checkDestroyed is a CheckDestroy: the container is gone and left no
// active snapshot behind.
func checkDestroyed(t *testing.T, env *testenv.Env, id string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ctx, cancel := context.WithTimeout(env.Context(), 30*time.Second)
		defer cancel()
		_, err := env.Client.LoadContainer(ctx, id)
		if err == nil {
			return fmt.Errorf("container %s still exists after destroy", id)
		}
		if !errdefs.IsNotFound(err) {
			return fmt.Errorf("load container %s: %w", id, err)
		}
		for _, key := range env.ActiveSnapshots(t) {
			if strings.HasPrefix(key, id+"-") || key == id {
				return fmt.Errorf("snapshot %s of container %s left after destroy", key, id)
			}
		}
		return checkNoLeakedSnapshots(t, env)(s)
	}
}

// killTask SIGKILLs the container's task outside Terraform and waits until
// it has exited; the task stays (stopped).
func killTask(t *testing.T, env *testenv.Env, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(env.Context(), 30*time.Second)
	defer cancel()
	c, err := env.Client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatalf("load container %s: %v", id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatalf("task of %s: %v", id, err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatalf("wait for task of %s: %v", id, err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatalf("kill task of %s: %v", id, err)
	}
	select {
	case <-exited:
	case <-ctx.Done():
		t.Fatalf("task of %s did not exit after SIGKILL", id)
	}
	testenv.Eventually(t, 10*time.Second, "task of "+id+" stopped", func() bool {
		return env.TaskStatus(t, id) == "stopped"
	})
}

// deleteOutside removes the container (task, container, snapshot) outside
// Terraform.
func deleteOutside(t *testing.T, env *testenv.Env, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(env.Context(), 30*time.Second)
	defer cancel()
	c, err := env.Client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatalf("load container %s: %v", id, err)
	}
	if task, err := c.Task(ctx, nil); err == nil {
		exited, err := task.Wait(ctx)
		if err != nil {
			t.Fatalf("wait for task of %s: %v", id, err)
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
			t.Fatalf("kill task of %s: %v", id, err)
		}
		select {
		case <-exited:
		case <-ctx.Done():
			t.Fatalf("task of %s did not exit after SIGKILL", id)
		}
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			t.Fatalf("delete task of %s: %v", id, err)
		}
	} else if !errdefs.IsNotFound(err) {
		t.Fatalf("task of %s: %v", id, err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		t.Fatalf("delete container %s: %v", id, err)
	}
	if _, err := env.Client.LoadContainer(ctx, id); !errors.Is(err, errdefs.ErrNotFound) && !errdefs.IsNotFound(err) {
		t.Fatalf("container %s still there after delete: %v", id, err)
	}
}
