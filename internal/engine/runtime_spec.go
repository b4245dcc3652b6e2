package engine

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runtimeInputs is everything a runtime spec is generated from.
type runtimeInputs struct {
	spec        ContainerSpec
	proc        Process
	snapshotKey string        // the root filesystem; its /etc/passwd resolves the user
	netnsPath   string        // the persistent network namespace; "" for host networking
	mounts      []specs.Mount // volumes, binds, tmpfs and image volumes
	initBinary  string        // the host's init, for spec.Init
	files       []ownFile     // /etc/resolv.conf and /etc/hosts (the host's, or the container's own), uploads
}

// buildRuntimeSpec generates the OCI runtime spec of a container. It is a
// pure function of its inputs (and the rootfs's user database), so that two
// generations of an unchanged container compare equal.
func (e *Engine) buildRuntimeSpec(ctx context.Context, client *containerd.Client, in runtimeInputs) (*oci.Spec, error) {
	spec, proc := in.spec, in.proc
	opts := []oci.SpecOpts{
		oci.WithProcessArgs(proc.Args...),
		oci.WithEnv(proc.Env),
		oci.WithProcessCwd(proc.WorkingDir),
		oci.WithHostname(firstNonEmpty(spec.Hostname, spec.Name)),
	}
	var uploads []ownFile
	for _, f := range in.files {
		switch {
		case f.Target != "/etc/hosts" && f.Target != "/etc/resolv.conf":
			uploads = append(uploads, f) // after the mounts, which would hide them
		case f.Own:
			opts = append(opts, oci.WithMounts(ownMounts([]ownFile{f})))
		case f.Target == "/etc/hosts":
			opts = append(opts, oci.WithHostHostsFile)
		default:
			opts = append(opts, oci.WithHostResolvconf)
		}
	}
	if proc.User != "" {
		opts = append(opts, oci.WithUser(proc.User), oci.WithAdditionalGIDs(proc.User))
	}
	if in.netnsPath == "" {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
	} else {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.netnsPath}))
	}
	if len(in.mounts) > 0 {
		opts = append(opts, oci.WithMounts(in.mounts))
	}
	if len(uploads) > 0 {
		opts = append(opts, oci.WithMounts(ownMounts(uploads)))
	}
	opts = append(opts, resourceOpts(spec.Resources)...)
	opts = append(opts, serviceOpts(spec)...)
	if spec.Init {
		opts = append(opts, withInit(in.initBinary))
	}
	sec, err := securityOpts(spec.Security)
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	record := &containers.Container{ID: spec.Name, Snapshotter: e.opts.Snapshotter, SnapshotKey: in.snapshotKey}
	s, err := oci.GenerateSpec(ctx, client, record, opts...)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, oci.ErrNoUsersFound) || errors.Is(err, oci.ErrNoGroupsFound) || strings.Contains(err.Error(), "unable to find group"):
		who := fmt.Sprintf("user %q", proc.User)
		if spec.User == "" {
			who = fmt.Sprintf("the image's USER %q", proc.User)
		}
		return nil, fmt.Errorf("%w: %s is not in the image's /etc/passwd (or its group not in /etc/group): "+
			"set user to a numeric uid[:gid], or to a user the image has (%v)", ErrInvalidSpec, who, err)
	}
	return nil, fmt.Errorf("build runtime spec: %w", err)
}

