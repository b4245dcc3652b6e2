package engine_test

import (
	"context"
	"testing"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// BenchmarkInspect measures what every refresh of a container costs: run
// with `go test ./internal/engine -run '^$' -bench Inspect`.
func BenchmarkInspect(b *testing.B) {
	env := testenv.Get(b)
	e := mustNew(b, envOptions(env))
	env.ImportImage(b, versionImage("bench", "v1"))
	ctx := context.Background()
	spec := engine.ContainerSpec{Name: "eng-bench-inspect", Image: "pouchtest/bench:v1", Running: true, NetworkMode: engine.NetworkNone}
	if _, err := e.Create(ctx, spec); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = e.Delete(ctx, spec.Name) }()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Inspect(ctx, spec.Name); err != nil {
			b.Fatal(err)
		}
	}
}
