//go:build linux

package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

const wait = 10 * time.Second

func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, bridges, iptables, owners): run `make test`")
	}
}

var netSeq atomic.Int32

// testNet is a Network with a bridge and subnet private to this test and
// this process: bridge "pouchT<pid%1000>-<seq>", subnet 10.<200+seq>.<pid%256>.0/<bits>.
type testNet struct {
	*Network
	cfg    NetworkConfig
	prefix string // e.g. "10.201.17."
	t      *testing.T
}

func newTestNet(t *testing.T, bits int) *testNet {
	t.Helper()
	requireRoot(t)
	seq := int(netSeq.Add(1))
	pid := os.Getpid()
	prefix := fmt.Sprintf("10.%d.%d.", 200+seq, pid%256)
	cfg := NetworkConfig{
		Name:     fmt.Sprintf("pouch-test-%d-%d", pid, seq),
		Bridge:   fmt.Sprintf("pouchT%d-%d", pid%1000, seq),
		Subnet:   fmt.Sprintf("%s0/%d", prefix, bits),
		StateDir: t.TempDir(),
	}
	n, err := NewNetwork(cfg)
	if err != nil {
		t.Fatalf("NewNetwork: %v", err)
	}
	tn := &testNet{Network: n, cfg: cfg, prefix: prefix, t: t}
	// Registered first, so it runs last: after every container's Detach.
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(cfg.Bridge); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("delete bridge %s: %v", cfg.Bridge, err)
			}
		}
		if out := iptablesSave(t); strings.Contains(out, cfg.Name) || strings.Contains(out, prefix) {
			t.Errorf("iptables rules of network %s left behind:\n%s", cfg.Name, grepLines(out, cfg.Name, prefix))
		}
	})
	return tn
}

// container creates a namespace for id, attaches it and registers the
// cleanup (Detach, RemoveNetNS).
func (tn *testNet) container(id string, ports []PortMapping) (string, Attachment) {
	t := tn.t
	t.Helper()
	path, err := CreateNetNS(filepath.Join(tn.cfg.StateDir, "netns"), id)
	if err != nil {
		t.Fatalf("CreateNetNS(%s): %v", id, err)
	}
	t.Cleanup(func() {
		if err := tn.Detach(context.Background(), id, path, ports); err != nil {
			t.Errorf("cleanup Detach(%s): %v", id, err)
		}
		if err := RemoveNetNS(path); err != nil {
			t.Errorf("cleanup RemoveNetNS(%s): %v", id, err)
		}
	})
	att, err := tn.Attach(context.Background(), id, path, ports, Address{})
	if err != nil {
		t.Fatalf("Attach(%s): %v", id, err)
	}
	return path, att
}

// reservations returns the host-local IPAM reservations: IP -> container id.
func (tn *testNet) reservations() map[string]string {
	tn.t.Helper()
	dir := filepath.Join(tn.cfg.StateDir, "ipam", tn.cfg.Name)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		tn.t.Fatal(err)
	}
	res := map[string]string{}
	for _, e := range entries {
		if net.ParseIP(e.Name()) == nil {
			continue // lock, last_reserved_ip.0
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tn.t.Fatal(err)
		}
		res[e.Name()] = strings.Fields(string(b))[0]
	}
	return res
}

// bridgePorts lists the host-side veths enslaved to the test bridge.
func (tn *testNet) bridgePorts() []string {
	tn.t.Helper()
	br, err := netlink.LinkByName(tn.cfg.Bridge)
	if err != nil {
		tn.t.Fatalf("bridge %s: %v", tn.cfg.Bridge, err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		tn.t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

func iptablesSave(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v\n%s", err, out)
	}
	return string(out)
}

func grepLines(s string, words ...string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				b.WriteString(l + "\n")
				break
			}
		}
	}
	return b.String()
}

// serve listens on addr inside the namespace at nsPath and answers every
// connection with greeting. The socket is created while the thread is in
// the namespace (ns.Do locks the OS thread), and keeps that namespace after.
func serve(t *testing.T, nsPath, addr, greeting string) {
	t.Helper()
	var ln net.Listener
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, nsPath, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, greeting)
			c.Close()
		}
	}()
}

