package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/registry"
	"golang.org/x/crypto/bcrypt"
)

// Registry starts (on the first call) Debian's docker-registry on
// 127.0.0.1 with storage in the Env's directory and returns its
// "127.0.0.1:PORT". It is stopped by Main.
func (e *Env) Registry(t testing.TB) string {
	t.Helper()
	e.regOnce.Do(func() { e.reg, e.regErr = registry.Start(filepath.Join(e.Dir, "registry")) })
	if e.regErr != nil {
		t.Fatalf("testenv.Registry: %v", e.regErr)
	}
	return e.reg.Addr
}

// PushImage builds img (its Name is ignored) and copies it with skopeo to the
// registry as HOST/repoTag, returning that full reference. The image is not
// imported into containerd.
func (e *Env) PushImage(t testing.TB, repoTag string, img imagebuild.Image) string {
	t.Helper()
	e.Registry(t)
	return Push(t, e.reg, repoTag, img)
}

// PrivateRegistry starts a docker-registry of the test's own with opts
// (credentials, TLS), its storage in a temporary directory, stopped at the
// test's end. The Env's (Registry) is anonymous, over plain HTTP.
func PrivateRegistry(t testing.TB, opts registry.Options) *registry.Server {
	t.Helper()
	reg, err := registry.StartWith(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("testenv.PrivateRegistry: %v", err)
	}
	t.Cleanup(reg.Stop)
	return reg
}

// Push builds img (its Name is ignored) and copies it with skopeo to reg as
// HOST/repoTag, returning that full reference.
func Push(t testing.TB, reg *registry.Server, repoTag string, img imagebuild.Image) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ref, err := reg.Push(ctx, repoTag, img)
	if err != nil {
		t.Fatalf("testenv.Push: %v", err)
	}
	return ref
}

// Htpasswd writes a file of user's bcrypt password, for a registry that
// asks for it (registry.Options.Htpasswd).
func Htpasswd(t testing.TB, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// RegistryRequests counts the requests the registry served for method and
// path ("HEAD", "/v2/pouchtest/app/manifests/v2"), from its access log.
func (e *Env) RegistryRequests(t testing.TB, method, path string) int {
	t.Helper()
	e.Registry(t)
	data, err := os.ReadFile(filepath.Join(e.Dir, "registry", "registry.log"))
	if err != nil {
		t.Fatalf("testenv.RegistryRequests: %v", err)
	}
	return strings.Count(string(data), `"`+method+" "+path+" HTTP/")
}
