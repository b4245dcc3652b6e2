package engine

import (
	"context"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// buildRuntimeSpec generates the OCI runtime spec of a container whose root
// filesystem is the snapshot snapshotKey. The user and group are looked up in
// that snapshot's /etc/passwd and /etc/group.
func (e *Engine) buildRuntimeSpec(ctx context.Context, client *containerd.Client, spec ContainerSpec, proc Process, snapshotKey string) (*oci.Spec, error) {
	opts := []oci.SpecOpts{
		oci.WithProcessArgs(proc.Args...),
		oci.WithEnv(proc.Env),
		oci.WithProcessCwd(proc.WorkingDir),
		oci.WithHostname(firstNonEmpty(spec.Hostname, spec.Name)),
		oci.WithNoNewPrivileges,
	}
	opts = append(opts, resourceOpts(spec.Resources)...)
	if proc.User != "" {
		opts = append(opts, oci.WithUser(proc.User), oci.WithAdditionalGIDs(proc.User))
	}
	switch spec.NetworkMode {
	case NetworkHost, "":
		opts = append(opts,
			oci.WithHostNamespace(specs.NetworkNamespace),
			oci.WithHostHostsFile,
			oci.WithHostResolvconf)
	case NetworkNone:
		// The default spec gives the task a new network namespace with
		// only a loopback interface.
	default:
		return nil, fmt.Errorf("unsupported network mode %q", spec.NetworkMode)
	}
	record := &containers.Container{ID: spec.Name, Snapshotter: e.opts.Snapshotter, SnapshotKey: snapshotKey}
	s, err := oci.GenerateSpec(ctx, client, record, opts...)
	if err != nil {
		return nil, fmt.Errorf("build runtime spec: %w", err)
	}
	return s, nil
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
	return opts
}

// liveResources is the cgroup update that takes a running task to r. A
// limit that r no longer sets is lifted explicitly: an update leaves alone
// what it does not name.
func liveResources(r Resources) *specs.LinuxResources {
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
	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &memory},
		CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period, Shares: &shares},
		Pids:   &specs.LinuxPids{Limit: &pids},
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
