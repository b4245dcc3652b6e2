// Command terraform-provider-pouch is a Terraform provider that runs
// containers on containerd and upgrades them in place.
package main

import (
	"context"
	"flag"
	"log"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/pouch/terraform-provider-pouch/internal/containerlog"
	"github.com/pouch/terraform-provider-pouch/internal/provider"
	"github.com/pouch/terraform-provider-pouch/internal/remote"
)

// version is set by the release build (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	// A containerd shim starts this binary as the log driver of the
	// containers' tasks (see internal/containerlog): serve the log and exit.
	containerlog.ServeIfLogger()
	// The provider starts this binary on a remote host, over SSH, as the
	// agent that runs the engine there (see internal/remote).
	remote.ServeIfAgent(version)

	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()

	if !debug {
		// In debug mode the logs are read from this process's output, not
		// through Terraform: leave their levels alone there.
		for name, level := range provider.PluginLogDefaults(os.Getenv) {
			if err := os.Setenv(name, level); err != nil {
				log.Fatal(err.Error())
			}
		}
	}

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address:         "registry.terraform.io/pouch/pouch",
		Debug:           debug,
		ProtocolVersion: 6,
	})
	if err != nil {
		log.Fatal(err.Error())
	}
}
