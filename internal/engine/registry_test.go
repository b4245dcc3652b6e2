package engine_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/registry"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// A registry's credentials go to its own host only: a redirect to
// another host that asks for them gets none.
func TestCredentialsOnlyForTheirRegistry(t *testing.T) {
	for _, c := range []struct {
		address, asked string
		want           bool
	}{
		{"r.example:5000", "r.example:5000", true},
		{"r.example:5000", "cdn.example", false},
		{"r.example:5000", "r.example", false},
		{"docker.io", "registry-1.docker.io", true},
		{"docker.io", "production.cloudflare.docker.com", false},
	} {
		user, secret, err := engine.CredentialsFor(engine.RegistryHost{Address: c.address, Username: "u", Password: "p"})(c.asked)
		if err != nil || (user == "u" && secret == "p") != c.want || !c.want && (user != "" || secret != "") {
			t.Errorf("credentials of %s asked by %s: %q, %q, %v; want them: %v", c.address, c.asked, user, secret, err, c.want)
		}
	}
}

// push pushes the version of the "private" image to reg as repoTag.
func push(t *testing.T, reg *registry.Server, repoTag, version string) string {
	t.Helper()
	return testenv.Push(t, reg, repoTag, versionImage("private", version))
}

// engineWith is an engine of env with registry settings.
func engineWith(t *testing.T, env *testenv.Env, regs engine.Registries) *engine.Engine {
	t.Helper()
	opts := envOptions(env)
	opts.Registries = regs
	return mustNew(t, opts)
}

// createFails asserts that creating name from ref fails with an error
// holding each of frags and none of secrets, and leaves no container.
func createFails(t *testing.T, e *engine.Engine, name, ref string, frags, secrets []string) {
	t.Helper()
	_, err := e.Create(context.Background(), engine.ContainerSpec{Name: name, Image: ref, Running: true, NetworkMode: engine.NetworkNone})
	if err == nil {
		_ = e.Delete(context.Background(), name)
		t.Fatalf("create from %s succeeded, want it refused", ref)
	}
	t.Logf("create from %s: %v", ref, err)
	for _, f := range frags {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("create from %s: %v\nwant it to say %q", ref, err, f)
		}
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error shows a secret: %v", err)
		}
	}
	if _, err := e.Inspect(context.Background(), name); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("after a failed pull, inspect %s: %v, want no container", name, err)
	}
}

// A registry that asks for a password: refused without credentials and
// with wrong ones (the error names the registry and registry_auth, and
// holds no password), pulled with the right ones.
func TestPullWithCredentials(t *testing.T) {
	env := testenv.Get(t)
	const user, password, wrong = "ci", "hunter2-right", "hunter2-wrong"
	reg := testenv.PrivateRegistry(t, registry.Options{Htpasswd: testenv.Htpasswd(t, user, password), Username: user, Password: password})
	ref := push(t, reg, "pouchtest/private:v1", "v1")

	anonymous := engineWith(t, env, engine.Registries{})
	createFails(t, anonymous, "eng-auth-none", ref, []string{"registry " + reg.Addr + " refused the credentials", "registry_auth"}, nil)
	wrongly := engineWith(t, env, engine.Registries{Hosts: []engine.RegistryHost{{Address: reg.Addr, Username: user, Password: wrong}}})
	createFails(t, wrongly, "eng-auth-wrong", ref, []string{"refused the credentials"}, []string{wrong, password})

	e := engineWith(t, env, engine.Registries{Hosts: []engine.RegistryHost{{Address: reg.Addr, Username: user, Password: password}}})
	create(t, e, engine.ContainerSpec{Name: "eng-auth", Image: ref, Running: true, NetworkMode: engine.NetworkNone})
	if got := mustExec(t, env, "eng-auth", "cat", "/version"); got != "v1" {
		t.Fatalf("/version = %q", got)
	}
}

