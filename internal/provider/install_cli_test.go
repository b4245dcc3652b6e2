package provider

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// These tests install the provider the way a user does: from a release
// built by tools/release.sh (goreleaser), through Terraform's provider
// registry protocol over HTTPS, with the signature of SHA256SUMS checked,
// and from a filesystem mirror with no network; no dev_overrides anywhere.

const (
	// installVersion is the version of the release the test builds.
	installVersion = "0.2.0-test"
	// releaseTimeout bounds tools/release.sh, which may first have to
	// install goreleaser with go install (a few minutes).
	releaseTimeout = 20 * time.Minute
)

// installPlatform is this machine's os_arch, the one release the registry
// must have.
var installPlatform = runtime.GOOS + "_" + runtime.GOARCH

// providerRelease is a release of the provider as tools/release.sh lays it
// out, plus a signature of its SHA256SUMS made with a key it does not have.
type providerRelease struct {
	dir     string
	version string
	sums    []byte            // <project>_<version>_SHA256SUMS
	sig     []byte            // its detached signature, by the release key
	zipSums map[string]string // platform -> sha256 hex, from SHA256SUMS
	keyID   string            // the release key's long key ID
	armor   string            // the release key's armored public key
	// otherSig is a signature of sums by a key that is not the release key.
	otherSig []byte
}

func (r *providerRelease) prefix() string { return "terraform-provider-pouch_" + r.version }

func (r *providerRelease) zipName(platform string) string {
	return r.prefix() + "_" + platform + ".zip"
}

func (r *providerRelease) zip(t *testing.T, platform string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, r.zipName(platform)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gpgRun runs gpg --batch with GNUPGHOME=home and returns its stdout.
func gpgRun(t *testing.T, home, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "gpg", append([]string{"--batch"}, args...)...)
	cmd.Env = append(withoutEnv(os.Environ(), "GNUPGHOME="), "GNUPGHOME="+home)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// newGPGHome returns an empty GnuPG home in a temporary directory; its
// agent is stopped when the test ends.
func newGPGHome(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("gpg is needed to sign and check releases: install the Debian package gnupg")
	}
	home := t.TempDir()
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "all")
		cmd.Env = append(withoutEnv(os.Environ(), "GNUPGHOME="), "GNUPGHOME="+home)
		_ = cmd.Run() // no agent started: nothing to stop
	})
	return home
}

// newGPGKey makes an RSA signing key without a passphrase in home and
// returns its fingerprint.
func newGPGKey(t *testing.T, home, name string) string {
	t.Helper()
	email := name + "@pouch.invalid"
	gpgRun(t, home, fmt.Sprintf(`%%no-protection
Key-Type: RSA
Key-Length: 3072
Key-Usage: sign
Name-Real: %s
Name-Email: %s
Expire-Date: 0
%%commit
`, name, email), "--quiet", "--generate-key")
	for _, line := range strings.Split(gpgRun(t, home, "", "--with-colons", "--list-secret-keys", "<"+email+">"), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" && len(f) > 9 {
			return f[9]
		}
	}
	t.Fatalf("no fingerprint for the new key %s", email)
	return ""
}

// gpgKeyID returns the long key ID of the primary key in an armored
// public key.
func gpgKeyID(t *testing.T, home, armor string) string {
	t.Helper()
	for _, line := range strings.Split(gpgRun(t, home, armor, "--with-colons", "--show-keys"), "\n") {
		if f := strings.Split(line, ":"); f[0] == "pub" && len(f) > 4 {
			return f[4]
		}
	}
	t.Fatalf("no public key in\n%s", armor)
	return ""
}

// withoutEnv drops the variables with these prefixes from env.
func withoutEnv(env []string, prefixes ...string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(kv, p) })
	})
}

