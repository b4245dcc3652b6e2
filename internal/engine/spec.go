package engine

import "time"

// NetworkMode says which network namespace a container's task joins.
type NetworkMode string

const (
	// NetworkBridge gives the container a persistent network namespace of
	// its own, attached with CNI to the engine's bridge network: the same
	// IP and MAC for the container's whole life.
	NetworkBridge NetworkMode = "bridge"
	// NetworkHost shares the host's network namespace.
	NetworkHost NetworkMode = "host"
	// NetworkNone gives the task a persistent namespace with only loopback.
	NetworkNone NetworkMode = "none"
)

// MountType is the kind of a Mount.
type MountType string

const (
	// MountVolume mounts a named volume (see Engine.CreateVolume).
	MountVolume MountType = "volume"
	// MountBind mounts a host path.
	MountBind MountType = "bind"
	// MountTmpfs mounts a fresh tmpfs.
	MountTmpfs MountType = "tmpfs"
)

// Mount is a filesystem mounted into the container at Target.
type Mount struct {
	Type MountType `json:"type"`
	// Source is the volume name (volume) or the absolute host path (bind);
	// empty for tmpfs.
	Source   string `json:"source,omitempty"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// TmpfsSizeMiB caps a tmpfs; 0 is the kernel's default (half of RAM).
	TmpfsSizeMiB int64 `json:"tmpfs_size_mib,omitempty"`
}

// PortMapping publishes a container port on the host (bridge network only).
type PortMapping struct {
	// HostIP is the host address to listen on; empty means all addresses.
	HostIP        string `json:"host_ip,omitempty"`
	HostPort      int    `json:"host_port"`
	ContainerPort int    `json:"container_port"`
	// Protocol is "tcp" (the default) or "udp".
	Protocol string `json:"protocol,omitempty"`
}

// RestartPolicy is what containerd's restart monitor does when the task
// exits.
type RestartPolicy string

const (
	RestartNo            RestartPolicy = "no"
	RestartAlways        RestartPolicy = "always"
	RestartUnlessStopped RestartPolicy = "unless-stopped"
)

// Security holds the task's privileges. The zero value is the safe default:
// containerd's default capabilities and seccomp profile, no new privileges.
type Security struct {
	Privileged     bool     `json:"privileged,omitempty"`
	ReadOnlyRootfs bool     `json:"read_only_rootfs,omitempty"`
	CapAdd         []string `json:"cap_add,omitempty"`
	CapDrop        []string `json:"cap_drop,omitempty"`
	// SeccompProfile is "default" (or empty), "unconfined", or the absolute
	// path of a profile in Docker's JSON format.
	SeccompProfile string `json:"seccomp_profile,omitempty"`
	// AllowNewPrivileges turns off no_new_privileges.
	AllowNewPrivileges bool `json:"allow_new_privileges,omitempty"`
}

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
	// PullPolicy says when the image is pulled: PullMissing (the default,
	// also when empty), PullAlways, PullNever.
	PullPolicy PullPolicy `json:"pull_policy,omitempty"`

	Entrypoint []string          `json:"entrypoint"`
	Command    []string          `json:"command"`
	Env        map[string]string `json:"env,omitempty"`
	// SecretEnv are environment variables whose values are secret: they
	// reach the task's environment but are never recorded by pouch, read
	// back or logged. They are applied when the container is created and
	// when SecretEnvVersion changes; other updates keep the values the
	// task has.
	SecretEnv map[string]string `json:"-"`
	// SecretEnvVersion is the user's version of SecretEnv; a change
	// restarts the task with the new values.
	SecretEnvVersion string            `json:"secret_env_version,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	WorkingDir       string            `json:"working_dir,omitempty"`
	User             string            `json:"user,omitempty"`

	// Hostname is the task's host name; empty means the container's name.
	Hostname string `json:"hostname,omitempty"`
	// NetworkMode is bridge, host or none; empty means bridge.
	NetworkMode NetworkMode `json:"network_mode,omitempty"`
	// IPv4Address is a fixed address on the bridge network (in its
	// subnet); empty lets the network choose one, which the container then
	// keeps.
	IPv4Address string        `json:"ipv4_address,omitempty"`
	Ports       []PortMapping `json:"ports,omitempty"`
	Mounts      []Mount       `json:"mounts,omitempty"`
	// KeepImageVolumes keeps the anonymous volumes made for the image's
	// VOLUMEs when the container is deleted.
	KeepImageVolumes bool          `json:"keep_image_volumes,omitempty"`
	Restart          RestartPolicy `json:"restart,omitempty"`
	// StopSignal is the signal that asks the process to stop, e.g.
	// "SIGTERM" (the default when empty) or "SIGQUIT".
	StopSignal string   `json:"stop_signal,omitempty"`
	Security   Security `json:"security"`
	// Healthcheck, when set, must pass after an upgrade's new task starts
	// (the Verify phase), or the upgrade rolls back.
	Healthcheck *Healthcheck  `json:"healthcheck,omitempty"`
	Upgrade     UpgradePolicy `json:"upgrade"`
	// Resources are the task's cgroup limits. A change to them alone is
	// applied to the running task in place.
	Resources Resources `json:"resources"`
	// Running is the desired task state: true keeps a task running.
	Running bool `json:"-"`
	// StopTimeout is how long a stop waits after SIGTERM before SIGKILL.
	// Zero kills at once.
	StopTimeout time.Duration `json:"stop_timeout,omitempty"`
	// Log is how the task's output is kept; zero fields are the defaults.
	Log LogOptions `json:"log"`

	// Ulimits are the task's process limits (setrlimit), by name; the
	// runtime's defaults (nofile 1024) apply to the others.
	Ulimits []Ulimit `json:"ulimits,omitempty"`
	// ShmSizeMiB is the size of /dev/shm; 0 is the runtime's 64 MiB.
	ShmSizeMiB int64 `json:"shm_size_mib,omitempty"`
	// Sysctls are kernel parameters of the container's own namespaces
	// (net.*, the IPC ones): see CheckSysctl.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// Devices are host device nodes made in the container.
	Devices []Device `json:"devices,omitempty"`
	// GroupAdd are supplementary groups of the process, by gid or by a
	// name of the image's /etc/group.
	GroupAdd []string `json:"group_add,omitempty"`
	// OOMScoreAdj is the process's oom_score_adj (-1000 to 1000); 0 is
	// the kernel's default.
	OOMScoreAdj int `json:"oom_score_adj,omitempty"`
	// DNS, when any of it is set, gives the container a resolv.conf of
	// its own instead of the host's.
	DNS DNSConfig `json:"dns,omitzero"`
	// ExtraHosts are host names and their addresses added to the
	// container's /etc/hosts (the host's, otherwise).
	ExtraHosts map[string]string `json:"extra_hosts,omitempty"`
	// Init runs a minimal init as PID 1 (the host's tini, bind-mounted
	// read-only), which forwards signals to the process and reaps the
	// zombies it leaves.
	Init bool `json:"init,omitempty"`
	// Uploads are files written for the container before its task starts
	// (configuration files), each mounted read-only at its path.
	Uploads []Upload `json:"uploads,omitempty"`
}

