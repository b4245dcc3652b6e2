// Package registry runs Debian's docker-registry on 127.0.0.1 and pushes
// locally built images to it with skopeo: the real registry that the pull
// tests and the benchmarks pull from.
package registry

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/childproc"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

// Server is a running docker-registry.
type Server struct {
	Addr string // "127.0.0.1:PORT"

	opts   Options
	dir    string
	cmd    *exec.Cmd
	exited <-chan struct{}
}

// Options are a registry's access settings: none by default (anonymous,
// plain HTTP).
type Options struct {
	// Htpasswd is a file of bcrypt passwords: the registry then asks for
	// them (basic auth); Username and Password are what Push logs in with.
	Htpasswd           string
	Username, Password string
	// CertFile and KeyFile (PEM) make it serve HTTPS.
	CertFile, KeyFile string
}

// Start starts docker-registry on a free port of 127.0.0.1, with its
// configuration, storage and log under dir, and waits until it answers.
func Start(dir string) (*Server, error) { return StartWith(dir, Options{}) }

// StartWith is Start with access settings.
func StartWith(dir string, opts Options) (*Server, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, fmt.Errorf("docker-registry not found (install Debian's docker-registry package): %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	// The port is picked free and then handed to the registry; retry if
	// another process took it in between.
	for attempt := 0; attempt < 3; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := l.Addr().String()
		l.Close()
		config := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "storage"), addr)
		if opts.CertFile != "" {
			config += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", opts.CertFile, opts.KeyFile)
		}
		if opts.Htpasswd != "" {
			config += fmt.Sprintf("auth:\n  htpasswd:\n    realm: pouch-test\n    path: %s\n", opts.Htpasswd)
		}
		configPath := filepath.Join(dir, "registry.yml")
		if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
			return nil, err
		}
		logPath := filepath.Join(dir, "registry.log")
		logf, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "serve", configPath)
		cmd.Stdout = logf
		cmd.Stderr = logf
		exited, err := childproc.Start(cmd)
		logf.Close()
		if err != nil {
			return nil, fmt.Errorf("start docker-registry: %w", err)
		}
		if err := waitHTTP(addr, opts.CertFile != "", exited, 30*time.Second); err != nil {
			childproc.Stop(cmd, exited, 5*time.Second)
			lastErr = fmt.Errorf("%w\nregistry log:\n%s", err, childproc.LogTail(logPath, 20))
			continue
		}
		return &Server{Addr: addr, opts: opts, dir: dir, cmd: cmd, exited: exited}, nil
	}
	return nil, lastErr
}

// Stop stops the registry; its storage stays in the directory.
func (s *Server) Stop() { childproc.Stop(s.cmd, s.exited, 10*time.Second) }

// Push builds img (its Name is ignored) and copies it with skopeo to the
// registry as ADDR/repoTag (":latest" when repoTag has no tag), returning
// that full reference.
func (s *Server) Push(ctx context.Context, repoTag string, img imagebuild.Image) (string, error) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		return "", fmt.Errorf("skopeo not found (install Debian's skopeo package): %w", err)
	}
	if !strings.Contains(repoTag[strings.LastIndex(repoTag, "/")+1:], ":") {
		repoTag += ":latest"
	}
	ref := s.Addr + "/" + repoTag
	img.Name = ref

	tmp, err := os.MkdirTemp(s.dir, "push-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	archive := filepath.Join(tmp, "image.tar")
	if _, err := imagebuild.WriteArchiveFile(archive, img); err != nil {
		return "", fmt.Errorf("build %s: %w", ref, err)
	}
	policy := filepath.Join(tmp, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		return "", err
	}
	args := []string{"--policy", policy, "copy", "--quiet", "--dest-tls-verify=false"}
	if s.opts.Username != "" {
		args = append(args, "--dest-creds", s.opts.Username+":"+s.opts.Password)
	}
	cmd := exec.CommandContext(ctx, "skopeo", append(args, "oci-archive:"+archive, "docker://"+ref)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("skopeo copy to %s: %w\n%s", ref, err, out)
	}
	return ref, nil
}

// waitHTTP waits until GET /v2/ on addr answers (200, or 401 when it
// asks for a password), over HTTPS when secure (its certificate is not
// checked: this is the harness's own registry).
func waitHTTP(addr string, secure bool, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	scheme := "http"
	if secure {
		scheme = "https"
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the harness's own registry
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		resp, err := client.Get(scheme + "://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		lastErr = err
		select {
		case <-exited:
			return fmt.Errorf("docker-registry on %s exited during startup", addr)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("docker-registry on %s not ready within %v: %v", addr, timeout, lastErr)
		}
	}
}