// buildRelease runs tools/release.sh into a temporary directory: a snapshot
// of installVersion for this platform only, signed with a key of the
// test's own.
func buildRelease(t *testing.T, home, fingerprint string) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "dist")
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "tools", "release.sh"))
	cmd.Dir = t.TempDir() // the script finds the repository itself
	cmd.Env = append(withoutEnv(os.Environ(), "POUCH_", "GPG_FINGERPRINT=", "GNUPGHOME="),
		"POUCH_RELEASE_DIR="+out, "POUCH_VERSION="+installVersion, "POUCH_RELEASE_TARGETS="+installPlatform,
		"GPG_FINGERPRINT="+fingerprint, "GNUPGHOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	t.Logf("tools/release.sh took %v", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("tools/release.sh: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	last := lines[len(lines)-1]
	if resolved, err := filepath.EvalSymlinks(out); err != nil || !sameFile(last, resolved) {
		t.Fatalf("tools/release.sh: last line %q, want the output directory %s\n%s", last, out, stderr.String())
	}
	if strings.Contains(stderr.String(), "THROWAWAY") {
		t.Errorf("tools/release.sh with GPG_FINGERPRINT set says it used a throwaway key:\n%s", stderr.String())
	}
	return out
}

// sameFile reports whether paths a and b name one existing file.
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// loadRelease builds the release (or takes the one in $POUCH_RELEASE_DIR)
// and reads it.
func loadRelease(t *testing.T) *providerRelease {
	t.Helper()
	home := newGPGHome(t)
	dir := os.Getenv("POUCH_RELEASE_DIR")
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "metadata.json")); err != nil {
			t.Logf("POUCH_RELEASE_DIR=%s holds no release (%v): building one", dir, err)
			dir = ""
		}
	}
	if dir == "" {
		dir = buildRelease(t, home, newGPGKey(t, home, "pouch-release-test"))
	} else {
		t.Logf("using the release in POUCH_RELEASE_DIR=%s", dir)
	}

	meta, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(meta, &m); err != nil || m.Version == "" {
		t.Fatalf("%s/metadata.json: no version (%v)\n%s", dir, err, meta)
	}
	r := &providerRelease{dir: dir, version: m.Version, zipSums: map[string]string{}}
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("the release lacks %s: %v", name, err)
		}
		return b
	}
	r.sums = read(r.prefix() + "_SHA256SUMS")
	r.sig = read(r.prefix() + "_SHA256SUMS.sig")
	r.armor = string(read(r.prefix() + "_signing_key.asc"))
	manifest := read(r.prefix() + "_manifest.json")
	if want := `{"version": 1, "metadata": {"protocol_versions": ["6.0"]}}`; !jsonEqual(manifest, []byte(want)) {
		t.Errorf("%s_manifest.json is %s, want %s", r.prefix(), manifest, want)
	}

	// Every line of SHA256SUMS names a file of the release with that sum:
	// the zips and the manifest, nothing else.
	listed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(r.sums)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		listed[name] = true
		if got := fmt.Sprintf("%x", sha256.Sum256(read(name))); got != sum {
			t.Errorf("SHA256SUMS says %s has sha256 %s; it has %s", name, sum, got)
		}
		if p, ok := strings.CutPrefix(name, r.prefix()+"_"); ok && strings.HasSuffix(p, ".zip") {
			r.zipSums[strings.TrimSuffix(p, ".zip")] = sum
		}
	}
	if !listed[r.prefix()+"_manifest.json"] || len(listed) != len(r.zipSums)+1 {
		t.Errorf("SHA256SUMS lists %v; want the zips and %s_manifest.json only", slices.Sorted(maps.Keys(listed)), r.prefix())
	}
	if _, ok := r.zipSums[installPlatform]; !ok {
		t.Fatalf("the release has no zip for %s: %v", installPlatform, slices.Sorted(maps.Keys(r.zipSums)))
	}
	// A zip holds the binary alone, named as Terraform expects.
	zr, err := zip.NewReader(bytes.NewReader(r.zip(t, installPlatform)), int64(len(r.zip(t, installPlatform))))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if want := "terraform-provider-pouch_v" + r.version; len(names) != 1 || names[0] != want {
		t.Errorf("%s holds %v, want [%s]", r.zipName(installPlatform), names, want)
	}

	// The signature is the served key's; another key's signature of the
	// same file is the wrong signature of the test.
	gpgRun(t, home, r.armor, "--quiet", "--import")
	r.keyID = gpgKeyID(t, home, r.armor)
	sumsPath := filepath.Join(dir, r.prefix()+"_SHA256SUMS")
	gpgRun(t, home, "", "--quiet", "--verify", filepath.Join(dir, r.prefix()+"_SHA256SUMS.sig"), sumsPath)
	other := newGPGKey(t, home, "pouch-not-the-release-key")
	otherSig := filepath.Join(t.TempDir(), "other.sig")
	gpgRun(t, home, "", "--local-user", other, "--output", otherSig, "--detach-sign", sumsPath)
	if r.otherSig, err = os.ReadFile(otherSig); err != nil {
		t.Fatal(err)
	}
	return r
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// testCA is a certificate authority of the test's own, and a server
// certificate it issued for localhost, 127.0.0.1 and ::1.
type testCA struct {
	pemFile string // the CA certificate, for SSL_CERT_FILE
	server  tls.Certificate
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca := testenv.NewCA(t)
	server := ca.Server(t, []string{"localhost"}, net.IPv4(127, 0, 0, 1), net.IPv6loopback)
	return &testCA{pemFile: ca.PEMFile, server: server.TLS}
}

