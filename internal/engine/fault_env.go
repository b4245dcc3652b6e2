//go:build pouchfault

package engine

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// In a build with the pouchfault tag (tests only; never a release), the
// environment variable POUCH_ENGINE_FAULT=<phase>:<kill|error> makes every
// upgrade end that phase by killing the process with SIGKILL, or by
// failing. Acceptance tests use it to crash the provider under terraform.
func init() {
	phase, action, ok := strings.Cut(os.Getenv("POUCH_ENGINE_FAULT"), ":")
	if !ok {
		return
	}
	defaultFaultHook = func(p Phase) error {
		if string(p) != phase {
			return nil
		}
		if action == "kill" {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		return fmt.Errorf("injected fault at %s", p)
	}
}
