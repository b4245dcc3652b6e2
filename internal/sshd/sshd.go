// Package sshd runs OpenSSH's sshd on 127.0.0.1 with keys of its own, a
// stand-in for a remote host in the tests and the benchmarks.
//
// Start writes a host key, a client key, authorized_keys, known_hosts and
// the whole sshd configuration into a directory the caller owns, and
// returns once sshd has completed an SSH handshake with the client key.
// Every session's environment carries EnvVar, so that what the sessions
// started (an agent) can be found and killed (Started, KillStarted, and
// Marked and KillMarked for the directory of a server no longer at hand).
//
// It needs root and /usr/sbin/sshd (Debian's openssh-server).
package sshd

import (
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
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pouch/terraform-provider-pouch/internal/childproc"
)

// EnvVar is set in the environment of every session (to the server's Dir);
// the processes carrying it are what the sessions started (unless they
// cleared their environment).
const EnvVar = "POUCH_TESTENV_SSH_HOST"

const (
	binary     = "/usr/sbin/sshd"
	privsepDir = "/run/sshd"
	// configName is the name of the configuration in Dir: sshd's command
	// line holds Dir/configName (-f).
	configName = "sshd_config"
	// startTimeout bounds the wait for a started sshd to serve.
	startTimeout = 30 * time.Second
	// killTimeout bounds the waits for killed sshd and session processes.
	killTimeout = 10 * time.Second
)

// Options configure Start.
type Options struct {
	// Dir is an existing directory for the configuration, the keys, the
	// log and the pid file. The caller owns it and removes it (after Stop).
	Dir string
	// Name is for messages, the configuration and the key comments;
	// default the base name of Dir.
	Name string
	// AllowUsers are the users the client key logs in as; default
	// ["root"].
	AllowUsers []string
	// Env is "KEY=VALUE" set in every session's environment (sshd
	// SetEnv), e.g. for a fault injection variable. KEY is not EnvVar.
	Env []string
}

// Server is a running sshd.
type Server struct {
	Name               string // Options.Name
	Addr               string // "127.0.0.1:PORT"
	User               string // "root" (the first of Options.AllowUsers)
	URL                string // "ssh://root@127.0.0.1:PORT"
	HostKey            string // the server's public key, authorized_keys form: "ssh-ed25519 AAAA..."
	HostKeyFingerprint string // "SHA256:..." as ssh-keygen -l prints it
	KnownHosts         string // path of a known_hosts file that lists this server's key ("[127.0.0.1]:PORT ssh-ed25519 AAAA...")
	ClientKey          string // path of the private key (OpenSSH format, no passphrase) authorized for User
	ClientKeyPEM       string // the contents of ClientKey
	Dir                string // Options.Dir: sshd_config, the keys, sshd.log, sshd.pid

	config   string
	log      string
	pidFile  string
	signer   ssh.Signer
	hostPub  ssh.PublicKey
	cmd      *exec.Cmd
	exited   <-chan struct{}
	stopOnce sync.Once
}

// Start starts an sshd on 127.0.0.1:<free port> accepting only the client
// key it generates, for opts.AllowUsers. It returns once the sshd has
// completed an SSH handshake with the client key. On an error, nothing of
// the sshd runs any more; the files written to opts.Dir stay.
func Start(opts Options) (*Server, error) {
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
		if !ok || k == "" || strings.ContainsAny(kv, "\x00\r\n") || k == EnvVar {
			return nil, fmt.Errorf("bad Env entry %q: want KEY=VALUE on one line, KEY not %s", kv, EnvVar)
		}
	}
	if opts.Dir == "" {
		return nil, errors.New("no Dir")
	}
	if fi, err := os.Stat(opts.Dir); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", opts.Dir)
	}
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("no sshd (install Debian's openssh-server): %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the test sshd needs root (euid is %d)", os.Geteuid())
	}
	name := opts.Name
	if name == "" {
		name = filepath.Base(opts.Dir)
	}
	s := &Server{Name: name, User: users[0], Dir: opts.Dir}
	if err := s.start(users, opts.Env); err != nil {
		return nil, err
	}
	return s, nil
}