// testRegistry serves a release through the provider registry protocol
// (service discovery, versions, download metadata and the files), over
// HTTPS, as localhost:<port>/pouch/pouch.
type testRegistry struct {
	t    *testing.T
	rel  *providerRelease
	zip  []byte // the zip for installPlatform, as served
	sig  []byte // the signature of SHA256SUMS, as served
	srv  *httptest.Server
	host string // localhost:<port>

	mu       sync.Mutex
	requests []string
}

// newTestRegistry starts a registry of rel. tamper serves the zip with one
// byte changed (its shasum still the true one); otherSig serves the
// signature of another key than the one in signing_keys.
func newTestRegistry(t *testing.T, ca *testCA, rel *providerRelease, tamper, otherSig bool) *testRegistry {
	t.Helper()
	r := &testRegistry{t: t, rel: rel, zip: rel.zip(t, installPlatform), sig: rel.sig}
	if tamper {
		r.zip = slices.Clone(r.zip)
		r.zip[len(r.zip)/2] ^= 0x01
	}
	if otherSig {
		r.sig = rel.otherSig
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/terraform.json", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]string{"providers.v1": "/v1/providers/"})
	})
	mux.HandleFunc("GET /v1/providers/pouch/pouch/versions", r.versions)
	mux.HandleFunc("GET /v1/providers/pouch/pouch/{version}/download/{os}/{arch}", r.download)
	mux.HandleFunc("GET /files/{name}", r.file)
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.URL.Path)
		r.mu.Unlock()
		mux.ServeHTTP(w, req)
	}))
	r.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.server}, MinVersion: tls.VersionTLS12}
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	u, err := url.Parse(r.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	r.host = "localhost:" + u.Port()
	return r
}

// source is the provider's source address on this registry.
func (r *testRegistry) source() string { return r.host + "/pouch/pouch" }

// reset forgets the requests served so far.
func (r *testRegistry) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = nil
}

// served reports whether the registry was asked for path.
func (r *testRegistry) served(path string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.requests, path)
}

