package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSH says how to reach and trust the host.
type SSH struct {
	// PrivateKey is a private key (PEM, OpenSSH or PKCS#8) to authenticate
	// with; PrivateKeyFile names a file holding one. UseAgent also offers
	// the keys of the SSH agent at $SSH_AUTH_SOCK.
	PrivateKey     string
	PrivateKeyFile string
	UseAgent       bool
	// HostKey is the host's public key ("ssh-ed25519 AAAA..."), or lines
	// in known_hosts form naming each host to trust (a bastion's too).
	// KnownHostsFile is a known_hosts file; with neither,
	// ~/.ssh/known_hosts. InsecureIgnoreHostKey trusts any key: an
	// explicit choice for throwaway hosts only.
	HostKey               string
	KnownHostsFile        string
	InsecureIgnoreHostKey bool
	// ProxyJump are bastions to go through, in order: "[user@]host[:port]"
	// or "ssh://user@host:port".
	ProxyJump []string
	// KeepAlive is the interval of keepalive requests; zero means 15 s.
	KeepAlive time.Duration
}

// Target is an SSH endpoint.
type Target struct {
	User string
	Addr string // host:port
}

// ParseHost reads a host URL, "ssh://user@host[:port]" (port 22 by
// default).
func ParseHost(host string) (Target, error) {
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "ssh" || u.Hostname() == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return Target{}, fmt.Errorf("must be an SSH URL such as \"ssh://root@host.example:22\", got %q", host)
	}
	return targetOf(u)
}

// parseJump reads a bastion: "ssh://user@host:port" or "[user@]host[:port]".
func parseJump(s string) (Target, error) {
	if !strings.Contains(s, "://") {
		s = "ssh://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "ssh" || u.Hostname() == "" {
		return Target{}, fmt.Errorf("must be a bastion such as \"user@bastion.example:22\", got %q", s)
	}
	return targetOf(u)
}

func targetOf(u *url.URL) (Target, error) {
	user := u.User.Username()
	if user == "" {
		user = "root"
	}
	port := u.Port()
	if port == "" {
		port = "22"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Target{}, fmt.Errorf("port %q is not a port", port)
	}
	return Target{User: user, Addr: net.JoinHostPort(u.Hostname(), port)}, nil
}

// dialTimeout bounds each TCP connection and SSH handshake.
const dialTimeout = 15 * time.Second

// dial connects to target through the bastions, checking every host's key.
func dial(ctx context.Context, target Target, cfg SSH) (*ssh.Client, error) {
	auth, err := authMethods(cfg)
	if err != nil {
		return nil, err
	}
	hops := make([]Target, 0, len(cfg.ProxyJump)+1)
	for _, j := range cfg.ProxyJump {
		t, err := parseJump(j)
		if err != nil {
			return nil, fmt.Errorf("proxy_jump: %w", err)
		}
		hops = append(hops, t)
	}
	hops = append(hops, target)

	var client *ssh.Client
	for i, hop := range hops {
		hostKeys, err := hostKeyCallback(cfg, i == len(hops)-1)
		if err != nil {
			return nil, errors.Join(err, closeClient(client))
		}
		conf := &ssh.ClientConfig{User: hop.User, Auth: auth, HostKeyCallback: hostKeys, Timeout: dialTimeout}
		var conn net.Conn
		if client == nil {
			d := net.Dialer{Timeout: dialTimeout}
			conn, err = d.DialContext(ctx, "tcp", hop.Addr)
		} else {
			conn, err = client.DialContext(ctx, "tcp", hop.Addr)
		}
		if err != nil {
			via := ""
			if i > 0 {
				via = " through " + hops[i-1].Addr
			}
			return nil, errors.Join(fmt.Errorf("connect to %s%s: %w", hop.Addr, via, err), closeClient(client))
		}
		c, chans, reqs, err := ssh.NewClientConn(conn, hop.Addr, conf)
		if err != nil {
			conn.Close()
			return nil, errors.Join(explainHandshake(hop, err), closeClient(client))
		}
		client = ssh.NewClient(c, chans, reqs)
	}
	return client, nil
}

func closeClient(c *ssh.Client) error {
	if c != nil {
		c.Close()
	}
	return nil
}

// explainHandshake turns a failed SSH handshake into what to do.
func explainHandshake(hop Target, err error) error {
	var hk *hostKeyError
	if errors.As(err, &hk) {
		return hk
	}
	if strings.Contains(err.Error(), "unable to authenticate") {
		return fmt.Errorf("SSH to %s@%s: the host refused the offered keys (%v): check the user, and that the key "+
			"(ssh.private_key, ssh.private_key_file or the SSH agent) is in that user's authorized_keys", hop.User, hop.Addr, err)
	}
	return fmt.Errorf("SSH to %s@%s: %w", hop.User, hop.Addr, err)
}

