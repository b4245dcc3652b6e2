package engine

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The spec options of what a service asks of its process: limits,
// /dev/shm, sysctls, devices, groups and oom_score_adj. Each is a named
// option, as containerd's own are.

// serviceOpts are the spec options of spec's service settings; unset ones
// add nothing.
func serviceOpts(spec ContainerSpec) []oci.SpecOpts {
	var opts []oci.SpecOpts
	if len(spec.Ulimits) > 0 {
		opts = append(opts, withUlimits(spec.Ulimits))
	}
	if spec.ShmSizeMiB > 0 {
		opts = append(opts, oci.WithDevShmSize(spec.ShmSizeMiB<<10))
	}
	if len(spec.Sysctls) > 0 {
		opts = append(opts, withSysctls(spec.Sysctls))
	}
	for _, d := range spec.Devices {
		perms := d.Permissions
		if perms == "" {
			perms = "rwm"
		}
		opts = append(opts, oci.WithDevices(d.HostPath, d.ContainerPath, perms))
	}
	if len(spec.GroupAdd) > 0 {
		opts = append(opts, oci.WithAppendAdditionalGroups(spec.GroupAdd...))
	}
	if spec.OOMScoreAdj != 0 {
		opts = append(opts, withOOMScoreAdj(spec.OOMScoreAdj))
	}
	return opts
}

// withUlimits sets the process's limits, replacing the runtime's default
// of the same name.
func withUlimits(us []Ulimit) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		for _, u := range us {
			limit := &specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(u.Name), Soft: rlimit(u.Soft), Hard: rlimit(u.Hard)}
			if err := oci.WithRlimit(limit)(ctx, client, c, s); err != nil {
				return err
			}
		}
		return nil
	}
}

// rlimit is a limit in setrlimit's terms: -1 is RLIM_INFINITY.
func rlimit(v int64) uint64 {
	if v < 0 {
		return math.MaxUint64
	}
	return uint64(v)
}

// withSysctls sets kernel parameters of the container's namespaces.
func withSysctls(sysctls map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		for k, v := range sysctls {
			s.Linux.Sysctl[k] = v
		}
		return nil
	}
}

// withOOMScoreAdj sets the process's oom_score_adj.
func withOOMScoreAdj(score int) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.OOMScoreAdj = &score
		return nil
	}
}

// withMemoryReservation sets the soft memory limit, in bytes.
func withMemoryReservation(bytes int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		if s.Linux.Resources.Memory == nil {
			s.Linux.Resources.Memory = &specs.LinuxMemory{}
		}
		s.Linux.Resources.Memory.Reservation = &bytes
		return nil
	}
}

// onlineList is the kernel's list of the host's online CPUs or memory
// nodes (file /sys/devices/system/cpu/online or node/online): what a task
// whose cpuset is lifted may use again.
func onlineList(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// InitTarget is where the init of a container with Init is mounted, and
// what its task runs first.
const InitTarget = "/sbin/pouch-init"

// InitBinaries are the static init binaries a host may have, in the order
// they are looked for: Debian's tini package's, then Docker's.
var InitBinaries = []string{"/usr/bin/tini-static", "/usr/libexec/docker/docker-init", "/usr/bin/docker-init"}

// initBinary is the host's init binary for containers with Init.
func (e *Engine) initBinary() (string, error) {
	for _, p := range InitBinaries {
		if ok, err := e.host.Exists(p); err == nil && ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: init needs a static init binary on the containerd host, and it has none of %s: "+
		"install Debian's tini package there (apt-get install tini)", ErrInvalidSpec, strings.Join(InitBinaries, ", "))
}

// withInit runs the process under the init at binary, mounted read-only
// at InitTarget: "InitTarget -- args...".
func withInit(binary string) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.Args = append([]string{InitTarget, "--"}, s.Process.Args...)
		return oci.WithMounts([]specs.Mount{{Type: "bind", Source: binary, Destination: InitTarget,
			Options: []string{"rbind", "rprivate", "ro"}}})(ctx, client, c, s)
	}
}

// withoutInit is args without the init that withInit put first.
func withoutInit(args []string) []string {
	if len(args) >= 2 && args[0] == InitTarget && args[1] == "--" {
		return args[2:]
	}
	return args
}