func (r *testRegistry) fileURL(name string) string { return "https://" + r.host + "/files/" + name }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (r *testRegistry) versions(w http.ResponseWriter, _ *http.Request) {
	type platform struct {
		OS   string `json:"os"`
		Arch string `json:"arch"`
	}
	var platforms []platform
	for _, p := range slices.Sorted(maps.Keys(r.rel.zipSums)) {
		goos, arch, _ := strings.Cut(p, "_")
		platforms = append(platforms, platform{goos, arch})
	}
	writeJSON(w, map[string]any{"versions": []map[string]any{{
		"version":   r.rel.version,
		"protocols": []string{"6.0"},
		"platforms": platforms,
	}}})
}

func (r *testRegistry) download(w http.ResponseWriter, req *http.Request) {
	platform := req.PathValue("os") + "_" + req.PathValue("arch")
	sum, ok := r.rel.zipSums[platform]
	if req.PathValue("version") != r.rel.version || !ok {
		http.NotFound(w, req)
		return
	}
	writeJSON(w, map[string]any{
		"protocols":             []string{"6.0"},
		"os":                    req.PathValue("os"),
		"arch":                  req.PathValue("arch"),
		"filename":              r.rel.zipName(platform),
		"download_url":          r.fileURL(r.rel.zipName(platform)),
		"shasums_url":           r.fileURL(r.rel.prefix() + "_SHA256SUMS"),
		"shasums_signature_url": r.fileURL(r.rel.prefix() + "_SHA256SUMS.sig"),
		"shasum":                sum,
		"signing_keys": map[string]any{"gpg_public_keys": []map[string]any{{
			"key_id":          r.rel.keyID,
			"ascii_armor":     r.rel.armor,
			"trust_signature": "",
			"source":          "pouch",
			"source_url":      nil,
		}}},
	})
}

func (r *testRegistry) file(w http.ResponseWriter, req *http.Request) {
	var body []byte
	switch name := req.PathValue("name"); name {
	case r.rel.zipName(installPlatform):
		body = r.zip
	case r.rel.prefix() + "_SHA256SUMS":
		body = r.rel.sums
	case r.rel.prefix() + "_SHA256SUMS.sig":
		body = r.sig
	default:
		http.NotFound(w, req)
		return
	}
	http.ServeContent(w, req, req.PathValue("name"), time.Time{}, bytes.NewReader(body))
}

// installCLI is a terraform (or tofu) working directory whose CLI
// configuration is cliConfig and which trusts the test's CA.
func installCLI(t *testing.T, binary string, ca *testCA, cliConfig string) *tfCLI {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "cli.tfrc")
	if err := os.WriteFile(rc, []byte(cliConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	env := withoutEnv(os.Environ(), "TF_", "TOFU_", "SSL_CERT_", "POUCH_ENGINE_FAULT=", "CHECKPOINT_")
	env = append(env, "TF_CLI_CONFIG_FILE="+rc, "TOFU_CLI_CONFIG_FILE="+rc, "CHECKPOINT_DISABLE=1",
		"TF_IN_AUTOMATION=1", "SSL_CERT_FILE="+ca.pemFile)
	return &tfCLI{t: t, terraform: binary, dir: t.TempDir(), env: env}
}

// directConfig installs every provider from its registry: no dev_overrides,
// no implicit local directories.
const directConfig = "provider_installation {\n  direct {}\n}\n"

// writeInstallConfig writes a configuration that requires the provider
// from source at the release's version (an exact constraint: a prerelease
// is never selected otherwise) and adds body.
func writeInstallConfig(t *testing.T, tf *tfCLI, source, version, body string) {
	t.Helper()
	cfg := fmt.Sprintf(`terraform {
  required_providers {
    pouch = {
      source  = %q
      version = %q
    }
  }
}

%s`, source, version, body)
	if err := os.WriteFile(filepath.Join(tf.dir, "main.tf"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lockHashes returns the hashes that .terraform.lock.hcl records for the
// provider at source, and its version; nil when it has no entry for it.
func lockHashes(t *testing.T, dir, source string) (version string, hashes []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ".terraform.lock.hcl"))
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)provider "` + regexp.QuoteMeta(source) + `" \{(.*?)\n\}`).FindSubmatch(b)
	if block == nil {
		return "", nil
	}
	if m := regexp.MustCompile(`version\s*=\s*"([^"]+)"`).FindSubmatch(block[1]); m != nil {
		version = string(m[1])
	}
	for _, m := range regexp.MustCompile(`"((?:h1|zh):[^"]+)"`).FindAllSubmatch(block[1], -1) {
		hashes = append(hashes, string(m[1]))
	}
	return version, hashes
}