func authMethods(cfg SSH) ([]ssh.AuthMethod, error) {
	var signers []ssh.Signer
	if cfg.PrivateKey != "" {
		s, err := ssh.ParsePrivateKey([]byte(cfg.PrivateKey))
		if err != nil {
			// The key's bytes are secret: the error names none of them.
			return nil, errors.New("ssh.private_key is not an unencrypted private key in PEM or OpenSSH form")
		}
		signers = append(signers, s)
	}
	if cfg.PrivateKeyFile != "" {
		b, err := os.ReadFile(cfg.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("ssh.private_key_file: %w", err)
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("ssh.private_key_file %s is not an unencrypted private key", cfg.PrivateKeyFile)
		}
		signers = append(signers, s)
	}
	var methods []ssh.AuthMethod
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if cfg.UseAgent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, errors.New("ssh.use_agent is set but SSH_AUTH_SOCK is not: start an SSH agent, or give a key")
		}
		methods = append(methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			conn, err := net.Dial("unix", sock)
			if err != nil {
				return nil, fmt.Errorf("SSH agent at %s: %w", sock, err)
			}
			return sshagent.NewClient(conn).Signers()
		}))
	}
	if len(methods) == 0 {
		return nil, errors.New("no SSH key: set ssh.private_key, ssh.private_key_file or ssh.use_agent")
	}
	return methods, nil
}

// hostKeyError says that a host offered a key that is not trusted, and how
// to trust it.
type hostKeyError struct {
	host    string
	offered ssh.PublicKey
	changed bool // the host is known, with another key
}

func (e *hostKeyError) Error() string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.offered)))
	what := "is not known"
	if e.changed {
		what = "offered a key other than the one known for it: THE HOST KEY CHANGED (a reinstalled host, or someone in the middle)"
	}
	return fmt.Sprintf("SSH host %s %s; it offers %s %s. If that is the host's key (check it on the host: "+
		"ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), pin it with ssh.host_key = %q, or add it to the known_hosts file "+
		"(%s %s)", e.host, what, e.offered.Type(), ssh.FingerprintSHA256(e.offered),
		strings.TrimPrefix(e.offered.Type(), "ssh-"), line, knownhosts.Normalize(e.host), line)
}

// hostKeyCallback checks a host's key: the target's against the pinned
// key, or every host's against the known_hosts lines of ssh.host_key,
// else a known_hosts file; or not at all when asked for in so many words.
func hostKeyCallback(cfg SSH, target bool) (ssh.HostKeyCallback, error) {
	if cfg.InsecureIgnoreHostKey {
		return ssh.InsecureIgnoreHostKey(), nil
	}
	if strings.TrimSpace(cfg.HostKey) != "" {
		// A bare key ("ssh-ed25519 AAAA..."), not known_hosts lines (whose
		// host field would read as an authorized key's options).
		key, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(cfg.HostKey))
		bare := err == nil && len(options) == 0 && strings.TrimSpace(string(rest)) == ""
		switch {
		case bare && target:
			return pinned(key), nil
		case bare:
			// One key pins the target; a bastion's is in known_hosts.
			return knownHostsFile(cfg.KnownHostsFile)
		}
		f, err := os.CreateTemp("", "pouch-known-hosts-")
		if err != nil {
			return nil, err
		}
		defer os.Remove(f.Name())
		_, err = f.WriteString(cfg.HostKey + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		cb, err := knownhosts.New(f.Name())
		if err != nil {
			return nil, fmt.Errorf("ssh.host_key is neither a public key (\"ssh-ed25519 AAAA...\") nor known_hosts lines: %w", err)
		}
		return checked(cb), nil
	}
	return knownHostsFile(cfg.KnownHostsFile)
}

// knownHostsFile checks keys against a known_hosts file, by default
// ~/.ssh/known_hosts.
func knownHostsFile(file string) (ssh.HostKeyCallback, error) {
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("no ssh.host_key or ssh.known_hosts_file, and no home directory for ~/.ssh/known_hosts: %w", err)
		}
		file = filepath.Join(home, ".ssh", "known_hosts")
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		return nil, fmt.Errorf("known hosts file %s: %w (pin the host's key with ssh.host_key instead, or name a file with ssh.known_hosts_file)", file, err)
	}
	return checked(cb), nil
}

// pinned trusts one key, for the last host dialled (the target).
func pinned(want ssh.PublicKey) ssh.HostKeyCallback {
	return func(host string, _ net.Addr, key ssh.PublicKey) error {
		if string(key.Marshal()) == string(want.Marshal()) {
			return nil
		}
		return &hostKeyError{host: host, offered: key, changed: true}
	}
}

// checked wraps a known_hosts callback so that its refusals say what to do.
func checked(cb ssh.HostKeyCallback) ssh.HostKeyCallback {
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(host, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			return &hostKeyError{host: host, offered: key, changed: len(ke.Want) > 0}
		}
		return err
	}
}

// keepAlive sends a keepalive request every interval and closes the client
// when one gets no answer in time: a dead connection is found before the
// next call waits on it.
func keepAlive(client *ssh.Client, interval time.Duration, done <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		timer := time.NewTimer(interval)
		select {
		case err := <-answered:
			timer.Stop()
			if err != nil {
				client.Close()
				return
			}
		case <-timer.C:
			client.Close()
			return
		case <-done:
			timer.Stop()
			return
		}
	}
}