// securityOpts turns Security into spec options. The default is
// containerd's: its default capabilities, its default seccomp profile and
// no_new_privileges. Capabilities are dropped first, then added (Docker's
// order); ALL stands for every capability the host can give (see
// hostCapabilities).
func securityOpts(sec Security) ([]oci.SpecOpts, error) {
	var opts []oci.SpecOpts
	if sec.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	}
	if len(sec.CapDrop) > 0 || len(sec.CapAdd) > 0 {
		available, err := hostCapabilities()
		if err != nil {
			return nil, err
		}
		drop, err := capabilitySet(sec.CapDrop, available, "capabilities.drop")
		if err != nil {
			return nil, err
		}
		add, err := capabilitySet(sec.CapAdd, available, "capabilities.add")
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(sec.CapDrop, isCapabilityAll) {
			opts = append(opts, oci.WithCapabilities(nil))
		} else if len(drop) > 0 {
			opts = append(opts, oci.WithDroppedCapabilities(drop))
		}
		if len(add) > 0 {
			opts = append(opts, oci.WithAddedCapabilities(add))
		}
	}
	if sec.ReadOnlyRootfs {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if sec.AllowNewPrivileges {
		opts = append(opts, oci.WithNewPrivileges)
	} else {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	switch profile := sec.SeccompProfile; {
	case profile == "unconfined":
	case profile == "" || profile == "default":
		if !sec.Privileged {
			opts = append(opts, seccomp.WithDefaultProfile())
		}
	case filepath.IsAbs(profile):
		opts = append(opts, seccomp.WithProfile(profile))
	default:
		return nil, fmt.Errorf("%w: seccomp_profile %q: use \"default\", \"unconfined\" or an absolute path", ErrInvalidSpec, profile)
	}
	return opts, nil
}

func isCapabilityAll(c string) bool { return strings.EqualFold(c, CapabilityAll) }

// capabilitySet writes capability names as the runtime spec wants them
// (upper case, with the CAP_ prefix), ALL as every capability the host can
// give (see hostCapabilities), and refuses one it cannot: runc would fail
// to start the task, or leave the capability out without a word.
func capabilitySet(caps, available []string, field string) ([]string, error) {
	var out []string
	for i, c := range caps {
		if isCapabilityAll(c) {
			out = append(out, available...)
			continue
		}
		name := capabilityName(c)
		if !slices.Contains(available, name) {
			return nil, fmt.Errorf("%w: %s[%d] %s is not a capability this host can give (its kernel and "+
				"containerd have %d): remove it, or run on a host that has it", ErrInvalidSpec, field, i, name, len(available))
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// cfsPeriod is the CFS period (µs) that a CPU quota is expressed in.
const cfsPeriod = 100000

// resourceOpts turns Resources into spec options; unset limits add nothing.
func resourceOpts(r Resources) []oci.SpecOpts {
	var opts []oci.SpecOpts
	if r.MemoryMiB > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(r.MemoryMiB)<<20))
	}
	if r.MemorySwapMiB > 0 {
		opts = append(opts, oci.WithMemorySwap(r.MemorySwapMiB<<20))
	} else if r.MemorySwapMiB < 0 {
		opts = append(opts, oci.WithMemorySwap(-1))
	}
	if r.CPUs > 0 {
		opts = append(opts, oci.WithCPUCFS(int64(r.CPUs*cfsPeriod), cfsPeriod))
	}
	if r.CPUShares > 0 {
		opts = append(opts, oci.WithCPUShares(uint64(r.CPUShares)))
	}
	if r.PidsLimit > 0 {
		opts = append(opts, oci.WithPidsLimit(r.PidsLimit))
	}
	if r.MemoryReservationMiB > 0 {
		opts = append(opts, withMemoryReservation(r.MemoryReservationMiB<<20))
	}
	if r.CpusetCPUs != "" {
		opts = append(opts, oci.WithCPUs(r.CpusetCPUs))
	}
	if r.CpusetMems != "" {
		opts = append(opts, oci.WithCPUsMems(r.CpusetMems))
	}
	return opts
}

// liveResources is the cgroup update that takes a running task to r. A
// limit that r no longer sets is lifted explicitly: an update leaves alone
// what it does not name.
//
// A cpuset is written only when r or from (the limits the task has) sets
// one: lifting one is every online CPU and memory node again.
func liveResources(r, from Resources) *specs.LinuxResources {
	unlimited := int64(-1)
	memory := unlimited
	if r.MemoryMiB > 0 {
		memory = r.MemoryMiB << 20
	}
	quota := unlimited
	if r.CPUs > 0 {
		quota = int64(r.CPUs * cfsPeriod)
	}
	period := uint64(cfsPeriod)
	shares := uint64(1024)
	if r.CPUShares > 0 {
		shares = uint64(r.CPUShares)
	}
	pids := unlimited
	if r.PidsLimit > 0 {
		pids = r.PidsLimit
	}
	// (A soft memory limit is not lifted live: Classify restarts the task.)
	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &memory},
		CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period, Shares: &shares},
		Pids:   &specs.LinuxPids{Limit: &pids},
	}
	if r.CpusetCPUs != "" || from.CpusetCPUs != "" {
		res.CPU.Cpus = cmp.Or(r.CpusetCPUs, onlineList("/sys/devices/system/cpu/online"))
	}
	if r.CpusetMems != "" || from.CpusetMems != "" {
		res.CPU.Mems = cmp.Or(r.CpusetMems, onlineList("/sys/devices/system/node/online"))
	}
	if r.MemoryReservationMiB > 0 {
		reservation := r.MemoryReservationMiB << 20
		res.Memory.Reservation = &reservation
	}
	if r.MemorySwapMiB != 0 {
		swap := unlimited
		if r.MemorySwapMiB > 0 {
			swap = r.MemorySwapMiB << 20
		}
		res.Memory.Swap = &swap
	}
	return res
}

// specProcess decodes the process of a runtime spec in JSON, nil if it has
// none, without decoding the rest: the seccomp profile alone is most of a
// spec's bytes, and every refresh reads the process. The process comes
// second in the specs the runtime-spec package writes, so the rest is
// seldom even scanned.
func specProcess(data []byte) (*specs.Process, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("runtime spec is not a JSON object (%v)", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if key, _ := t.(string); key == "process" {
			var p *specs.Process
			if err := dec.Decode(&p); err != nil {
				return nil, fmt.Errorf("runtime spec process: %w", err)
			}
			return p, nil
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return nil, nil
}
