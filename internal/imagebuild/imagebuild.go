// Package imagebuild builds small, deterministic OCI image archives (an OCI
// image layout packed in a tar) in pure Go, using the host's static busybox
// as the userland. The archives can be imported with containerd's
// client.Import / `ctr images import`, or copied to a registry with skopeo
// (`oci-archive:PATH`).
package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxPath is where busybox lives both on the host (the source, which must
// be a static binary, as Debian's busybox-static provides) and in the image.
const BusyboxPath = "/bin/busybox"

// AnnotationImageName is the index.json annotation containerd uses as the
// image name on import.
const AnnotationImageName = "io.containerd.image.name"

// DefaultEnv is the image environment used when Image.Env is nil.
var DefaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// Applets are the busybox applets that are always linked into /bin (those the
// host busybox does not provide are skipped). All other applets the host
// busybox reports are linked as well.
var Applets = []string{
	"sh", "sleep", "cat", "echo", "ls", "httpd", "wget", "id", "env", "pwd",
	"true", "false", "ps", "kill", "mkdir", "touch", "sha256sum", "md5sum",
	"head", "dd", "grep", "hostname", "ip", "ifconfig", "nc", "stat", "date",
	"sync", "printf", "test", "trap", "tail", "wc", "rm", "cp", "mv", "chmod",
	"df", "mount", "whoami",
}

// Image describes an image to build.
type Image struct {
	// Name is the full reference, e.g. "docker.io/pouchtest/app:v1". It is
	// written as the io.containerd.image.name annotation (and the tag as
	// org.opencontainers.image.ref.name) on the index.json manifest
	// descriptor; it does not change the manifest digest.
	Name       string
	Entrypoint []string
	Cmd        []string
	// Env holds "K=V" entries; nil means DefaultEnv.
	Env        []string
	WorkingDir string
	User       string
	Volumes    []string
	Labels     map[string]string
	StopSignal string
	// Files are extra regular files (absolute path -> content, mode 0644);
	// parent directories are created.
	Files map[string]string
	// PadBytes > 0 adds a layer with one file /pad of that many deterministic
	// pseudo-random (incompressible) bytes.
	PadBytes int64
	// PadSeed selects the pad's bytes: images with different seeds share no
	// pad layer, so pulling one fetches and unpacks all of it.
	PadSeed string
	// NoBusybox omits the busybox base layer.
	NoBusybox bool
	// Entries are raw filesystem entries, written in a layer of their own
	// after Files, in this order: what an untrusted image may hold
	// (symlinks to anywhere, hardlinks, device nodes, setuid files, any
	// owner), for the tests of how pouch handles it.
	Entries []Entry
}

// EntryType is the kind of an Entry.
type EntryType byte

// The kinds of entries.
const (
	Dir         = EntryType(tar.TypeDir)
	File        = EntryType(tar.TypeReg)
	Symlink     = EntryType(tar.TypeSymlink)
	Hardlink    = EntryType(tar.TypeLink)
	CharDevice  = EntryType(tar.TypeChar)
	BlockDevice = EntryType(tar.TypeBlock)
	FIFO        = EntryType(tar.TypeFifo)
)

// Entry is one raw filesystem entry of an image.
type Entry struct {
	Path     string // absolute path in the image
	Type     EntryType
	Mode     int64 // permissions with the setuid, setgid and sticky bits, e.g. 0o4755
	UID, GID int
	// Target is a symlink's target (any string) or the absolute path of
	// the entry a hardlink links to (written earlier).
	Target string
	// Data is a file's content.
	Data string
	// Major and Minor are a device node's numbers.
	Major, Minor int64
}

// epoch is the fixed modification time of every tar entry.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// entry is one tar entry of a layer.
type entry struct {
	name     string // relative path, no leading slash, no trailing slash
	typ      byte
	mode     int64
	uid, gid int
	linkname string
	data     []byte
	// src, when set, is a host file to copy (regular files only).
	src string
	// gen, when set, writes size bytes of generated content.
	gen  func(w io.Writer) error
	size int64
	// seq orders an Image's Entries after everything else, as given (a
	// hardlink must follow its target); other entries are in name order.
	seq          int
	major, minor int64
}

// layer is a set of entries keyed by path.
type layer map[string]*entry

func (l layer) dir(p string, mode int64, uid, gid int) {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return
	}
	l.parents(p)
	l[p] = &entry{name: p, typ: tar.TypeDir, mode: mode, uid: uid, gid: gid}
}

