package engine

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/sys/capability"
	"github.com/moby/sys/signal"

	"github.com/pouch/terraform-provider-pouch/internal/engine/host"
)

// The rules below are the only place where an input is judged. The engine
// applies them to every spec it is given (validateSpec), and the provider's
// plan-time validators call the same functions, so that a value refused at
// apply is refused at plan with the same words. Each rule returns nil or an
// error whose text reads after the name of the value: "must be ...".

// FieldError is a rule's verdict on one field of a value. Field is the
// field's path in the provider's attribute names: "memory_swap",
// "mounts[1].target", "env[\"A\"]"; the provider turns it into an
// attribute path.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + " " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// inField puts err, a rule's verdict, under field: a FieldError of a
// nested field ("target") becomes one of "mounts[1].target".
func inField(field string, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		sep := "."
		if strings.HasPrefix(fe.Field, "[") {
			sep = ""
		}
		return &FieldError{Field: field + sep + fe.Field, Err: fe.Err}
	}
	return &FieldError{Field: field, Err: err}
}

// Upper bounds of numeric inputs. They keep every value inside what the
// kernel and the runtime accept, and every unit conversion inside int64.
const (
	// MaxMemoryMiB is 1 PiB: memory, memory_swap and tmpfs sizes are
	// shifted to bytes, which must not overflow.
	MaxMemoryMiB = 1 << 30
	// MinCPUs is the smallest CPU quota the kernel accepts (1 ms per 100 ms
	// period).
	MinCPUs = 0.01
	// MaxCPUs bounds the CPU quota.
	MaxCPUs = 4096
	// MinCPUShares and MaxCPUShares are cgroup v1's range of cpu.shares.
	MinCPUShares = 2
	MaxCPUShares = 262144
	// MaxPidsLimit is the kernel's PID_MAX_LIMIT.
	MaxPidsLimit = 1 << 22
	// MaxStopTimeoutSeconds bounds stop_timeout (one day).
	MaxStopTimeoutSeconds = 24 * 60 * 60
	// MaxVerifySeconds bounds upgrade.verify_seconds (one hour).
	MaxVerifySeconds = 60 * 60
	// MaxKeepRevisions bounds upgrade.keep_revisions.
	MaxKeepRevisions = 10
	// MaxHealthRetries bounds healthcheck.retries.
	MaxHealthRetries = 100
	// MaxArgBytes is the kernel's limit of one argument or environment
	// entry (MAX_ARG_STRLEN, its terminating NUL included).
	MaxArgBytes = 128*1024 - 1
	// MaxProcessBytes bounds the arguments and environment of a process
	// together, well inside the kernel's ARG_MAX.
	MaxProcessBytes = 1 << 20
)

// reservedLabelPrefixes are label namespaces that pouch or containerd act
// on: a user label there could switch on the restart monitor, redirect the
// logs or keep snapshots from garbage collection.
var reservedLabelPrefixes = []string{"io.pouch.", "containerd.io/", "io.containerd."}

// ReservedLabelPrefixes lists the label prefixes users cannot set.
func ReservedLabelPrefixes() []string { return slices.Clone(reservedLabelPrefixes) }

// NameRule describes valid container and volume names.
const NameRule = "1 to 76 letters and digits, which '.', '_' and '-' may separate (one at a time), " +
	"starting and ending with a letter or digit"

// CheckName judges a container or volume name: containerd's rule for the
// identifiers it stores (the name is the container's ID, and a directory
// name under the data root).
func CheckName(name string) error {
	if identifiers.Validate(name) != nil {
		return fmt.Errorf("must be %s, got %q", NameRule, name)
	}
	return nil
}

// CheckImageReference judges an image reference such as "busybox:1.36" or
// "registry.example:5000/app@sha256:...".
func CheckImageReference(ref string) error {
	if ref == "" {
		return errors.New("must not be empty")
	}
	if strings.IndexFunc(ref, unicode.IsSpace) >= 0 {
		return fmt.Errorf("must not contain whitespace, got %q", ref)
	}
	if _, err := NormalizeImage(ref); err != nil {
		return fmt.Errorf("must be an image reference such as \"busybox:1.36\" or "+
			"\"registry.example:5000/app@sha256:<digest>\", got %q: %v", ref, errors.Unwrap(err))
	}
	return nil
}

// CheckPlatform judges an image platform, "os/arch[/variant]" such as
// "linux/amd64" or "linux/arm/v7" ("" is the host's).
func CheckPlatform(p string) error {
	if p == "" {
		return nil
	}
	if _, err := platforms.Parse(p); err != nil || strings.Count(p, "/") < 1 {
		return fmt.Errorf("must be a platform such as \"linux/amd64\" or \"linux/arm/v7\", got %q", p)
	}
	return nil
}

// CheckPullPolicy judges a pull policy ("" is the default, missing).
func CheckPullPolicy(p string) error {
	switch PullPolicy(p) {
	case "", PullMissing, PullAlways, PullNever:
		return nil
	}
	return fmt.Errorf("must be %q, %q or %q, got %q", PullMissing, PullAlways, PullNever, p)
}

