package testenv

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pouch/terraform-provider-pouch/internal/childproc"
)

// SSHHost is a "remote host" for the tests: an sshd on a loopback port, with
// a host key of its own and a client key the test holds, serving (when it
// has one) its own containerd daemon.
type SSHHost struct {
	Name               string // e.g. "a", for messages
	Addr               string // "127.0.0.1:PORT"
	User               string // "root" (the first of SSHHostOptions.AllowUsers)
	URL                string // "ssh://root@127.0.0.1:PORT"
	HostKey            string // the host's public key, authorized_keys form: "ssh-ed25519 AAAA..."
	HostKeyFingerprint string // "SHA256:..." as ssh-keygen -l prints it
	KnownHosts         string // path of a known_hosts file that lists this host's key ("[127.0.0.1]:PORT ssh-ed25519 AAAA...")
	ClientKey          string // path of the private key (OpenSSH format, no passphrase) authorized for User
	ClientKeyPEM       string // the contents of ClientKey
	// Env is the host's containerd (nil with NoDaemon): Address, Namespace,
	// DataRoot, Bridge, Subnet are the host's.
	Env *Env
	// Dir is the host's directory (sshd_config, keys, sshd.log); that of
	// Env when the host has a daemon.
	Dir string

	ownDir   bool // Dir is the host's own (NoDaemon), removed by the cleanup
	config   string
	log      string
	pidFile  string
	signer   ssh.Signer
	hostPub  ssh.PublicKey
	cmd      *exec.Cmd
	exited   <-chan struct{}
	stopOnce sync.Once
}

// SSHHostOptions configure NewSSHHost.
type SSHHostOptions struct {
	Name       string   // for messages and the directory name; default "h<N>"
	NoDaemon   bool     // a bastion: sshd only, with TCP forwarding allowed
	AllowUsers []string // default ["root"]
	// Env is "KEY=VALUE" set in every session's environment (sshd
	// SetEnv), e.g. for a fault injection variable.
	Env []string
}

// SSHHostEnvVar is set in the environment of every session of every
// SSHHost (to the host's Dir): the cleanup of the host, and cleanStale after
// a dead test process, kill the processes that carry it, i.e. what the
// sessions started (an agent), unless they cleared their environment.
const SSHHostEnvVar = "POUCH_TESTENV_SSH_HOST"

const (
	sshdConfigName = "sshd_config"
	sshdBinary     = "/usr/sbin/sshd"
	sshdPrivsepDir = "/run/sshd"
	// sshdKillTimeout bounds the waits for killed sshd and session processes.
	sshdKillTimeout = 10 * time.Second
)

// NewSSHHost starts a "remote host": unless opts.NoDaemon, a containerd of
// its own (NewDaemon), and an sshd on 127.0.0.1:<free port> accepting only
// the host's client key for opts.AllowUsers. It returns once the sshd has
// completed an SSH handshake with the client key. t.Cleanup stops the sshd
// and its sessions, kills what the sessions started (see SSHHostEnvVar), then
// stops the daemon and removes the directory; Main does it for a host still
// running after the tests, cleanStale for one left by a dead test process.
func (e *Env) NewSSHHost(t testing.TB, opts SSHHostOptions) *SSHHost {
	t.Helper()
	h, err := e.newSSHHost(t, opts)
	if err != nil {
		t.Fatalf("testenv.NewSSHHost %s: %v", opts.Name, err)
	}
	return h
}

