package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// sshClient is a Client for host h, trusting its key through its
// known_hosts file unless ssh says otherwise.
func sshClient(t *testing.T, h *testenv.SSHHost, ssh SSH, log engine.Logger) *Client {
	t.Helper()
	if ssh.PrivateKeyFile == "" && ssh.PrivateKey == "" {
		ssh.PrivateKeyFile = h.ClientKey
	}
	if ssh.HostKey == "" && ssh.KnownHostsFile == "" && !ssh.InsecureIgnoreHostKey {
		ssh.KnownHostsFile = h.KnownHosts
	}
	opts := engineOptions(h.Env)
	opts.Logger = log
	c, err := New(Config{Host: h.URL, SSH: ssh, Engine: opts, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// messages keeps log lines.
type messages struct {
	mu    sync.Mutex
	lines []string
}

func (m *messages) Debug(_ context.Context, msg string, _ map[string]any) { m.add(msg) }
func (m *messages) Info(_ context.Context, msg string, _ map[string]any)  { m.add(msg) }
func (m *messages) add(msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lines = append(m.lines, msg)
}

func (m *messages) count(msg string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, l := range m.lines {
		if l == msg {
			n++
		}
	}
	return n
}

// A host's key is always checked: an unknown or changed key is refused
// with the key offered and how to pin it; a pinned key, known_hosts lines
// and a known_hosts file are trusted; not checking is an explicit choice.
func TestHostKeys(t *testing.T) {
	env := testenv.Get(t)
	h := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "keys"})
	other := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "other", NoDaemon: true})
	ctx := context.Background()
	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ssh  SSH
		want []string // in the error; none: it connects
	}{
		{"unknown host", SSH{KnownHostsFile: empty}, []string{"is not known", h.HostKeyFingerprint, "ssh.host_key", h.HostKey}},
		{"changed key, pinned", SSH{HostKey: other.HostKey}, []string{"THE HOST KEY CHANGED", h.HostKeyFingerprint}},
		{"changed key, known_hosts", SSH{HostKey: "[127.0.0.1]:" + port(h.Addr) + " " + other.HostKey}, []string{"THE HOST KEY CHANGED"}},
		{"pinned key", SSH{HostKey: h.HostKey}, nil},
		{"known_hosts lines", SSH{HostKey: "[127.0.0.1]:" + port(h.Addr) + " " + h.HostKey}, nil},
		{"known_hosts file", SSH{KnownHostsFile: h.KnownHosts}, nil},
		{"not checked", SSH{InsecureIgnoreHostKey: true}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := sshClient(t, h, c.ssh, nil).Ping(ctx)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("ping: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("connected, want a refusal of the host's key")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// A user the host does not let in is refused, saying what to check.
func TestWrongUser(t *testing.T) {
	env := testenv.Get(t)
	h := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "user"})
	opts := engineOptions(h.Env)
	c, err := New(Config{Host: strings.Replace(h.URL, "root@", "nobody@", 1),
		SSH: SSH{PrivateKeyFile: h.ClientKey, KnownHostsFile: h.KnownHosts}, Engine: opts})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refused the offered keys") || !strings.Contains(err.Error(), "nobody@") {
		t.Fatalf("ping as a user the host refuses: %v", err)
	}
}

// A host behind a bastion is reached through it, with both keys checked.
func TestProxyJump(t *testing.T) {
	env := testenv.Get(t)
	bastion := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "bastion", NoDaemon: true})
	h := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "behind"})
	keys := "[127.0.0.1]:" + port(bastion.Addr) + " " + bastion.HostKey + "\n[127.0.0.1]:" + port(h.Addr) + " " + h.HostKey
	// Each host authorizes a key of its own: offer both.
	both := SSH{PrivateKey: bastion.ClientKeyPEM, PrivateKeyFile: h.ClientKey, ProxyJump: []string{"root@" + bastion.Addr}}
	withKeys := func(hostKey string) SSH { s := both; s.HostKey = hostKey; return s }
	c := sshClient(t, h, withKeys(keys), nil)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("ping through the bastion: %v", err)
	}
	// The bastion's key is checked too.
	c = sshClient(t, h, withKeys("[127.0.0.1]:"+port(h.Addr)+" "+h.HostKey), nil)
	if err := c.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), bastion.Addr) {
		t.Fatalf("ping through a bastion whose key is not known: %v, want it refused", err)
	}
}

