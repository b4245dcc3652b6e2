package engine

import "time"

// NetworkMode says which network namespace a container's task joins.
type NetworkMode string

const (
	// NetworkHost shares the host's network namespace.
	NetworkHost NetworkMode = "host"
	// NetworkNone gives the task a private namespace with only loopback.
	NetworkNone NetworkMode = "none"
)

// ContainerSpec is what the user asked for: the desired container, without
// anything the image provides. A nil slice or an empty string means "not set
// by the user": the image's default applies. An empty, non-nil slice is an
// explicit empty value.
type ContainerSpec struct {
	// Name is the container ID in containerd.
	Name string `json:"name"`
	// Image is an image reference as the user wrote it, e.g. "busybox:1.36"
	// or "registry.example:5000/app@sha256:...".
	Image string `json:"image"`

	Entrypoint []string          `json:"entrypoint"`
	Command    []string          `json:"command"`
	Env        map[string]string `json:"env,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	WorkingDir string            `json:"working_dir,omitempty"`
	User       string            `json:"user,omitempty"`

	// Hostname is the task's host name; empty means the container's name.
	Hostname    string      `json:"hostname,omitempty"`
	NetworkMode NetworkMode `json:"network_mode,omitempty"`
	// Resources are the task's cgroup limits. A change to them alone is
	// applied to the running task in place.
	Resources Resources `json:"resources"`
	// Running is the desired task state: true keeps a task running.
	Running bool `json:"-"`
	// StopTimeout is how long a stop waits after SIGTERM before SIGKILL.
	// Zero kills at once.
	StopTimeout time.Duration `json:"stop_timeout,omitempty"`
}

// Resources are cgroup limits; a zero field means no limit (or the
// runtime's default).
type Resources struct {
	// MemoryMiB is the memory limit in MiB.
	MemoryMiB int64 `json:"memory_mib,omitempty"`
	// MemorySwapMiB is the limit of memory plus swap in MiB; -1 is unlimited
	// swap. It needs MemoryMiB.
	MemorySwapMiB int64 `json:"memory_swap_mib,omitempty"`
	// CPUs is a CFS quota in CPUs, e.g. 0.5.
	CPUs float64 `json:"cpus,omitempty"`
	// CPUShares is the relative CPU weight (cgroup cpu.shares).
	CPUShares int64 `json:"cpu_shares,omitempty"`
	// PidsLimit caps the number of processes.
	PidsLimit int64 `json:"pids_limit,omitempty"`
}

// DefaultStopTimeout is the usual grace period between SIGTERM and SIGKILL,
// for callers that have no opinion.
const DefaultStopTimeout = 10 * time.Second

// Status is the state of a container's task.
type Status string

const (
	StatusRunning Status = "running"
	StatusStopped Status = "stopped"
	StatusCreated Status = "created"
	StatusPaused  Status = "paused"
	StatusUnknown Status = "unknown"
)

// State is what a container is, as read back from containerd.
type State struct {
	ID string
	// Spec is what the user asked for, as recorded on the container at
	// create/update time (Running reflects the live task, not the record).
	Spec ContainerSpec
	// ImageDigest is the content digest of the image's target (manifest or
	// index) the container runs.
	ImageDigest string
	Status      Status
	// Process is the effective process the task runs: image defaults merged
	// with the user's values.
	Process Process
}

// Process is the effective process configuration of a container.
type Process struct {
	Args       []string
	Env        []string
	WorkingDir string
	User       string
}