// fetch connects to addr (from the calling thread's namespace) and returns
// the first line it receives.
func fetch(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// expectGreeting waits until addr answers want.
func expectGreeting(t *testing.T, addr, want string) {
	t.Helper()
	var got string
	var err error
	testenv.Eventually(t, wait, "reach "+addr, func() bool {
		got, err = fetch(addr)
		return err == nil && got == want
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

// linkInNS returns the addresses and MAC of ifname inside the namespace.
func linkInNS(t *testing.T, nsPath, ifname string) (addrs []string, mac string, up bool) {
	t.Helper()
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr.String()
		up = l.Attrs().Flags&net.FlagUp != 0
		as, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range as {
			addrs = append(addrs, a.IPNet.String())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("inspect %s in %s: %v", ifname, nsPath, err)
	}
	return addrs, mac, up
}

func ifIndexInNS(t *testing.T, nsPath, ifname string) int {
	t.Helper()
	var idx int
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifname)
		if err == nil {
			idx = l.Attrs().Index
		}
		return err
	})
	if err != nil {
		t.Fatalf("inspect %s in %s: %v", ifname, nsPath, err)
	}
	return idx
}

func TestNetNSPersistentAndIdempotent(t *testing.T) {
	requireRoot(t)
	base := filepath.Join(t.TempDir(), "netns")

	p1, err := CreateNetNS(base, "c1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = RemoveNetNS(p1) })
	if err := ns.IsNSorErr(p1); err != nil {
		t.Fatalf("%s is not a network namespace: %v", p1, err)
	}
	p2, err := CreateNetNS(base, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 || inode(t, p1) != inode(t, p2) {
		t.Fatalf("second CreateNetNS gave %s (inode %d), want %s (inode %d)", p2, inode(t, p2), p1, inode(t, p1))
	}
	if _, _, up := linkInNS(t, p1, "lo"); !up {
		t.Error("lo is down in the new namespace")
	}

	// A namespace file left unmounted (as after a reboot) is replaced.
	if err := unix.Unmount(p1, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	p3, err := CreateNetNS(base, "c1")
	if err != nil {
		t.Fatalf("CreateNetNS over a stale file: %v", err)
	}
	t.Cleanup(func() { _ = RemoveNetNS(p3) })
	if err := ns.IsNSorErr(p3); err != nil {
		t.Fatalf("%s is not a network namespace: %v", p3, err)
	}
	if _, err := os.Stat(p1); p3 != p1 && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale file %s still there (err %v)", p1, err)
	}

	if err := RemoveNetNS(p3); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p3); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still exists after RemoveNetNS (err %v)", p3, err)
	}
	if _, err := os.Stat(filepath.Join(base, "c1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("per-container directory left behind (err %v)", err)
	}
	if err := RemoveNetNS(p3); err != nil {
		t.Fatalf("second RemoveNetNS: %v", err)
	}
	if _, err := CreateNetNS(base, "../x"); err == nil {
		t.Error("CreateNetNS accepted id ../x")
	}
}

func TestAttachIdentityReachabilityAndPorts(t *testing.T) {
	tn := newTestNet(t, 24)
	ctx := context.Background()
	hostPort := freePort(t)
	ports := []PortMapping{{HostIP: "127.0.0.1", HostPort: hostPort, ContainerPort: 8080, Protocol: "tcp"}}
	path, att := tn.container("web", ports)

	_, subnet, _ := net.ParseCIDR(tn.cfg.Subnet)
	if ip := net.ParseIP(att.IP); ip == nil || !subnet.Contains(ip) {
		t.Fatalf("IP %q not in %s", att.IP, subnet)
	}
	if _, err := net.ParseMAC(att.MAC); err != nil {
		t.Fatalf("MAC %q: %v", att.MAC, err)
	}
	if att.Gateway != tn.prefix+"1" || att.PrefixLen != 24 || att.Interface != "eth0" {
		t.Fatalf("attachment %+v: want gateway %s1, /24, eth0", att, tn.prefix)
	}

	idx := ifIndexInNS(t, path, "eth0")
	veths := tn.bridgePorts()
	again, err := tn.Attach(ctx, "web", path, ports, Address{})
	if err != nil {
		t.Fatalf("second Attach: %v", err)
	}
	if again != att {
		t.Fatalf("second Attach gave %+v, want %+v", again, att)
	}
	// ... and left the interface alone (no DEL + ADD behind the scenes).
	if got := ifIndexInNS(t, path, "eth0"); got != idx || !slices.Equal(tn.bridgePorts(), veths) {
		t.Fatalf("second Attach recreated the interface: eth0 index %d -> %d, veths %v -> %v", idx, got, veths, tn.bridgePorts())
	}
	if r := tn.reservations(); len(r) != 1 || r[att.IP] != "web" {
		t.Fatalf("IPAM reservations %v, want only %s for web", r, att.IP)
	}

	addrs, mac, up := linkInNS(t, path, "eth0")
	if !up || mac != att.MAC || len(addrs) != 1 || addrs[0] != fmt.Sprintf("%s/24", att.IP) {
		t.Fatalf("eth0 in netns: addrs %v mac %s up %v; want %s/24 %s up", addrs, mac, up, att.IP, att.MAC)
	}

	serve(t, path, att.IP+":8080", "hello from web")
	expectGreeting(t, net.JoinHostPort(att.IP, "8080"), "hello from web")
	local := net.JoinHostPort("127.0.0.1", fmt.Sprint(hostPort))
	expectGreeting(t, local, "hello from web")
	// 127.0.0.1 -> container DNAT works because portmap sets route_localnet
	// on the bridge (only there; net.ipv4.conf.all stays untouched).
	if b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + tn.cfg.Bridge + "/route_localnet"); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Errorf("route_localnet on %s: %q, %v", tn.cfg.Bridge, b, err)
	}

	// Changing the ports keeps the identity and moves the mapping.
	newPort := freePort(t)
	ports2 := []PortMapping{{HostIP: "127.0.0.1", HostPort: newPort, ContainerPort: 8080}}
	moved, err := tn.Attach(ctx, "web", path, ports2, Address{})
	if err != nil {
		t.Fatalf("Attach with new ports: %v", err)
	}
	if moved != att {
		t.Fatalf("Attach with new ports gave %+v, want %+v", moved, att)
	}
	expectGreeting(t, net.JoinHostPort("127.0.0.1", fmt.Sprint(newPort)), "hello from web")
	if _, err := fetch(local); err == nil {
		t.Errorf("old mapping %s still answers", local)
	}
	if r := tn.reservations(); len(r) != 1 || r[att.IP] != "web" {
		t.Fatalf("IPAM reservations %v, want only %s for web", r, att.IP)
	}
	if err := tn.Detach(ctx, "web", path, nil); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if _, err := fetch(net.JoinHostPort("127.0.0.1", fmt.Sprint(newPort))); err == nil {
		t.Error("port mapping still answers after Detach")
	}
	if out := iptablesSave(t); strings.Contains(out, `"web"`) || strings.Contains(out, att.IP) {
		t.Errorf("iptables rules for web left after Detach:\n%s", grepLines(out, `"web"`, att.IP))
	}
}

