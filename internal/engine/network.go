package engine

import (
	"context"
	"fmt"
	"reflect"

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
		path, err := e.host.NetNS(spec.Name)
		if err != nil {
			return networkState{}, fmt.Errorf("network namespace: %w", err)
		}
		next.NetNS = path
		if next.Mode == NetworkBridge && current.Mode == NetworkBridge {
			next.IP, next.MAC = current.IP, current.MAC
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
		if err := e.host.Detach(ctx, id, from.NetNS, hostPorts(from.Ports)); err != nil {
			return to, fmt.Errorf("detach from the bridge network: %w", err)
		}
	}
	if to.Mode != NetworkBridge {
		to.IP, to.MAC = "", ""
		return to, nil
	}
	if from.Mode == NetworkBridge && from.NetNS == to.NetNS && reflect.DeepEqual(from.Ports, to.Ports) && from.IP != "" {
		return to, nil
	}
	att, err := e.host.Attach(ctx, id, to.NetNS, hostPorts(to.Ports))
	if err != nil {
		return to, fmt.Errorf("attach to the bridge network: %w", err)
	}
	to.IP, to.MAC = att.IP, att.MAC
	e.log.Debug(ctx, "attached to the bridge network", map[string]any{"container": id, "ip": att.IP})
	return to, nil
}

// releaseNetwork detaches a deleted container and removes its namespace.
func (e *Engine) releaseNetwork(ctx context.Context, id string, st networkState) error {
	if st.Mode == NetworkBridge {
		if err := e.host.Detach(ctx, id, st.NetNS, hostPorts(st.Ports)); err != nil {
			return fmt.Errorf("detach from the bridge network: %w", err)
		}
	}
	if st.NetNS != "" {
		if err := e.host.RemoveNetNS(st.NetNS); err != nil {
			return fmt.Errorf("remove network namespace: %w", err)
		}
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