// CheckRegistryAddress judges a registry's address: host[:port], as image
// references name registries.
func CheckRegistryAddress(addr string) error {
	if strings.Contains(addr, "://") || strings.ContainsAny(addr, "/@ ") || addr == "" {
		return fmt.Errorf("must be a registry's host[:port] (as in the image reference host[:port]/repo:tag), got %q", addr)
	}
	named, err := reference.ParseNormalizedNamed(addr + "/pouch")
	if err != nil || reference.Domain(named) != addr && !(addr == "docker.io" && reference.Domain(named) == "docker.io") {
		return fmt.Errorf("must be a registry's host[:port] (as in the image reference host[:port]/repo:tag), got %q", addr)
	}
	return nil
}

// CheckRegistryHost judges one registry's settings; the error names the
// field.
func CheckRegistryHost(h RegistryHost) error {
	if err := CheckRegistryAddress(h.Address); err != nil {
		return &FieldError{Field: "address", Err: err}
	}
	switch {
	case (h.Username == "") != (h.Password == ""):
		return &FieldError{Field: "password", Err: errors.New("and username must be set together")}
	case h.ConfigFile != "" && h.Username != "":
		return &FieldError{Field: "config_file", Err: errors.New("must not be set with username and password: one source of credentials")}
	}
	for field, p := range map[string]string{"config_file": h.ConfigFile, "ca_file": h.CAFile} {
		if p == "" {
			continue
		}
		if err := CheckAbsolutePath(p); err != nil {
			return &FieldError{Field: field, Err: err}
		}
	}
	return nil
}

// CheckRegistries judges the registry settings: each host's, one entry
// per registry, and the insecure registries' addresses.
func CheckRegistries(r Registries) error {
	seen := map[string]bool{}
	for i, h := range r.Hosts {
		if err := CheckRegistryHost(h); err != nil {
			return inField(fmt.Sprintf("registry_auth[%d]", i), err)
		}
		if seen[h.Address] {
			return &FieldError{Field: fmt.Sprintf("registry_auth[%d].address", i), Err: fmt.Errorf("must name each registry once, %q is named twice", h.Address)}
		}
		seen[h.Address] = true
	}
	for i, addr := range r.Insecure {
		if err := CheckRegistryAddress(addr); err != nil {
			return &FieldError{Field: fmt.Sprintf("insecure_registries[%d]", i), Err: err}
		}
		for j, h := range r.Hosts {
			if h.Address == addr && h.CAFile != "" {
				return &FieldError{Field: fmt.Sprintf("insecure_registries[%d]", i), Err: fmt.Errorf(
					"must not name %q, which registry_auth[%d] gives a ca_file: one is HTTPS, the other plain HTTP", addr, j)}
			}
		}
	}
	return nil
}

// CheckAbsolutePath judges a path that must be absolute and contain no
// ".." element and no NUL.
func CheckAbsolutePath(p string) error {
	switch {
	case strings.ContainsRune(p, 0):
		return errors.New("must not contain NUL")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("must be an absolute path, got %q", p)
	case slices.Contains(strings.Split(p, "/"), ".."):
		return fmt.Errorf("must not contain '..', got %q", p)
	}
	return nil
}

// CheckDataRoot judges the engine's data root.
func CheckDataRoot(p string) error {
	if err := CheckAbsolutePath(p); err != nil {
		return err
	}
	if path.Clean(p) == "/" {
		return errors.New("must not be the root directory")
	}
	return nil
}

// kernelPaths are the container paths that belong to the kernel: nothing
// may be mounted on or under them, and no image volume is made there.
var kernelPaths = []string{"/proc", "/sys"}

// underKernelPath reports the kernel path that p (clean, absolute) is, or
// lies under.
func underKernelPath(p string) (string, bool) {
	for _, k := range kernelPaths {
		if p == k || strings.HasPrefix(p, k+"/") {
			return k, true
		}
	}
	return "", false
}

// CheckMountTarget judges a path in the container that something is
// mounted on.
func CheckMountTarget(target string) error {
	if err := CheckAbsolutePath(target); err != nil {
		return err
	}
	t := path.Clean(target)
	if t == "/" {
		return errors.New("must not be the root directory")
	}
	if k, ok := underKernelPath(t); ok {
		return fmt.Errorf("must not be %s or under it (the kernel's filesystem there belongs to the runtime), got %q", k, target)
	}
	return nil
}

// CheckMount judges one mount: its type, and the source and size that type
// takes. Each error names the mount's field: "source must ...".
func CheckMount(m Mount) error {
	if err := CheckMountTarget(m.Target); err != nil {
		return inField("target", err)
	}
	if m.Type != MountTmpfs && m.TmpfsSizeMiB != 0 {
		return inField("tmpfs_size", fmt.Errorf("only applies to tmpfs mounts, this one is %q", m.Type))
	}
	switch m.Type {
	case MountVolume:
		if m.Source == "" {
			return inField("source", errors.New("must name the volume of a volume mount (for example pouch_volume.data.name)"))
		}
		if err := CheckName(m.Source); err != nil {
			return inField("source", fmt.Errorf("must be a volume name, which is %s; got %q", NameRule, m.Source))
		}
	case MountBind:
		if err := CheckAbsolutePath(m.Source); err != nil {
			return inField("source", fmt.Errorf("of a bind mount must be an absolute host path: %w", err))
		}
	case MountTmpfs:
		if m.Source != "" {
			return inField("source", fmt.Errorf("must be left out for a tmpfs mount, got %q", m.Source))
		}
		if m.TmpfsSizeMiB < 0 || m.TmpfsSizeMiB > MaxMemoryMiB {
			return inField("tmpfs_size", fmt.Errorf("must be between 1 and %d MiB, got %d", MaxMemoryMiB, m.TmpfsSizeMiB))
		}
	default:
		return inField("type", fmt.Errorf("must be volume, bind or tmpfs, got %q", m.Type))
	}
	return nil
}