func TestTwoContainersTalk(t *testing.T) {
	tn := newTestNet(t, 24)
	pathA, a := tn.container("a", nil)
	pathB, b := tn.container("b", nil)
	if a.IP == b.IP || a.MAC == b.MAC {
		t.Fatalf("a %+v and b %+v share an address", a, b)
	}
	serve(t, pathB, b.IP+":9000", "b here")
	serve(t, pathA, a.IP+":9000", "a here")

	var got string
	var err error
	testenv.Eventually(t, wait, "a reaches b", func() bool {
		err = ns.WithNetNSPath(pathA, func(ns.NetNS) error {
			got, err = fetch(net.JoinHostPort(b.IP, "9000"))
			return err
		})
		return err == nil && got == "b here"
	})
	testenv.Eventually(t, wait, "b reaches a", func() bool {
		err = ns.WithNetNSPath(pathB, func(ns.NetNS) error {
			got, err = fetch(net.JoinHostPort(a.IP, "9000"))
			return err
		})
		return err == nil && got == "a here"
	})
	// Loopback works inside a container namespace.
	serve(t, pathA, "127.0.0.1:9001", "a loopback")
	err = ns.WithNetNSPath(pathA, func(ns.NetNS) error {
		got, err = fetch("127.0.0.1:9001")
		return err
	})
	if err != nil || got != "a loopback" {
		t.Fatalf("loopback inside a: %q, %v", got, err)
	}
}

