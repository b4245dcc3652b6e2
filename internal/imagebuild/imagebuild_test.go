package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// archive is a parsed OCI archive.
type archive struct {
	files map[string][]byte
}

func readArchive(t *testing.T, data []byte) archive {
	t.Helper()
	a := archive{files: map[string][]byte{}}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		a.files[hdr.Name] = b
	}
	return a
}

func (a archive) blob(t *testing.T, d digest.Digest) []byte {
	t.Helper()
	b, ok := a.files["blobs/sha256/"+d.Encoded()]
	if !ok {
		t.Fatalf("blob %s missing", d)
	}
	if digest.FromBytes(b) != d {
		t.Fatalf("blob %s has wrong content digest %s", d, digest.FromBytes(b))
	}
	return b
}

func (a archive) index(t *testing.T) ocispec.Index {
	t.Helper()
	var idx ocispec.Index
	if err := json.Unmarshal(a.files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(idx.Manifests))
	}
	return idx
}

func (a archive) manifest(t *testing.T) ocispec.Manifest {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(a.blob(t, a.index(t).Manifests[0].Digest), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (a archive) config(t *testing.T) ocispec.Image {
	t.Helper()
	var c ocispec.Image
	if err := json.Unmarshal(a.blob(t, a.manifest(t).Config.Digest), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// layerEntries returns the headers of layer i and the contents of its regular files.
func (a archive) layerEntries(t *testing.T, i int) (map[string]*tar.Header, map[string][]byte, digest.Digest) {
	t.Helper()
	m := a.manifest(t)
	if m.Layers[i].MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("layer %d media type %s", i, m.Layers[i].MediaType)
	}
	gz, err := gzip.NewReader(bytes.NewReader(a.blob(t, m.Layers[i].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	hdrs := map[string]*tar.Header{}
	data := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(raw))
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		names = append(names, name)
		hdrs[name] = hdr
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			data[name] = b
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("layer %d entries are not sorted: %v", i, names)
	}
	return hdrs, data, digest.FromBytes(raw)
}

func mustBuild(t *testing.T, img Image) ([]byte, digest.Digest) {
	t.Helper()
	var buf bytes.Buffer
	d, err := WriteArchive(&buf, img)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), d
}

func testImage() Image {
	return Image{
		Name:       "docker.io/pouchtest/app:v1",
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{"httpd -f -p 8080"},
		Env:        []string{"A=1", "PATH=/bin"},
		WorkingDir: "/srv/app",
		User:       "app",
		Volumes:    []string{"/data"},
		Labels:     map[string]string{"l1": "v1", "l2": "v2"},
		StopSignal: "SIGINT",
		Files:      map[string]string{"/version": "v1\n", "/var/www/index.html": "hello"},
	}
}

func TestDeterministic(t *testing.T) {
	a1, d1 := mustBuild(t, testImage())
	a2, d2 := mustBuild(t, testImage())
	if d1 != d2 || !bytes.Equal(a1, a2) {
		t.Fatalf("same image gave different output: %s vs %s", d1, d2)
	}
	if err := d1.Validate(); err != nil {
		t.Fatal(err)
	}
	// The returned digest is the manifest digest of index.json.
	if got := readArchive(t, a1).index(t).Manifests[0].Digest; got != d1 {
		t.Fatalf("index manifest %s, returned %s", got, d1)
	}
}

func TestFieldsChangeDigest(t *testing.T) {
	_, base := mustBuild(t, testImage())
	mods := map[string]func(*Image){
		"entrypoint": func(i *Image) { i.Entrypoint = []string{"/bin/sh"} },
		"cmd":        func(i *Image) { i.Cmd = []string{"sleep 1"} },
		"env":        func(i *Image) { i.Env = append(i.Env, "B=2") },
		"workdir":    func(i *Image) { i.WorkingDir = "/srv" },
		"user":       func(i *Image) { i.User = "1000:1000" },
		"volumes":    func(i *Image) { i.Volumes = []string{"/other"} },
		"labels":     func(i *Image) { i.Labels = map[string]string{"l1": "x"} },
		"stopsignal": func(i *Image) { i.StopSignal = "SIGTERM" },
		"files":      func(i *Image) { i.Files = map[string]string{"/version": "v2\n"} },
		"pad":        func(i *Image) { i.PadBytes = 1000 },
		"nobusybox":  func(i *Image) { i.NoBusybox = true },
	}
	seen := map[digest.Digest]string{base: "base"}
	for name, mod := range mods {
		img := testImage()
		mod(&img)
		_, d := mustBuild(t, img)
		if other, ok := seen[d]; ok {
			t.Errorf("%s: digest %s same as %s", name, d, other)
		}
		seen[d] = name
	}
	// The name is only an index annotation: same manifest digest.
	img := testImage()
	img.Name = "docker.io/pouchtest/app:v2"
	if _, d := mustBuild(t, img); d != base {
		t.Errorf("name changed the manifest digest")
	}
}

func TestConfigAndIndex(t *testing.T) {
	img := testImage()
	data, _ := mustBuild(t, img)
	a := readArchive(t, data)
	if string(a.files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", a.files["oci-layout"])
	}
	desc := a.index(t).Manifests[0]
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("media type %s", desc.MediaType)
	}
	if desc.Annotations["io.containerd.image.name"] != img.Name || desc.Annotations[ocispec.AnnotationRefName] != "v1" {
		t.Errorf("annotations %v", desc.Annotations)
	}
	c := a.config(t)
	if c.OS != "linux" || c.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", c.OS, c.Architecture)
	}
	cc := c.Config
	if !slices.Equal(cc.Entrypoint, img.Entrypoint) || !slices.Equal(cc.Cmd, img.Cmd) || !slices.Equal(cc.Env, img.Env) ||
		cc.WorkingDir != img.WorkingDir || cc.User != img.User || cc.StopSignal != img.StopSignal ||
		len(cc.Labels) != 2 || cc.Labels["l2"] != "v2" {
		t.Errorf("config %+v", cc)
	}
	if _, ok := cc.Volumes["/data"]; !ok || len(cc.Volumes) != 1 {
		t.Errorf("volumes %v", cc.Volumes)
	}
	m := a.manifest(t)
	if len(m.Layers) != 2 || len(c.RootFS.DiffIDs) != 2 {
		t.Fatalf("%d layers, %d diff ids", len(m.Layers), len(c.RootFS.DiffIDs))
	}
	for i := range m.Layers {
		if _, _, diffID := a.layerEntries(t, i); diffID != c.RootFS.DiffIDs[i] {
			t.Errorf("layer %d diff id %s, config says %s", i, diffID, c.RootFS.DiffIDs[i])
		}
	}
	_, files, _ := a.layerEntries(t, 1)
	if string(files["version"]) != "v1\n" || string(files["var/www/index.html"]) != "hello" {
		t.Errorf("files layer %v", files)
	}
	hdrs, _, _ := a.layerEntries(t, 1)
	if h := hdrs["srv/app"]; h == nil || h.Typeflag != tar.TypeDir {
		t.Errorf("working dir not created")
	}

	// Default env.
	data, _ = mustBuild(t, Image{Name: "x/y:z"})
	if env := readArchive(t, data).config(t).Config.Env; !slices.Equal(env, DefaultEnv) {
		t.Errorf("default env %v", env)
	}
}

func TestBusyboxLayer(t *testing.T) {
	data, _ := mustBuild(t, testImage())
	hdrs, files, _ := readArchive(t, data).layerEntries(t, 0)
	bb := hdrs["bin/busybox"]
	if bb == nil || bb.Typeflag != tar.TypeReg || bb.Mode != 0o755 {
		t.Fatalf("bin/busybox missing or wrong: %+v", bb)
	}
	host, err := os.ReadFile(BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files["bin/busybox"], host) {
		t.Errorf("bin/busybox differs from host")
	}
	for _, a := range Applets {
		if a == "trap" {
			continue
		}
		h := hdrs["bin/"+a]
		if h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("bin/%s: %+v", a, h)
		}
	}
	if !strings.Contains(string(files["etc/passwd"]), "app:x:1000:1000:app:/home/app:") ||
		!strings.Contains(string(files["etc/passwd"]), "nobody:x:65534:65534:") ||
		!strings.HasPrefix(string(files["etc/passwd"]), "root:x:0:0:") {
		t.Errorf("passwd %q", files["etc/passwd"])
	}
	if !strings.Contains(string(files["etc/group"]), "nogroup:x:65534:") || !strings.Contains(string(files["etc/group"]), "app:x:1000:") {
		t.Errorf("group %q", files["etc/group"])
	}
	if h := hdrs["tmp"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp: %+v", h)
	}
	if h := hdrs["home/app"]; h == nil || h.Uid != 1000 || h.Gid != 1000 {
		t.Errorf("home/app: %+v", h)
	}
	for _, d := range []string{"proc", "sys", "dev", "etc", "var/www"} {
		if h := hdrs[d]; h == nil || h.Typeflag != tar.TypeDir {
			t.Errorf("dir %s missing", d)
		}
	}
}