func (e *Env) newSSHHost(t testing.TB, opts SSHHostOptions) (*SSHHost, error) {
	n := nextSeq(&hostSeq)
	name := opts.Name
	if name == "" {
		name = "h" + strconv.Itoa(n)
	}
	users := opts.AllowUsers
	if len(users) == 0 {
		users = []string{"root"}
	}
	for _, u := range users {
		if u == "" || strings.ContainsAny(u, " \t\r\n\"'\\#") {
			return nil, fmt.Errorf("bad user name %q in AllowUsers", u)
		}
	}
	for _, kv := range opts.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(kv, "\x00\r\n") || k == SSHHostEnvVar {
			return nil, fmt.Errorf("bad Env entry %q: want KEY=VALUE on one line, KEY not %s", kv, SSHHostEnvVar)
		}
	}
	if _, err := os.Stat(sshdBinary); err != nil {
		return nil, fmt.Errorf("no sshd (install Debian's openssh-server): %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the test sshd needs root (euid is %d)", os.Geteuid())
	}
	h := &SSHHost{Name: name, User: users[0]}
	if opts.NoDaemon {
		label := strings.Trim(nameRe.ReplaceAllString(strings.ToLower(name), "-"), "-")
		dir, err := os.MkdirTemp("", dirPrefix+pkgName+"-ssh-"+label+"-")
		if err != nil {
			return nil, err
		}
		h.Dir, h.ownDir = dir, true
		if err := writeOwnerFiles(dir, "", ""); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	} else {
		d, err := e.newDaemon(t) // registered first: stopped after the sshd
		if err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
		h.Env, h.Dir = d, d.Dir
	}
	registerCleanup(t, "sshd "+name, h.cleanup)
	if err := h.start(users, opts.Env); err != nil {
		return nil, err
	}
	return h, nil
}

// start writes the keys and starts the sshd, on another port when the one
// picked was taken meanwhile.
func (h *SSHHost) start(users, env []string) error {
	_, hostPub, _, err := newKey(h.Dir, "ssh_host_ed25519_key", "testenv host "+h.Name)
	if err != nil {
		return err
	}
	clientKeyPEM, clientPub, signer, err := newKey(h.Dir, "client_ed25519", "testenv client of "+h.Name)
	if err != nil {
		return err
	}
	h.ClientKey = filepath.Join(h.Dir, "client_ed25519")
	h.ClientKeyPEM = clientKeyPEM
	h.signer, h.hostPub = signer, hostPub
	h.HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub)))
	h.HostKeyFingerprint = ssh.FingerprintSHA256(hostPub)
	authorized := filepath.Join(h.Dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		return err
	}
	// The privilege separation directory (Debian's service creates it).
	if err := os.Mkdir(sshdPrivsepDir, 0o755); err == nil {
		_ = os.Chmod(sshdPrivsepDir, 0o755)
	} else if !errors.Is(err, os.ErrExist) {
		return err
	}
	h.config = filepath.Join(h.Dir, sshdConfigName)
	h.log = filepath.Join(h.Dir, "sshd.log")
	h.pidFile = filepath.Join(h.Dir, "sshd.pid")
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return err
		}
		h.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		h.URL = "ssh://" + h.User + "@" + h.Addr
		config := sshdConfig(h.Name, port, filepath.Join(h.Dir, "ssh_host_ed25519_key"),
			h.pidFile, authorized, users, append([]string{SSHHostEnvVar + "=" + h.Dir}, env...))
		if err := os.WriteFile(h.config, []byte(config), 0o644); err != nil {
			return err
		}
		lastErr = h.startSSHD()
		if lastErr == nil {
			break
		}
		if !childproc.Exited(h.exited) || !strings.Contains(childproc.LogTail(h.log, 5), "Address already in use") {
			break
		}
	}
	if lastErr != nil {
		h.Stop()
		return fmt.Errorf("%w\nsshd log (%s), last lines:\n%s", lastErr, h.log, childproc.LogTail(h.log, 30))
	}
	h.KnownHosts = filepath.Join(h.Dir, "known_hosts")
	return os.WriteFile(h.KnownHosts, []byte(knownhosts.Line([]string{h.Addr}, hostPub)+"\n"), 0o644)
}

// startSSHD starts sshd with h.config and waits until it completes an SSH
// handshake with the client key and the readiness connection is gone.
func (h *SSHHost) startSSHD() error {
	if err := os.Remove(h.pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	logf, err := os.Create(h.log)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(sshdBinary, "-D", "-e", "-f", h.config)
	cmd.Stdout = logf
	cmd.Stderr = logf
	exited, err := childproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	h.cmd, h.exited = cmd, exited

	deadline := time.Now().Add(StartTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	wait := func(what string, last error) error {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited during startup (%v)", cmd.ProcessState)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd on %s: %s not within %v (last error: %v)", h.Addr, what, StartTimeout, last)
		}
		return nil
	}
	// sshd writes its pid file once it listens: until then, whoever else
	// holds the port would answer.
	for {
		if _, err := os.Stat(h.pidFile); err == nil {
			break
		}
		if werr := wait("not listening", fmt.Errorf("no %s", h.pidFile)); werr != nil {
			return werr
		}
	}
	for {
		client, err := h.dial(h.User, 5*time.Second)
		if err == nil {
			client.Close()
			break
		}
		if werr := wait("no SSH handshake", err); werr != nil {
			return werr
		}
	}
	// The readiness connection must not show in Sessions.
	for {
		left := h.sessions()
		if len(left) == 0 {
			return nil
		}
		if err := wait("readiness connection not closed", fmt.Errorf("sessions %v", left)); err != nil {
			return err
		}
	}
}

