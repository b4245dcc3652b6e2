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
		oci.WithHostname(spec.Name),
		oci.WithNoNewPrivileges,
	}
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