// CheckMounts judges each mount and that no target is mounted twice. The
// error names the mount by its index: "mounts[1].target ...".
func CheckMounts(mounts []Mount) error {
	targets := map[string]int{}
	for i, m := range mounts {
		at := fmt.Sprintf("mounts[%d]", i)
		if err := CheckMount(m); err != nil {
			return inField(at, err)
		}
		t := path.Clean(m.Target)
		if j, ok := targets[t]; ok {
			return inField(at+".target", fmt.Errorf("%s is already the target of mounts[%d]", t, j))
		}
		targets[t] = i
	}
	return nil
}

// Protocols are the transport protocols a port can be published for; the
// first is the default.
var Protocols = []string{"tcp", "udp"}

// CheckPortNumber judges a TCP or UDP port number.
func CheckPortNumber(n int64) error {
	if n < 1 || n > 65535 {
		return fmt.Errorf("must be between 1 and 65535, got %d", n)
	}
	return nil
}

// CheckHostIP judges the host address a port is published on: an IPv4 or
// IPv6 address, without a zone (the CNI port mapping takes none).
func CheckHostIP(ip string) error {
	if a, err := netip.ParseAddr(ip); err != nil || a.Zone() != "" {
		return fmt.Errorf("must be an IP address such as 127.0.0.1, without a zone, got %q", ip)
	}
	return nil
}

func protocol(p PortMapping) string {
	if p.Protocol == "" {
		return Protocols[0]
	}
	return strings.ToLower(p.Protocol)
}

// describePort is how an error names what a port occupies.
func describePort(p PortMapping) string {
	addr := p.HostIP
	if a, err := netip.ParseAddr(addr); err != nil || a.IsUnspecified() {
		addr = "all addresses"
	}
	return fmt.Sprintf("%s port %d on %s", protocol(p), p.HostPort, addr)
}

// CheckPorts judges the published ports: numbers, protocols, addresses, and
// no host port published twice (on one address, or on all addresses and
// one of them). The error names the port by its index.
func CheckPorts(ports []PortMapping) error {
	for i, p := range ports {
		at := fmt.Sprintf("ports[%d]", i)
		if err := CheckPortNumber(int64(p.ContainerPort)); err != nil {
			return inField(at+".internal", err)
		}
		if err := CheckPortNumber(int64(p.HostPort)); err != nil {
			return inField(at+".external", err)
		}
		if p.HostIP != "" {
			if err := CheckHostIP(p.HostIP); err != nil {
				return inField(at+".ip", err)
			}
		}
		if !slices.Contains(Protocols, protocol(p)) {
			return inField(at+".protocol", fmt.Errorf("must be tcp or udp, got %q", p.Protocol))
		}
		for j, q := range ports[:i] {
			if portsClash(p, q) {
				return inField(at+".external", fmt.Errorf("publishes %s, which ports[%d] takes already", describePort(p), j))
			}
		}
	}
	return nil
}

// CheckMemoryMiB judges memory (and tmpfs) sizes in MiB.
func CheckMemoryMiB(v int64) error {
	if v < 1 || v > MaxMemoryMiB {
		return fmt.Errorf("must be between 1 and %d MiB, got %d", MaxMemoryMiB, v)
	}
	return nil
}

// CheckMemorySwapMiB judges memory_swap against memory (0 when unset).
func CheckMemorySwapMiB(swap, memory int64) error {
	switch {
	case swap == -1:
	case swap < 1 || swap > MaxMemoryMiB:
		return fmt.Errorf("must be -1 (unlimited swap) or between 1 and %d MiB, got %d", MaxMemoryMiB, swap)
	case memory > 0 && swap < memory:
		return fmt.Errorf("(%d MiB) is memory plus swap: it must be -1 (unlimited swap) or at least memory (%d MiB)", swap, memory)
	}
	if memory == 0 {
		return errors.New("needs memory: swap is limited together with memory")
	}
	return nil
}

// CheckCPUs judges a CPU quota in CPUs.
func CheckCPUs(v float64) error {
	if math.IsNaN(v) || v < MinCPUs || v > MaxCPUs {
		return fmt.Errorf("must be between %v and %v CPUs, got %v", MinCPUs, MaxCPUs, v)
	}
	return nil
}

// CheckCPUShares judges a relative CPU weight.
func CheckCPUShares(v int64) error {
	if v < MinCPUShares || v > MaxCPUShares {
		return fmt.Errorf("must be between %d and %d, got %d", MinCPUShares, MaxCPUShares, v)
	}
	return nil
}

// CheckPidsLimit judges a process count limit.
func CheckPidsLimit(v int64) error {
	if v < 1 || v > MaxPidsLimit {
		return fmt.Errorf("must be between 1 and %d, got %d", MaxPidsLimit, v)
	}
	return nil
}