// dial connects to the host with the client key, checking the host key;
// timeout bounds the connection and the whole handshake (ssh.Dial's bounds
// only the connection).
func (h *SSHHost) dial(user string, timeout time.Duration) (*ssh.Client, error) {
	conn, err := net.DialTimeout("tcp", h.Addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, h.Addr, &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(h.signer)},
		HostKeyCallback: ssh.FixedHostKey(h.hostPub),
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// sshdConfig is the whole configuration of a test sshd: no system file is
// read (-f), nothing but the client key authenticates.
func sshdConfig(name string, port int, hostKey, pidFile, authorizedKeys string, users, env []string) string {
	quote := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	setenv := make([]string, len(env))
	for i, kv := range env {
		setenv[i] = quote(kv)
	}
	return fmt.Sprintf(`# testenv host %q: %s -D -e -f THIS_FILE
Port %d
ListenAddress 127.0.0.1
AddressFamily inet
HostKey %s
PidFile %s
AuthorizedKeysFile %s
AuthorizedPrincipalsFile none
AuthorizedKeysCommand none
PubkeyAuthentication yes
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
GSSAPIAuthentication no
KerberosAuthentication no
UsePAM no
StrictModes no
AllowUsers %s
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
GatewayPorts no
X11Forwarding no
PermitTunnel no
PermitTTY yes
PermitUserEnvironment no
SetEnv %s
PrintMotd no
PrintLastLog no
UseDNS no
Banner none
LoginGraceTime 30
MaxStartups 100:30:200
MaxSessions 64
ClientAliveInterval 0
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, name, sshdBinary, port, quote(hostKey), quote(pidFile), quote(authorizedKeys),
		strings.Join(users, " "), strings.Join(setenv, " "))
}

// newKey generates an ed25519 key and writes it to dir/name (OpenSSH
// format, 0600) and dir/name.pub.
func newKey(dir, name, comment string) (string, ssh.PublicKey, ssh.Signer, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return "", nil, nil, err
	}
	keyPEM := pem.EncodeToMemory(block)
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return "", nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, name), keyPEM, 0o600); err != nil {
		return "", nil, nil, err
	}
	line := append(bytes.TrimSpace(ssh.MarshalAuthorizedKey(sshPub)), []byte(" "+comment+"\n")...)
	if err := os.WriteFile(filepath.Join(dir, name+".pub"), line, 0o644); err != nil {
		return "", nil, nil, err
	}
	return string(keyPEM), sshPub, signer, nil
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago (a variable
// for the test of the retry).
var freePort = func() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Authorize lets the client key of other log in to h as well (sshd reads
// authorized_keys on every login): one key for several hosts, as a fleet
// has.
func (h *SSHHost) Authorize(t testing.TB, other *SSHHost) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(h.Dir, "authorized_keys"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("testenv: authorize %s on %s: %v", other.Name, h.Name, err)
	}
	defer f.Close()
	if _, err := f.Write(ssh.MarshalAuthorizedKey(other.signer.PublicKey())); err != nil {
		t.Fatalf("testenv: authorize %s on %s: %v", other.Name, h.Name, err)
	}
}

// Sessions lists the pids of the sshd processes serving this host's
// sessions (not the listener): one per connection, the listener's children
// (with privilege separation, each has an unprivileged child while it
// authenticates; a root login has no further one).
func (h *SSHHost) Sessions(t testing.TB) []int {
	t.Helper()
	return h.sessions()
}

func (h *SSHHost) sessions() []int { return h.children(false) }

// children lists the listener's children, the exited ones not yet reaped
// too with zombies.
func (h *SSHHost) children(zombies bool) []int {
	if h.cmd == nil || h.cmd.Process == nil || childproc.Exited(h.exited) {
		return nil
	}
	listener := h.cmd.Process.Pid
	var pids []int
	for _, p := range procStats() {
		if p.ppid == listener && (zombies || p.state != 'Z' && p.state != 'X') {
			pids = append(pids, p.pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// KillSessions SIGKILLs the sshd processes of every session, as a dropped
// connection or a dead Terraform Cloud runner would, and waits (with a
// deadline) until they are gone. The processes the sessions started (the
// agent) are NOT killed; the listener keeps accepting connections.
func (h *SSHHost) KillSessions(t testing.TB) {
	t.Helper()
	if err := killSessions(h.sessions(), sshdKillTimeout); err != nil {
		t.Fatalf("testenv: %s: KillSessions: %v", h.Name, err)
	}
}

// killSessions SIGKILLs the processes of the sshd sessions whose leaders
// (the per-connection monitors: sshd setsid()s each) are given, i.e. the
// monitors and their children still in their session. A command a session
// runs is in a session of its own (sshd setsid()s it too), so it lives on.
func killSessions(leaders []int, timeout time.Duration) error {
	if len(leaders) == 0 {
		return nil
	}
	members := func() []int {
		var pids []int
		for _, p := range procStats() {
			if (slices.Contains(leaders, p.sid) || slices.Contains(leaders, p.pid)) && p.state != 'Z' && p.state != 'X' {
				pids = append(pids, p.pid)
			}
		}
		return pids
	}
	deadline := time.Now().Add(timeout)
	for {
		left := members()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd session processes %v still there after %v", left, timeout)
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond) // polling for exit, bounded by deadline
	}
}

// Stop stops the sshd: the listener and every session (t.Cleanup does it
// too). The processes the sessions started live on until the cleanup. A
// stopped host cannot be started again.
func (h *SSHHost) Stop() {
	h.stopOnce.Do(func() {
		if h.cmd == nil || h.cmd.Process == nil || childproc.Exited(h.exited) {
			return
		}
		pid := h.cmd.Process.Pid
		deadline := time.Now().Add(sshdKillTimeout)
		for {
			// Stopped, the listener accepts no connection: with no
			// session left, it can go.
			_ = syscall.Kill(pid, syscall.SIGSTOP)
			leaders := h.sessions()
			if len(leaders) == 0 || time.Now().After(deadline) {
				break
			}
			// Running, it reaps the sessions killed (no zombie for init).
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = killSessions(leaders, time.Until(deadline))
			for time.Now().Before(deadline) && slices.ContainsFunc(h.children(true), func(p int) bool { return slices.Contains(leaders, p) }) {
				time.Sleep(20 * time.Millisecond) // polling for the reaping, bounded by deadline
			}
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-h.exited
	})
}

// cleanup is the registered stop of the host.
func (h *SSHHost) cleanup() error {
	h.Stop()
	if h.ownDir {
		return cleanDir(h.Dir, "", "")
	}
	// The daemon's stop (registered before) removes the directory.
	return killMarked(h.Dir, sshdKillTimeout)
}

// Started returns the pids of the processes that the host's sessions
// started and that run now (an agent, and what it started): those whose
// environment has SSHHostEnvVar set to the host's Dir.
func (h *SSHHost) Started() []int { return marked(h.Dir) }

// marked returns the pids of the processes started in the sessions of the
// sshd of dir (their environment has SSHHostEnvVar=dir).
func marked(dir string) []int {
	marker := "\x00" + SSHHostEnvVar + "=" + dir + "\x00"
	return findProcsBy("environ", func(env string) bool { return strings.Contains("\x00"+env, marker) })
}

// killMarked SIGKILLs the processes started in the sessions of the sshd of
// dir and waits until they are gone.
func killMarked(dir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := marked(dir)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of the sessions of %s still there after %v: %v", dir, timeout, left)
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond) // polling for exit, bounded by deadline
	}
}

type procStat struct {
	pid, ppid, sid int
	state          byte
}

// procStats reads pid, state, ppid and session of every process from
// /proc/PID/stat.
func procStats() []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp session ...": comm may hold anything.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 4 || len(f[0]) != 1 {
			continue
		}
		ppid, err1 := strconv.Atoi(f[1])
		sid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, procStat{pid: pid, ppid: ppid, sid: sid, state: f[0][0]})
	}
	return out
}