func TestConcurrentAttach(t *testing.T) {
	tn := newTestNet(t, 24)
	const n = 6
	base := filepath.Join(tn.cfg.StateDir, "netns")
	paths := make([]string, n)
	for i := range paths {
		id := fmt.Sprintf("p%d", i)
		p, err := CreateNetNS(base, id)
		if err != nil {
			t.Fatal(err)
		}
		paths[i] = p
		t.Cleanup(func() {
			if err := tn.Detach(context.Background(), id, p, nil); err != nil {
				t.Errorf("Detach %s: %v", id, err)
			}
			if err := RemoveNetNS(p); err != nil {
				t.Error(err)
			}
		})
	}
	atts := make([]Attachment, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			atts[i], errs[i] = tn.Attach(context.Background(), fmt.Sprintf("p%d", i), paths[i], nil, Address{})
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Attach p%d: %v", i, err)
		}
		if seen[atts[i].IP] {
			t.Fatalf("IP %s given twice", atts[i].IP)
		}
		seen[atts[i].IP] = true
	}
	if r := tn.reservations(); len(r) != n {
		t.Fatalf("reservations %v, want %d", r, n)
	}
}

func TestDetachReleasesEverything(t *testing.T) {
	tn := newTestNet(t, 29) // .2 to .6: five addresses, so reuse comes fast
	ctx := context.Background()
	base := filepath.Join(tn.cfg.StateDir, "netns")
	ports := []PortMapping{{HostIP: "127.0.0.1", HostPort: freePort(t), ContainerPort: 80}}

	first := ""
	reused := false
	for i := 0; i < 7 && !reused; i++ {
		id := fmt.Sprintf("c%d", i)
		path, err := CreateNetNS(base, id)
		if err != nil {
			t.Fatal(err)
		}
		att, err := tn.Attach(ctx, id, path, ports, Address{})
		if err != nil {
			t.Fatalf("Attach %s: %v", id, err)
		}
		if i == 0 {
			first = att.IP
		} else if att.IP == first {
			reused = true
		}
		if r := tn.reservations(); len(r) != 1 || r[att.IP] != id {
			t.Fatalf("reservations %v, want only %s for %s", r, att.IP, id)
		}
		if p := tn.bridgePorts(); len(p) != 1 {
			t.Fatalf("bridge ports %v, want one veth", p)
		}
		if err := tn.Detach(ctx, id, path, ports); err != nil {
			t.Fatalf("Detach %s: %v", id, err)
		}
		if err := tn.Detach(ctx, id, path, ports); err != nil {
			t.Fatalf("second Detach %s: %v", id, err)
		}
		if err := RemoveNetNS(path); err != nil {
			t.Fatal(err)
		}
		if err := tn.Detach(ctx, id, path, ports); err != nil {
			t.Fatalf("Detach %s after RemoveNetNS: %v", id, err)
		}
		if r := tn.reservations(); len(r) != 0 {
			t.Fatalf("reservations after Detach %v", r)
		}
		if p := tn.bridgePorts(); len(p) != 0 {
			t.Fatalf("veths left on the bridge after Detach: %v", p)
		}
		if out := iptablesSave(t); strings.Contains(out, fmt.Sprintf("%q", id)) || strings.Contains(out, att.IP+"/") {
			t.Fatalf("iptables rules of %s left:\n%s", id, grepLines(out, fmt.Sprintf("%q", id), att.IP+"/"))
		}
	}
	if !reused {
		t.Fatalf("address %s never reused", first)
	}
}

func TestDetachAfterNetNSGone(t *testing.T) {
	tn := newTestNet(t, 24)
	ctx := context.Background()
	ports := []PortMapping{{HostIP: "127.0.0.1", HostPort: freePort(t), ContainerPort: 80}}
	path, att := tn.container("gone", ports)
	if err := RemoveNetNS(path); err != nil {
		t.Fatal(err)
	}
	if err := tn.Detach(ctx, "gone", path, nil); err != nil {
		t.Fatalf("Detach without namespace: %v", err)
	}
	if r := tn.reservations(); len(r) != 0 {
		t.Fatalf("reservations after Detach %v", r)
	}
	if out := iptablesSave(t); strings.Contains(out, `"gone"`) || strings.Contains(out, att.IP+"/") {
		t.Fatalf("iptables rules left:\n%s", grepLines(out, `"gone"`, att.IP+"/"))
	}
	testenv.Eventually(t, wait, "veth destroyed with its namespace", func() bool {
		return len(tn.bridgePorts()) == 0
	})
}

