//go:build linux

// Package host is the host-side networking of pouch: persistent network
// namespaces (one per container, bind-mounted so they outlive tasks) and a
// CNI network that attaches them to a local bridge, so that a container keeps
// its IP and MAC across restarts and image upgrades. It drives the standard
// CNI plugins (bridge, host-local, portmap, firewall) through libcni and knows
// nothing of containerd or Terraform.
package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils"
)

// cniVersion of the generated conflist. Debian 12's plugins (1.1.1)
// support up to 1.0.0.
const cniVersion = "1.0.0"

// DefaultPluginDirs are searched for CNI plugin binaries when
// NetworkConfig.PluginDirs is empty: the upstream location first, then the
// Debian package's.
var DefaultPluginDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}

// NetworkConfig describes one CNI network on the local host that pouch's
// containers join. With ConfFile set, Name, Bridge, Subnet and ConfDir are
// ignored: the network is whatever the file describes.
type NetworkConfig struct {
	Name       string   // CNI network name, default "pouch"
	Bridge     string   // bridge device, default "pouch0"
	Subnet     string   // IPv4 subnet, default "10.88.0.0/16"
	ConfDir    string   // where pouch writes its conflist when ConfFile is empty; default StateDir/net.d
	ConfFile   string   // optional existing .conflist/.conf chosen by the user; pouch then writes nothing
	PluginDirs []string // default DefaultPluginDirs
	StateDir   string   // required: holds the host-local IPAM data (StateDir/ipam) and the CNI cache (StateDir/cache)
}

// Network is a loaded CNI network. Its methods are safe for concurrent use;
// operations for the same container id are serialised.
type Network struct {
	name   string
	list   *libcni.NetworkConfigList
	cni    *libcni.CNIConfig
	caps   map[string]bool
	ipMasq bool // the bridge plugin masquerades (see del)
	locks  keyedMutex
}

// NewNetwork loads the network described by cfg. Unless cfg.ConfFile is set,
// it writes pouch's own conflist to ConfDir/<Name>.conflist: the bridge
// plugin (gateway on the bridge, masquerading, hairpin) with host-local IPAM
// on Subnet and its data under StateDir, then portmap (port mappings) and
// firewall (accept rules in FORWARD for hosts whose policy is DROP). It checks
// that every plugin the network uses is installed in PluginDirs and speaks
// the config's CNI version.
func NewNetwork(cfg NetworkConfig) (*Network, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("network state directory is empty")
	}
	if len(cfg.PluginDirs) == 0 {
		cfg.PluginDirs = DefaultPluginDirs
	}
	var list *libcni.NetworkConfigList
	var err error
	if cfg.ConfFile != "" {
		list, err = loadConfFile(cfg.ConfFile)
		if err != nil {
			return nil, err
		}
	} else {
		if list, err = writeConfList(&cfg); err != nil {
			return nil, err
		}
	}

	n := &Network{
		name: list.Name,
		list: list,
		cni:  libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, filepath.Join(cfg.StateDir, "cache"), nil),
		caps: map[string]bool{},
	}
	if err := checkPlugins(list, cfg.PluginDirs); err != nil {
		return nil, err
	}
	caps, err := n.cni.ValidateNetworkList(context.Background(), list)
	if err != nil {
		return nil, fmt.Errorf("CNI network %q: %w", list.Name, err)
	}
	for _, c := range caps {
		n.caps[c] = true
	}
	for _, p := range list.Plugins {
		if p.Network.Type != "bridge" {
			continue
		}
		var b struct {
			IPMasq bool `json:"ipMasq"`
		}
		if json.Unmarshal(p.Bytes, &b) == nil && b.IPMasq {
			n.ipMasq = true
		}
	}
	return n, nil
}

// Name returns the CNI network name.
func (n *Network) Name() string { return n.name }

// loadConfFile reads a user's CNI network list. Single-plugin .conf files
// are a format libcni has deprecated: they are refused with the fix.
func loadConfFile(path string) (*libcni.NetworkConfigList, error) {
	if !strings.HasSuffix(path, ".conflist") {
		return nil, fmt.Errorf("CNI config %s: only network lists (.conflist) are supported; "+
			"wrap the plugin in {\"cniVersion\": ..., \"name\": ..., \"plugins\": [ ... ]} and name the file *.conflist", path)
	}
	list, err := libcni.ConfListFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load CNI conflist %s: %w", path, err)
	}
	return list, nil
}