// CheckResources judges cgroup limits, zero meaning unset. The error names
// the attribute.
func CheckResources(r Resources) error {
	if r.MemoryMiB != 0 {
		if err := CheckMemoryMiB(r.MemoryMiB); err != nil {
			return inField("memory", err)
		}
	}
	if r.MemorySwapMiB != 0 {
		if err := CheckMemorySwapMiB(r.MemorySwapMiB, r.MemoryMiB); err != nil {
			return inField("memory_swap", err)
		}
	}
	if r.CPUs != 0 {
		if err := CheckCPUs(r.CPUs); err != nil {
			return inField("cpus", err)
		}
	}
	if r.CPUShares != 0 {
		if err := CheckCPUShares(r.CPUShares); err != nil {
			return inField("cpu_shares", err)
		}
	}
	if r.PidsLimit != 0 {
		if err := CheckPidsLimit(r.PidsLimit); err != nil {
			return inField("pids_limit", err)
		}
	}
	if r.MemoryReservationMiB != 0 {
		if err := CheckMemoryReservationMiB(r.MemoryReservationMiB, r.MemoryMiB); err != nil {
			return inField("memory_reservation", err)
		}
	}
	if r.CpusetCPUs != "" {
		if err := CheckCpuset(r.CpusetCPUs); err != nil {
			return inField("cpuset_cpus", err)
		}
	}
	if r.CpusetMems != "" {
		if err := CheckCpuset(r.CpusetMems); err != nil {
			return inField("cpuset_mems", err)
		}
	}
	return nil
}

// CheckLabelKey judges a label key the user sets.
func CheckLabelKey(key string) error {
	if key == "" {
		return errors.New("must not be empty")
	}
	for _, p := range reservedLabelPrefixes {
		if strings.HasPrefix(key, p) {
			return fmt.Errorf("%q starts with %q, which is reserved: pouch and containerd act on those labels", key, p)
		}
	}
	return nil
}

// CheckLabel judges a label: its key, and its size, which containerd
// bounds.
func CheckLabel(key, value string) error {
	if err := CheckLabelKey(key); err != nil {
		return err
	}
	if labels.Validate(key, value) != nil {
		return fmt.Errorf("%q: key and value together must be at most 4096 bytes, got %d", key, len(key)+len(value))
	}
	return nil
}

// CheckLabels judges every label. The error names the label.
func CheckLabels(l map[string]string) error {
	for _, k := range sortedKeys(l) {
		if err := CheckLabel(k, l[k]); err != nil {
			return inField(fmt.Sprintf("[%q]", k), err)
		}
	}
	return nil
}

// CapabilityAll names every capability, in capabilities.add (all of them
// are added) or capabilities.drop (all are dropped, then add applies).
const CapabilityAll = "ALL"

// CheckCapability judges a capability name, with or without the CAP_
// prefix, in any case: a capability Linux knows, or ALL. Whether the
// running kernel has it is checked when the container is made.
func CheckCapability(name string) error {
	if strings.EqualFold(name, CapabilityAll) {
		return nil
	}
	if !slices.Contains(knownCapabilities(), capabilityName(name)) {
		return fmt.Errorf("must be a Linux capability such as \"NET_ADMIN\" or \"CAP_NET_ADMIN\", or %q; got %q", CapabilityAll, name)
	}
	return nil
}

// knownCapabilities are the names of the capabilities Linux has (in the
// runtime spec's form, "CAP_NET_ADMIN"), whatever system the provider runs
// on: the plan is checked before any host is reached.
func knownCapabilities() []string { return capabilityNames(capability.ListKnown()) }

// hostCapabilities are the names of the capabilities that containers on
// this host can be given: those of the running kernel that this process
// (root, beside containerd and runc) holds, as containerd counts them for
// a privileged container.
func hostCapabilities() ([]string, error) {
	supported, err := capability.ListSupported()
	if err != nil {
		return nil, fmt.Errorf("read the kernel's capabilities: %w", err)
	}
	self, err := capability.NewPid2(0)
	if err == nil {
		err = self.Load()
	}
	if err != nil {
		return nil, fmt.Errorf("read this process's capabilities: %w", err)
	}
	var held []capability.Cap
	for _, c := range supported {
		if self.Get(capability.EFFECTIVE, c) {
			held = append(held, c)
		}
	}
	return capabilityNames(held), nil
}

func capabilityNames(caps []capability.Cap) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = capabilityName(c.String())
	}
	return out
}

