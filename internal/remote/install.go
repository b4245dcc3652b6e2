package remote

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// The agent is the provider's own binary. When the host runs the same
// system and architecture, the provider uploads itself once per version,
// into <data_root>/bin/pouch-<16 hex of its sha256> (the name under which
// the host's engine also installs its log driver: one copy serves both),
// and checks the copy's checksum before running it, in the session that
// starts it (launchScript): one SSH session per connection, unless the
// agent must be uploaded first. Otherwise an agent installed on the
// host by hand (agent_path) is used.

// self is this process's executable and its checksum, read once.
var self struct {
	once sync.Once
	path string
	sum  string
	err  error
}

func selfBinary() (string, string, error) {
	self.once.Do(func() {
		self.path, self.err = os.Executable()
		if self.err != nil {
			return
		}
		f, err := os.Open(self.path)
		if err != nil {
			self.err = err
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			self.err = err
			return
		}
		self.sum = hex.EncodeToString(h.Sum(nil))
	})
	return self.path, self.sum, self.err
}

// platform is a system and architecture in Go's names.
type platform struct{ os, arch string }

func (p platform) String() string { return p.os + "/" + p.arch }

// localPlatform is the provider's; a pouchfault build may pretend (see
// fault_env.go) to test the mismatch.
var localPlatform = platform{runtime.GOOS, runtime.GOARCH}

// parsePlatform reads `uname -s` and `uname -m` in Go's names.
func parsePlatform(kernel, machine string) platform {
	p := platform{os: strings.ToLower(kernel), arch: machine}
	switch machine {
	case "x86_64", "amd64":
		p.arch = "amd64"
	case "aarch64", "arm64":
		p.arch = "arm64"
	}
	return p
}

// What the launch script prints first: the agent follows, or what is
// missing.
const (
	launchAgent   = "pouch-agent"
	launchInstall = "pouch-install" // followed by uname -s and -m, and why
	launchMissing = "pouch-missing"
)

// Why the launch script asks for an upload (launchInstall's last word).
const (
	whyMissing       = "missing"
	whyNotExecutable = "not-executable"
	whyChecksum      = "checksum"
)

// agentFile is the agent to start on the host and the checksum it must
// have: agentPath as it is, else this binary under dataRoot.
func agentFile(dataRoot, agentPath string) (agent, sum string, err error) {
	if agentPath != "" {
		return agentPath, "", nil
	}
	_, sum, err = selfBinary()
	if err != nil {
		return "", "", fmt.Errorf("read the provider's own executable, the agent: %w", err)
	}
	return path.Join(dataRoot, "bin", "pouch-"+sum[:16]), sum, nil
}

// launchScript is the command that starts the agent in one SSH session,
// the common case: it checks the agent (unless it was installed by hand),
// prints launchAgent and becomes the agent; or it prints what is missing,
// with the host's system for an upload. It is one line run by /bin/sh,
// whatever the user's login shell.
//
// The check is the agent's SHA-256 against sum, made again only when the
// file changed since the last check that passed: that check wrote the
// file's inode, size and change time (nanoseconds; no process can set it
// back) to <agent>.ok, and a write to the file or its replacement changes
// them (only root, whom the host trusts, can write there). Hashing the
// whole binary on every connection cost more than the rest of the launch.
// Without stat -c (not GNU), every launch hashes.
func launchScript(agent, sum string) string {
	a := shellQuote(agent)
	var script string
	if sum == "" {
		script = fmt.Sprintf("if [ -x %[1]s ]; then echo %[2]s; exec %[1]s %[3]s; fi; echo %[4]s", a, launchAgent, agentArg, launchMissing)
	} else {
		script = strings.Join([]string{
			fmt.Sprintf("a=%s; ok=%s", a, shellQuote(agent+".ok")),
			fmt.Sprintf(`if [ ! -f "$a" ]; then r=%s`, whyMissing),
			fmt.Sprintf(`elif [ ! -x "$a" ]; then r=%s`, whyNotExecutable),
			`else m=$(stat -c '%i %s %z' "$a" 2>/dev/null) || m=`,
			fmt.Sprintf(`if [ -n "$m" ] && [ "$m" = "$(cat "$ok" 2>/dev/null)" ]; then echo %[1]s; exec "$a" %[2]s; fi`, launchAgent, agentArg),
			`set -- $(sha256sum < "$a" 2>/dev/null)`,
			fmt.Sprintf(`if [ "$1" = %s ]; then if [ -n "$m" ]; then printf '%%s\n' "$m" > "$ok.$$" && mv -f "$ok.$$" "$ok" || rm -f "$ok.$$"; fi`,
				shellQuote(sum)),
			fmt.Sprintf(`echo %[1]s; exec "$a" %[2]s; fi`, launchAgent, agentArg),
			fmt.Sprintf(`r=%s; fi`, whyChecksum),
			fmt.Sprintf(`echo %s "$(uname -s)" "$(uname -m)" "$r"`, launchInstall),
		}, "; ")
	}
	return shCommand(script)
}

