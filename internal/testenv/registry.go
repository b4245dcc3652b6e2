package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

// Registry starts (on the first call) Debian's docker-registry on
// 127.0.0.1 with storage in the Env's directory and returns its
// "127.0.0.1:PORT". It is stopped by Main.
func (e *Env) Registry(t testing.TB) string {
	t.Helper()
	e.regOnce.Do(func() { e.regAddr, e.regErr = e.startRegistry() })
	if e.regErr != nil {
		t.Fatalf("testenv.Registry: %v", e.regErr)
	}
	return e.regAddr
}

func (e *Env) startRegistry() (string, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return "", fmt.Errorf("docker-registry not found (install Debian's docker-registry package): %w", err)
	}
	dir := filepath.Join(e.Dir, "registry")
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return "", err
	}
	var lastErr error
	// The port is picked free and then handed to the registry; retry if
	// another process took it in between.
	for attempt := 0; attempt < 3; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
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
		configPath := filepath.Join(e.Dir, "registry.yml")
		if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
			return "", err
		}
		logPath := filepath.Join(dir, "registry.log")
		logf, err := os.Create(logPath)
		if err != nil {
			return "", err
		}
		cmd := exec.Command(bin, "serve", configPath)
		cmd.Stdout = logf
		cmd.Stderr = logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		exited, err := startPinned(cmd)
		logf.Close()
		if err != nil {
			return "", fmt.Errorf("start docker-registry: %w", err)
		}
		if err := waitHTTP(addr, exited, 30*time.Second); err != nil {
			stopProcess(cmd, exited, 5*time.Second)
			lastErr = fmt.Errorf("%w\nregistry log:\n%s", err, tail(logPath, 20))
			continue
		}
		e.reg = cmd
		e.regExited = exited
		return addr, nil
	}
	return "", lastErr
}

// waitHTTP waits until GET http://addr/v2/ answers 200.
func waitHTTP(addr string, exited chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
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

// PushImage builds img (its Name is ignored) and copies it with skopeo to the
// registry as HOST/repoTag, returning that full reference. The image is not
// imported into containerd.
func (e *Env) PushImage(t testing.TB, repoTag string, img imagebuild.Image) string {
	t.Helper()
	host := e.Registry(t)
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Fatalf("testenv.PushImage: skopeo not found (install Debian's skopeo package): %v", err)
	}
	if !strings.Contains(repoTag[strings.LastIndex(repoTag, "/")+1:], ":") {
		repoTag += ":latest"
	}
	ref := host + "/" + repoTag
	img.Name = ref

	tmp, err := os.MkdirTemp(e.Dir, "push-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	archive := filepath.Join(tmp, "image.tar")
	if _, err := imagebuild.WriteArchiveFile(archive, img); err != nil {
		t.Fatalf("testenv.PushImage: build: %v", err)
	}
	policy := filepath.Join(tmp, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "skopeo", "--policy", policy, "copy", "--quiet",
		"--dest-tls-verify=false", "oci-archive:"+archive, "docker://"+ref)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv.PushImage: skopeo copy to %s: %v\n%s", ref, err, out)
	}
	return ref
}