// Upload is a file pouch writes for a container: under the container's
// directory in the data root, named for its content, and bind-mounted
// read-only at File. Its content is never recorded (it may be secret):
// the record keeps its SHA-256.
type Upload struct {
	// File is the absolute path in the container.
	File string `json:"file"`
	// Mode is the file's permission bits, such as 0o640; 0 is 0o644. The
	// file belongs to root.
	Mode uint32 `json:"mode,omitempty"`
	// SHA256 is the hex SHA-256 of Content, which the engine fills in.
	SHA256 string `json:"sha256,omitempty"`
	// Content is the file's bytes; nil in specs read back, where the
	// file written before serves.
	Content []byte `json:"-"`
}

// DNSConfig is a container's own resolv.conf: each part left empty is the
// host's.
type DNSConfig struct {
	// Servers are the name servers' IP addresses (at most 3, the
	// resolver's limit).
	Servers []string `json:"servers,omitempty"`
	// Search are the search domains.
	Search []string `json:"search,omitempty"`
	// Options are resolver options, such as "ndots:2" or "rotate".
	Options []string `json:"options,omitempty"`
}

// IsZero reports whether d asks for nothing: the host's resolv.conf.
func (d DNSConfig) IsZero() bool {
	return len(d.Servers) == 0 && len(d.Search) == 0 && len(d.Options) == 0
}

// Ulimit is one process limit of the task, such as nofile or memlock.
type Ulimit struct {
	// Name is the limit's name without RLIMIT_, in lower case: "nofile".
	Name string `json:"name"`
	// Soft and Hard are the limits; -1 is unlimited.
	Soft int64 `json:"soft"`
	Hard int64 `json:"hard"`
}

// Device is a host device node made in the container.
type Device struct {
	// HostPath is the device node on the host, e.g. "/dev/fuse".
	HostPath string `json:"host_path"`
	// ContainerPath is where it is made in the container; "" is HostPath.
	ContainerPath string `json:"container_path,omitempty"`
	// Permissions are the cgroup's access rights: some of "r" (read), "w"
	// (write) and "m" (mknod); "" is "rwm".
	Permissions string `json:"permissions,omitempty"`
}

