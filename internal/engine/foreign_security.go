package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrUnrepresentable means a container that pouch did not create has
// settings that pouch cannot represent: managing it would change them at
// its next restart (often weakening its isolation), so it is refused.
var ErrUnrepresentable = errors.New("container has settings pouch cannot represent")

// deriveSecurity reads the security settings of a foreign container's
// runtime spec s as pouch represents them, and lists what it cannot
// represent: whatever pouch's own runtime spec for the derived settings
// would lose or loosen. Settings pouch would make stricter (a path it
// masks that s does not) are not listed: managing the container tightens
// them.
func deriveSecurity(ctx context.Context, id string, s *oci.Spec) (Security, []string, error) {
	base, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: id})
	if err != nil {
		return Security{}, nil, fmt.Errorf("build the default runtime spec: %w", err)
	}
	var sec Security
	var lost []string
	p := s.Process
	if p == nil {
		p = &specs.Process{}
	}
	linux := s.Linux
	if linux == nil {
		linux = &specs.Linux{}
	}
	sec.ReadOnlyRootfs = s.Root != nil && s.Root.Readonly
	sec.AllowNewPrivileges = !p.NoNewPrivileges

	// Capabilities: pouch gives a task one set, as bounding, effective and
	// permitted, and neither inheritable nor ambient ones.
	caps := p.Capabilities
	if caps == nil {
		caps = &specs.LinuxCapabilities{}
	}
	bounding := sortedCaps(caps.Bounding)
	if !slices.Equal(sortedCaps(caps.Effective), bounding) || !slices.Equal(sortedCaps(caps.Permitted), bounding) {
		lost = append(lost, "capabilities that differ between the bounding, effective and permitted sets")
	}
	if len(caps.Inheritable) > 0 || len(caps.Ambient) > 0 {
		lost = append(lost, "inheritable or ambient capabilities")
	}
	current, err := hostCapabilities()
	if err != nil {
		return Security{}, nil, err
	}
	hasAll := !slices.ContainsFunc(current, func(c string) bool { return !slices.Contains(bounding, c) })
	sec.Privileged = hasAll && linux.Seccomp == nil && len(linux.MaskedPaths) == 0 && len(linux.ReadonlyPaths) == 0 &&
		allDevicesAllowed(linux.Resources) && sysfsWritable(s.Mounts)
	if !sec.Privileged {
		defaults := sortedCaps(base.Process.Capabilities.Bounding)
		if hasAll {
			sec.CapAdd = []string{CapabilityAll}
		} else {
			sec.CapAdd = shortCaps(difference(bounding, defaults))
		}
		sec.CapDrop = shortCaps(difference(defaults, bounding))
	}

	switch {
	case sec.Privileged:
	case linux.Seccomp == nil:
		sec.SeccompProfile = SeccompUnconfined
	case sameJSON(linux.Seccomp, seccomp.DefaultProfile(s)):
		sec.SeccompProfile = SeccompDefault
	default:
		lost = append(lost, "a seccomp profile other than containerd's default (write it to a file and set "+
			"seccomp_profile to its path: pouch does not read a profile back from a container)")
	}
	if p.ApparmorProfile != "" {
		lost = append(lost, fmt.Sprintf("the AppArmor profile %q", p.ApparmorProfile))
	}
	if p.SelinuxLabel != "" || linux.MountLabel != "" {
		lost = append(lost, "an SELinux label")
	}
	lost = append(lost, lostNamespaces(linux.Namespaces)...)
	if len(linux.UIDMappings) > 0 || len(linux.GIDMappings) > 0 {
		lost = append(lost, "user ID mappings")
	}
	if !sec.Privileged {
		if extra := difference(linux.MaskedPaths, base.Linux.MaskedPaths); len(extra) > 0 {
			lost = append(lost, "masked paths pouch does not mask: "+strings.Join(extra, ", "))
		}
		if extra := difference(linux.ReadonlyPaths, base.Linux.ReadonlyPaths); len(extra) > 0 {
			lost = append(lost, "read-only paths pouch does not make read-only: "+strings.Join(extra, ", "))
		}
		if len(linux.Devices) > 0 {
			lost = append(lost, "device nodes")
		}
		if r := linux.Resources; r != nil && !sameJSON(r.Devices, base.Linux.Resources.Devices) {
			lost = append(lost, "device cgroup rules")
		}
		if sysfsWritable(s.Mounts) {
			lost = append(lost, "a writable /sys")
		}
	}
	if len(linux.Sysctl) > 0 {
		lost = append(lost, "sysctls")
	}
	if !sameJSON(p.Rlimits, base.Process.Rlimits) {
		lost = append(lost, "resource limits (rlimits) other than containerd's default")
	}
	if s.Hooks != nil && !sameJSON(s.Hooks, &specs.Hooks{}) {
		lost = append(lost, "OCI hooks")
	}
	return sec, lost, nil
}

// lostNamespaces lists the isolation pouch's spec would change: a
// namespace shared with the host or another process (pouch gives every
// task its own PID, IPC, UTS and mount namespaces), or one pouch does not
// create.
func lostNamespaces(nss []specs.LinuxNamespace) []string {
	var lost []string
	have := map[specs.LinuxNamespaceType]specs.LinuxNamespace{}
	for _, ns := range nss {
		have[ns.Type] = ns
	}
	for _, t := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace} {
		ns, ok := have[t]
		switch {
		case !ok:
			lost = append(lost, fmt.Sprintf("the host's %s namespace", t))
		case ns.Path != "":
			lost = append(lost, fmt.Sprintf("the %s namespace of another process (%s)", t, ns.Path))
		}
	}
	for _, t := range []specs.LinuxNamespaceType{specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace} {
		if _, ok := have[t]; ok {
			lost = append(lost, fmt.Sprintf("a %s namespace", t))
		}
	}
	return lost
}

// allDevicesAllowed reports whether the device cgroup lets the task use
// every device, as privileged containers do.
func allDevicesAllowed(r *specs.LinuxResources) bool {
	if r == nil {
		return false
	}
	for _, d := range r.Devices {
		if d.Allow && (d.Type == "" || d.Type == "a") && d.Major == nil && d.Minor == nil && d.Access == "rwm" {
			return true
		}
	}
	return false
}

// sysfsWritable reports whether /sys is mounted read-write.
func sysfsWritable(mounts []specs.Mount) bool {
	for _, m := range mounts {
		if m.Destination == "/sys" && m.Type == "sysfs" {
			return !slices.Contains(m.Options, "ro")
		}
	}
	return false
}

// sortedCaps returns capability names in the spec's form, sorted.
func sortedCaps(caps []string) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = capabilityName(c)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// shortCaps writes capability names without the CAP_ prefix, as the
// documentation's examples do; nil when there are none.
func shortCaps(caps []string) []string {
	if len(caps) == 0 {
		return nil
	}
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = strings.TrimPrefix(c, "CAP_")
	}
	return out
}

// difference lists the elements of a that b does not have, in a's order.
func difference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// sameJSON compares two values by their JSON encoding.
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}