// writeConfList generates pouch's conflist from cfg (filling its defaults),
// writes it if its content changed and returns it parsed.
func writeConfList(cfg *NetworkConfig) (*libcni.NetworkConfigList, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultNetworkName
	}
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if cfg.Subnet == "" {
		cfg.Subnet = DefaultSubnet
	}
	if cfg.ConfDir == "" {
		cfg.ConfDir = filepath.Join(cfg.StateDir, "net.d")
	}
	if err := CheckBridgeName(cfg.Bridge); err != nil {
		return nil, fmt.Errorf("bridge name %w", err)
	}
	if err := CheckSubnet(cfg.Subnet); err != nil {
		return nil, fmt.Errorf("subnet %w", err)
	}
	_, subnet, _ := net.ParseCIDR(cfg.Subnet)

	conf := map[string]any{
		"cniVersion": cniVersion,
		"name":       cfg.Name,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      cfg.Bridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": subnet.String()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(cfg.StateDir, "ipam"),
				},
			},
			map[string]any{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
			},
			map[string]any{"type": "firewall"},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("CNI network %q: %w", cfg.Name, err)
	}

	path := filepath.Join(cfg.ConfDir, cfg.Name+".conflist")
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return list, nil
	}
	if err := os.MkdirAll(cfg.ConfDir, 0o755); err != nil {
		return nil, fmt.Errorf("create CNI config directory: %w", err)
	}
	tmp, err := os.CreateTemp(cfg.ConfDir, "."+cfg.Name+".conflist.*")
	if err != nil {
		return nil, fmt.Errorf("write CNI conflist: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write CNI conflist: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write CNI conflist: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write CNI conflist: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("write CNI conflist: %w", err)
	}
	return list, nil
}

// checkPlugins reports every plugin binary of list (including IPAM plugins)
// that none of dirs holds.
func checkPlugins(list *libcni.NetworkConfigList, dirs []string) error {
	var missing []string
	seen := map[string]bool{}
	check := func(typ string) {
		if typ == "" || seen[typ] {
			return
		}
		seen[typ] = true
		if _, err := invoke.FindInPath(typ, dirs); err != nil {
			missing = append(missing, typ)
		}
	}
	for _, p := range list.Plugins {
		check(p.Network.Type)
		check(p.Network.IPAM.Type)
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("CNI plugin(s) %s of network %q not found in %s: install the CNI plugins, "+
		"e.g. the Debian package containernetworking-plugins (apt-get install containernetworking-plugins), "+
		"or set the plugin directories",
		strings.Join(missing, ", "), list.Name, strings.Join(dirs, ", "))
}

// portMap is the CNI "portMappings" capability entry.
type portMap struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

func toPortMaps(ports []PortMapping) ([]portMap, error) {
	out := make([]portMap, 0, len(ports))
	for _, p := range ports {
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("port mapping %d:%d: protocol %q is not tcp or udp", p.HostPort, p.ContainerPort, p.Protocol)
		}
		if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
			return nil, fmt.Errorf("port mapping %d:%d: ports must be in 1-65535", p.HostPort, p.ContainerPort)
		}
		if p.HostIP != "" && net.ParseIP(p.HostIP) == nil {
			return nil, fmt.Errorf("port mapping %d:%d: invalid host IP %q", p.HostPort, p.ContainerPort, p.HostIP)
		}
		out = append(out, portMap{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: proto, HostIP: p.HostIP})
	}
	return out, nil
}

// samePorts compares the portMappings capability cached by libcni (decoded
// from JSON) with pm.
func samePorts(cached map[string]any, pm []portMap) bool {
	var old []portMap
	if v, ok := cached["portMappings"]; ok {
		b, err := json.Marshal(v)
		if err != nil || json.Unmarshal(b, &old) != nil {
			return false
		}
	}
	if len(old) == 0 && len(pm) == 0 {
		return true
	}
	return reflect.DeepEqual(old, pm)
}

func (n *Network) runtimeConf(id, netnsPath string, pm []portMap) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: netnsPath, IfName: IfName}
	if len(pm) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

// cachedAttachment returns what libcni recorded at the last successful ADD
// of id on this network, or nil.
func (n *Network) cachedAttachment(id string) (*libcni.NetworkAttachment, *types100.Result, error) {
	atts, err := n.cni.GetCachedAttachments(id)
	if err != nil {
		return nil, nil, fmt.Errorf("read CNI cache: %w", err)
	}
	for _, a := range atts {
		if a.Network != n.list.Name || a.IfName != IfName {
			continue
		}
		rt := &libcni.RuntimeConf{ContainerID: id, NetNS: a.NetNS, IfName: IfName, Args: a.CniArgs, CapabilityArgs: a.CapabilityArgs}
		res, err := n.cni.GetNetworkListCachedResult(n.list, rt)
		if err != nil || res == nil {
			return a, nil, err
		}
		r, err := types100.NewResultFromResult(res)
		if err != nil {
			return a, nil, err
		}
		return a, r, nil
	}
	return nil, nil, nil
}