// zipH1 is Terraform's "h1:" hash of a provider package: golang.org/x/mod's
// dirhash.Hash1 of the zip's files.
func zipH1(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	files := slices.Clone(zr.File)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	h := sha256.New()
	for _, f := range files {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		fh := sha256.New()
		_, err = io.Copy(fh, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%x  %s\n", fh.Sum(nil), f.Name)
	}
	return "h1:" + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// zipBinary returns the provider binary in a release zip.
func zipBinary(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 {
		t.Fatalf("zip holds %d files, want the binary alone", len(zr.File))
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	bin, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// installedProviders lists the provider files under the working
// directory's .terraform/providers.
func installedProviders(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	root := filepath.Join(dir, ".terraform", "providers")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			found = append(found, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return found
}

// checkInstalled checks what `init` left: the binary of the release's zip
// in .terraform/providers, the lock file's entry for it, and `version`
// listing it. It returns the installed binary's path.
func checkInstalled(t *testing.T, tf *tfCLI, rel *providerRelease, source string, wantHashes []string) string {
	t.Helper()
	bin := zipBinary(t, rel.zip(t, installPlatform))
	path := filepath.Join(tf.dir, ".terraform", "providers", filepath.FromSlash(source), rel.version, installPlatform,
		"terraform-provider-pouch_v"+rel.version)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("init installed no %s: %v; installed: %v", path, err, installedProviders(t, tf.dir))
	}
	if !bytes.Equal(got, bin) {
		t.Errorf("%s is not the binary of the release's zip", path)
	}
	// -X main.version stamped the release's version into the binary.
	if !bytes.Contains(got, []byte(rel.version)) {
		t.Errorf("%s does not hold its version %q: the build did not stamp main.version", path, rel.version)
	}
	version, hashes := lockHashes(t, tf.dir, source)
	if version != rel.version {
		t.Errorf(".terraform.lock.hcl: provider %q version %q, want %q", source, version, rel.version)
	}
	for _, h := range wantHashes {
		if !slices.Contains(hashes, h) {
			t.Errorf(".terraform.lock.hcl: provider %q lacks hash %s; has %v", source, h, hashes)
		}
	}
	out := tf.mustRun("version")
	if want := "provider " + source + " v" + rel.version; !strings.Contains(out, want) {
		t.Errorf("%s version does not list %q:\n%s", filepath.Base(tf.terraform), want, out)
	}
	return path
}

// loggerProcess returns the pid of a running process whose executable is
// the containers' log driver copied from the provider binary bin, serving
// container id's log (see containerlog.Install), or 0.
func loggerProcess(t *testing.T, bin []byte, id string) int {
	t.Helper()
	sum := sha256.Sum256(bin)
	name := "pouch-" + hex.EncodeToString(sum[:])[:16]
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != name {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(id)) {
			return pid
		}
	}
	return 0
}

// installAndApply installs the provider from reg with binary (terraform or
// tofu), creates a container with it and destroys it at the end.
func installAndApply(t *testing.T, env *testenv.Env, binary string, ca *testCA, reg *testRegistry, name string) {
	rel := reg.rel
	reg.reset()
	img := testImage("install", "v1")
	env.ImportImage(t, img)
	tf := installCLI(t, binary, ca, directConfig)
	writeInstallConfig(t, tf, reg.source(), rel.version, containerConfig(env, name, img.Name, `network_mode = "host"`))

	out := tf.mustRun("init", "-no-color", "-input=false")
	t.Logf("%s init:\n%s", filepath.Base(binary), out)
	// The registry served the zip, SHA256SUMS and its signature, and init
	// says it checked the signature with the release key.
	for _, f := range []string{rel.zipName(installPlatform), rel.prefix() + "_SHA256SUMS", rel.prefix() + "_SHA256SUMS.sig"} {
		if !reg.served("/files/" + f) {
			t.Errorf("init did not download %s from the registry", f)
		}
	}
	if want := "Installed " + reg.source() + " v" + rel.version; !strings.Contains(out, want) {
		t.Errorf("init output lacks %q", want)
	}
	if !strings.Contains(out, "key ID "+rel.keyID) {
		t.Errorf("init output does not name the signing key %s", rel.keyID)
	}
	// The lock file has the zip's hash of SHA256SUMS (zh:) for every
	// platform of the release, and the package hash (h1:) of this one.
	want := []string{zipH1(t, rel.zip(t, installPlatform))}
	for _, sum := range rel.zipSums {
		want = append(want, "zh:"+sum)
	}
	installed := checkInstalled(t, tf, rel, reg.source(), want)

	tf.destroyAtEnd(env, name)
	tf.mustRun("apply", "-auto-approve", "-no-color", "-input=false")
	if got := env.TaskStatus(t, name); got != "running" {
		t.Errorf("after apply the task of %s is %q, want running", name, got)
	}
	// The container's log driver is a copy of the installed binary (the
	// provider copies its own executable): the installed provider made it.
	bin, err := os.ReadFile(installed)
	if err != nil {
		t.Fatal(err)
	}
	if pid := loggerProcess(t, bin, name); pid == 0 {
		t.Errorf("no process runs a copy of the installed provider %s as the log driver of %s", installed, name)
	} else {
		t.Logf("pid %d, the log driver of %s, runs a copy of the installed provider", pid, name)
	}
}

// clientPath returns the binary named by the environment variable, else
// (if lookPath is set) the one of that name on PATH, else "".
func clientPath(variable, lookPath string) string {
	if p := os.Getenv(variable); p != "" {
		return p
	}
	if lookPath != "" {
		if p, err := exec.LookPath(lookPath); err == nil {
			return p
		}
	}
	return ""
}

// installClient is a Terraform CLI to install the provider with.
type installClient struct {
	name   string // of the subtest
	path   string // "" when this machine does not have it
	skip   string // why the subtest skips without it
	prefix string // of the containers' names
}

// TestAccInstall_fromARegistry installs the provider from a release built
// by tools/release.sh, served by a registry of the provider registry
// protocol over HTTPS, and applies a container with the installed binary.
// A tampered zip and a signature by another key fail init and install
// nothing; a filesystem mirror installs with no registry at all. All of it
// runs with terraform, and with terraform 1.5 and OpenTofu where they are
// set up.
func TestAccInstall_fromARegistry(t *testing.T) {
	env := accEnv(t)
	clients := []installClient{
		{"terraform", clientPath("TF_ACC_TERRAFORM_PATH", "terraform"), "set TF_ACC_TERRAFORM_PATH", "acc-install-tf"},
		{"terraform_1.5", clientPath("TF_ACC_TERRAFORM_1_5_PATH", ""), "set TF_ACC_TERRAFORM_1_5_PATH", "acc-install-tf15"},
		{"opentofu", clientPath("TF_ACC_TOFU_PATH", "tofu"), "set TF_ACC_TOFU_PATH or put tofu on PATH", "acc-install-tofu"},
	}
	if clients[0].path == "" {
		t.Skip("no terraform: " + clients[0].skip)
	}
	rel := loadRelease(t)
	ca := newTestCA(t)
	reg := newTestRegistry(t, ca, rel, false, false)
	tampered := newTestRegistry(t, ca, rel, true, false)
	wrongSig := newTestRegistry(t, ca, rel, false, true)

	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			if c.path == "" {
				t.Skipf("no %s: %s", c.name, c.skip)
			}
			t.Run("install_and_apply", func(t *testing.T) {
				installAndApply(t, env, c.path, ca, reg, c.prefix)
			})
			t.Run("tampered_zip", func(t *testing.T) {
				failedInit(t, env, c.path, ca, tampered, rel.zipName(installPlatform), regexp.MustCompile(`(?i)checksum`))
			})
			t.Run("wrong_signature", func(t *testing.T) {
				failedInit(t, env, c.path, ca, wrongSig, rel.prefix()+"_SHA256SUMS.sig", regexp.MustCompile(`(?i)signature`))
			})
			t.Run("filesystem_mirror", func(t *testing.T) {
				installFromMirror(t, env, c.path, ca, rel)
			})
		})
	}
}