// The agent is uploaded once per version per host: a second connection
// uses the copy there, and a copy that is not this binary is replaced.
func TestAgentUploadedOnce(t *testing.T) {
	env := testenv.Get(t)
	h := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "upload"})
	ctx := context.Background()
	log := &messages{}
	if err := sshClient(t, h, SSH{}, log).Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sshClient(t, h, SSH{}, log).Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if n := log.count("uploaded the agent to the host"); n != 1 {
		t.Fatalf("the agent was uploaded %d times for two connections, want once", n)
	}
	// A connection to a host that has the agent is one SSH session: the
	// checksum is checked in the session that starts it.
	before := sessionsStarted(t, h)
	if err := sshClient(t, h, SSH{}, log).Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sessionsStarted(t, h) - before; n != 1 {
		t.Fatalf("a connection to a host with the agent took %d SSH sessions, want 1", n)
	}
	agent, sum := hostAgent(t, h)
	if got := fileSHA(t, agent); got != sum {
		t.Fatalf("the agent on the host has checksum %s, want this binary's %s", got, sum)
	}
	if fi, err := os.Stat(agent); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the agent on the host: %v, %v; want mode 0700", fi, err)
	}
	// A copy that was tampered with (replaced while the running agents
	// keep theirs) is not run: it is replaced.
	tampered := agent + ".tampered"
	if err := os.WriteFile(tampered, []byte("#!/bin/sh\necho pwned\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tampered, agent); err != nil {
		t.Fatal(err)
	}
	if err := sshClient(t, h, SSH{}, log).Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if n := log.count("uploaded the agent to the host"); n != 2 || fileSHA(t, agent) != sum {
		t.Fatalf("after tampering: %d uploads, checksum %s; want the copy replaced", n, fileSHA(t, agent))
	}
}

// The checksum is checked again only when the agent's file changed since
// the last check that passed (inode, size, change time in <agent>.ok): an
// agent with a byte appended, whose .ok says it is as checked, starts
// without an upload; without the .ok, its checksum is checked and it is
// replaced.
func TestAgentHashedOnlyWhenChanged(t *testing.T) {
	env := testenv.Get(t)
	h := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "marker"})
	ctx := context.Background()
	log := &messages{}
	ping := func() {
		t.Helper()
		c := sshClient(t, h, SSH{}, log)
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		closeAll(t, h) // no agent may run while its file is written
	}
	ping()
	agent, sum := hostAgent(t, h)
	f := openAgent(t, agent, os.O_WRONLY|os.O_APPEND)
	_, err := f.Write([]byte{0}) // an ELF file runs the same with a byte more
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	stat, err := exec.Command("stat", "-c", "%i %s %z", agent).Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agent+".ok", stat, 0o600); err != nil {
		t.Fatal(err)
	}
	ping()
	if n := log.count("uploaded the agent to the host"); n != 1 {
		t.Fatalf("%d uploads, want 1: an agent whose .ok matches is started without a check", n)
	}
	if err := os.Remove(agent + ".ok"); err != nil {
		t.Fatal(err)
	}
	ping()
	if n := log.count("uploaded the agent to the host"); n != 2 || fileSHA(t, agent) != sum {
		t.Fatalf("without its .ok: %d uploads, checksum %s; want the changed copy checked and replaced", n, fileSHA(t, agent))
	}
}