// Attach connects container id, whose namespace is netnsPath, to the network
// as interface eth0 (CNI ADD) and publishes ports.
//
// It is idempotent: if id is already attached in netnsPath with the same
// ports and CNI CHECK passes, the cached attachment is returned and nothing
// is allocated. If the attachment is stale (the namespace was recreated, e.g.
// after a reboot, or the interface is broken) or the ports changed, it is
// deleted and added again asking host-local and bridge for the same IP and
// MAC; only if that IP cannot be had does the container get a new one.
//
// want asks for an address: a container attached elsewhere is moved to
// it, a new one gets it. With want.Required, a container that cannot have
// it (taken, or outside the range) is not attached: the error says so.
func (n *Network) Attach(ctx context.Context, id, netnsPath string, ports []PortMapping, want Address) (Attachment, error) {
	if err := validID(id); err != nil {
		return Attachment{}, err
	}
	if netnsPath == "" {
		return Attachment{}, errors.New("attach: network namespace path is empty")
	}
	pm, err := toPortMaps(ports)
	if err != nil {
		return Attachment{}, err
	}
	if len(pm) > 0 && !n.caps["portMappings"] {
		return Attachment{}, fmt.Errorf("CNI network %q has no plugin with the portMappings capability (such as portmap): cannot publish ports", n.name)
	}
	unlock := n.locks.lock(id)
	defer unlock()

	rt := n.runtimeConf(id, netnsPath, pm)
	cached, prev, err := n.cachedAttachment(id)
	if err != nil {
		return Attachment{}, err
	}
	ip, mac := want.IP, want.MAC
	if cached != nil {
		old, _ := attachmentOf(prev)
		if prev != nil && cached.NetNS == netnsPath && samePorts(cached.CapabilityArgs, pm) && (want.IP == "" || want.IP == old.IP) {
			crt := *rt
			crt.Args = cached.CniArgs
			if err := n.cni.CheckNetworkList(ctx, n.list, &crt); err == nil || portmapV6CheckBug(err, prev) {
				return attachmentOf(prev)
			}
		}
		// Rebuild, keeping the identity (or moving to the address asked).
		drt := &libcni.RuntimeConf{ContainerID: id, NetNS: cached.NetNS, IfName: IfName, Args: cached.CniArgs, CapabilityArgs: cached.CapabilityArgs}
		if err := n.del(ctx, drt, prev); err != nil {
			return Attachment{}, fmt.Errorf("reattach %s: %w", id, err)
		}
		if ip == "" {
			ip = old.IP
		}
		if mac == "" {
			mac = old.MAC
		}
	}
	if ip != "" {
		rt.Args = [][2]string{{"IgnoreUnknown", "1"}, {"IP", ip}}
		if mac != "" {
			rt.Args = append(rt.Args, [2]string{"MAC", mac})
		}
		att, err := n.add(ctx, rt)
		if err == nil && want.Required && att.IP != ip {
			// An IPAM that ignores the IP argument (a CNI network of the
			// user's) gave another address.
			if derr := n.del(context.WithoutCancel(ctx), rt, nil); derr != nil {
				err = fmt.Errorf("clean up: %w", derr)
			}
			return Attachment{}, errors.Join(fmt.Errorf("CNI network %q gave %s the address %s, not %s: its IPAM does not "+
				"take the IP argument (host-local does)", n.name, id, att.IP, ip), err)
		}
		if err == nil || want.Required {
			return att, err
		}
		rt.Args = nil // the old address is taken or out of range: take any
	}
	return n.add(ctx, rt)
}

// portmapV6CheckBug reports whether err is the spurious CHECK failure of
// portmap before CNI plugins 1.2 (Debian 12 ships 1.1.1): it checks an IPv6
// DNAT chain even for a container without IPv6 address
// (containernetworking/plugins#819). It checks the IPv4 chain first, so the
// IPv4 mappings are verified when this is the error.
func portmapV6CheckBug(err error, prev *types100.Result) bool {
	if err == nil || !strings.Contains(err.Error(), "could not check ipv6 dnat") {
		return false
	}
	for _, ipc := range prev.IPs {
		if ipc.Address.IP.To4() == nil {
			return false
		}
	}
	return true
}

