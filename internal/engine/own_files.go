package engine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The files of a container's own, written under its directory in the data
// root and bind-mounted read-only: a resolv.conf or hosts file when its
// spec asks for DNS settings or extra hosts (otherwise it gets the host's,
// as before), and its uploads. Each file is named for its content, so that
// a change writes a new file and the running task keeps reading the one it
// started with until the change stops it (an upgrade that rolls back goes
// back to that file); a commit removes the ones no task uses.

// ownFile is a file mounted into a container: one of its own, or the
// host's /etc/resolv.conf or /etc/hosts.
type ownFile struct {
	// Target is the path in the container, "/etc/resolv.conf".
	Target string
	// Path is the file on the host.
	Path string
	// Own says that Path is the container's own file (not the host's).
	Own bool
	// Data is the content of an own file; nil when it is written already
	// (an upload read back from the record).
	Data []byte
	// Mode is an own file's permission bits.
	Mode os.FileMode
}

// ownFiles are the files a container's spec mounts: its /etc/resolv.conf
// and /etc/hosts (built from the host's own), then its uploads.
func (e *Engine) ownFiles(spec ContainerSpec) ([]ownFile, error) {
	resolv := ownFile{Target: "/etc/resolv.conf", Path: "/etc/resolv.conf"}
	if !spec.DNS.IsZero() {
		host, err := e.readHostFile("/etc/resolv.conf")
		if err != nil {
			return nil, err
		}
		resolv = e.ownFile(spec.Name, resolv.Target, "resolv.conf", resolvConf(host, spec.DNS), 0o644)
	}
	hosts := ownFile{Target: "/etc/hosts", Path: "/etc/hosts"}
	if len(spec.ExtraHosts) > 0 {
		host, err := e.readHostFile("/etc/hosts")
		if err != nil {
			return nil, err
		}
		hosts = e.ownFile(spec.Name, hosts.Target, "hosts", hostsFile(host, spec.ExtraHosts), 0o644)
	}
	// In the order the spec has always had them.
	files := []ownFile{hosts, resolv}
	for _, u := range spec.Uploads {
		mode := os.FileMode(u.Mode)
		if mode == 0 {
			mode = 0o644
		}
		sum := u.sum()
		// A recorded sum names a file: only a SHA-256 in hex does.
		if _, err := hex.DecodeString(sum); err != nil || len(sum) != 64 {
			return nil, fmt.Errorf("%w: uploads: %s has no content", ErrInvalidSpec, u.File)
		}
		name := fmt.Sprintf("upload-%s-%04o", sum[:32], mode)
		files = append(files, ownFile{Target: path.Clean(u.File), Path: filepath.Join(e.ownDir(spec.Name), name), Own: true,
			Data: u.Content, Mode: mode})
	}
	return files, nil
}

// sum is the hex SHA-256 of u's content; the recorded one when it has none
// (read back).
func (u Upload) sum() string {
	if u.Content == nil {
		return u.SHA256
	}
	h := sha256.Sum256(u.Content)
	return hex.EncodeToString(h[:])
}

// withUploadSums is spec with its uploads as the record keeps them.
func withUploadSums(spec ContainerSpec) ContainerSpec {
	spec.Uploads = recordedUploads(spec.Uploads)
	return spec
}

// recordedUploads are uploads as a record keeps them: the SHA-256 of each
// content filled in, the content left out; nil for none.
func recordedUploads(uploads []Upload) []Upload {
	if len(uploads) == 0 {
		return nil
	}
	out := slices.Clone(uploads)
	for i, u := range out {
		out[i].SHA256 = u.sum()
		if out[i].Mode == 0 {
			out[i].Mode = 0o644
		}
		out[i].Content = nil
	}
	return out
}

// readHostFile reads a file of the host's /etc; one that is missing is
// empty.
func (e *Engine) readHostFile(p string) ([]byte, error) {
	data, err := e.host.ReadFile(p)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the host's %s: %w", p, err)
	}
	return data, nil
}

// ownFile is container id's own file base for target, named for its data.
func (e *Engine) ownFile(id, target, base string, data []byte, mode os.FileMode) ownFile {
	sum := sha256.Sum256(data)
	name := base + "-" + hex.EncodeToString(sum[:6])
	return ownFile{Target: target, Path: filepath.Join(e.ownDir(id), name), Own: true, Data: data, Mode: mode}
}

// ownDir holds container id's own files.
func (e *Engine) ownDir(id string) string { return filepath.Join(e.containerDir(id), "files") }

// ownMounts are the read-only bind mounts of files.
func ownMounts(files []ownFile) []specs.Mount {
	out := make([]specs.Mount, 0, len(files))
	for _, f := range files {
		out = append(out, specs.Mount{Type: "bind", Source: f.Path, Destination: f.Target,
			Options: []string{"rbind", "rprivate", "ro"}})
	}
	return out
}