// A data root on a file system mounted noexec cannot hold the agent: the
// provider uploads it once, and says why it does not start and what to do.
func TestAgentOnANoexecDataRoot(t *testing.T) {
	env := testenv.Get(t)
	h := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "noexec"})
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "noexec,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a noexec tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	opts := engineOptions(h.Env)
	opts.DataRoot = dir
	log := &messages{}
	opts.Logger = log
	c, err := New(Config{Host: h.URL, SSH: SSH{PrivateKeyFile: h.ClientKey, KnownHostsFile: h.KnownHosts}, Engine: opts, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	err = c.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "noexec") || !strings.Contains(err.Error(), "set data_root") {
		t.Fatalf("err = %v, want the agent refused for a noexec data root, saying to move data_root", err)
	}
	if n := log.count("uploaded the agent to the host"); n != 1 {
		t.Fatalf("%d uploads, want 1", n)
	}
}

// A copy changed in place (same inode, same size) right after a check
// passed is not run: the launch keeps the inode, size and change time of
// the last check, and checks the checksum again when they differ.
func TestAgentChangedInPlace(t *testing.T) {
	env := testenv.Get(t)
	h := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "inplace"})
	ctx := context.Background()
	log := &messages{}
	c := sshClient(t, h, SSH{}, log)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	closeAll(t, h) // no agent may run while its file is written
	agent, sum := hostAgent(t, h)
	f := openAgent(t, agent, os.O_WRONLY)
	if _, err := f.WriteAt([]byte("#!/bin/sh\necho pwned\n"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := sshClient(t, h, SSH{}, log).Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if n := log.count("uploaded the agent to the host"); n != 2 || fileSHA(t, agent) != sum {
		t.Fatalf("after a change in place: %d uploads, checksum %s; want the copy replaced", n, fileSHA(t, agent))
	}
}

// hostAgent is where the provider uploads itself on h (agentFile), and
// its checksum.
func hostAgent(t *testing.T, h *testenv.SSHHost) (agent, sum string) {
	t.Helper()
	agent, sum, err := agentFile(h.Env.DataRoot, "")
	if err != nil {
		t.Fatal(err)
	}
	return agent, sum
}

// openAgent opens the agent's file on the host with flag, once the last
// agent's process is gone ("text file busy" until then).
func openAgent(t *testing.T, agent string, flag int) *os.File {
	t.Helper()
	var f *os.File
	testenv.Eventually(t, 10*time.Second, "the agent's file can be written", func() bool {
		var err error
		f, err = os.OpenFile(agent, flag, 0)
		return err == nil
	})
	return f
}

// closeAll waits until no agent the host's sessions started runs: the
// clients of the test so far are closed.
func closeAll(t *testing.T, h *testenv.SSHHost) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "the agents exit", func() bool { return len(h.Started()) == 0 })
}

// Providers of several pipelines connecting to a fresh host at once all
// get a whole agent: each uploads to a file of its own and renames it into
// place; none is left half-written, and no upload file is left behind.
func TestAgentUploadedConcurrently(t *testing.T) {
	env := testenv.Get(t)
	h := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "uploads"})
	const n = 6
	errs := make(chan error, n)
	for range n {
		c := sshClient(t, h, SSH{}, &messages{})
		go func() { errs <- c.Ping(context.Background()) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a concurrent connection: %v", err)
		}
	}
	agent, _ := hostAgent(t, h)
	ents, err := os.ReadDir(filepath.Dir(agent))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	// The agent and the record of its last check, nothing else.
	if want := filepath.Base(agent); !slices.Equal(names, []string{want, want + ".ok"}) {
		t.Fatalf("%s holds %v, want only %s and %[3]s.ok", filepath.Join(h.Env.DataRoot, "bin"), names, want)
	}
}