// parents adds 0755 root-owned directories for every missing parent of p.
func (l layer) parents(p string) {
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := l[d]; !ok {
			l[d] = &entry{name: d, typ: tar.TypeDir, mode: 0o755}
		}
	}
}

func (l layer) file(p string, mode int64, data []byte) {
	p = strings.Trim(path.Clean("/"+p), "/")
	l.parents(p)
	l[p] = &entry{name: p, typ: tar.TypeReg, mode: mode, data: data, size: int64(len(data))}
}

func (l layer) symlink(p, target string) {
	p = strings.Trim(path.Clean("/"+p), "/")
	l.parents(p)
	l[p] = &entry{name: p, typ: tar.TypeSymlink, mode: 0o777, linkname: target}
}

// writeTar writes the layer as an uncompressed tar with sorted entries.
func (l layer) writeTar(w io.Writer) error {
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := l[names[i]], l[names[j]]
		if a.seq != b.seq {
			return a.seq < b.seq
		}
		return a.name < b.name
	})
	tw := tar.NewWriter(w)
	for _, n := range names {
		e := l[n]
		hdr := &tar.Header{
			Typeflag: e.typ,
			Name:     e.name,
			Linkname: e.linkname,
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
			Devmajor: e.major,
			Devminor: e.minor,
		}
		if e.typ == tar.TypeDir {
			hdr.Name += "/"
		}
		if e.typ == tar.TypeReg {
			hdr.Size = e.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar header %s: %w", e.name, err)
		}
		if e.typ != tar.TypeReg {
			continue
		}
		switch {
		case e.gen != nil:
			if err := e.gen(tw); err != nil {
				return err
			}
		case e.src != "":
			f, err := os.Open(e.src)
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("copy %s: %w", e.src, err)
			}
			if n != e.size {
				return fmt.Errorf("%s changed size while building the image", e.src)
			}
		default:
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// blob is a finished (compressed) layer, config or manifest.
type blob struct {
	desc ocispec.Descriptor
	// data holds the bytes when kept in memory; otherwise write regenerates them.
	data  []byte
	write func(w io.Writer) error
}

func (b *blob) writeTo(w io.Writer) error {
	if b.data != nil {
		_, err := w.Write(b.data)
		return err
	}
	return b.write(w)
}

// memLimit: compressed layers up to this size are kept in memory; larger ones
// (the pad layer) are generated twice, once to hash and once to write.
const memLimit = 64 << 20

type countWriter struct {
	n int64
	h hash.Hash
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	c.h.Write(p)
	return len(p), nil
}

// buildLayer compresses the layer and returns the blob and the diff ID.
func buildLayer(l layer, level int, big bool) (*blob, digest.Digest, error) {
	gen := func(w io.Writer, diff hash.Hash) error {
		gz, err := gzip.NewWriterLevel(w, level)
		if err != nil {
			return err
		}
		var tw io.Writer = gz
		if diff != nil {
			tw = io.MultiWriter(gz, diff)
		}
		if err := l.writeTar(tw); err != nil {
			return err
		}
		return gz.Close()
	}
	diff := sha256.New()
	cw := &countWriter{h: sha256.New()}
	b := &blob{}
	var buf *bytes.Buffer
	var out io.Writer = cw
	if !big {
		buf = &bytes.Buffer{}
		out = io.MultiWriter(cw, buf)
	}
	if err := gen(out, diff); err != nil {
		return nil, "", err
	}
	if buf != nil {
		b.data = buf.Bytes()
	} else {
		b.write = func(w io.Writer) error { return gen(w, nil) }
	}
	b.desc = ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest:    digest.NewDigestFromBytes(digest.SHA256, cw.h.Sum(nil)),
		Size:      cw.n,
	}
	return b, digest.NewDigestFromBytes(digest.SHA256, diff.Sum(nil)), nil
}

func jsonBlob(mediaType string, v any) (*blob, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &blob{data: data, desc: ocispec.Descriptor{
		MediaType: mediaType,
		Digest:    digest.FromBytes(data),
		Size:      int64(len(data)),
	}}, nil
}

var (
	appletsOnce sync.Once
	hostApplets map[string]bool
)

// busyboxApplets returns the applets of the host busybox (nil if it cannot
// list them).
func busyboxApplets() map[string]bool {
	appletsOnce.Do(func() {
		out, err := exec.Command(BusyboxPath, "--list").Output()
		if err != nil {
			return
		}
		hostApplets = map[string]bool{}
		for _, a := range strings.Fields(string(out)) {
			if a != "busybox" && !strings.Contains(a, "/") && !strings.HasPrefix(a, "[") {
				hostApplets[a] = true
			}
		}
	})
	return hostApplets
}