// writeOwnFiles writes the container's own files of files that are not
// written yet.
func (e *Engine) writeOwnFiles(id string, files []ownFile) error {
	for _, f := range files {
		if !f.Own {
			continue
		}
		if err := e.host.MkdirAll(e.ownDir(id), 0o700); err != nil {
			return fmt.Errorf("create %s: %w", e.ownDir(id), err)
		}
		if ok, err := e.host.Exists(f.Path); err == nil && ok {
			continue
		}
		if f.Data == nil {
			return fmt.Errorf("%w: the content of the file at %s is not on the host any more: apply again with it",
				ErrInvalidSpec, f.Target)
		}
		if err := e.host.WriteFile(f.Path, f.Data, f.Mode); err != nil {
			return fmt.Errorf("write the container's %s: %w", f.Target, err)
		}
	}
	return nil
}

// pruneOwnFiles removes container id's own files but keep, those its task
// uses (its runtime spec's mount sources).
func (e *Engine) pruneOwnFiles(id string, keep []string) {
	entries, err := os.ReadDir(e.ownDir(id))
	if err != nil {
		return
	}
	for _, entry := range entries {
		if p := filepath.Join(e.ownDir(id), entry.Name()); !slices.Contains(keep, p) {
			_ = e.host.RemoveAll(p)
		}
	}
}

// keepEtcFiles is files with the resolv.conf and hosts of the old task
// kept where the settings they come from did not change: they are built
// from the host's files too, and a change of those (DHCP, a resolver
// restarted) is not a change of the container, to restart it for.
func (e *Engine) keepEtcFiles(id string, files []ownFile, old, next ContainerSpec, oldSpec typeurl.Any) []ownFile {
	same := map[string]bool{
		"/etc/resolv.conf": reflect.DeepEqual(old.DNS, next.DNS),
		"/etc/hosts":       reflect.DeepEqual(old.ExtraHosts, next.ExtraHosts),
	}
	keep := func(f ownFile) bool { return f.Own && same[f.Target] }
	if !slices.ContainsFunc(files, keep) {
		return files // nothing to look for in the old spec, which is big to decode
	}
	mounts := specMounts(oldSpec)
	out := slices.Clone(files)
	for i, f := range out {
		if !keep(f) {
			continue
		}
		for _, m := range mounts {
			if m.Destination == f.Target && filepath.Dir(m.Source) == e.ownDir(id) {
				out[i].Path, out[i].Data = m.Source, nil
			}
		}
	}
	return out
}

// ownFilePaths are the host paths of files.
func ownFilePaths(files []ownFile) []string {
	out := make([]string, 0, len(files))
	for _, f := range files {
		out = append(out, f.Path)
	}
	return out
}

// specMounts are the mounts of a runtime spec; nil when it cannot be read.
func specMounts(spec typeurl.Any) []specs.Mount {
	if spec == nil {
		return nil
	}
	var s struct {
		Mounts []specs.Mount `json:"mounts"`
	}
	if json.Unmarshal(spec.GetValue(), &s) != nil {
		return nil
	}
	return s.Mounts
}

// specMountSources are the sources of the mounts of a runtime spec.
func specMountSources(spec typeurl.Any) []string {
	var out []string
	for _, m := range specMounts(spec) {
		out = append(out, m.Source)
	}
	return out
}

// resolvConf is the host's resolv.conf with the parts dns sets replaced.
func resolvConf(host []byte, dns DNSConfig) []byte {
	var servers, search, options []string
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			servers = append(servers, f[1])
		case "search", "domain":
			search = f[1:]
		case "options":
			options = append(options, f[1:]...)
		}
	}
	if len(dns.Servers) > 0 {
		servers = dns.Servers
	}
	if len(dns.Search) > 0 {
		search = dns.Search
	}
	if len(dns.Options) > 0 {
		options = dns.Options
	}
	var b strings.Builder
	b.WriteString("# Written by pouch from the container's dns settings and the host's resolv.conf.\n")
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return []byte(b.String())
}

// hostsFile is the host's /etc/hosts with extra's names after it.
func hostsFile(host []byte, extra map[string]string) []byte {
	var b bytes.Buffer
	b.Write(host)
	if len(host) > 0 && host[len(host)-1] != '\n' {
		b.WriteByte('\n')
	}
	b.WriteString("# extra_hosts, added by pouch\n")
	for _, name := range sortedKeys(extra) {
		fmt.Fprintf(&b, "%s\t%s\n", extra[name], name)
	}
	return b.Bytes()
}
