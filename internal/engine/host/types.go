package host

import (
	"fmt"
	"net/netip"
	"regexp"
)

// The types and rules of this file are the package's portable part: the
// engine's API uses them on every platform, while the host work itself
// (network namespaces, CNI, the safe copy) is Linux's.

// Defaults for NetworkConfig fields left empty.
const (
	DefaultNetworkName = "pouch"
	DefaultBridge      = "pouch0"
	DefaultSubnet      = "10.88.0.0/16"
	// IfName is the interface CNI creates inside each container namespace.
	IfName = "eth0"
)

// PortMapping publishes ContainerPort of a container on HostPort of the host.
type PortMapping struct {
	HostIP        string // empty: every host address
	HostPort      int
	ContainerPort int
	Protocol      string // "tcp" (default) or "udp"
}

// Address is the address a container asks for when attached: the one it
// had (IP and MAC), or a fixed one (Required), without which it is not
// attached. Zero asks for any free address.
type Address struct {
	IP, MAC  string
	Required bool
}

// Attachment is the network identity of an attached container.
type Attachment struct {
	IP        string // container address, e.g. "10.88.0.2"
	MAC       string // MAC of Interface
	Gateway   string // the bridge address
	Interface string // interface inside the namespace, "eth0"
	PrefixLen int    // prefix length of the subnet
}

// CopyReport says what CopyTree did not copy as it was, for the caller to log.
type CopyReport struct {
	// Files counts the regular files and FIFOs created, Dirs the directories
	// created below dst (not dst itself), Symlinks the symlinks created and
	// Hardlinks the entries created as a hardlink to an earlier copy.
	Files, Dirs, Symlinks, Hardlinks int
	// StrippedSetID lists the paths (relative to the tree's root, slash-separated) of regular files
	// whose setuid/setgid bits were removed.
	StrippedSetID []string
	// Skipped lists the paths of entries not copied (device nodes, sockets), with why, e.g. "dev/mem: character device".
	Skipped []string
}

// bridgeNameRegexp is the form of a Linux network interface name.
var bridgeNameRegexp = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$`)

// CheckBridgeName judges the name of the bridge device.
func CheckBridgeName(name string) error {
	if !bridgeNameRegexp.MatchString(name) {
		return fmt.Errorf("must be a network interface name: 1 to 15 letters, digits, '_', '.' and '-', "+
			"starting with a letter or digit; got %q", name)
	}
	return nil
}

// CheckSubnet judges the bridge network's subnet: an IPv4 network with room
// for a gateway and containers.
func CheckSubnet(cidr string) error {
	p, err := netip.ParsePrefix(cidr)
	switch {
	case err != nil || !p.Addr().Is4():
		return fmt.Errorf("must be an IPv4 network in CIDR notation such as %s, got %q", DefaultSubnet, cidr)
	case p.Bits() > 30:
		return fmt.Errorf("%q is too small for a bridge and containers: use a /30 or larger", cidr)
	}
	return nil
}