const passwd = `root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const group = `root:x:0:
app:x:1000:
nogroup:x:65534:
`

func baseLayer() (layer, error) {
	fi, err := os.Stat(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox not found at %s (install Debian's busybox-static): %w", BusyboxPath, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", BusyboxPath)
	}
	l := layer{}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "root", "home", "usr", "usr/bin", "var", "var/www"} {
		mode := int64(0o755)
		if d == "root" {
			mode = 0o700
		}
		l.dir(d, mode, 0, 0)
	}
	l.dir("tmp", 0o1777, 0, 0)
	l.dir("home/app", 0o755, 1000, 1000)
	bb := strings.TrimPrefix(BusyboxPath, "/")
	l[bb] = &entry{name: bb, typ: tar.TypeReg, mode: 0o755, src: BusyboxPath, size: fi.Size()}
	host := busyboxApplets()
	links := map[string]bool{}
	for a := range host {
		links[a] = true
	}
	for _, a := range Applets {
		if host == nil || host[a] {
			links[a] = true
		}
	}
	for a := range links {
		l.symlink("bin/"+a, "busybox")
	}
	l.symlink("usr/bin/env", "/bin/busybox")
	l.file("etc/passwd", 0o644, []byte(passwd))
	l.file("etc/group", 0o644, []byte(group))
	return l, nil
}

func filesLayer(img Image) (layer, error) {
	l := layer{}
	if wd := img.WorkingDir; wd != "" {
		if !path.IsAbs(wd) {
			return nil, fmt.Errorf("working dir %q is not absolute", wd)
		}
		l.dir(wd, 0o755, 0, 0)
	}
	for p, content := range img.Files {
		if !path.IsAbs(p) || path.Clean(p) == "/" {
			return nil, fmt.Errorf("file path %q is not an absolute file path", p)
		}
		l.file(p, 0o644, []byte(content))
	}
	return l, nil
}

// entriesLayer is the layer of an image's raw Entries.
func entriesLayer(img Image) (layer, error) {
	l := layer{}
	for i, en := range img.Entries {
		if !path.IsAbs(en.Path) || path.Clean(en.Path) == "/" {
			return nil, fmt.Errorf("entry path %q is not an absolute path below /", en.Path)
		}
		p := strings.Trim(path.Clean(en.Path), "/")
		l.parents(p)
		e := &entry{name: p, typ: byte(en.Type), mode: en.Mode, uid: en.UID, gid: en.GID, seq: i + 1,
			major: en.Major, minor: en.Minor}
		switch en.Type {
		case File:
			e.data, e.size = []byte(en.Data), int64(len(en.Data))
		case Symlink:
			e.linkname = en.Target
		case Hardlink:
			if !path.IsAbs(en.Target) {
				return nil, fmt.Errorf("hardlink %s: target %q is not absolute", en.Path, en.Target)
			}
			e.linkname = strings.Trim(path.Clean(en.Target), "/")
		case Dir, CharDevice, BlockDevice, FIFO:
		default:
			return nil, fmt.Errorf("entry %s: unknown type %q", en.Path, en.Type)
		}
		l[p] = e
	}
	return l, nil
}

func padLayer(n int64, padSeed string) layer {
	gen := func(w io.Writer) error { return writePad(w, n, padSeed) }
	return layer{"pad": &entry{name: "pad", typ: tar.TypeReg, mode: 0o644, gen: gen, size: n}}
}

// writePad writes the n bytes of the pad file of seed padSeed.
func writePad(w io.Writer, n int64, padSeed string) error {
	var seed [32]byte
	copy(seed[:], "pouch imagebuild pad layer seed!")
	if padSeed != "" {
		seed = sha256.Sum256([]byte("pouch imagebuild pad layer seed!" + padSeed))
	}
	r := rand.NewChaCha8(seed)
	buf := make([]byte, 1<<20)
	for left := n; left > 0; {
		chunk := buf
		if left < int64(len(chunk)) {
			chunk = chunk[:left]
		}
		_, _ = r.Read(chunk)
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		left -= int64(len(chunk))
	}
	return nil
}

// PadSHA256 is the hex SHA-256 of the /pad file of an Image with PadBytes
// n and PadSeed seed, for tests that check its bytes in a container.
func PadSHA256(n int64, seed string) string {
	h := sha256.New()
	_ = writePad(h, n, seed)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// refName returns the tag (or digest) part of a reference, "" if none.
func refName(name string) string {
	if i := strings.LastIndex(name, "@"); i >= 0 {
		return name[i+1:]
	}
	slash := strings.LastIndex(name, "/")
	if i := strings.LastIndex(name, ":"); i > slash {
		return name[i+1:]
	}
	return ""
}

// build returns the blobs (config, manifest, layers) and the index.
func build(img Image) (manifest *blob, blobs []*blob, index []byte, err error) {
	var layers []layer
	if !img.NoBusybox {
		base, err := baseLayer()
		if err != nil {
			return nil, nil, nil, err
		}
		layers = append(layers, base)
	}
	files, err := filesLayer(img)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(files) > 0 || (len(layers) == 0 && img.PadBytes <= 0 && len(img.Entries) == 0) {
		layers = append(layers, files)
	}
	if len(img.Entries) > 0 {
		entries, err := entriesLayer(img)
		if err != nil {
			return nil, nil, nil, err
		}
		layers = append(layers, entries)
	}
	if img.PadBytes > 0 {
		layers = append(layers, padLayer(img.PadBytes, img.PadSeed))
	}

	var layerBlobs []*blob
	var diffIDs []digest.Digest
	for _, l := range layers {
		big := false
		level := gzip.DefaultCompression
		if e, ok := l["pad"]; ok && e.gen != nil {
			level = gzip.BestSpeed
			big = e.size > memLimit
		}
		b, diffID, err := buildLayer(l, level, big)
		if err != nil {
			return nil, nil, nil, err
		}
		layerBlobs = append(layerBlobs, b)
		diffIDs = append(diffIDs, diffID)
	}

	env := img.Env
	if env == nil {
		env = DefaultEnv
	}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			User:       img.User,
			Env:        env,
			Entrypoint: img.Entrypoint,
			Cmd:        img.Cmd,
			WorkingDir: img.WorkingDir,
			Labels:     img.Labels,
			StopSignal: img.StopSignal,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	created := epoch
	cfg.Created = &created
	if len(img.Volumes) > 0 {
		cfg.Config.Volumes = map[string]struct{}{}
		for _, v := range img.Volumes {
			cfg.Config.Volumes[v] = struct{}{}
		}
	}
	for range layerBlobs {
		cfg.History = append(cfg.History, ocispec.History{Created: &created, CreatedBy: "pouch imagebuild"})
	}
	config, err := jsonBlob(ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config.desc,
	}
	for _, b := range layerBlobs {
		m.Layers = append(m.Layers, b.desc)
	}
	manifest, err = jsonBlob(ocispec.MediaTypeImageManifest, m)
	if err != nil {
		return nil, nil, nil, err
	}

	desc := manifest.desc
	desc.Platform = &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if img.Name != "" {
		desc.Annotations = map[string]string{AnnotationImageName: img.Name}
		if ref := refName(img.Name); ref != "" {
			desc.Annotations[ocispec.AnnotationRefName] = ref
		}
	}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{desc},
	}
	index, err = json.Marshal(idx)
	if err != nil {
		return nil, nil, nil, err
	}
	blobs = append([]*blob{config, manifest}, layerBlobs...)
	return manifest, blobs, index, nil
}

// WriteArchive writes img as an OCI image layout tar to w and returns the
// manifest digest (the image's target digest once imported).
func WriteArchive(w io.Writer, img Image) (digest.Digest, error) {
	manifest, blobs, index, err := build(img)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(w)
	writeFile := func(name string, size int64, write func(io.Writer) error) error {
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: epoch, Format: tar.FormatPAX,
		}); err != nil {
			return err
		}
		return write(tw)
	}
	writeBytes := func(name string, data []byte) error {
		return writeFile(name, int64(len(data)), func(w io.Writer) error { _, err := w.Write(data); return err })
	}
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := writeBytes(ocispec.ImageLayoutFile, layout); err != nil {
		return "", err
	}
	if err := writeBytes(ocispec.ImageIndexFile, index); err != nil {
		return "", err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return "", err
		}
	}
	seen := map[digest.Digest]bool{}
	for _, b := range blobs {
		if seen[b.desc.Digest] {
			continue
		}
		seen[b.desc.Digest] = true
		name := "blobs/" + b.desc.Digest.Algorithm().String() + "/" + b.desc.Digest.Encoded()
		if err := writeFile(name, b.desc.Size, b.writeTo); err != nil {
			return "", fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return manifest.desc.Digest, nil
}

// WriteArchiveFile writes the archive of img to path (replacing it).
func WriteArchiveFile(path string, img Image) (digest.Digest, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	d, err := WriteArchive(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return d, nil
}
