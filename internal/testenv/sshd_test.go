package testenv

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pouch/terraform-provider-pouch/internal/childproc"
)

// clientConfig is what a user of an SSHHost does: the client key, and a
// host key check against HostKey.
func clientConfig(t *testing.T, h *SSHHost, user string) *ssh.ClientConfig {
	t.Helper()
	signer, err := ssh.ParsePrivateKey([]byte(h.ClientKeyPEM))
	if err != nil {
		t.Fatalf("ClientKeyPEM: %v", err)
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.HostKey))
	if err != nil {
		t.Fatalf("HostKey %q: %v", h.HostKey, err)
	}
	return &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if !bytes.Equal(key.Marshal(), want.Marshal()) {
				return errors.New("host key mismatch")
			}
			return nil
		},
		Timeout: 10 * time.Second,
	}
}

func dialHost(t *testing.T, h *SSHHost) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", h.Addr, clientConfig(t, h, h.User))
	if err != nil {
		t.Fatalf("dial %s: %v", h.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c *ssh.Client, cmd string) (string, error) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

func TestSSHHost(t *testing.T) {
	e := Get(t)
	begin := time.Now()
	h := e.NewSSHHost(t, SSHHostOptions{Name: "a", Env: []string{`POUCH_TEST_FAULT=x y "q" \ #h $HOME`}})
	t.Logf("host %s up in %v: %s, daemon %s", h.Name, time.Since(begin), h.URL, h.Env.Address)

	if h.User != "root" || h.URL != "ssh://root@"+h.Addr || !strings.HasPrefix(h.Addr, "127.0.0.1:") {
		t.Fatalf("host %+v", h)
	}
	if h.Env == nil || h.Env == e || h.Env.Address == e.Address || h.Env.Namespace == e.Namespace {
		t.Fatalf("host env %+v", h.Env)
	}
	if !strings.HasPrefix(h.HostKey, "ssh-ed25519 AAAA") || strings.ContainsAny(h.HostKey, "\n") ||
		!strings.HasPrefix(h.HostKeyFingerprint, "SHA256:") {
		t.Fatalf("host key %q, fingerprint %q", h.HostKey, h.HostKeyFingerprint)
	}
	if b, err := os.ReadFile(h.ClientKey); err != nil || string(b) != h.ClientKeyPEM ||
		!strings.HasPrefix(h.ClientKeyPEM, "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Fatalf("client key %s: %v", h.ClientKey, err)
	}
	if fi, err := os.Stat(h.ClientKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("client key mode: %v %v", fi.Mode(), err)
	}

	if log := childproc.LogTail(h.log, 1000); strings.Contains(log, "nsupported") || strings.Contains(log, "eprecated") {
		t.Fatalf("sshd complains about its configuration:\n%s", log)
	}

	t.Run("run", func(t *testing.T) {
		c := dialHost(t, h)
		out, err := run(t, c, "cat /proc/version")
		if err != nil || !strings.HasPrefix(out, "Linux version") {
			t.Fatalf("cat /proc/version: %q, %v", out, err)
		}
		if out, err := run(t, c, "test -S "+h.Env.Address); err != nil {
			t.Fatalf("test -S %s: %q, %v", h.Env.Address, out, err)
		}
		if out, err := run(t, c, "test -S "+h.Env.Address+".nope"); err == nil {
			t.Fatalf("test -S of a missing socket passed: %q", out)
		}
		out, err = run(t, c, "printenv POUCH_TEST_FAULT "+SSHHostEnvVar)
		if want := `x y "q" \ #h $HOME` + "\n" + h.Dir + "\n"; err != nil || out != want {
			t.Fatalf("session env: %q, %v; want %q", out, err, want)
		}
		out, _ = run(t, c, "id -un; echo $PATH; pwd")
		t.Logf("session: %q", out)
	})

	t.Run("refused", func(t *testing.T) {
		if c, err := ssh.Dial("tcp", h.Addr, clientConfig(t, h, "nobody")); err == nil {
			c.Close()
			t.Fatal("user nobody (not in AllowUsers) logged in")
		} else if !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("wrong user: %v", err)
		}
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		signer, _ := ssh.NewSignerFromKey(other)
		cfg := clientConfig(t, h, "root")
		cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(signer)}
		if c, err := ssh.Dial("tcp", h.Addr, cfg); err == nil {
			c.Close()
			t.Fatal("an unknown key logged in")
		}
	})

	t.Run("known_hosts", func(t *testing.T) {
		cb, err := knownhosts.New(h.KnownHosts)
		if err != nil {
			t.Fatal(err)
		}
		key, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(h.HostKey))
		tcp, _ := net.ResolveTCPAddr("tcp", h.Addr)
		if err := cb(h.Addr, tcp, key); err != nil {
			t.Fatalf("known_hosts rejects the host key: %v", err)
		}
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		wrong, _ := ssh.NewPublicKey(pub)
		if err := cb(h.Addr, tcp, wrong); err == nil {
			t.Fatal("known_hosts accepts another key")
		}
		cfg := clientConfig(t, h, h.User)
		cfg.HostKeyCallback = cb
		c, err := ssh.Dial("tcp", h.Addr, cfg)
		if err != nil {
			t.Fatalf("dial with known_hosts: %v", err)
		}
		c.Close()
		b, _ := os.ReadFile(h.KnownHosts)
		if !strings.HasPrefix(string(b), "["+strings.Replace(h.Addr, ":", "]:", 1)+" ssh-ed25519 ") {
			t.Fatalf("known_hosts %q", b)
		}
		if _, err := exec.LookPath("ssh-keygen"); err == nil {
			out, err := exec.Command("ssh-keygen", "-l", "-f", h.KnownHosts).CombinedOutput()
			if err != nil || !strings.Contains(string(out), " "+h.HostKeyFingerprint+" ") {
				t.Fatalf("ssh-keygen -l: %q, %v; HostKeyFingerprint %s", out, err, h.HostKeyFingerprint)
			}
		}
	})

	t.Run("kill_sessions", func(t *testing.T) {
		Eventually(t, 10*time.Second, "earlier connections gone", func() bool { return len(h.Sessions(t)) == 0 })
		c := dialHost(t, h)
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := s.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdin, err := s.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		// The session's command (cat, reading the open stdin) runs until the
		// connection drops; the setsid sleep is what an agent would be.
		if err := s.Start(`sh -c 'setsid sleep 300 & echo $!; exec cat'`); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			t.Fatalf("read pid: %q, %v", line, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || pid <= 0 {
			t.Fatalf("pid %q", line)
		}
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		waitErr := make(chan error, 1)
		go func() { waitErr <- s.Wait() }()

		sessions := h.Sessions(t)
		if len(sessions) != 1 || slices.Contains(sessions, h.cmd.Process.Pid) {
			t.Fatalf("sessions %v (listener %d)", sessions, h.cmd.Process.Pid)
		}
		select {
		case err := <-waitErr:
			t.Fatalf("session ended before KillSessions: %v", err)
		default:
		}
		h.KillSessions(t)
		select {
		case err := <-waitErr:
			if err == nil {
				t.Fatal("session.Wait returned nil after KillSessions")
			}
			t.Logf("session.Wait: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("session still live 10s after KillSessions")
		}
		if left := h.Sessions(t); len(left) != 0 {
			t.Fatalf("sessions after KillSessions: %v", left)
		}
		// The setsid sleep outlived its session, and Started lists it.
		if started := h.Started(); !slices.Contains(started, pid) {
			t.Fatalf("Started() = %v, want it to list the sleep %d", started, pid)
		}
		if comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err != nil || string(comm) != "sleep\n" {
			t.Fatalf("the session's sleep %d did not survive: %q, %v", pid, comm, err)
		}
		// The host still serves new connections.
		if out, err := run(t, dialHost(t, h), "echo ok"); err != nil || out != "ok\n" {
			t.Fatalf("after KillSessions: %q, %v", out, err)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	})
}

func TestSSHBastion(t *testing.T) {
	e := Get(t)
	begin := time.Now()
	b := e.NewSSHHost(t, SSHHostOptions{Name: "bastion", NoDaemon: true})
	t.Logf("bastion up in %v", time.Since(begin))
	begin = time.Now()
	target := e.NewSSHHost(t, SSHHostOptions{Name: "target"})
	t.Logf("target (with daemon) up in %v", time.Since(begin))
	if b.Env != nil || target.Env == nil || b.Addr == target.Addr || b.HostKey == target.HostKey {
		t.Fatalf("bastion %+v, target %+v", b, target)
	}

	bc := dialHost(t, b)
	conn, err := bc.Dial("tcp", target.Addr)
	if err != nil {
		t.Fatalf("forward through the bastion: %v", err)
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, target.Addr, clientConfig(t, target, target.User))
	if err != nil {
		t.Fatalf("ssh to the target through the bastion: %v", err)
	}
	tc := ssh.NewClient(cc, chans, reqs)
	defer tc.Close()
	if out, err := run(t, tc, "test -S "+target.Env.Address+" && echo $SSH_CONNECTION"); err != nil ||
		!strings.HasPrefix(out, "127.0.0.1 ") {
		t.Fatalf("on the target: %q, %v", out, err)
	}

	// Stop: the sshd is gone, connections refused.
	b.Stop()
	if c, err := net.DialTimeout("tcp", b.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the stopped bastion accepts connections")
	}
	if s := b.Sessions(t); s != nil {
		t.Fatalf("sessions of a stopped host: %v", s)
	}
}

// TestCleanStaleExtras: the daemons and hosts of a dead test process, and
// what their sessions started, are cleaned by the next run.
func TestCleanStaleExtras(t *testing.T) {
	e := Get(t)
	d := e.NewDaemon(t)
	h := e.NewSSHHost(t, SSHHostOptions{Name: "stale", NoDaemon: true})
	out, err := run(t, dialHost(t, h), `setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!`)
	if err != nil {
		t.Fatalf("start sleep: %q, %v", out, err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(out))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{d.Dir, h.Dir} {
		if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(dead.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cleanStale()
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("stale daemon still running")
	}
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("stale sshd still running")
	}
	for _, dir := range []string{d.Dir, h.Dir} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("stale dir %s: %v", dir, err)
		}
	}
	Eventually(t, 10*time.Second, "the session's sleep killed", func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err != nil || strings.Contains(string(b), ") Z ")
	})
	if _, err := os.Stat(e.Dir); err != nil {
		t.Fatalf("the live package Env was cleaned: %v", err)
	}
}