// failedInit runs init against a registry that serves something wrong and
// checks that it fails with want, after downloading servedFile, and
// installs and locks nothing.
func failedInit(t *testing.T, env *testenv.Env, binary string, ca *testCA, bad *testRegistry, servedFile string, want *regexp.Regexp) {
	t.Helper()
	tf := installCLI(t, binary, ca, directConfig)
	writeInstallConfig(t, tf, bad.source(), bad.rel.version, providerConfig(env))
	bad.reset()
	out, code := tf.run(nil, "init", "-no-color", "-input=false")
	t.Logf("init:\n%s", out)
	if code == 0 {
		t.Fatalf("init succeeded, want an error matching %s", want)
	}
	if !want.MatchString(out) {
		t.Errorf("init output does not match %s", want)
	}
	if !bad.served("/files/" + servedFile) {
		t.Errorf("init failed before it downloaded %s", servedFile)
	}
	if files := installedProviders(t, tf.dir); len(files) != 0 {
		t.Errorf("a failed init installed %v", files)
	}
	if v, hashes := lockHashes(t, tf.dir, bad.source()); v != "" || hashes != nil {
		t.Errorf("a failed init locked %s %s %v", bad.source(), v, hashes)
	}
}

// installFromMirror is the air-gapped path: a filesystem mirror in the
// packed layout, the one `terraform providers mirror` writes, installs the
// provider with its registry gone.
func installFromMirror(t *testing.T, env *testenv.Env, binary string, ca *testCA, rel *providerRelease) {
	zipBytes := rel.zip(t, installPlatform)
	reg := newTestRegistry(t, ca, rel, false, false)
	layout := filepath.Join(filepath.FromSlash(reg.source()), rel.zipName(installPlatform))

	// The client's own mirror of the registry has that layout.
	written := t.TempDir()
	tf := installCLI(t, binary, ca, directConfig)
	writeInstallConfig(t, tf, reg.source(), rel.version, providerConfig(env))
	tf.mustRun("providers", "mirror", "-platform="+installPlatform, written)
	if got, err := os.ReadFile(filepath.Join(written, layout)); err != nil || !bytes.Equal(got, zipBytes) {
		t.Errorf("providers mirror did not write the release's zip as %s (%v)", layout, err)
	}

	// A mirror laid out by hand, as a user copies the release's zip.
	mirror := t.TempDir()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(mirror, layout)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mirror, layout), zipBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	reg.srv.Close() // no registry: a request to its port is refused
	tf = installCLI(t, binary, ca, fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = [%q]
  }
}
`, mirror, reg.source()))
	writeInstallConfig(t, tf, reg.source(), rel.version, providerConfig(env))
	out := tf.mustRun("init", "-no-color", "-input=false")
	t.Logf("init from the mirror:\n%s", out)
	checkInstalled(t, tf, rel, reg.source(), []string{zipH1(t, zipBytes)})
	// The installed binary runs: validate asks it for its schema.
	if out := tf.mustRun("validate", "-no-color"); !strings.Contains(out, "The configuration is valid") {
		t.Errorf("validate with the mirrored provider:\n%s", out)
	}
}
