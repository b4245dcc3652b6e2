package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/sshd"
)

// SSHHost is a "remote host" for the tests: an sshd on a loopback port
// (sshd.Server), with a host key of its own and a client key the test
// holds, serving (when it has one) its own containerd daemon.
//
// The fields and methods of sshd.Server are the host's: Name (e.g. "a",
// for messages), Addr ("127.0.0.1:PORT"), User ("root", the first of
// SSHHostOptions.AllowUsers), URL ("ssh://root@127.0.0.1:PORT"), HostKey
// ("ssh-ed25519 AAAA..."), HostKeyFingerprint ("SHA256:..."), KnownHosts
// (path of a known_hosts file listing the host's key), ClientKey (path of
// the private key authorized for User), ClientKeyPEM (its contents), Dir
// (the host's directory: sshd_config, keys, sshd.log; that of Env when the
// host has a daemon), Started (what the sessions started and runs now),
// Stop (the sshd and its sessions; t.Cleanup does it too), Dial and
// ClientSigner. Sessions, KillSessions and Authorize are the host's own,
// failing the test.
type SSHHost struct {
	*sshd.Server
	// Env is the host's containerd (nil with NoDaemon): Address, Namespace,
	// DataRoot, Bridge, Subnet are the host's.
	Env *Env

	ownDir bool // Dir is the host's own (NoDaemon), removed by the cleanup
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
const SSHHostEnvVar = sshd.EnvVar

// sshdConfigName is the name of the configuration sshd.Start writes in the
// host's directory, for cleanDir to find the sshd by its command line (-f).
const sshdConfigName = "sshd_config"

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
	h := &SSHHost{}
	var dir string
	if opts.NoDaemon {
		label := strings.Trim(nameRe.ReplaceAllString(strings.ToLower(name), "-"), "-")
		d, err := os.MkdirTemp("", dirPrefix+pkgName+"-ssh-"+label+"-")
		if err != nil {
			return nil, err
		}
		dir, h.ownDir = d, true
		if err := writeOwnerFiles(dir, "", ""); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	} else {
		d, err := e.newDaemon(t) // registered first: stopped after the sshd
		if err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
		h.Env, dir = d, d.Dir
	}
	registerCleanup(t, "sshd "+name, func() error { return h.cleanup(dir) })
	srv, err := sshd.Start(sshd.Options{Dir: dir, Name: name, AllowUsers: opts.AllowUsers, Env: opts.Env})
	if err != nil {
		return nil, err
	}
	h.Server = srv
	return h, nil
}

// cleanup is the registered stop of the host of dir (whose sshd may have
// failed to start).
func (h *SSHHost) cleanup(dir string) error {
	if h.Server != nil {
		h.Server.Stop()
	}
	if h.ownDir {
		return cleanDir(dir, "", "")
	}
	// The daemon's stop (registered before) removes the directory.
	return sshd.KillMarked(dir, 10*time.Second)
}

// Authorize lets the client key of other log in to h as well (sshd reads
// authorized_keys on every login): one key for several hosts, as a fleet
// has.
func (h *SSHHost) Authorize(t testing.TB, other *SSHHost) {
	t.Helper()
	if err := h.Server.Authorize(other.ClientSigner().PublicKey()); err != nil {
		t.Fatalf("testenv: authorize %s on %s: %v", other.Name, h.Name, err)
	}
}

// Sessions lists the pids of the sshd processes serving this host's
// sessions (not the listener): one per connection (see sshd.Server.Sessions).
func (h *SSHHost) Sessions(t testing.TB) []int {
	t.Helper()
	return h.Server.Sessions()
}

// KillSessions SIGKILLs the sshd processes of every session, as a dropped
// connection or a dead Terraform Cloud runner would, and waits (with a
// deadline) until they are gone. The processes the sessions started (the
// agent) are NOT killed; the listener keeps accepting connections.
func (h *SSHHost) KillSessions(t testing.TB) {
	t.Helper()
	if err := h.Server.KillSessions(); err != nil {
		t.Fatalf("testenv: %s: KillSessions: %v", h.Name, err)
	}
}