// The port picked is taken before sshd binds it: NewSSHHost tries another.
func TestSSHHostPortTaken(t *testing.T) {
	e := Get(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	orig := freePort
	calls := 0
	freePort = func() (int, error) {
		calls++
		if calls == 1 {
			return taken, nil
		}
		return orig()
	}
	defer func() { freePort = orig }()
	h := e.NewSSHHost(t, SSHHostOptions{Name: "taken", NoDaemon: true})
	if calls != 2 || h.Addr == l.Addr().String() {
		t.Fatalf("%d ports picked, host on %s (taken: %d)", calls, h.Addr, taken)
	}
	if out, err := run(t, dialHost(t, h), "echo ok"); err != nil || out != "ok\n" {
		t.Fatalf("%q, %v", out, err)
	}
}

// What a test leaves registered, Main stops (stopExtras), and the test's
// own cleanup then has nothing to do.
func TestStopExtras(t *testing.T) {
	e := Get(t)
	h := e.NewSSHHost(t, SSHHostOptions{Name: "left"})
	if err := stopExtras(); err != nil {
		t.Fatal(err)
	}
	if !childproc.Exited(h.exited) || !childproc.Exited(h.Env.exited) {
		t.Fatal("sshd or containerd still running")
	}
	if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
		t.Fatalf("dir %s: %v", h.Dir, err)
	}
	extrasMu.Lock()
	defer extrasMu.Unlock()
	if len(extras) != 0 {
		t.Fatalf("%d extras still registered", len(extras))
	}
}

// TestSSHHostAuthorize: host b refuses host a's client key until it is
// authorized, then accepts it; its own key still works.
func TestSSHHostAuthorize(t *testing.T) {
	e := Get(t)
	a := e.NewSSHHost(t, SSHHostOptions{Name: "auth-a", NoDaemon: true})
	b := e.NewSSHHost(t, SSHHostOptions{Name: "auth-b", NoDaemon: true})
	withKeyOf := func(key *SSHHost) *ssh.ClientConfig {
		cfg := clientConfig(t, b, b.User)
		cfg.Auth = clientConfig(t, key, key.User).Auth
		return cfg
	}
	if c, err := ssh.Dial("tcp", b.Addr, withKeyOf(a)); err == nil {
		c.Close()
		t.Fatal("host b accepts host a's key before Authorize")
	}
	b.Authorize(t, a)
	for _, key := range []*SSHHost{a, b} {
		c, err := ssh.Dial("tcp", b.Addr, withKeyOf(key))
		if err != nil {
			t.Fatalf("host b refuses the key of %s after Authorize: %v", key.Name, err)
		}
		c.Close()
	}
}
