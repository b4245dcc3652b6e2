package testenv

import (
	"bufio"
	"bytes"
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

	"github.com/pouch/terraform-provider-pouch/internal/childproc"
)

// The sshd itself (keys, configuration, sessions, Stop) is tested in
// internal/sshd; these tests are of what testenv adds: the host's daemon
// and directory, the options, the cleanups, and the methods failing the
// test.

// dialHost connects to h as its User (Dial, of sshd.Server); the test's
// cleanup closes the connection.
func dialHost(t *testing.T, h *SSHHost) *ssh.Client {
	t.Helper()
	c, err := h.Dial(h.User, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", h.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// shell runs cmd on h, in a connection of its own, and returns its output
// (stdout and stderr).
func shell(t *testing.T, h *SSHHost, cmd string) (string, error) {
	t.Helper()
	c, err := h.Dial(h.User, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", h.Name, err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session on %s: %v", h.Name, err)
	}
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// startSleep starts a setsid sleep (what an agent would be) in a session on
// h and returns its pid. The cleanup of safety kills it, should the test
// not have.
func startSleep(t, safety *testing.T, h *SSHHost) int {
	t.Helper()
	out, err := shell(t, h, `setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!`)
	if err != nil {
		t.Fatalf("start sleep: %q, %v", out, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || pid <= 0 {
		t.Fatalf("sleep pid %q", out)
	}
	safety.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// gone tells whether pid has exited (a zombie counts).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err != nil || strings.Contains(string(b), ") Z ")
}

// running lists the processes whose command line mentions dir (a daemon,
// shim or sshd of it).
func running(dir string) []int {
	return findProcs(func(cmdline string) bool { return strings.Contains(cmdline, dir) })
}

// TestSSHHost: a host with a daemon of its own, its options, the methods
// failing the test, and its cleanup (sshd, daemon, what the sessions
// started, the directory).
func TestSSHHost(t *testing.T) {
	e := Get(t)
	const fault = `x y "q" \ #h $HOME`
	var h *SSHHost
	var sleep int
	outer := t
	t.Run("host", func(t *testing.T) {
		begin := time.Now()
		h = e.NewSSHHost(t, SSHHostOptions{Name: "a", Env: []string{"POUCH_TEST_FAULT=" + fault}})
		t.Logf("host %s up in %v: %s, daemon %s", h.Name, time.Since(begin), h.URL, h.Env.Address)

		if h.Name != "a" || h.User != "root" || h.URL != "ssh://root@"+h.Addr || !strings.HasPrefix(h.Addr, "127.0.0.1:") {
			t.Fatalf("host %+v", h.Server)
		}
		if h.Env == nil || h.Env == e || h.Env.parent != e || h.Env.Address == e.Address || h.Env.Namespace == e.Namespace {
			t.Fatalf("host env %+v", h.Env)
		}
		if h.Dir != h.Env.Dir || !strings.HasPrefix(filepath.Base(h.Dir), dirPrefix+pkgName+"-d") {
			t.Fatalf("host dir %s, daemon dir %s", h.Dir, h.Env.Dir)
		}
		for _, f := range []string{h.ClientKey, h.KnownHosts, filepath.Join(h.Dir, sshdConfigName), filepath.Join(h.Dir, "owner.pid")} {
			if _, err := os.Stat(f); err != nil || filepath.Dir(f) != h.Dir {
				t.Fatalf("%s not in the host's dir: %v", f, err)
			}
		}
		if !strings.HasPrefix(h.HostKey, "ssh-ed25519 AAAA") || !strings.HasPrefix(h.HostKeyFingerprint, "SHA256:") ||
			!strings.HasPrefix(h.ClientKeyPEM, "-----BEGIN OPENSSH PRIVATE KEY-----") {
			t.Fatalf("keys %q %q %q", h.HostKey, h.HostKeyFingerprint, h.ClientKeyPEM)
		}

		if out, err := shell(t, h, "test -S "+h.Env.Address); err != nil {
			t.Fatalf("test -S %s: %q, %v", h.Env.Address, out, err)
		}
		out, err := shell(t, h, "printenv POUCH_TEST_FAULT "+SSHHostEnvVar)
		if want := fault + "\n" + h.Dir + "\n"; err != nil || out != want {
			t.Fatalf("session env: %q, %v; want %q", out, err, want)
		}
		sleep = startSleep(t, outer, h)
		if started := h.Started(); !slices.Contains(started, sleep) {
			t.Fatalf("Started() = %v, want the sleep %d", started, sleep)
		}

		// Sessions and KillSessions: a session running until its
		// connection drops, the only one.
		Eventually(t, 10*time.Second, "earlier sessions gone", func() bool { return len(h.Sessions(t)) == 0 })
		s, err := dialHost(t, h).NewSession()
		if err != nil {
			t.Fatal(err)
		}
		stdin, err := s.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		stdout, err := s.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start("echo up; exec cat"); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "up\n" {
			t.Fatalf("session: %q, %v", line, err)
		}
		waitErr := make(chan error, 1)
		go func() { waitErr <- s.Wait() }()
		if sessions := h.Sessions(t); len(sessions) != 1 {
			t.Fatalf("Sessions %v, want one", sessions)
		}
		h.KillSessions(t)
		select {
		case err := <-waitErr:
			if err == nil {
				t.Fatal("session.Wait returned nil after KillSessions")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("session still live 10s after KillSessions")
		}
		if left := h.Sessions(t); len(left) != 0 {
			t.Fatalf("Sessions after KillSessions: %v", left)
		}
		if gone(sleep) {
			t.Fatalf("the sleep %d did not survive KillSessions", sleep)
		}
	})
	if h == nil {
		return
	}
	// The host's cleanup ran at the end of the subtest.
	if !childproc.Exited(h.Env.exited) {
		t.Error("the host's daemon still runs")
	}
	if left := running(h.Dir); len(left) != 0 {
		t.Errorf("processes of the host's dir %s still run: %v", h.Dir, left)
	}
	if !gone(sleep) {
		t.Errorf("the sleep %d the session started survived the cleanup", sleep)
	}
	if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
		t.Errorf("dir %s: %v", h.Dir, err)
	}
}

// TestSSHBastion: a host without a daemon (a bastion) in a directory of its
// own, through which another host is reached with a key it authorized.
func TestSSHBastion(t *testing.T) {
	e := Get(t)
	var b *SSHHost
	var sleep int
	outer := t
	t.Run("hosts", func(t *testing.T) {
		begin := time.Now()
		b = e.NewSSHHost(t, SSHHostOptions{Name: "bastion", NoDaemon: true})
		t.Logf("bastion up in %v", time.Since(begin))
		begin = time.Now()
		target := e.NewSSHHost(t, SSHHostOptions{Name: "target"})
		t.Logf("target (with daemon) up in %v", time.Since(begin))
		if b.Env != nil || target.Env == nil || b.Addr == target.Addr || b.HostKey == target.HostKey {
			t.Fatalf("bastion %+v, target %+v", b.Server, target.Server)
		}
		if !strings.HasPrefix(filepath.Base(b.Dir), dirPrefix+pkgName+"-ssh-bastion-") {
			t.Fatalf("bastion dir %s", b.Dir)
		}
		if owner, err := os.ReadFile(filepath.Join(b.Dir, "owner.pid")); err != nil || string(owner) != strconv.Itoa(os.Getpid()) {
			t.Fatalf("bastion owner.pid %q, %v", owner, err)
		}

		sleep = startSleep(t, outer, b)
		// The target accepts the bastion's key once it authorized it.
		targetKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(target.HostKey))
		if err != nil {
			t.Fatalf("target HostKey %q: %v", target.HostKey, err)
		}
		withBastionKey := &ssh.ClientConfig{
			User:            target.User,
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(b.ClientSigner())},
			HostKeyCallback: ssh.FixedHostKey(targetKey),
			Timeout:         10 * time.Second,
		}
		if c, err := ssh.Dial("tcp", target.Addr, withBastionKey); err == nil {
			c.Close()
			t.Fatal("the target accepts the bastion's key before Authorize")
		}
		target.Authorize(t, b)
		conn, err := dialHost(t, b).Dial("tcp", target.Addr)
		if err != nil {
			t.Fatalf("forward through the bastion: %v", err)
		}
		cc, chans, reqs, err := ssh.NewClientConn(conn, target.Addr, withBastionKey)
		if err != nil {
			t.Fatalf("ssh to the target through the bastion, with the bastion's key: %v", err)
		}
		tc := ssh.NewClient(cc, chans, reqs)
		defer tc.Close()
		s, err := tc.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if out, err := s.CombinedOutput("test -S " + target.Env.Address + " && echo $SSH_CONNECTION"); err != nil ||
			!bytes.HasPrefix(out, []byte("127.0.0.1 ")) {
			t.Fatalf("on the target: %q, %v", out, err)
		}
	})
	if b == nil {
		return
	}
	// The bastion's cleanup removed its own directory, and killed what its
	// sessions started.
	if _, err := os.Stat(b.Dir); !os.IsNotExist(err) {
		t.Errorf("bastion dir %s: %v", b.Dir, err)
	}
	if left := running(b.Dir); len(left) != 0 {
		t.Errorf("processes of the bastion's dir still run: %v", left)
	}
	if !gone(sleep) {
		t.Errorf("the sleep %d the bastion's session started survived the cleanup", sleep)
	}
}

// TestSSHHostOptions: AllowUsers reach the sshd, and a host that fails to
// start leaves nothing behind.
func TestSSHHostOptions(t *testing.T) {
	e := Get(t)
	h := e.NewSSHHost(t, SSHHostOptions{NoDaemon: true})
	if !strings.HasPrefix(h.Name, "h") || !strings.HasPrefix(filepath.Base(h.Dir), dirPrefix+pkgName+"-ssh-"+h.Name+"-") {
		t.Fatalf("default name %q, dir %s", h.Name, h.Dir)
	}
	if c, err := h.Dial("nobody", 10*time.Second); err == nil {
		c.Close()
		t.Fatal("user nobody (not in the default AllowUsers) logged in")
	}

	pattern := filepath.Join(os.TempDir(), dirPrefix+pkgName+"-ssh-bad-*")
	t.Run("bad", func(t *testing.T) {
		for _, opts := range []SSHHostOptions{
			{Name: "bad", NoDaemon: true, AllowUsers: []string{"a b"}},
			{Name: "bad", NoDaemon: true, Env: []string{SSHHostEnvVar + "=x"}},
		} {
			if h, err := e.newSSHHost(t, opts); err == nil {
				t.Fatalf("NewSSHHost(%+v) succeeded: %+v", opts, h.Server)
			} else {
				t.Logf("NewSSHHost(%+v): %v", opts, err)
			}
		}
	})
	if left, _ := filepath.Glob(pattern); len(left) != 0 {
		t.Fatalf("the failed hosts' dirs are left: %v", left)
	}
}

// TestCleanStaleExtras: the daemons and hosts of a dead test process, and
// what their sessions started, are cleaned by the next run.
func TestCleanStaleExtras(t *testing.T) {
	e := Get(t)
	d := e.NewDaemon(t)
	h := e.NewSSHHost(t, SSHHostOptions{Name: "stale", NoDaemon: true})
	pid := startSleep(t, t, h)

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
	Eventually(t, 10*time.Second, "the stale sshd killed", func() bool { return len(running(h.Dir)) == 0 })
	for _, dir := range []string{d.Dir, h.Dir} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("stale dir %s: %v", dir, err)
		}
	}
	Eventually(t, 10*time.Second, "the session's sleep killed", func() bool { return gone(pid) })
	if _, err := os.Stat(e.Dir); err != nil {
		t.Fatalf("the live package Env was cleaned: %v", err)
	}
}

// What a test leaves registered, Main stops (stopExtras), and the test's
// own cleanup then has nothing to do.
func TestStopExtras(t *testing.T) {
	e := Get(t)
	h := e.NewSSHHost(t, SSHHostOptions{Name: "left"})
	c := dialHost(t, h)
	pid := startSleep(t, t, h)
	closed := make(chan error, 1)
	go func() { closed <- c.Wait() }()
	if err := stopExtras(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection to the host is still open 10s after stopExtras")
	}
	if left := running(h.Dir); len(left) != 0 || !childproc.Exited(h.Env.exited) {
		t.Fatalf("sshd or containerd still running: %v", left)
	}
	if !gone(pid) {
		t.Fatalf("the sleep %d the session started survived", pid)
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