// capabilityName writes a capability name as the runtime spec wants it.
func capabilityName(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// CheckSignal judges a signal name such as "SIGTERM".
func CheckSignal(name string) error {
	if !strings.HasPrefix(name, "SIG") {
		return fmt.Errorf("must be a signal name such as \"SIGTERM\" or \"SIGQUIT\", got %q", name)
	}
	if _, err := signal.ParseSignal(name); err != nil {
		return fmt.Errorf("must be a signal name such as \"SIGTERM\" or \"SIGQUIT\", got %q", name)
	}
	return nil
}

// SeccompDefault and SeccompUnconfined are the seccomp profiles known by
// name; any other profile is the absolute path of a file.
const (
	SeccompDefault    = "default"
	SeccompUnconfined = "unconfined"
)

// CheckSeccompProfile judges a seccomp profile setting.
func CheckSeccompProfile(p string) error {
	if p == SeccompDefault || p == SeccompUnconfined || CheckAbsolutePath(p) == nil {
		return nil
	}
	return fmt.Errorf("must be %q, %q or the absolute path of a profile in Docker's JSON format, got %q",
		SeccompDefault, SeccompUnconfined, p)
}

// hostnameRegexp is an RFC 1123 host name (underscores tolerated).
var hostnameRegexp = regexp.MustCompile(
	`^[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)*$`)

// CheckHostname judges a host name.
func CheckHostname(h string) error {
	if len(h) > 253 || !hostnameRegexp.MatchString(h) {
		return fmt.Errorf("must be a host name of at most 253 characters: labels of letters, digits and '-', "+
			"separated by '.'; got %q", h)
	}
	return nil
}

// CheckArg judges one argument of a command, or one health check word.
func CheckArg(a string) error {
	if strings.ContainsRune(a, 0) {
		return errors.New("must not contain NUL")
	}
	if len(a) > MaxArgBytes {
		return fmt.Errorf("must be at most %d bytes (the kernel's limit of one argument), got %d", MaxArgBytes, len(a))
	}
	return nil
}

// CheckArgs judges a command: each argument. The error names the index.
func CheckArgs(args []string) error {
	for i, a := range args {
		if err := CheckArg(a); err != nil {
			return inField(fmt.Sprintf("[%d]", i), err)
		}
	}
	return nil
}

// CheckEnvKey judges an environment variable name.
func CheckEnvKey(k string) error {
	switch {
	case k == "":
		return errors.New("must not be empty")
	case strings.ContainsAny(k, "=\x00"):
		return fmt.Errorf("must not contain '=' or NUL, got %q", k)
	}
	return nil
}

// CheckEnv judges environment variables: names, values and the size of
// each entry. The error names the variable.
func CheckEnv(env map[string]string) error {
	for _, k := range sortedKeys(env) {
		at := fmt.Sprintf("[%q]", k)
		if err := CheckEnvKey(k); err != nil {
			return inField(at, fmt.Errorf("key %w", err))
		}
		if strings.ContainsRune(env[k], 0) {
			return inField(at, errors.New("must not contain NUL"))
		}
		if n := len(k) + 1 + len(env[k]); n > MaxArgBytes {
			return inField(at, fmt.Errorf("must be at most %d bytes with its name (the kernel's limit of one entry), got %d", MaxArgBytes, n))
		}
	}
	return nil
}

// checkProcess judges the arguments and environment of a process as the
// image's values and the user's merge them, each entry and together.
func checkProcess(p Process) error {
	n := 0
	for i, s := range p.Args {
		if err := CheckArg(s); err != nil {
			return fmt.Errorf("argument %d of the process (from the image or the command) %w", i, err)
		}
		n += len(s) + 1
	}
	for _, s := range p.Env {
		if err := CheckArg(s); err != nil {
			k, _, _ := strings.Cut(s, "=")
			return fmt.Errorf("environment variable %q (from the image or env) %w", k, err)
		}
		n += len(s) + 1
	}
	if n > MaxProcessBytes {
		return fmt.Errorf("the process's arguments and environment take %d bytes: at most %d fit", n, MaxProcessBytes)
	}
	return nil
}

// CheckStopTimeoutSeconds judges stop_timeout.
func CheckStopTimeoutSeconds(s int64) error {
	if s < 0 || s > MaxStopTimeoutSeconds {
		return fmt.Errorf("must be between 0 and %d seconds, got %d", MaxStopTimeoutSeconds, s)
	}
	return nil
}

// CheckVerifySeconds judges upgrade.verify_seconds.
func CheckVerifySeconds(s int64) error {
	if s < 0 || s > MaxVerifySeconds {
		return fmt.Errorf("must be between 0 and %d seconds, got %d", MaxVerifySeconds, s)
	}
	return nil
}

// CheckKeepRevisions judges upgrade.keep_revisions.
func CheckKeepRevisions(n int64) error {
	if n < 0 || n > MaxKeepRevisions {
		return fmt.Errorf("must be between 0 and %d, got %d", MaxKeepRevisions, n)
	}
	return nil
}

// CheckHealthRetries judges healthcheck.retries.
func CheckHealthRetries(n int64) error {
	if n < 1 || n > MaxHealthRetries {
		return fmt.Errorf("must be between 1 and %d, got %d", MaxHealthRetries, n)
	}
	return nil
}

// CheckImageVolume judges a VOLUME that an image declares. The image is
// untrusted: only a clean absolute path below the root and outside the
// kernel's filesystems becomes a directory on the host.
func CheckImageVolume(key string) error {
	switch {
	case strings.ContainsRune(key, 0):
		return errors.New("contains NUL")
	case !strings.HasPrefix(key, "/"):
		return errors.New("is not an absolute path")
	case slices.Contains(strings.Split(key, "/"), ".."):
		return errors.New("has a '..' element")
	case path.Clean(key) == "/":
		return errors.New("is the root directory")
	}
	clean := path.Clean(key)
	if k, ok := underKernelPath(clean); ok {
		return fmt.Errorf("is under %s, the kernel's", k)
	}
	if len(volumeDirName(clean)) > maxFileName {
		return fmt.Errorf("is too long: its directory on the host would have a name over %d bytes", maxFileName)
	}
	return nil
}

// maxFileName is the longest file name Linux filesystems take (NAME_MAX).
const maxFileName = 255

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// MaxLogSizeMiB and MaxLogFiles bound the log options.
const (
	MaxLogSizeMiB = 1 << 20
	MaxLogFiles   = 100
)

// CheckLogMaxSizeMiB judges log_max_size.
func CheckLogMaxSizeMiB(n int64) error {
	if n < 1 || n > MaxLogSizeMiB {
		return fmt.Errorf("must be between 1 and %d MiB, got %d", MaxLogSizeMiB, n)
	}
	return nil
}

// CheckLogMaxFiles judges log_max_files.
func CheckLogMaxFiles(n int64) error {
	if n < 1 || n > MaxLogFiles {
		return fmt.Errorf("must be between 1 and %d, got %d", MaxLogFiles, n)
	}
	return nil
}

// checkLogOptions judges the log options, zero meaning the default.
func checkLogOptions(l LogOptions) error {
	if l.MaxSizeMiB != 0 {
		if err := CheckLogMaxSizeMiB(int64(l.MaxSizeMiB)); err != nil {
			return inField("log_max_size", err)
		}
	}
	if l.MaxFiles != 0 {
		if err := CheckLogMaxFiles(int64(l.MaxFiles)); err != nil {
			return inField("log_max_files", err)
		}
	}
	return nil
}

// CheckNamespace judges a containerd namespace name: containerd's rule.
func CheckNamespace(ns string) error {
	if identifiers.Validate(ns) != nil {
		return fmt.Errorf("must be a containerd namespace: %s; got %q", NameRule, ns)
	}
	return nil
}

// CheckBridgeName judges the name of the bridge device.
func CheckBridgeName(name string) error { return host.CheckBridgeName(name) }

// CheckSubnet judges the bridge network's subnet.
func CheckSubnet(cidr string) error { return host.CheckSubnet(cidr) }

// Defaults of the bridge network.
const (
	DefaultBridge = host.DefaultBridge
	DefaultSubnet = host.DefaultSubnet
)

// CheckMemoryReservationMiB judges a soft memory limit in MiB against
// memory (0 when unset).
func CheckMemoryReservationMiB(v, memory int64) error {
	if err := CheckMemoryMiB(v); err != nil {
		return err
	}
	if memory > 0 && v > memory {
		return fmt.Errorf("(%d MiB) is a soft limit: it must not be more than memory (%d MiB)", v, memory)
	}
	return nil
}

// MaxCpusetIndex bounds the CPU and memory node numbers of a cpuset.
const MaxCpusetIndex = 4095

// CheckCpuset judges a list of CPUs or memory nodes in the kernel's list
// format, "0-2,4".
func CheckCpuset(s string) error {
	bad := fmt.Errorf("must be a list of CPU (or memory node) numbers and ranges such as \"0-2,4\", got %q", s)
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := cpusetIndex(lo)
		if err != nil {
			return bad
		}
		if isRange {
			b, err := cpusetIndex(hi)
			if err != nil || b < a {
				return bad
			}
		}
	}
	return nil
}