// add runs CNI ADD; on failure it runs DEL so that what the first plugins
// allocated (IP, veth, rules) is released.
func (n *Network) add(ctx context.Context, rt *libcni.RuntimeConf) (Attachment, error) {
	res, err := n.cni.AddNetworkList(ctx, n.list, rt)
	if err == nil {
		var r *types100.Result
		if r, err = types100.NewResultFromResult(res); err == nil {
			var att Attachment
			if att, err = attachmentOf(r); err == nil {
				return att, nil
			}
		}
	}
	if derr := n.del(context.WithoutCancel(ctx), rt, nil); derr != nil {
		err = errors.Join(err, fmt.Errorf("clean up: %w", derr))
	}
	return Attachment{}, fmt.Errorf("attach %s to CNI network %q: %w", rt.ContainerID, n.name, err)
}

// Detach disconnects container id from the network (CNI DEL): it releases
// the IP and removes the port mappings and the interface. The namespace and
// ports recorded by Attach take precedence over netnsPath and ports, which
// are used only when the CNI cache has no record of id. It returns nil if id
// is not attached, and works when the namespace is already gone.
func (n *Network) Detach(ctx context.Context, id, netnsPath string, ports []PortMapping) error {
	if err := validID(id); err != nil {
		return err
	}
	pm, err := toPortMaps(ports)
	if err != nil {
		return err
	}
	unlock := n.locks.lock(id)
	defer unlock()

	rt := n.runtimeConf(id, netnsPath, pm)
	cached, prev, err := n.cachedAttachment(id)
	if err != nil {
		return err
	}
	if cached != nil {
		rt.Args = cached.CniArgs
		rt.CapabilityArgs = cached.CapabilityArgs
		if cached.NetNS != "" {
			rt.NetNS = cached.NetNS
		}
	}
	if err := n.del(ctx, rt, prev); err != nil {
		return fmt.Errorf("detach %s from CNI network %q: %w", id, n.name, err)
	}
	return nil
}

// del runs CNI DEL for rt. A namespace that no longer exists (or is an
// unmounted leftover) is passed as "" so that the plugins clean up what lives
// outside it. The bridge plugin finds the addresses to unmasquerade on the
// interface inside the namespace, so when that is gone its masquerade rule
// would leak: del removes it itself using the addresses of prev.
func (n *Network) del(ctx context.Context, rt *libcni.RuntimeConf, prev *types100.Result) error {
	r := *rt
	if r.NetNS != "" && ns.IsNSorErr(r.NetNS) != nil {
		r.NetNS = ""
	}
	if err := n.cni.DelNetworkList(ctx, n.list, &r); err != nil {
		return err
	}
	if n.ipMasq && prev != nil {
		chain := utils.FormatChainName(n.name, rt.ContainerID)
		comment := utils.FormatComment(n.name, rt.ContainerID)
		for _, ipc := range prev.IPs {
			if err := ip.TeardownIPMasq(&ipc.Address, chain, comment); err != nil {
				return fmt.Errorf("remove masquerade rule: %w", err)
			}
		}
	}
	return nil
}

// attachmentOf extracts the container interface and its IPv4 address (or
// the first address) from a CNI result.
func attachmentOf(r *types100.Result) (Attachment, error) {
	if r == nil {
		return Attachment{}, errors.New("no CNI result")
	}
	idx := -1
	for i, iface := range r.Interfaces {
		if iface.Sandbox == "" {
			continue
		}
		if idx < 0 || iface.Name == IfName {
			idx = i
		}
	}
	var best *types100.IPConfig
	for _, ipc := range r.IPs {
		if ipc.Interface != nil && idx >= 0 && *ipc.Interface != idx {
			continue
		}
		if best == nil || (best.Address.IP.To4() == nil && ipc.Address.IP.To4() != nil) {
			best = ipc
		}
	}
	if best == nil {
		return Attachment{}, errors.New("CNI result has no IP address for the container")
	}
	att := Attachment{IP: best.Address.IP.String(), Interface: IfName}
	att.PrefixLen, _ = best.Address.Mask.Size()
	if best.Gateway != nil {
		att.Gateway = best.Gateway.String()
	}
	if idx >= 0 {
		att.MAC = r.Interfaces[idx].Mac
		att.Interface = r.Interfaces[idx].Name
	}
	return att, nil
}

// keyedMutex serialises operations per key.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
