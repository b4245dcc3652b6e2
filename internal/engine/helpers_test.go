package engine_test

// The checks and builders the engine's tests share: engines on the
// package's private daemon, test images, and what a user cares about
// (nothing left behind, the old container intact).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// newEngine returns an engine on the package's private containerd.
func newEngine(t *testing.T) (*engine.Engine, *testenv.Env) {
	t.Helper()
	env := testenv.Get(t)
	return mustNew(t, envOptions(env)), env
}

// envOptions are the options of an engine on env's daemon.
func envOptions(env *testenv.Env) engine.Options {
	return engine.Options{
		Address:   env.Address,
		Namespace: env.Namespace,
		DataRoot:  env.DataRoot,
		Network:   engine.NetworkOptions{Bridge: env.Bridge, Subnet: env.Subnet},
	}
}

// mustNew returns an engine for opts, closed when the test ends.
func mustNew(t testing.TB, opts engine.Options) *engine.Engine {
	t.Helper()
	e, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// versionImage is a long-running image whose /version file holds version.
func versionImage(repo, version string) imagebuild.Image {
	return imagebuild.Image{
		Name:  "docker.io/pouchtest/" + repo + ":" + version,
		Cmd:   []string{"sleep", "3600"},
		Env:   []string{"PATH=/bin", "VERSION=" + version},
		Files: map[string]string{"/version": version},
	}
}

func create(t *testing.T, e *engine.Engine, spec engine.ContainerSpec) engine.State {
	t.Helper()
	st, err := e.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("create %s: %v", spec.Name, err)
	}
	t.Cleanup(func() {
		if err := e.Delete(context.Background(), spec.Name); err != nil {
			t.Errorf("delete %s: %v", spec.Name, err)
		}
	})
	return st
}

func mustExec(t *testing.T, env *testenv.Env, id string, args ...string) string {
	t.Helper()
	out, err := env.Exec(t, id, args...)
	if err != nil {
		t.Fatalf("exec %v in %s: %v", args, id, err)
	}
	return strings.TrimSpace(out)
}

// snapshotsOf lists the active snapshots that belong to container id.
func snapshotsOf(t *testing.T, env *testenv.Env, id string) []string {
	t.Helper()
	var keys []string
	for _, k := range env.ActiveSnapshots(t) {
		if strings.HasPrefix(k, id+"-") {
			keys = append(keys, k)
		}
	}
	return keys
}

// containerInfo is containerd's record of container id.
func containerInfo(t *testing.T, env *testenv.Env, id string) containers.Container {
	t.Helper()
	c, err := env.Client.LoadContainer(env.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(env.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func containerSnapshot(t *testing.T, env *testenv.Env, id string) string {
	t.Helper()
	return containerInfo(t, env, id).SnapshotKey
}

// journalPhase is the phase of the update journal on a container; "" when
// no update is in progress.
func journalPhase(t *testing.T, env *testenv.Env, id string) string {
	t.Helper()
	ext, ok := containerInfo(t, env, id).Extensions["io.pouch.journal"]
	if !ok {
		return ""
	}
	var j struct {
		Phase string `json:"phase"`
	}
	if err := json.Unmarshal(ext.GetValue(), &j); err != nil {
		t.Fatal(err)
	}
	return j.Phase
}

func assertNothingLeaked(t *testing.T, e *engine.Engine, env *testenv.Env, name string, snapshots int) {
	t.Helper()
	if keys := snapshotsOf(t, env, name); len(keys) != snapshots {
		t.Fatalf("snapshots of %s: %v, want %d", name, keys, snapshots)
	}
	if leases := env.Leases(t); len(leases) != 0 {
		t.Fatalf("leases left: %v", leases)
	}
	if p := journalPhase(t, env, name); p != "" {
		t.Fatalf("journal left in phase %q", p)
	}
}

// webImage serves /www/index.html (the version) with busybox httpd on port 80.
func webImage(repo, version string) imagebuild.Image {
	return imagebuild.Image{
		Name:  "docker.io/pouchtest/" + repo + ":" + version,
		Cmd:   []string{"httpd", "-f", "-p", "80", "-h", "/www"},
		Env:   []string{"PATH=/bin"},
		Files: map[string]string{"/www/index.html": version},
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// eventuallyServes waits until url answers with body want.
func eventuallyServes(t *testing.T, url, want string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	var last string
	testenv.Eventually(t, 15*time.Second, fmt.Sprintf("%s serves %q", url, want), func() bool {
		resp, err := client.Get(url)
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last = string(b)
		return strings.TrimSpace(last) == want
	})
}

func sha(t *testing.T, env *testenv.Env, id, file string) string {
	t.Helper()
	out := mustExec(t, env, id, "sha256sum", file)
	return strings.Fields(out)[0]
}

// assertNothingOf checks that nothing of container name exists: no
// container, snapshot, lease, network namespace, log, image volume or lock.
func assertNothingOf(t *testing.T, e *engine.Engine, env *testenv.Env, name string) {
	t.Helper()
	if _, err := e.Inspect(context.Background(), name); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("container %s: %v, want not found", name, err)
	}
	if keys := snapshotsOf(t, env, name); len(keys) != 0 {
		t.Fatalf("snapshots left of %s: %v", name, keys)
	}
	if leases := env.Leases(t); len(leases) != 0 {
		t.Fatalf("leases left: %v", leases)
	}
	root, ns := e.Options().DataRoot, e.Options().Namespace
	for _, p := range []string{
		filepath.Join(root, "netns", ns, name),
		filepath.Join(root, "containers", ns, name),
		filepath.Join(root, "volumes", ns, "_anonymous", name),
		filepath.Join(root, "locks", ns, name+".lock"),
	} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s is left behind (%v)", p, err)
		}
	}
}
