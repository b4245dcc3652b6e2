package remote

import (
	"bytes"
	"context"
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
// and checks the copy's checksum every time it connects. Otherwise an
// agent installed on the host by hand (agent_path) is used.

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

// remotePlatform asks the host what it runs.
func remotePlatform(client *ssh.Client) (platform, error) {
	out, err := run(client, "uname -s -m", nil)
	if err != nil {
		return platform{}, fmt.Errorf("ask the host its system (uname): %w", err)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return platform{}, fmt.Errorf("uname -s -m answered %q", out)
	}
	p := platform{os: strings.ToLower(f[0]), arch: f[1]}
	switch f[1] {
	case "x86_64", "amd64":
		p.arch = "amd64"
	case "aarch64", "arm64":
		p.arch = "arm64"
	}
	return p, nil
}

// installAgent returns the path of the agent on the host: agentPath when
// set, else this binary, uploaded once per version under dataRoot.
// uploaded says whether this call uploaded it.
func installAgent(ctx context.Context, client *ssh.Client, dataRoot, agentPath string) (agent string, uploaded bool, err error) {
	if agentPath != "" {
		if _, err := run(client, "test -x "+shellQuote(agentPath), nil); err != nil {
			return "", false, fmt.Errorf("agent_path %s is not an executable on the host: install the provider's binary "+
				"for the host's system there (the release's zip), or leave agent_path out when the host runs %s", agentPath, localPlatform)
		}
		return agentPath, false, nil
	}
	host, err := remotePlatform(client)
	if err != nil {
		return "", false, err
	}
	if host != localPlatform {
		return "", false, fmt.Errorf("the host runs %s and this provider %s, so it cannot run itself there: install the "+
			"provider's %s binary (from its release) on the host and set agent_path to it", host, localPlatform, host)
	}
	bin, sum, err := selfBinary()
	if err != nil {
		return "", false, fmt.Errorf("read the provider's own executable, the agent: %w", err)
	}
	dir := path.Join(dataRoot, "bin")
	agent = path.Join(dir, "pouch-"+sum[:16])
	if have, err := run(client, "sha256sum "+shellQuote(agent)+" 2>/dev/null", nil); err == nil && strings.HasPrefix(have, sum) {
		return agent, false, nil
	}
	f, err := os.Open(bin)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	// A file of this upload's own (other providers may be uploading the
	// same agent at the same time), renamed into place once whole.
	script := fmt.Sprintf(`umask 077 && mkdir -p %[1]s && t=$(mktemp %[1]s/.upload.XXXXXXXX) || exit 1
cat > "$t" && chmod 0700 "$t" && mv -f "$t" %[2]s || { rm -f "$t"; exit 1; }`, shellQuote(dir), shellQuote(agent))
	if _, err := run(client, script, f); err != nil {
		return "", false, fmt.Errorf("upload the agent to %s: %w", agent, err)
	}
	have, err := run(client, "sha256sum "+shellQuote(agent), nil)
	if err != nil || !strings.HasPrefix(have, sum) {
		return "", false, fmt.Errorf("the agent uploaded to %s does not have the provider's checksum %s (got %q, %v)", agent, sum, have, err)
	}
	return agent, true, nil
}

// run runs a command on the host, with stdin as its input, and returns its
// output; an error holds the end of what it wrote to stderr.
func run(client *ssh.Client, cmd string, stdin io.Reader) (string, error) {
	s, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	var out bytes.Buffer
	stderr := &tailBuffer{max: 2048}
	s.Stdout, s.Stderr, s.Stdin = &out, stderr, stdin
	if err := s.Run(cmd); err != nil {
		var exit *ssh.ExitError
		if errors.As(err, &exit) {
			return out.String(), fmt.Errorf("exit status %d: %s", exit.ExitStatus(), strings.TrimSpace(stderr.String()))
		}
		return out.String(), err
	}
	return strings.TrimSpace(out.String()), nil
}

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