// sessionsStarted counts the sessions the host's sshd started so far.
func sessionsStarted(t *testing.T, h *testenv.SSHHost) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.Dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "Starting session: command")
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// A host of another system or architecture cannot run this binary: the
// error says to install the agent and set agent_path, and with agent_path
// the installed agent is used.
func TestPlatformMismatch(t *testing.T) {
	env := testenv.Get(t)
	h := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "platform"})
	ctx := context.Background()
	real := localPlatform
	localPlatform = platform{os: "darwin", arch: "arm64"}
	t.Cleanup(func() { localPlatform = real })
	err := sshClient(t, h, SSH{}, nil).Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "agent_path") || !strings.Contains(err.Error(), "darwin/arm64") {
		t.Fatalf("ping of a host of another platform: %v, want it to ask for agent_path", err)
	}
	// The agent installed by hand: this binary, copied to the host.
	self, _, err := selfBinary()
	if err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(t.TempDir(), "pouch-agent")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(installed, b, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := engineOptions(h.Env)
	c, err := New(Config{Host: h.URL, AgentPath: installed, SSH: SSH{PrivateKeyFile: h.ClientKey, KnownHostsFile: h.KnownHosts},
		Engine: opts, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping with agent_path: %v", err)
	}
}

// The engine runs on the host: a container created through the host is in
// the host's containerd, not in this machine's.
func TestEngineRunsOnTheHost(t *testing.T) {
	env := testenv.Get(t)
	h := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "engine"})
	h.Env.ImportImage(t, image("remote", "v1"))
	c := sshClient(t, h, SSH{}, nil)
	ctx := context.Background()
	spec := engine.ContainerSpec{Name: "remote-web", Image: "pouchtest/remote:v1", Running: true}
	st, err := c.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), spec.Name) })
	if st.IPAddress == "" || h.Env.TaskStatus(t, spec.Name) != "running" {
		t.Fatalf("created on the host: %+v, task %q", st, h.Env.TaskStatus(t, spec.Name))
	}
	if _, err := env.Client.LoadContainer(env.Context(), spec.Name); err == nil {
		t.Fatal("the container is in this machine's containerd too")
	}
	if !strings.HasPrefix(st.LogPath, h.Env.DataRoot) {
		t.Fatalf("log path %s is not under the host's data root %s", st.LogPath, h.Env.DataRoot)
	}
}

// The SSH session dies in the middle of an upgrade: the agent finishes it
// on the host, and the client connects again and finds it done.
func TestSessionKilledDuringAnUpgrade(t *testing.T) {
	env := testenv.Get(t)
	h := env.NewSSHHost(t, testenv.SSHHostOptions{Name: "drop"})
	h.Env.ImportImage(t, image("remotedrop", "v1"))
	h.Env.ImportImage(t, image("remotedrop", "v2"))
	log := &messages{}
	c := sshClient(t, h, SSH{}, log)
	ctx := context.Background()
	spec := engine.ContainerSpec{Name: "remote-drop", Image: "pouchtest/remotedrop:v1", Running: true, NetworkMode: engine.NetworkNone}
	if _, err := c.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), spec.Name) })
	spec.Image = "pouchtest/remotedrop:v2"
	spec.Healthcheck = &engine.Healthcheck{Command: []string{"true"}, StartPeriod: 3 * time.Second, Interval: time.Second, Timeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() {
		_, err := c.Update(ctx, spec.Name, spec)
		done <- err
	}()
	testenv.Eventually(t, 30*time.Second, "the upgrade reaches its Verify phase", func() bool {
		got, err := h.Env.Exec(t, spec.Name, "cat", "/version")
		return err == nil && got == "v2"
	})
	h.KillSessions(t)
	if err := <-done; err != nil {
		t.Fatalf("the upgrade after the session died: %v", err)
	}
	if n := log.count("the connection to the host dropped: connecting again"); n != 1 {
		t.Fatalf("%d reconnections, want 1", n)
	}
	st, err := c.Inspect(ctx, spec.Name)
	if err != nil || st.Spec.Image != spec.Image || st.Status != engine.StatusRunning {
		t.Fatalf("after the upgrade: %+v, %v", st, err)
	}
	if leases := h.Env.Leases(t); len(leases) != 0 {
		t.Fatalf("leases left on the host: %v", leases)
	}
}