func cpusetIndex(s string) (int, error) {
	if strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a number")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > MaxCpusetIndex {
		return 0, fmt.Errorf("not a number up to %d", MaxCpusetIndex)
	}
	return n, nil
}

// ulimitNames are the process limits a container may set (setrlimit's,
// without RLIMIT_).
var ulimitNames = []string{"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
	"nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}

// UlimitNames lists the names of the process limits, for documentation.
func UlimitNames() []string { return slices.Clone(ulimitNames) }

// CheckUlimit judges one process limit.
func CheckUlimit(u Ulimit) error {
	if !slices.Contains(ulimitNames, u.Name) {
		return inField("name", fmt.Errorf("must be one of %s, got %q", strings.Join(ulimitNames, ", "), u.Name))
	}
	for _, v := range []struct {
		field string
		n     int64
	}{{"soft", u.Soft}, {"hard", u.Hard}} {
		if v.n < -1 {
			return inField(v.field, fmt.Errorf("must be -1 (unlimited) or at least 0, got %d", v.n))
		}
	}
	if u.Hard != -1 && (u.Soft == -1 || u.Soft > u.Hard) {
		return inField("soft", fmt.Errorf("(%d) must not be more than hard (%d): a process cannot raise its soft limit "+
			"above its hard one", u.Soft, u.Hard))
	}
	return nil
}

// CheckUlimits judges the process limits: each, and each name once.
func CheckUlimits(us []Ulimit) error {
	for i, u := range us {
		at := fmt.Sprintf("ulimits[%d]", i)
		if err := CheckUlimit(u); err != nil {
			return inField(at, err)
		}
		for j, v := range us[:i] {
			if v.Name == u.Name {
				return inField(at+".name", fmt.Errorf("%q is set by ulimits[%d] already", u.Name, j))
			}
		}
	}
	return nil
}

// CheckShmSizeMiB judges the size of /dev/shm in MiB.
func CheckShmSizeMiB(v int64) error { return CheckMemoryMiB(v) }

// ipcSysctls are the sysctls of the IPC namespace that are not under
// fs.mqueue.
var ipcSysctls = []string{"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
	"kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}

// CheckSysctl judges a kernel parameter for a container of network mode
// mode. Only the parameters of the container's own namespaces can be set
// (those of its IPC namespace, and net.* with a network namespace of its
// own, as runc allows): any other one is the whole host's.
func CheckSysctl(key, value string, mode NetworkMode) error {
	if value == "" || strings.ContainsAny(value, "\x00\n") {
		return fmt.Errorf("must be a value without NUL or newline, got %q", value)
	}
	switch {
	case slices.Contains(ipcSysctls, key), strings.HasPrefix(key, "fs.mqueue."):
		return nil
	case strings.HasPrefix(key, "net."):
		if mode == NetworkHost {
			return fmt.Errorf("cannot be set with network_mode host: the network namespace is the host's")
		}
		return nil
	}
	return fmt.Errorf("is not namespaced: setting it in a container would change the whole host. Only net.* "+
		"(without network_mode host), fs.mqueue.* and %s can be set; set it on the host instead "+
		"(sysctl -w %s=%s, or a file in /etc/sysctl.d)", strings.Join(ipcSysctls, ", "), key, value)
}

// CheckSysctls judges the kernel parameters; the error names the key.
func CheckSysctls(sysctls map[string]string, mode NetworkMode) error {
	for _, k := range sortedKeys(sysctls) {
		if err := CheckSysctl(k, sysctls[k], mode); err != nil {
			return inField(fmt.Sprintf("sysctls[%q]", k), err)
		}
	}
	return nil
}

// CheckDevicePermissions judges a device's cgroup access rights.
func CheckDevicePermissions(p string) error {
	if p == "" || strings.Trim(p, "rwm") != "" || len(p) > 3 {
		return fmt.Errorf("must be some of r (read), w (write) and m (mknod), such as \"rw\", got %q", p)
	}
	return nil
}

// CheckDevices judges the devices; the error names the field.
func CheckDevices(devices []Device) error {
	for i, d := range devices {
		at := fmt.Sprintf("devices[%d]", i)
		if err := CheckAbsolutePath(d.HostPath); err != nil {
			return inField(at+".host_path", err)
		}
		target := cmp.Or(d.ContainerPath, d.HostPath)
		if err := CheckMountTarget(target); err != nil {
			return inField(at+".container_path", err)
		}
		if d.Permissions != "" {
			if err := CheckDevicePermissions(d.Permissions); err != nil {
				return inField(at+".permissions", err)
			}
		}
		for j, e := range devices[:i] {
			if cmp.Or(e.ContainerPath, e.HostPath) == target {
				return inField(at+".container_path", fmt.Errorf("%s is made by devices[%d] already", target, j))
			}
		}
	}
	return nil
}

// groupName is what a group of group_add may be called: a gid, or a name
// as useradd accepts it.
var groupName = regexp.MustCompile(`^([0-9]{1,10}|[a-zA-Z_][a-zA-Z0-9_.-]{0,31}\$?)$`)

// CheckGroup judges a supplementary group: a gid or a group name.
func CheckGroup(g string) error {
	if !groupName.MatchString(g) {
		return fmt.Errorf("must be a gid or a group name, got %q", g)
	}
	return nil
}

// CheckOOMScoreAdj judges an oom_score_adj.
func CheckOOMScoreAdj(v int64) error {
	if v < -1000 || v > 1000 {
		return fmt.Errorf("must be between -1000 and 1000, got %d", v)
	}
	return nil
}

// checkService judges the settings of the service's process: limits,
// /dev/shm, sysctls, devices, groups and oom_score_adj.
func checkService(spec ContainerSpec) error {
	if err := CheckUlimits(spec.Ulimits); err != nil {
		return err
	}
	if spec.ShmSizeMiB != 0 {
		if err := CheckShmSizeMiB(spec.ShmSizeMiB); err != nil {
			return inField("shm_size", err)
		}
	}
	if err := CheckSysctls(spec.Sysctls, networkMode(spec)); err != nil {
		return err
	}
	if err := CheckDevices(spec.Devices); err != nil {
		return err
	}
	for i, g := range spec.GroupAdd {
		if err := CheckGroup(g); err != nil {
			return inField(fmt.Sprintf("group_add[%d]", i), err)
		}
	}
	if err := CheckOOMScoreAdj(int64(spec.OOMScoreAdj)); err != nil {
		return inField("oom_score_adj", err)
	}
	if err := CheckDNS(spec.DNS); err != nil {
		return err
	}
	if err := CheckUploads(spec.Uploads, spec.Mounts); err != nil {
		return err
	}
	return CheckExtraHosts(spec.ExtraHosts)
}

// MaxDNSServers is how many name servers the resolver reads (glibc's
// MAXNS): more would be ignored.
const MaxDNSServers = 3

// dnsOption is a resolv.conf option: a word, with a number after ':' for
// some ("ndots:2", "timeout:1").
var dnsOption = regexp.MustCompile(`^[a-z][a-z0-9-]*(:[0-9]{1,4})?$`)

// CheckDNS judges a container's own resolv.conf; the error names the
// attribute.
func CheckDNS(d DNSConfig) error {
	if len(d.Servers) > MaxDNSServers {
		return inField("dns", fmt.Errorf("must name at most %d name servers, the resolver's limit (it ignores the others), got %d",
			MaxDNSServers, len(d.Servers)))
	}
	for i, s := range d.Servers {
		if _, err := netip.ParseAddr(s); err != nil {
			return inField(fmt.Sprintf("dns[%d]", i), fmt.Errorf("must be an IP address, got %q", s))
		}
	}
	for i, s := range d.Search {
		if err := CheckHostname(strings.TrimSuffix(s, ".")); err != nil {
			return inField(fmt.Sprintf("dns_search[%d]", i), err)
		}
	}
	for i, o := range d.Options {
		if !dnsOption.MatchString(o) {
			return inField(fmt.Sprintf("dns_options[%d]", i), fmt.Errorf("must be a resolver option such as \"ndots:2\" or "+
				"\"rotate\", got %q", o))
		}
	}
	return nil
}

// CheckExtraHosts judges the names and addresses added to /etc/hosts.
func CheckExtraHosts(hosts map[string]string) error {
	for _, name := range sortedKeys(hosts) {
		at := fmt.Sprintf("extra_hosts[%q]", name)
		if err := CheckHostname(name); err != nil {
			return inField(at, fmt.Errorf("names %v", err))
		}
		if _, err := netip.ParseAddr(hosts[name]); err != nil {
			return inField(at, fmt.Errorf("must be an IP address, got %q", hosts[name]))
		}
	}
	return nil
}

// CheckFixedAddress judges a container's ipv4_address on the bridge network
// of net: against its subnet, unless net is a CNI network of the user's
// (whose addresses its own IPAM judges at apply).
func CheckFixedAddress(ip string, net NetworkOptions) error {
	if net.ConfFile != "" {
		addr, err := netip.ParseAddr(ip)
		if err != nil || !addr.Is4() {
			return fmt.Errorf("must be an IPv4 address, got %q", ip)
		}
		return nil
	}
	return CheckIPv4Address(ip, cmp.Or(net.Subnet, DefaultSubnet))
}

// CheckIPv4Address judges a fixed address on the bridge network of subnet
// (CIDR): an IPv4 address inside it, neither its network nor its
// broadcast address, nor its first (the bridge's own, the gateway).
func CheckIPv4Address(ip, subnet string) error {
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		return fmt.Errorf("must be an IPv4 address, got %q", ip)
	}
	prefix, err := netip.ParsePrefix(subnet)
	if err != nil {
		return fmt.Errorf("cannot be checked against the bridge subnet %q: %v", subnet, err)
	}
	prefix = prefix.Masked()
	if !prefix.Contains(addr) {
		return fmt.Errorf("(%s) must be inside the bridge network's subnet %s (the provider's bridge_subnet)", ip, prefix)
	}
	network := prefix.Addr()
	gateway := network.Next()
	broadcast := lastAddr(prefix)
	switch addr {
	case network:
		return fmt.Errorf("(%s) is the network address of %s: choose a host address", ip, prefix)
	case gateway:
		return fmt.Errorf("(%s) is the bridge's own address (the containers' gateway) in %s: choose another", ip, prefix)
	case broadcast:
		return fmt.Errorf("(%s) is the broadcast address of %s: choose a host address", ip, prefix)
	}
	return nil
}

// lastAddr is the last address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	bits := p.Bits()
	for i := 0; i < 4; i++ {
		keep := min(max(bits-8*i, 0), 8)
		a[i] |= byte(0xff >> keep)
	}
	return netip.AddrFrom4(a)
}

