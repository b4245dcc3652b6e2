package sshd

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
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

// needSSHD skips the tests that run an sshd where they cannot.
func needSSHD(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs sshd, as root: not in -short mode (`make unit`)")
	}
	if os.Geteuid() != 0 {
		t.Skipf("runs sshd, which needs root (euid is %d)", os.Geteuid())
	}
	if _, err := os.Stat(binary); err != nil {
		t.Skipf("runs %s (install Debian's openssh-server): %v", binary, err)
	}
}

// newServer starts a server in a directory of the test's. The cleanup
// stops it, kills what its sessions started and checks that nothing of it
// runs any more.
func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	needSSHD(t)
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	begin := time.Now()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("Start %s: %v", opts.Name, err)
	}
	t.Logf("sshd %s up in %v on %s", s.Name, time.Since(begin), s.Addr)
	t.Cleanup(func() {
		s.Stop()
		if err := s.KillStarted(killTimeout); err != nil {
			t.Errorf("KillStarted: %v", err)
		}
		if left := withCmdline(s.Dir); len(left) != 0 {
			t.Errorf("processes of %s still running after Stop: %v", s.Name, left)
		}
	})
	return s
}

// withCmdline lists the processes whose command line holds substr.
func withCmdline(substr string) []int {
	var pids []int
	for _, p := range procStats() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/cmdline")
		if err == nil && p.pid != os.Getpid() && bytes.Contains(b, []byte(substr)) {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// clientConfig is what a user of a Server does: the client key from
// ClientKeyPEM, and a host key check against HostKey.
func clientConfig(t *testing.T, s *Server, user string) *ssh.ClientConfig {
	t.Helper()
	signer, err := ssh.ParsePrivateKey([]byte(s.ClientKeyPEM))
	if err != nil {
		t.Fatalf("ClientKeyPEM: %v", err)
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.HostKey))
	if err != nil {
		t.Fatalf("HostKey %q: %v", s.HostKey, err)
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

func dial(t *testing.T, s *Server) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", s.Addr, clientConfig(t, s, s.User))
	if err != nil {
		t.Fatalf("dial %s: %v", s.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c *ssh.Client, cmd string) (string, error) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(cmd)
	return string(out), err
}

// longSession starts, in a session of its own on c, a command that runs
// until the connection drops, plus a setsid sleep (what an agent would be),
// and returns the sleep's pid and a channel receiving the session's end.
func longSession(t *testing.T, c *ssh.Client) (int, <-chan error) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close() })
	// cat reads the open stdin: it runs until the connection drops.
	if err := sess.Start(`sh -c 'setsid sleep 300 & echo $!; exec cat'`); err != nil {
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
	ended := make(chan error, 1)
	go func() {
		_, _ = io.Copy(io.Discard, stdout)
		ended <- sess.Wait()
	}()
	return pid, ended
}

// isSleep tells whether pid runs sleep (not a zombie).
func isSleep(pid int) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil || string(comm) != "sleep\n" {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !bytes.Contains(stat, []byte(") Z "))
}

func TestStart(t *testing.T) {
	const fault = `x y "q" \ #h $HOME`
	s := newServer(t, Options{Env: []string{"POUCH_TEST_FAULT=" + fault}})

	if s.Name != filepath.Base(s.Dir) || s.User != "root" || s.URL != "ssh://root@"+s.Addr ||
		!strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Fatalf("server %+v", s)
	}
	if !strings.HasPrefix(s.HostKey, "ssh-ed25519 AAAA") || strings.ContainsAny(s.HostKey, "\n") ||
		!strings.HasPrefix(s.HostKeyFingerprint, "SHA256:") {
		t.Fatalf("host key %q, fingerprint %q", s.HostKey, s.HostKeyFingerprint)
	}
	if s.ClientKey != filepath.Join(s.Dir, "client_ed25519") || s.KnownHosts != filepath.Join(s.Dir, "known_hosts") {
		t.Fatalf("ClientKey %s, KnownHosts %s, not in Dir %s", s.ClientKey, s.KnownHosts, s.Dir)
	}
	if b, err := os.ReadFile(s.ClientKey); err != nil || string(b) != s.ClientKeyPEM ||
		!strings.HasPrefix(s.ClientKeyPEM, "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Fatalf("client key %s: %v", s.ClientKey, err)
	}
	if fi, err := os.Stat(s.ClientKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("client key mode: %v %v", fi, err)
	}
	if !bytes.Equal(s.ClientSigner().PublicKey().Marshal(), clientConfigSigner(t, s).PublicKey().Marshal()) {
		t.Fatal("ClientSigner is not the key of ClientKeyPEM")
	}
	if log := childproc.LogTail(s.log, 1000); strings.Contains(log, "nsupported") || strings.Contains(log, "eprecated") {
		t.Fatalf("sshd complains about its configuration:\n%s", log)
	}
	if got := s.Sessions(); len(got) != 0 {
		t.Fatalf("sessions right after Start (the readiness connection?): %v", got)
	}

	c := dial(t, s)
	out, err := run(t, c, "cat /proc/version")
	if err != nil || !strings.HasPrefix(out, "Linux version") {
		t.Fatalf("cat /proc/version: %q, %v", out, err)
	}
	out, err = run(t, c, "printenv POUCH_TEST_FAULT "+EnvVar)
	if want := fault + "\n" + s.Dir + "\n"; err != nil || out != want {
		t.Fatalf("session env: %q, %v; want %q", out, err, want)
	}
	if out, err := run(t, c, "exit 3"); err == nil {
		t.Fatalf("exit 3 succeeded: %q", out)
	}
	sessions := s.Sessions()
	if len(sessions) != 1 || slices.Contains(sessions, s.cmd.Process.Pid) {
		t.Fatalf("sessions with one connection: %v (listener %d)", sessions, s.cmd.Process.Pid)
	}

	// Dial: the client key and the pinned host key, a handshake deadline.
	dc, err := s.Dial(s.User, 5*time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	out, err = run(t, dc, "id -un")
	dc.Close()
	if err != nil || out != "root\n" {
		t.Fatalf("id -un over Dial: %q, %v", out, err)
	}
}

func clientConfigSigner(t *testing.T, s *Server) ssh.Signer {
	t.Helper()
	signer, err := ssh.ParsePrivateKey([]byte(s.ClientKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

// TestRefused: users not in AllowUsers and keys not authorized do not log
// in; Dial refuses a server whose host key is not the one pinned.
func TestRefused(t *testing.T) {
	s := newServer(t, Options{Name: "refused"})
	if c, err := ssh.Dial("tcp", s.Addr, clientConfig(t, s, "nobody")); err == nil {
		c.Close()
		t.Fatal("user nobody (not in AllowUsers) logged in")
	} else if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("wrong user: %v", err)
	}
	if c, err := s.Dial("nobody", 5*time.Second); err == nil {
		c.Close()
		t.Fatal("Dial as nobody (not in AllowUsers) logged in")
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(other)
	cfg := clientConfig(t, s, "root")
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(signer)}
	if c, err := ssh.Dial("tcp", s.Addr, cfg); err == nil {
		c.Close()
		t.Fatal("an unknown key logged in")
	} else if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("unknown key: %v", err)
	}

	// Dial pins the host key: with another one pinned, it refuses the
	// server.
	impostor := &Server{Addr: s.Addr, signer: s.signer, hostPub: signer.PublicKey()}
	if c, err := impostor.Dial(s.User, 5*time.Second); err == nil {
		c.Close()
		t.Fatal("Dial accepted a host key other than the one pinned")
	}
}

func TestKnownHosts(t *testing.T) {
	s := newServer(t, Options{Name: "known"})
	cb, err := knownhosts.New(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	key, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(s.HostKey))
	tcp, _ := net.ResolveTCPAddr("tcp", s.Addr)
	if err := cb(s.Addr, tcp, key); err != nil {
		t.Fatalf("known_hosts rejects the host key: %v", err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	wrong, _ := ssh.NewPublicKey(pub)
	if err := cb(s.Addr, tcp, wrong); err == nil {
		t.Fatal("known_hosts accepts another key")
	}
	cfg := clientConfig(t, s, s.User)
	cfg.HostKeyCallback = cb
	c, err := ssh.Dial("tcp", s.Addr, cfg)
	if err != nil {
		t.Fatalf("dial with known_hosts: %v", err)
	}
	c.Close()
	b, _ := os.ReadFile(s.KnownHosts)
	if !strings.HasPrefix(string(b), "["+strings.Replace(s.Addr, ":", "]:", 1)+" ssh-ed25519 ") {
		t.Fatalf("known_hosts %q", b)
	}
	if _, err := exec.LookPath("ssh-keygen"); err == nil {
		out, err := exec.Command("ssh-keygen", "-l", "-f", s.KnownHosts).CombinedOutput()
		if err != nil || !strings.Contains(string(out), " "+s.HostKeyFingerprint+" ") {
			t.Fatalf("ssh-keygen -l: %q, %v; HostKeyFingerprint %s", out, err, s.HostKeyFingerprint)
		}
	}
}

// TestKillSessions: KillSessions ends the sessions but not what they
// started (Started lists it, KillStarted kills it); the server keeps
// serving.
func TestKillSessions(t *testing.T) {
	s := newServer(t, Options{Name: "kill"})
	other := newServer(t, Options{Name: "other"})
	pid, ended := longSession(t, dial(t, s))

	if sessions := s.Sessions(); len(sessions) != 1 || slices.Contains(sessions, s.cmd.Process.Pid) {
		t.Fatalf("sessions %v (listener %d)", sessions, s.cmd.Process.Pid)
	}
	select {
	case err := <-ended:
		t.Fatalf("session ended before KillSessions: %v", err)
	default:
	}
	// The sleep is listed once its environment can be read: wait for that
	// (it may be in the middle of its exec), with a deadline.
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(s.Started(), pid) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if started := s.Started(); !slices.Contains(started, pid) || !slices.Equal(started, Marked(s.Dir)) {
		t.Fatalf("Started() = %v, Marked = %v, want them to list the sleep %d", started, Marked(s.Dir), pid)
	}
	if err := s.KillSessions(); err != nil {
		t.Fatalf("KillSessions: %v", err)
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("session.Wait returned nil after KillSessions")
		}
		t.Logf("session.Wait: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("session still live 10s after KillSessions")
	}
	if left := s.Sessions(); len(left) != 0 {
		t.Fatalf("sessions after KillSessions: %v", left)
	}
	// The setsid sleep outlived its session, and Started lists it; not
	// that of another server.
	if !isSleep(pid) {
		t.Fatalf("the session's sleep %d did not survive KillSessions", pid)
	}
	if started := s.Started(); !slices.Contains(started, pid) {
		t.Fatalf("Started() = %v after KillSessions, want it to list the sleep %d", started, pid)
	}
	if started := other.Started(); slices.Contains(started, pid) {
		t.Fatalf("the other server's Started() = %v lists the sleep %d", started, pid)
	}
	// The server still serves new connections.
	if out, err := run(t, dial(t, s), "echo ok"); err != nil || out != "ok\n" {
		t.Fatalf("after KillSessions: %q, %v", out, err)
	}
	if err := s.KillSessions(); err != nil {
		t.Fatalf("KillSessions again: %v", err)
	}

	if err := s.KillStarted(killTimeout); err != nil {
		t.Fatalf("KillStarted: %v", err)
	}
	if isSleep(pid) {
		t.Fatalf("the sleep %d survived KillStarted", pid)
	}
	if started := s.Started(); len(started) != 0 {
		t.Fatalf("Started() = %v after KillStarted", started)
	}
}

// TestKillMarked: what the sessions of a server started is found and
// killed by the server's directory alone, the server gone.
func TestKillMarked(t *testing.T) {
	s := newServer(t, Options{Name: "marked"})
	out, err := run(t, dial(t, s), `setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!`)
	if err != nil {
		t.Fatalf("start sleep: %q, %v", out, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("pid %q", out)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	s.Stop()
	if got := Marked(s.Dir); !slices.Equal(got, []int{pid}) {
		t.Fatalf("Marked(%s) = %v, want [%d]", s.Dir, got, pid)
	}
	if got := Marked(s.Dir + "x"); len(got) != 0 {
		t.Fatalf("Marked of another dir = %v", got)
	}
	if got := Marked(""); len(got) != 0 {
		t.Fatalf(`Marked("") = %v`, got)
	}
	if err := KillMarked(s.Dir, killTimeout); err != nil {
		t.Fatalf("KillMarked: %v", err)
	}
	if isSleep(pid) {
		t.Fatalf("the sleep %d survived KillMarked", pid)
	}
	if got := Marked(s.Dir); len(got) != 0 {
		t.Fatalf("Marked after KillMarked = %v", got)
	}
}

// The port picked is taken before sshd binds it: Start tries another.
func TestPortTaken(t *testing.T) {
	needSSHD(t)
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
	s := newServer(t, Options{Name: "taken"})
	if calls != 2 || s.Addr == l.Addr().String() {
		t.Fatalf("%d ports picked, server on %s (taken: %d)", calls, s.Addr, taken)
	}
	if out, err := run(t, dial(t, s), "echo ok"); err != nil || out != "ok\n" {
		t.Fatalf("%q, %v", out, err)
	}
}

// TestAuthorize: server b refuses server a's client key until it is
// authorized, then accepts it; its own key still works.
func TestAuthorize(t *testing.T) {
	a := newServer(t, Options{Name: "auth-a"})
	b := newServer(t, Options{Name: "auth-b"})
	withKeyOf := func(key *Server) *ssh.ClientConfig {
		cfg := clientConfig(t, b, b.User)
		cfg.Auth = clientConfig(t, key, key.User).Auth
		return cfg
	}
	if c, err := ssh.Dial("tcp", b.Addr, withKeyOf(a)); err == nil {
		c.Close()
		t.Fatal("server b accepts server a's key before Authorize")
	}
	if err := b.Authorize(a.ClientSigner().PublicKey()); err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	for _, key := range []*Server{a, b} {
		c, err := ssh.Dial("tcp", b.Addr, withKeyOf(key))
		if err != nil {
			t.Fatalf("server b refuses the key of %s after Authorize: %v", key.Name, err)
		}
		c.Close()
	}
	if c, err := ssh.Dial("tcp", a.Addr, clientConfig(t, a, a.User)); err != nil {
		t.Fatalf("server a refuses its own key: %v", err)
	} else {
		c.Close()
	}
}

// TestForwarding: a server forwards TCP connections (a bastion) to another.
func TestForwarding(t *testing.T) {
	bastion := newServer(t, Options{Name: "bastion"})
	target := newServer(t, Options{Name: "target"})
	conn, err := dial(t, bastion).Dial("tcp", target.Addr)
	if err != nil {
		t.Fatalf("forward through the bastion: %v", err)
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, target.Addr, clientConfig(t, target, target.User))
	if err != nil {
		t.Fatalf("ssh to the target through the bastion: %v", err)
	}
	tc := ssh.NewClient(cc, chans, reqs)
	defer tc.Close()
	if out, err := run(t, tc, "echo $SSH_CONNECTION; printenv "+EnvVar); err != nil ||
		!strings.HasPrefix(out, "127.0.0.1 ") || !strings.HasSuffix(out, "\n"+target.Dir+"\n") {
		t.Fatalf("on the target: %q, %v", out, err)
	}
}

// TestStop: Stop ends the sessions and the listener (connections refused)
// but not what the sessions started; a second Stop does nothing.
func TestStop(t *testing.T) {
	s := newServer(t, Options{Name: "stop"})
	pid, ended := longSession(t, dial(t, s))
	listener := s.cmd.Process.Pid
	s.Stop()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("session.Wait returned nil after Stop")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session still live 10s after Stop")
	}
	if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the stopped server accepts connections")
	}
	if got := s.Sessions(); got != nil {
		t.Fatalf("sessions of a stopped server: %v", got)
	}
	if left := withCmdline(s.Dir); len(left) != 0 {
		t.Fatalf("processes of the stopped server (listener %d): %v", listener, left)
	}
	if err := syscall.Kill(listener, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("the listener %d is still there (kill 0: %v)", listener, err)
	}
	if !isSleep(pid) || !slices.Contains(s.Started(), pid) {
		t.Fatalf("the session's sleep %d did not outlive Stop (Started %v)", pid, s.Started())
	}
	done := make(chan struct{})
	go func() { s.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a second Stop blocks")
	}
}

// TestStartRejects: bad options fail before anything starts (no root
// needed).
func TestStartRejects(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no dir", Options{}, "no Dir"},
		{"missing dir", Options{Dir: filepath.Join(dir, "nope")}, "no such file"},
		{"dir a file", Options{Dir: file}, "not a directory"},
		{"user with space", Options{Dir: dir, AllowUsers: []string{"a b"}}, `bad user name "a b"`},
		{"empty user", Options{Dir: dir, AllowUsers: []string{""}}, `bad user name ""`},
		{"env without =", Options{Dir: dir, Env: []string{"KEY"}}, `bad Env entry "KEY"`},
		{"env newline", Options{Dir: dir, Env: []string{"K=a\nb"}}, "bad Env entry"},
		{"env EnvVar", Options{Dir: dir, Env: []string{EnvVar + "=x"}}, "KEY not " + EnvVar},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(tc.opts)
			if err == nil {
				s.Stop()
				t.Fatalf("Start(%+v) succeeded", tc.opts)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start(%+v): %v, want %q", tc.opts, err, tc.want)
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("rejected Starts wrote to %s: %v", dir, ents)
	}
}

// TestSSHDConfig: every value of the configuration is quoted where sshd
// would split it.
func TestSSHDConfig(t *testing.T) {
	got := sshdConfig("n", 2222, "/d ir/key", "/d/pid", "/d/ak", []string{"root", "git"},
		[]string{EnvVar + "=/d ir", `K=a "b" \c`})
	for _, want := range []string{
		"\nPort 2222\n", "\nListenAddress 127.0.0.1\n", "\nHostKey \"/d ir/key\"\n",
		"\nAllowUsers root git\n", "\nSetEnv \"" + EnvVar + "=/d ir\" \"K=a \\\"b\\\" \\\\c\"\n",
		"\nPasswordAuthentication no\n", "\nUsePAM no\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
}
