package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// Containers upgraded at the same time to an image that is not pulled yet
// (an apply of many at -parallelism=10) share one pull: the registry is
// asked for the tag once, every upgrade succeeds, and each container runs
// the new image.
func TestUpgradesToOneImageShareItsPull(t *testing.T) {
	e, env := newEngine(t)
	env.ImportImage(t, versionImage("shared", "v1"))
	v2 := env.PushImage(t, "pouchtest/shared-pull:v2", versionImage("shared", "v2"))
	const n = 8
	specs := make([]engine.ContainerSpec, n)
	for i := range specs {
		specs[i] = engine.ContainerSpec{Name: fmt.Sprintf("eng-shared-%d", i), Image: "pouchtest/shared:v1", Running: true,
			NetworkMode: engine.NetworkNone}
		create(t, e, specs[i])
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range specs {
		specs[i].Image = v2
		wg.Go(func() { _, errs[i] = e.Update(context.Background(), specs[i].Name, specs[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent upgrades to one image: %v", err)
	}
	repo := strings.TrimPrefix(v2[:strings.LastIndexByte(v2, ':')], env.Registry(t))
	if got := env.RegistryRequests(t, "HEAD", "/v2"+repo+"/manifests/v2"); got != 1 {
		t.Fatalf("the registry was asked for %s %d times for %d upgrades at once, want once", v2, got, n)
	}
	for _, spec := range specs {
		if got := mustExec(t, env, spec.Name, "cat", "/version"); got != "v2" {
			t.Fatalf("%s runs /version %q, want v2", spec.Name, got)
		}
	}
}

// Engines of several processes (pipelines, workspaces) upgrading to the
// same image at once, each pulling it itself, wait for each other in
// containerd's content store: every upgrade succeeds.
func TestUpgradesOfSeveralEnginesToOneImage(t *testing.T) {
	e, env := newEngine(t)
	engines := []*engine.Engine{e, mustNew(t, envOptions(env)), mustNew(t, envOptions(env))}
	env.ImportImage(t, versionImage("engines", "v1"))
	img := versionImage("engines", "v2")
	img.PadBytes = 20 << 20 // pulls long enough to overlap
	v2 := env.PushImage(t, "pouchtest/engines-pull:v2", img)
	specs := make([]engine.ContainerSpec, 2*len(engines))
	for i := range specs {
		specs[i] = engine.ContainerSpec{Name: fmt.Sprintf("eng-engines-%d", i), Image: "pouchtest/engines:v1", Running: true,
			NetworkMode: engine.NetworkNone}
		create(t, e, specs[i])
	}
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i := range specs {
		specs[i].Image = v2
		wg.Go(func() { _, errs[i] = engines[i%len(engines)].Update(context.Background(), specs[i].Name, specs[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("upgrades of several engines to one image: %v", err)
	}
	for _, spec := range specs {
		if got := mustExec(t, env, spec.Name, "cat", "/version"); got != "v2" {
			t.Fatalf("%s runs /version %q, want v2", spec.Name, got)
		}
	}
}

// A tag that moved in its registry: pull_policy "always" finds out at the
// next upgrade and upgrades in place to the new digest; "missing" keeps
// the image on the host; "never" does not pull an image the host lacks.
// RegistryDigest tells the tag's digest without pulling.
func TestPullPolicies(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	v1 := env.PushImage(t, "pouchtest/moving:stable", versionImage("moving", "v1"))
	spec := engine.ContainerSpec{Name: "eng-moving", Image: v1, Running: true, NetworkMode: engine.NetworkNone, PullPolicy: engine.PullAlways}
	st := create(t, e, spec)
	moved := env.PushImage(t, "pouchtest/moving:stable", versionImage("moving", "v2"))
	if moved != v1 {
		t.Fatalf("pushed %s, then %s: want the same tag", v1, moved)
	}
	dgst, err := e.RegistryDigest(ctx, v1)
	if err != nil {
		t.Fatal(err)
	}
	if dgst == st.ImageDigest {
		t.Fatalf("RegistryDigest = %s, the digest before the tag moved", dgst)
	}
	if got := mustExec(t, env, spec.Name, "cat", "/version"); got != "v1" {
		t.Fatalf("/version = %q before the upgrade: RegistryDigest pulled?", got)
	}

	missing := spec
	missing.PullPolicy = engine.PullMissing
	if st, err = e.Update(ctx, spec.Name, missing); err != nil || st.ImageDigest == dgst {
		t.Fatalf("update with pull_policy missing: %+v, %v; want the image on the host kept", st, err)
	}
	if st, err = e.Update(ctx, spec.Name, spec); err != nil || st.ImageDigest != dgst {
		t.Fatalf("update with pull_policy always: %+v, %v; want an upgrade to %s", st, err, dgst)
	}
	if got := mustExec(t, env, spec.Name, "cat", "/version"); got != "v2" {
		t.Fatalf("/version = %q after the tag moved, want v2", got)
	}

	never := engine.ContainerSpec{Name: "eng-never", Image: env.Registry(t) + "/pouchtest/moving:absent", Running: true,
		NetworkMode: engine.NetworkNone, PullPolicy: engine.PullNever}
	if _, err := e.Create(ctx, never); err == nil || !strings.Contains(err.Error(), `pull_policy is "never"`) {
		_ = e.Delete(ctx, never.Name)
		t.Fatalf("create of an image the host lacks with pull_policy never: %v", err)
	}
	if _, err := e.Inspect(ctx, never.Name); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("after a refused create: %v, want no container", err)
	}
}

func TestPinnedReference(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for ref, want := range map[string]string{
		"registry.example:5000/team/app:1.4": "registry.example:5000/team/app@" + d,
		"busybox":                            "docker.io/library/busybox@" + d,
		"app:1@" + d:                         "docker.io/library/app@" + d,
	} {
		if got, err := engine.PinnedReference(ref, d); err != nil || got != want {
			t.Errorf("PinnedReference(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	if _, err := engine.PinnedReference("app", "sha256:short"); err == nil {
		t.Error("a malformed digest was pinned")
	}
}
