package sshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// sshdConfig is the whole configuration of a server: no system file is
// read (-f), nothing but the client key authenticates.
func sshdConfig(name string, port int, hostKey, pidFile, authorizedKeys string, users, env []string) string {
	quote := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	setenv := make([]string, len(env))
	for i, kv := range env {
		setenv[i] = quote(kv)
	}
	return fmt.Sprintf(`# pouch sshd %q: %s -D -e -f THIS_FILE
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
`, name, binary, port, quote(hostKey), quote(pidFile), quote(authorizedKeys),
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