// After a reboot the namespace mounts are gone: CreateNetNS makes a new
// namespace and Attach gives the container its old IP and MAC back.
func TestReattachKeepsIdentity(t *testing.T) {
	tn := newTestNet(t, 24)
	ctx := context.Background()
	base := filepath.Join(tn.cfg.StateDir, "netns")
	ports := []PortMapping{{HostIP: "127.0.0.1", HostPort: freePort(t), ContainerPort: 8080}}
	// Take .2 with another container first, so that a fresh allocation
	// would not land on the same address by chance.
	tn.container("other", nil)
	old, att := tn.container("keep", ports)

	if err := unix.Unmount(old, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	path, err := CreateNetNS(base, "keep")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tn.Detach(ctx, "keep", path, ports); err != nil {
			t.Errorf("Detach: %v", err)
		}
		if err := RemoveNetNS(path); err != nil {
			t.Error(err)
		}
	})
	if path == old {
		t.Fatalf("CreateNetNS reused the stale path %s", path)
	}
	got, err := tn.Attach(ctx, "keep", path, ports, Address{})
	if err != nil {
		t.Fatalf("Attach in the new namespace: %v", err)
	}
	if got != att {
		t.Fatalf("identity changed: %+v, want %+v", got, att)
	}
	addrs, mac, _ := linkInNS(t, path, "eth0")
	if mac != att.MAC || len(addrs) != 1 || addrs[0] != att.IP+"/24" {
		t.Fatalf("eth0 in the new namespace: %v %s, want %s/24 %s", addrs, mac, att.IP, att.MAC)
	}
	if r := tn.reservations(); len(r) != 2 || r[att.IP] != "keep" {
		t.Fatalf("reservations %v", r)
	}
	serve(t, path, att.IP+":8080", "still me")
	expectGreeting(t, fmt.Sprintf("127.0.0.1:%d", ports[0].HostPort), "still me")
}

func TestNewNetworkConfig(t *testing.T) {
	requireRoot(t)
	state := t.TempDir()

	_, err := NewNetwork(NetworkConfig{StateDir: state, PluginDirs: []string{t.TempDir()}})
	if err == nil || !strings.Contains(err.Error(), "bridge") || !strings.Contains(err.Error(), "containernetworking-plugins") {
		t.Fatalf("missing plugins: got %v, want an error naming bridge and containernetworking-plugins", err)
	}
	if _, err := NewNetwork(NetworkConfig{StateDir: state, Subnet: "nonsense"}); err == nil {
		t.Error("invalid subnet accepted")
	}
	if _, err := NewNetwork(NetworkConfig{}); err == nil {
		t.Error("empty StateDir accepted")
	}

	// Defaults: pouch writes its conflist into StateDir/net.d.
	n, err := NewNetwork(NetworkConfig{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if n.Name() != DefaultNetworkName {
		t.Errorf("name %q", n.Name())
	}
	b, err := os.ReadFile(filepath.Join(state, "net.d", "pouch.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"bridge": "pouch0"`, `"subnet": "10.88.0.0/16"`, `"type": "portmap"`, `"type": "firewall"`,
		`"isGateway": true`, `"ipMasq": true`, fmt.Sprintf(`"dataDir": %q`, filepath.Join(state, "ipam"))} {
		if !strings.Contains(string(b), want) {
			t.Errorf("conflist lacks %s:\n%s", want, b)
		}
	}

	// A user's conflist is used as is; pouch writes nothing.
	user := filepath.Join(t.TempDir(), "mine.conflist")
	conf := `{"cniVersion":"1.0.0","name":"mine","plugins":[{"type":"bridge","bridge":"mine0","ipam":{"type":"host-local","subnet":"10.99.0.0/24"}}]}`
	if err := os.WriteFile(user, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	confDir := filepath.Join(t.TempDir(), "net.d")
	m, err := NewNetwork(NetworkConfig{ConfFile: user, ConfDir: confDir, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if m.Name() != "mine" {
		t.Errorf("name %q, want mine", m.Name())
	}
	if _, err := os.Stat(confDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pouch wrote into %s with a user ConfFile", confDir)
	}
	_, err = m.Attach(context.Background(), "x", "/nonexistent", []PortMapping{{HostPort: 8080, ContainerPort: 80}}, Address{})
	if err == nil || !strings.Contains(err.Error(), "portMappings") {
		t.Errorf("ports on a network without portmap: %v", err)
	}
	if _, err := toPortMaps([]PortMapping{{HostPort: 1, ContainerPort: 2, Protocol: "sctp"}}); err == nil {
		t.Error("sctp accepted")
	}
}
