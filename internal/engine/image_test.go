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
