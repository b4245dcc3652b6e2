package engine

import (
	"reflect"
)

// Change is what an update will do to a running container.
type Change string

const (
	// ChangeNone: nothing reaches the container.
	ChangeNone Change = "none"
	// ChangeSettings: settings the task does not see (labels, stop and
	// restart settings, upgrade policy); no restart.
	ChangeSettings Change = "settings"
	// ChangeStartStop: the task is started or stopped, nothing else.
	ChangeStartStop Change = "start-stop"
	// ChangeResize: cgroup limits only; applied to the running task.
	ChangeResize Change = "resize"
	// ChangeRestart: the task restarts on the same read-write snapshot.
	ChangeRestart Change = "restart"
	// ChangeImage: an image upgrade, through every phase of Update.
	ChangeImage Change = "image"
)

// Classify tells what updating a container from old to next will do, as
// far as the specs tell: the same tag may point at a new digest, which only
// Update finds out. It is the decision Update makes (image references are
// compared as Update resolves them: "busybox" is
// "docker.io/library/busybox:latest"), so that the plan says what the
// apply does.
func Classify(old, next ContainerSpec) Change {
	if !SameImage(old.Image, next.Image) {
		return ChangeImage
	}
	process := func(s ContainerSpec) ContainerSpec {
		return ContainerSpec{
			Entrypoint: s.Entrypoint, Command: s.Command, Env: s.Env, WorkingDir: s.WorkingDir, User: s.User,
			Hostname: s.Hostname, NetworkMode: networkMode(s), IPv4Address: s.IPv4Address, Ports: s.Ports, Mounts: s.Mounts, Security: s.Security,
			SecretEnvVersion: s.SecretEnvVersion, Log: s.Log.withDefaults(),
			Ulimits: s.Ulimits, ShmSizeMiB: s.ShmSizeMiB, Sysctls: s.Sysctls, Devices: s.Devices, GroupAdd: s.GroupAdd,
			OOMScoreAdj: s.OOMScoreAdj, DNS: s.DNS, ExtraHosts: s.ExtraHosts, Init: s.Init, Uploads: recordedUploads(s.Uploads),
		}
	}
	if !equalSpecs(process(old), process(next)) {
		return ChangeRestart
	}
	// The kernel has no value that lifts a soft memory limit on every
	// cgroup version: lifting one restarts the task without it.
	if old.Resources.MemoryReservationMiB != 0 && next.Resources.MemoryReservationMiB == 0 {
		return ChangeRestart
	}
	if old.Resources != next.Resources {
		return ChangeResize
	}
	if old.Running != next.Running {
		return ChangeStartStop
	}
	settings := func(s ContainerSpec) ContainerSpec {
		return ContainerSpec{Image: s.Image, PullPolicy: s.PullPolicy.orDefault(), Labels: s.Labels, KeepImageVolumes: s.KeepImageVolumes, Restart: s.Restart,
			StopSignal: s.StopSignal, StopTimeout: s.StopTimeout, Healthcheck: s.Healthcheck, Upgrade: s.Upgrade}
	}
	if !equalSpecs(settings(old), settings(next)) {
		return ChangeSettings
	}
	return ChangeNone
}

// SameImage reports whether two image references name the same image, as
// containerd names it; a reference that does not parse is only the same as
// itself.
func SameImage(a, b string) bool {
	if a == b {
		return true
	}
	na, errA := NormalizeImage(a)
	nb, errB := NormalizeImage(b)
	return errA == nil && errB == nil && na == nb
}

// equalSpecs compares specs, taking empty and nil collections as equal.
func equalSpecs(a, b ContainerSpec) bool {
	norm := func(s *ContainerSpec) {
		if len(s.Env) == 0 {
			s.Env = nil
		}
		if len(s.Labels) == 0 {
			s.Labels = nil
		}
		if len(s.Ports) == 0 {
			s.Ports = nil
		}
		if len(s.Mounts) == 0 {
			s.Mounts = nil
		}
		if len(s.Security.CapAdd) == 0 {
			s.Security.CapAdd = nil
		}
		if len(s.Security.CapDrop) == 0 {
			s.Security.CapDrop = nil
		}
		if len(s.Ulimits) == 0 {
			s.Ulimits = nil
		}
		if len(s.Sysctls) == 0 {
			s.Sysctls = nil
		}
		if len(s.Devices) == 0 {
			s.Devices = nil
		}
		if len(s.GroupAdd) == 0 {
			s.GroupAdd = nil
		}
		if len(s.ExtraHosts) == 0 {
			s.ExtraHosts = nil
		}
		if s.DNS.IsZero() {
			s.DNS = DNSConfig{}
		}
	}
	norm(&a)
	norm(&b)
	return reflect.DeepEqual(a, b)
}