// start writes the keys and starts the sshd, on another port when the one
// picked was taken meanwhile.
func (s *Server) start(users, env []string) error {
	_, hostPub, _, err := newKey(s.Dir, "ssh_host_ed25519_key", "pouch sshd host "+s.Name)
	if err != nil {
		return err
	}
	clientKeyPEM, clientPub, signer, err := newKey(s.Dir, "client_ed25519", "pouch sshd client of "+s.Name)
	if err != nil {
		return err
	}
	s.ClientKey = filepath.Join(s.Dir, "client_ed25519")
	s.ClientKeyPEM = clientKeyPEM
	s.signer, s.hostPub = signer, hostPub
	s.HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub)))
	s.HostKeyFingerprint = ssh.FingerprintSHA256(hostPub)
	authorized := filepath.Join(s.Dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		return err
	}
	// The privilege separation directory (Debian's service creates it).
	if err := os.Mkdir(privsepDir, 0o755); err == nil {
		_ = os.Chmod(privsepDir, 0o755)
	} else if !errors.Is(err, os.ErrExist) {
		return err
	}
	s.config = filepath.Join(s.Dir, configName)
	s.log = filepath.Join(s.Dir, "sshd.log")
	s.pidFile = filepath.Join(s.Dir, "sshd.pid")
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "ssh://" + s.User + "@" + s.Addr
		config := sshdConfig(s.Name, port, filepath.Join(s.Dir, "ssh_host_ed25519_key"), s.pidFile, authorized, users,
			append([]string{EnvVar + "=" + s.Dir}, env...))
		if err := os.WriteFile(s.config, []byte(config), 0o644); err != nil {
			return err
		}
		lastErr = s.startSSHD()
		if lastErr == nil {
			break
		}
		if !childproc.Exited(s.exited) || !strings.Contains(childproc.LogTail(s.log, 5), "Address already in use") {
			break
		}
	}
	if lastErr != nil {
		s.Stop()
		return fmt.Errorf("%w\nsshd log (%s), last lines:\n%s", lastErr, s.log, childproc.LogTail(s.log, 30))
	}
	s.KnownHosts = filepath.Join(s.Dir, "known_hosts")
	return os.WriteFile(s.KnownHosts, []byte(knownhosts.Line([]string{s.Addr}, hostPub)+"\n"), 0o644)
}

// startSSHD starts sshd with s.config and waits until it completes an SSH
// handshake with the client key and the readiness connection is gone.
func (s *Server) startSSHD() error {
	if err := os.Remove(s.pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	logf, err := os.Create(s.log)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(binary, "-D", "-e", "-f", s.config)
	cmd.Stdout = logf
	cmd.Stderr = logf
	exited, err := childproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	wait := func(what string, last error) error {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited during startup (%v)", cmd.ProcessState)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd on %s: %s not within %v (last error: %v)", s.Addr, what, startTimeout, last)
		}
		return nil
	}
	// sshd writes its pid file once it listens: until then, whoever else
	// holds the port would answer.
	for {
		if _, err := os.Stat(s.pidFile); err == nil {
			break
		}
		if werr := wait("not listening", fmt.Errorf("no %s", s.pidFile)); werr != nil {
			return werr
		}
	}
	for {
		client, err := s.Dial(s.User, 5*time.Second)
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
		left := s.Sessions()
		if len(left) == 0 {
			return nil
		}
		if err := wait("readiness connection not closed", fmt.Errorf("sessions %v", left)); err != nil {
			return err
		}
	}
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

// ClientSigner returns the client key (that of ClientKey) as a signer.
func (s *Server) ClientSigner() ssh.Signer { return s.signer }

// Dial connects to the server as user with the client key, checking the
// host key; timeout bounds the connection and the whole handshake
// (ssh.Dial's bounds only the connection).
func (s *Server) Dial(user string, timeout time.Duration) (*ssh.Client, error) {
	conn, err := net.DialTimeout("tcp", s.Addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, s.Addr, &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.signer)},
		HostKeyCallback: ssh.FixedHostKey(s.hostPub),
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// Authorize lets pub log in as well (sshd reads authorized_keys on every
// login): e.g. one key for several servers, as a fleet has.
func (s *Server) Authorize(pub ssh.PublicKey) error {
	f, err := os.OpenFile(filepath.Join(s.Dir, "authorized_keys"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(ssh.MarshalAuthorizedKey(pub)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Stop stops the sshd: the listener and every session. The processes the
// sessions started live on (see KillStarted). A stopped server cannot be
// started again; Stop again does nothing.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil || childproc.Exited(s.exited) {
			return
		}
		pid := s.cmd.Process.Pid
		deadline := time.Now().Add(killTimeout)
		for {
			// Stopped, the listener accepts no connection: with no
			// session left, it can go.
			_ = syscall.Kill(pid, syscall.SIGSTOP)
			leaders := s.Sessions()
			if len(leaders) == 0 || time.Now().After(deadline) {
				break
			}
			// Running, it reaps the sessions killed (no zombie for init).
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = killSessions(leaders, time.Until(deadline))
			for time.Now().Before(deadline) && slices.ContainsFunc(s.children(true), func(p int) bool { return slices.Contains(leaders, p) }) {
				time.Sleep(20 * time.Millisecond) // polling for the reaping, bounded by deadline
			}
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-s.exited
	})
}
