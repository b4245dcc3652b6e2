// Package internal_test holds the test of the boundaries between the
// project's packages, which their documentation states: the engine knows
// nothing of Terraform, and the provider knows nothing of containerd but
// what the engine's API gives it.
package internal_test

import (
	"os/exec"
	"strings"
	"testing"
)

// goList runs `go list` with a template over packages.
func goList(t *testing.T, template string, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-f", template}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

func TestPackageBoundaries(t *testing.T) {
	const terraform = "github.com/hashicorp/terraform-plugin-"
	// Everything the engine is built from, its dependencies' dependencies
	// included, is free of Terraform: the engine runs where Terraform does
	// not (a remote agent) and must not grow a dependency on it.
	for _, dep := range goList(t, "{{.ImportPath}}", "-deps", "./engine/...", "./containerlog/...", "./remote/...") {
		if strings.HasPrefix(dep, terraform) {
			t.Errorf("the engine depends on %s", dep)
		}
	}
	// The provider speaks to containerd only through the engine.
	for _, imp := range goList(t, `{{join .Imports " "}}`, "./provider/...") {
		if strings.HasPrefix(imp, "github.com/containerd/") || strings.HasSuffix(imp, "/internal/engine/host") {
			t.Errorf("the provider imports %s: go through the engine's API", imp)
		}
	}
}
