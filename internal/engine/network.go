package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"reflect"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/pouch/terraform-provider-pouch/internal/engine/host"
)

// networkState is a container's network identity, kept in its record.
type networkState struct {
	Mode NetworkMode `json:"mode"`
	// NetNS is the persistent network namespace (bridge and none); the
	// same file for the container's whole life, so the task of every
	// restart and upgrade rejoins the same interfaces.
	NetNS string        `json:"netns,omitempty"`
	Ports []PortMapping `json:"ports,omitempty"`
	IP    string        `json:"ip,omitempty"`
	MAC   string        `json:"mac,omitempty"`
	// Fixed says that IP is the spec's ipv4_address: the container has it
	// or is not attached.
	Fixed bool `json:"fixed,omitempty"`
	// CNIID is the container's ID on the CNI network; empty in records of
	// older versions, whose CNI ID was the container's name.
	CNIID string `json:"cni_id,omitempty"`
}

// cniID is container id's ID on the CNI network. The CNI state (address
// reservations, cache, iptables chains) is keyed by it and shared by every
// namespace on one data root and bridge, so it names the namespace too:
// containers of the same name in two namespaces get two addresses. The
// suffix is a digest of the namespace, so that no two (namespace, name)
// pairs share an ID.
func (e *Engine) cniID(id string) string {
	sum := sha256.Sum256([]byte(e.opts.Namespace))
	return id + "-" + hex.EncodeToString(sum[:8])
}

// attachID is the CNI ID of a recorded network state.
func (st networkState) attachID(id string) string {
	if st.CNIID != "" {
		return st.CNIID
	}
	return id
}

func networkMode(spec ContainerSpec) NetworkMode {
	if spec.NetworkMode == "" {
		return NetworkBridge
	}
	return spec.NetworkMode
}

// planNetwork returns the network state spec asks for, creating the
// persistent namespace when the mode needs one. It keeps the address of
// the current state; attaching happens in applyNetwork.
func (e *Engine) planNetwork(spec ContainerSpec, current networkState) (networkState, error) {
	next := networkState{Mode: networkMode(spec), Ports: spec.Ports}
	switch next.Mode {
	case NetworkHost:
		if len(spec.Ports) > 0 {
			return networkState{}, fmt.Errorf("%w: ports need network_mode bridge", ErrInvalidSpec)
		}
		return next, nil
	case NetworkBridge, NetworkNone:
		if next.Mode == NetworkNone && len(spec.Ports) > 0 {
			return networkState{}, fmt.Errorf("%w: ports need network_mode bridge", ErrInvalidSpec)
		}
		if current.NetNS != "" {
			// The namespace lives as long as the container.
			if err := contained(e.netnsDir(), current.NetNS); err != nil {
				return networkState{}, err
			}
			next.NetNS = current.NetNS
		} else {
			path, err := e.host.NetNS(spec.Name)
			if err != nil {
				return networkState{}, fmt.Errorf("network namespace: %w", err)
			}
			next.NetNS = path
		}
		next.CNIID = current.CNIID
		if next.CNIID == "" && current.Mode != NetworkBridge {
			next.CNIID = e.cniID(spec.Name)
		}
		if next.Mode == NetworkBridge && current.Mode == NetworkBridge {
			next.IP, next.MAC = current.IP, current.MAC
		}
		if next.Mode == NetworkBridge && spec.IPv4Address != "" {
			next.IP, next.Fixed = spec.IPv4Address, true
		}
		return next, nil
	}
	return networkState{}, fmt.Errorf("%w: network_mode %q: use bridge, host or none", ErrInvalidSpec, spec.NetworkMode)
}