// LogOptions bound a container's log: it rotates at MaxSizeMiB and keeps
// MaxFiles files, the current one included.
type LogOptions struct {
	MaxSizeMiB int `json:"max_size_mib,omitempty"`
	MaxFiles   int `json:"max_files,omitempty"`
}

// withDefaults fills in the defaults of zero fields.
func (l LogOptions) withDefaults() LogOptions {
	if l.MaxSizeMiB == 0 {
		l.MaxSizeMiB = DefaultLogMaxSizeMiB
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = DefaultLogMaxFiles
	}
	return l
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
	// MemoryReservationMiB is the soft memory limit in MiB, which the
	// kernel enforces when memory is short.
	MemoryReservationMiB int64 `json:"memory_reservation_mib,omitempty"`
	// CpusetCPUs and CpusetMems pin the task to CPUs and memory nodes,
	// in the kernel's list format: "0-2,4".
	CpusetCPUs string `json:"cpuset_cpus,omitempty"`
	CpusetMems string `json:"cpuset_mems,omitempty"`
}

// Healthcheck is a command run in the container to tell whether it is
// healthy. The upgrade's Verify phase waits StartPeriod, then runs Command
// (exit code 0 is healthy) up to Retries times, Interval apart, each run
// bounded by Timeout.
type Healthcheck struct {
	Command     []string      `json:"command"`
	Interval    time.Duration `json:"interval,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"`
	Retries     int           `json:"retries,omitempty"`
	StartPeriod time.Duration `json:"start_period,omitempty"`
}

// UpgradePolicy tunes how an image upgrade is verified and what it keeps.
type UpgradePolicy struct {
	// VerifySeconds is the start window: after every start of a task
	// (create, upgrade, restart in place, start of a stopped container),
	// the task must still run that many seconds later, or the change fails
	// and is undone. Zero means no window: the process may exit (a one-shot
	// container), and an exit with code 0 is not drift. Callers with no
	// opinion use DefaultVerifySeconds.
	VerifySeconds int `json:"verify_seconds"`
	// NoRollback leaves a new container that failed to start or verify in
	// place, for debugging, instead of rolling back.
	NoRollback bool `json:"no_rollback,omitempty"`
	// KeepRevisions keeps the read-write snapshots of that many previous
	// images; going back to one of those images reuses its snapshot, with
	// its files.
	KeepRevisions int `json:"keep_revisions,omitempty"`
	// KeepRootfsChanges carries the files changed in the old read-write
	// layer onto the new image's snapshot. Off by default: an upgrade
	// starts from the new image's files, as in Pouch.
	KeepRootfsChanges bool `json:"keep_rootfs_changes,omitempty"`
}

// Defaults for callers that have no opinion; the provider's defaults are
// these.
const (
	// DefaultStopTimeout is the usual grace period between SIGTERM and
	// SIGKILL.
	DefaultStopTimeout = 10 * time.Second
	// DefaultVerifySeconds is the start window: long enough to catch a
	// process that exits at once (a bad argument, a missing file, a config
	// it cannot parse), short enough not to slow every apply down.
	DefaultVerifySeconds = 1
	// DefaultLogMaxSizeMiB and DefaultLogMaxFiles bound a container's log
	// to 100 MiB, as Docker's "local" log driver does.
	DefaultLogMaxSizeMiB = 20
	DefaultLogMaxFiles   = 5
	// DefaultStopSignal asks a process to stop.
	DefaultStopSignal = "SIGTERM"
)

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
	// IPAddress and MACAddress are the container's on the bridge network;
	// empty for host and none.
	IPAddress  string
	MACAddress string
	// LogPath is the file that receives the task's stdout and stderr.
	LogPath string
	// ImageVolumes are the anonymous volumes made for the image's VOLUMEs.
	ImageVolumes []ImageVolume
}

// ImageVolume is an anonymous volume created for a VOLUME the image
// declares and no mount covers.
type ImageVolume struct {
	Target string `json:"target"` // the path in the container
	Path   string `json:"path"`   // the directory on the host
}

// VolumeSpec is a named volume as the user asked for it.
type VolumeSpec struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Volume is a named volume as it is on the host.
type Volume struct {
	Name   string
	Labels map[string]string
	// Mountpoint is the host directory holding the volume's data.
	Mountpoint string
}

// Process is the effective process configuration of a container.
type Process struct {
	Args       []string
	Env        []string
	WorkingDir string
	User       string
}