// launchFailed says why an agent uploaded a moment ago still does not
// start (why, from the launch script), and what to do.
func launchFailed(agent, sum, why string) error {
	switch why {
	case whyNotExecutable:
		return fmt.Errorf("the agent uploaded to %s cannot be executed there: its file system is probably mounted noexec; "+
			"set data_root to a directory on a file system that allows executables", agent)
	case whyMissing:
		return fmt.Errorf("the agent uploaded to %s is gone from the host: is something removing files under %s?", agent, path.Dir(agent))
	}
	return fmt.Errorf("the agent uploaded to %s does not have the provider's checksum %s when it starts: check the host's disk "+
		"and its sha256sum (coreutils')", agent, sum)
}

// uploadAgent uploads this binary, whose checksum is sum, to agent on a
// host that runs host.
func uploadAgent(client *ssh.Client, host platform, agent, sum string) error {
	if host != localPlatform {
		return fmt.Errorf("the host runs %s and this provider %s, so it cannot run itself there: install the "+
			"provider's %s binary (from its release) on the host and set agent_path to it", host, localPlatform, host)
	}
	bin, _, err := selfBinary()
	if err != nil {
		return fmt.Errorf("read the provider's own executable, the agent: %w", err)
	}
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	// A file of this upload's own (other providers may be uploading the
	// same agent at the same time), renamed into place once whole.
	dir := path.Dir(agent)
	script := fmt.Sprintf(`umask 077 && mkdir -p %[1]s && t=$(mktemp %[1]s/.upload.XXXXXXXX) || exit 1; `+
		`cat > "$t" && chmod 0700 "$t" && mv -f "$t" %[2]s || { rm -f "$t"; exit 1; }`, shellQuote(dir), shellQuote(agent))
	if _, err := run(client, script, f); err != nil {
		return fmt.Errorf("upload the agent to %s: %w", agent, err)
	}
	have, err := run(client, "sha256sum < "+shellQuote(agent), nil)
	if err != nil || !strings.HasPrefix(have, sum) {
		return fmt.Errorf("the agent uploaded to %s does not have the provider's checksum %s (got %q, %v)", agent, sum, have, err)
	}
	return nil
}

// run runs a command (a line of /bin/sh) on the host, with stdin as its
// input, and returns its output; an error holds the end of what it wrote
// to stderr.
func run(client *ssh.Client, cmd string, stdin io.Reader) (string, error) {
	s, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	var out bytes.Buffer
	stderr := &tailBuffer{max: 2048}
	s.Stdout, s.Stderr, s.Stdin = &out, stderr, stdin
	if err := s.Run(shCommand(cmd)); err != nil {
		var exit *ssh.ExitError
		if errors.As(err, &exit) {
			return out.String(), fmt.Errorf("exit status %d: %s", exit.ExitStatus(), strings.TrimSpace(stderr.String()))
		}
		return out.String(), err
	}
	return strings.TrimSpace(out.String()), nil
}

// shCommand is the command that runs script, one line, with /bin/sh: the
// user's login shell, which runs it, need not be a POSIX one.
func shCommand(script string) string { return "exec /bin/sh -c " + shellQuote(script) }

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