func TestNoBusyboxAndPad(t *testing.T) {
	data, _ := mustBuild(t, Image{Name: "x/nobb:1", NoBusybox: true, Entrypoint: []string{"/nonexistent"}})
	a := readArchive(t, data)
	if n := len(a.manifest(t).Layers); n != 1 {
		t.Fatalf("NoBusybox image has %d layers, want 1 (empty)", n)
	}
	hdrs, _, _ := a.layerEntries(t, 0)
	if _, ok := hdrs["bin/busybox"]; ok {
		t.Errorf("busybox present")
	}

	const n = 100000
	data, d1 := mustBuild(t, Image{Name: "x/pad:1", NoBusybox: true, PadBytes: n})
	a = readArchive(t, data)
	m := a.manifest(t)
	if len(m.Layers) != 1 {
		t.Fatalf("%d layers", len(m.Layers))
	}
	if m.Layers[0].Size < n {
		t.Errorf("pad layer compressed to %d bytes, want >= %d (incompressible)", m.Layers[0].Size, n)
	}
	_, files, _ := a.layerEntries(t, 0)
	if len(files["pad"]) != n {
		t.Errorf("pad is %d bytes", len(files["pad"]))
	}
	if got, want := fmt.Sprintf("%x", sha256.Sum256(files["pad"])), PadSHA256(n, ""); got != want {
		t.Errorf("pad's SHA-256 is %s, PadSHA256 says %s", got, want)
	}
	_, d2 := mustBuild(t, Image{Name: "x/pad:1", NoBusybox: true, PadBytes: n})
	if d1 != d2 {
		t.Errorf("pad not deterministic")
	}
	seeded, d3 := mustBuild(t, Image{Name: "x/pad:1", NoBusybox: true, PadBytes: n, PadSeed: "v2"})
	if d3 == d1 {
		t.Errorf("PadSeed does not change the image")
	}
	if l := readArchive(t, seeded).manifest(t).Layers[0].Digest; l == m.Layers[0].Digest {
		t.Errorf("PadSeed does not change the pad layer (%s)", l)
	}
}

func TestBigPadStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	img := Image{Name: "x/big:1", NoBusybox: true, PadBytes: memLimit + 12345}
	p := filepath.Join(t.TempDir(), "big.tar")
	d1, err := WriteArchiveFile(p, img)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	d2, err := WriteArchive(&buf, img)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 || !bytes.Equal(onDisk, buf.Bytes()) {
		t.Fatal("big pad archive not deterministic")
	}
	readArchive(t, onDisk).layerEntries(t, 0) // verifies blob digest and tar
}

func TestRefName(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/pouch/app:v1":        "v1",
		"127.0.0.1:5000/app:latest":     "latest",
		"127.0.0.1:5000/app":            "",
		"app@sha256:abc":                "sha256:abc",
		"docker.io/library/busybox:1.2": "1.2",
	} {
		if got := refName(in); got != want {
			t.Errorf("refName(%q) = %q, want %q", in, got, want)
		}
	}
}