// applyNetwork moves a container's network from one state to the next:
// attaching to the bridge network (which keeps the IP and MAC of an
// attached namespace), re-attaching when the ports change, detaching when
// the container leaves bridge mode. It returns the next state with its
// address filled in.
func (e *Engine) applyNetwork(ctx context.Context, id string, from, to networkState) (networkState, error) {
	if from.Mode == NetworkBridge && (to.Mode != NetworkBridge || from.NetNS != to.NetNS) {
		if err := e.host.Detach(ctx, from.attachID(id), from.NetNS, hostPorts(from.Ports)); err != nil {
			return to, fmt.Errorf("detach from the bridge network: %w", err)
		}
	}
	if to.Mode != NetworkBridge {
		to.IP, to.MAC = "", ""
		return to, nil
	}
	if from.Mode == NetworkBridge && from.NetNS == to.NetNS && reflect.DeepEqual(from.Ports, to.Ports) && from.IP != "" &&
		(to.IP == "" || to.IP == from.IP) {
		return to, nil
	}
	att, err := e.host.Attach(ctx, to.attachID(id), to.NetNS, hostPorts(to.Ports),
		host.Address{IP: to.IP, MAC: to.MAC, Required: to.Fixed})
	if err != nil && to.Fixed {
		return to, fmt.Errorf("%w: ipv4_address %s cannot be had on the bridge network (a container of another "+
			"namespace on the same bridge, or something outside pouch, holds it): choose another address (%w)",
			ErrInvalidSpec, to.IP, err)
	}
	if err != nil {
		return to, fmt.Errorf("attach to the bridge network: %w", err)
	}
	to.IP, to.MAC = att.IP, att.MAC
	e.log.Debug(ctx, "attached to the bridge network", map[string]any{"container": id, "ip": att.IP})
	return to, nil
}

// checkAddressFree refuses spec's fixed address while another container
// of the namespace has it, naming that container.
func (e *Engine) checkAddressFree(ctx context.Context, client *containerd.Client, spec ContainerSpec) error {
	if spec.IPv4Address == "" || networkMode(spec) != NetworkBridge {
		return nil
	}
	all, err := client.ContainerService().List(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range all {
		rec, ok, err := readRecord(c)
		if err != nil || !ok || c.ID == spec.Name {
			continue
		}
		j, _ := readJournal(c)
		if rec.Network.IP == spec.IPv4Address || (j.Phase != "" && j.NewNetwork.IP == spec.IPv4Address) {
			return fmt.Errorf("%w: ipv4_address %s is held by container %s: choose another address, or change that "+
				"container's first", ErrInvalidSpec, spec.IPv4Address, c.ID)
		}
	}
	return nil
}

// releaseNetwork detaches a deleted container and removes its namespace.
// The namespace is removed even when the detach fails, so that nothing is
// left mounted; both errors are reported.
func (e *Engine) releaseNetwork(ctx context.Context, id string, st networkState) error {
	var errs []error
	if st.Mode == NetworkBridge && st.IP != "" {
		if err := e.host.Detach(ctx, st.attachID(id), st.NetNS, hostPorts(st.Ports)); err != nil {
			errs = append(errs, fmt.Errorf("detach from the bridge network: %w", err))
		}
	}
	if err := e.removeNetNS(st.NetNS); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeNetNS removes a recorded network namespace, once it is checked to
// be one of this engine's.
func (e *Engine) removeNetNS(path string) error {
	if path == "" {
		return nil
	}
	if err := contained(e.netnsDir(), path); err != nil {
		return err
	}
	if err := e.host.RemoveNetNS(path); err != nil {
		return fmt.Errorf("remove network namespace: %w", err)
	}
	return nil
}

func hostPorts(ports []PortMapping) []host.PortMapping {
	out := make([]host.PortMapping, len(ports))
	for i, p := range ports {
		out[i] = host.PortMapping{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol}
	}
	return out
}

// checkPortsFree refuses a published port that another container of the
// namespace publishes already: both would get the host's forwarding rules,
// and one of them nothing.
func (e *Engine) checkPortsFree(ctx context.Context, client *containerd.Client, spec ContainerSpec) error {
	if len(spec.Ports) == 0 {
		return nil
	}
	all, err := client.ContainerService().List(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range all {
		if c.ID == spec.Name {
			continue
		}
		rec, ok, err := readRecord(c)
		if err != nil || !ok {
			continue
		}
		for i, p := range spec.Ports {
			for _, q := range rec.Network.Ports {
				if portsClash(p, q) {
					return fmt.Errorf("%w: ports[%d] publishes %s, which container %s publishes already: "+
						"choose another external port or address", ErrInvalidSpec, i, describePort(p), c.ID)
				}
			}
		}
	}
	return nil
}

// portsClash reports whether two published ports take the same host port:
// the same port and protocol, on the same address or on all of them.
func portsClash(a, b PortMapping) bool {
	if a.HostPort != b.HostPort || protocol(a) != protocol(b) {
		return false
	}
	all := func(ip string) bool {
		addr, err := netip.ParseAddr(ip)
		return ip == "" || err == nil && addr.IsUnspecified()
	}
	return all(a.HostIP) || all(b.HostIP) || a.HostIP == b.HostIP
}