// MaxUploadBytes bounds the content of one upload.
const MaxUploadBytes = 4 << 20

// CheckUploadMode judges an upload's permission bits.
func CheckUploadMode(mode uint32) error {
	if mode > 0o7777 || mode&0o6000 != 0 {
		return fmt.Errorf("must be permission bits such as 0644 (no setuid or setgid), got %#o", mode)
	}
	return nil
}

// CheckUploads judges the files written for a container: each at an
// absolute path that no other upload or mount takes, within the size
// limit; the error names the field.
func CheckUploads(uploads []Upload, mounts []Mount) error {
	for i, u := range uploads {
		at := fmt.Sprintf("uploads[%d]", i)
		if err := CheckMountTarget(u.File); err != nil {
			return inField(at+".file", err)
		}
		if err := CheckUploadMode(u.Mode); err != nil {
			return inField(at+".mode", err)
		}
		if len(u.Content) > MaxUploadBytes {
			return inField(at, fmt.Errorf("is %d bytes, more than the %d an upload may have: mount a volume or a bind "+
				"mount for bigger files", len(u.Content), MaxUploadBytes))
		}
		file := path.Clean(u.File)
		for j, v := range uploads[:i] {
			if path.Clean(v.File) == file {
				return inField(at+".file", fmt.Errorf("%s is written by uploads[%d] already", file, j))
			}
		}
		for j, m := range mounts {
			if path.Clean(m.Target) == file {
				return inField(at+".file", fmt.Errorf("%s is the target of mounts[%d]", file, j))
			}
		}
	}
	return nil
}