// Credentials from a Docker config.json: its auths, and a credential
// helper it names (docker-credential-NAME on PATH).
func TestPullWithDockerConfig(t *testing.T) {
	env := testenv.Get(t)
	const user, password = "robot", "s3cr3t-helper"
	reg := testenv.PrivateRegistry(t, registry.Options{Htpasswd: testenv.Htpasswd(t, user, password), Username: user, Password: password})

	bin := t.TempDir()
	helper := "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread url\n" +
		"printf '{\"ServerURL\":\"%s\",\"Username\":\"" + user + "\",\"Secret\":\"" + password + "\"}' \"$url\"\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-pouchtest"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	dir := t.TempDir()
	for name, config := range map[string]string{
		"helper": `{"credHelpers": {"` + reg.Addr + `": "pouchtest"}}`,
		"auths":  `{"auths": {"` + reg.Addr + `": {"auth": "cm9ib3Q6czNjcjN0LWhlbHBlcg=="}}}`, // robot:s3cr3t-helper
	} {
		file := filepath.Join(dir, name+".json")
		if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		ref := push(t, reg, "pouchtest/private:"+name, "v1") // a tag each: each pulls
		e := engineWith(t, env, engine.Registries{Hosts: []engine.RegistryHost{{Address: reg.Addr, ConfigFile: file}}})
		create(t, e, engine.ContainerSpec{Name: "eng-config-" + name, Image: ref, Running: true, NetworkMode: engine.NetworkNone})
	}
	// A helper that is not installed: the error says to install it.
	missing := filepath.Join(dir, "missing.json")
	if err := os.WriteFile(missing, []byte(`{"credHelpers": {"`+reg.Addr+`": "pouchmissing"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := push(t, reg, "pouchtest/private:missing", "v1")
	e := engineWith(t, env, engine.Registries{Hosts: []engine.RegistryHost{{Address: reg.Addr, ConfigFile: missing}}})
	createFails(t, e, "eng-config-missing", ref, []string{"install docker-credential-NAME on the PATH of the containerd host"}, nil)
}

// A registry served over HTTPS by a CA of the test's: pulled with its CA
// as ca_file; refused, saying what to do, with another CA, and with a
// certificate that is not for the registry's address.
func TestPullOverTLS(t *testing.T) {
	env := testenv.Get(t)
	ca := testenv.NewCA(t)
	cert := ca.Server(t, []string{"localhost"}, net.IPv4(127, 0, 0, 1))
	reg := testenv.PrivateRegistry(t, registry.Options{CertFile: cert.CertFile, KeyFile: cert.KeyFile})
	ref := push(t, reg, "pouchtest/private:v1", "v1")

	other := testenv.NewCA(t)
	stranger := engineWith(t, env, engine.Registries{Hosts: []engine.RegistryHost{{Address: reg.Addr, CAFile: other.PEMFile}}})
	createFails(t, stranger, "eng-tls-ca", ref, []string{"not signed by a CA this host trusts", "ca_file"}, nil)

	e := engineWith(t, env, engine.Registries{Hosts: []engine.RegistryHost{{Address: reg.Addr, CAFile: ca.PEMFile}}})
	create(t, e, engine.ContainerSpec{Name: "eng-tls", Image: ref, Running: true, NetworkMode: engine.NetworkNone})

	misnamed := testenv.PrivateRegistry(t, func() registry.Options {
		c := ca.Server(t, []string{"registry.example"})
		return registry.Options{CertFile: c.CertFile, KeyFile: c.KeyFile}
	}())
	ref2 := push(t, misnamed, "pouchtest/private:v1", "v1")
	wrongName := engineWith(t, env, engine.Registries{Hosts: []engine.RegistryHost{{Address: misnamed.Addr, CAFile: ca.PEMFile}}})
	createFails(t, wrongName, "eng-tls-name", ref2, []string{"is not for that name"}, nil)
}

// Errors name the reference, the registry and what to do: an unknown
// repository or tag, HTTPS asked of a plain HTTP registry, and a registry
// that is not there.
func TestPullErrorsSayWhatToDo(t *testing.T) {
	env := testenv.Get(t)
	reg := testenv.PrivateRegistry(t, registry.Options{})
	push(t, reg, "pouchtest/private:v1", "v1")
	e := engineWith(t, env, engine.Registries{})
	createFails(t, e, "eng-err-tag", reg.Addr+"/pouchtest/private:v9", []string{"registry " + reg.Addr + " has no image", "check the repository and the tag"}, nil)
	createFails(t, e, "eng-err-repo", reg.Addr+"/pouchtest/nothing:v1", []string{"has no image"}, nil)
	ca := testenv.NewCA(t)
	httpsToHTTP := engineWith(t, env, engine.Registries{Hosts: []engine.RegistryHost{{Address: reg.Addr, CAFile: ca.PEMFile}}})
	createFails(t, httpsToHTTP, "eng-err-http", reg.Addr+"/pouchtest/private:v1", []string{"answers over plain HTTP", "insecure_registries"}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := l.Addr().String()
	l.Close()
	createFails(t, e, "eng-err-gone", gone+"/pouchtest/private:v1", []string{"registry " + gone + " cannot be reached"}, nil)
}

// slowProxy forwards connections to target at about rate bytes a second
// towards the client, until cut: a registry link that a test can break in
// the middle of a pull.
type slowProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startSlowProxy(t *testing.T, target string, rate int) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c) }()
			go func() {
				buf := make([]byte, rate/20)
				tick := time.NewTicker(50 * time.Millisecond) // the rate itself, not a synchronisation
				defer tick.Stop()
				for range tick.C {
					n, err := up.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *slowProxy) addr() string { return p.ln.Addr().String() }

// cut closes the listener and every connection.
func (p *slowProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// A pull cut off half-way (the registry's link lost in the middle of a
// layer): the upgrade fails saying the registry cannot be reached, the old
// task goes on running untouched, no image is left under the new name to
// be mistaken for a whole one, and nothing leaks; the same upgrade works
// once the registry is back.
func TestPullInterruptedHalfWay(t *testing.T) {
	e, env := newEngine(t)
	reg := testenv.PrivateRegistry(t, registry.Options{})
	proxy := startSlowProxy(t, reg.Addr, 1<<20) // 1 MiB/s: a 16 MiB layer takes 16 s
	spec := engine.ContainerSpec{Name: "eng-cut", Image: push(t, reg, "pouchtest/private:v1", "v1"), Running: true,
		NetworkMode: engine.NetworkNone}
	create(t, e, spec)
	pid := env.TaskPID(t, spec.Name)
	big := versionImage("private", "v2")
	big.PadBytes, big.PadSeed = 16<<20, "cut"
	testenv.Push(t, reg, "pouchtest/private:v2", big)
	through := strings.Replace(spec.Image, reg.Addr, proxy.addr(), 1)
	through = strings.TrimSuffix(through, ":v1") + ":v2"

	upgrade := spec
	upgrade.Image = through
	done := make(chan error, 1)
	go func() {
		_, err := e.Update(context.Background(), spec.Name, upgrade)
		done <- err
	}()
	testenv.Eventually(t, 30*time.Second, "a layer being fetched", func() bool {
		st, err := env.Client.ContentStore().ListStatuses(env.Context())
		for _, s := range st {
			if s.Offset > 0 {
				return err == nil
			}
		}
		return false
	})
	proxy.cut()
	err := <-done
	// containerd either sees the stream end early or fails to connect
	// again: each has its words.
	if err == nil || !strings.Contains(err.Error(), "registry "+proxy.addr()+" cannot be reached") &&
		!strings.Contains(err.Error(), "the connection to registry "+proxy.addr()+" was lost in the middle of the pull") {
		t.Fatalf("upgrade through a link cut half-way: %v, want a failed pull saying the registry was lost", err)
	}
	t.Logf("upgrade through a link cut half-way: %v", err)
	if got := env.TaskPID(t, spec.Name); got != pid {
		t.Fatalf("task pid %d -> %d: a failed pull touched the running task", pid, got)
	}
	if got := mustExec(t, env, spec.Name, "cat", "/version"); got != "v1" {
		t.Fatalf("/version = %q after a failed pull", got)
	}
	if _, err := env.Client.GetImage(env.Context(), through); err == nil {
		t.Fatalf("an image %s is left after a pull cut half-way", through)
	}
	if leases := env.Leases(t); len(leases) != 0 {
		t.Fatalf("leases left after a failed pull: %v", leases)
	}
	upgrade.Image = strings.TrimSuffix(spec.Image, ":v1") + ":v2"
	if _, err := e.Update(context.Background(), spec.Name, upgrade); err != nil {
		t.Fatalf("the same upgrade with the registry reachable: %v", err)
	}
	if got := mustExec(t, env, spec.Name, "cat", "/version"); got != "v2" {
		t.Fatalf("/version = %q after the upgrade", got)
	}
}

// A long pull says how far it is, at each interval: done and total MiB,
// growing; then that it is over, with its size.
func TestPullProgressIsLogged(t *testing.T) {
	env := testenv.Get(t)
	engine.SetPullProgressInterval(300 * time.Millisecond)
	t.Cleanup(func() { engine.SetPullProgressInterval(5 * time.Second) })
	log := &msgLog{}
	opts := envOptions(env)
	opts.Logger = log
	e := mustNew(t, opts)
	reg := testenv.PrivateRegistry(t, registry.Options{})
	proxy := startSlowProxy(t, reg.Addr, 8<<20) // 16 MiB in about 2 s
	big := versionImage("private", "v1")
	big.PadBytes, big.PadSeed = 16<<20, "progress"
	ref := testenv.Push(t, reg, "pouchtest/progress:v1", big)
	create(t, e, engine.ContainerSpec{Name: "eng-progress", Image: strings.Replace(ref, reg.Addr, proxy.addr(), 1),
		NetworkMode: engine.NetworkNone})

	lines := log.all("pulling image: progress")
	if len(lines) < 3 {
		t.Fatalf("%d progress lines for a pull of about 2 s at 300 ms, want at least 3: %v", len(lines), lines)
	}
	var last float64
	for _, f := range lines {
		done, _ := strconv.ParseFloat(f["done_mib"].(string), 64)
		total, _ := strconv.ParseFloat(f["total_mib"].(string), 64)
		if done < last || done > total {
			t.Fatalf("progress lines %v: done must grow and stay within the total", lines)
		}
		last = done
	}
	if last <= 0 {
		t.Fatalf("progress lines %v: nothing done", lines)
	}
	t.Logf("progress: %v", lines)
	end := log.all("pulled image")
	if len(end) != 1 {
		t.Fatalf("%d lines saying the pull ended, want 1", len(end))
	}
	if size, _ := strconv.ParseFloat(end[0]["mib"].(string), 64); size < 16 {
		t.Fatalf("the pull ended with %v MiB, want the 16 MiB layer and more", end[0]["mib"])
	}
}
