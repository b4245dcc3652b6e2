//go:build tools

// Package tools pins the versions of the Go programs the build uses, so that
// `go run` and `go generate` work offline from the module cache.
package tools

import (
	// Documentation generation.
	_ "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs"
	// Static analysis (make lint).
	_ "honnef.co/go/tools/cmd/staticcheck"
)

// Format the examples and generate the provider documentation in docs/ from
// templates/ and examples/. Run `make docs`, which puts terraform on PATH (the
// generator needs it to read the provider schema) and works offline.
//go:generate terraform fmt -recursive ../examples/
//go:generate go run github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs generate --provider-dir .. --provider-name pouch
