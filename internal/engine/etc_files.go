package engine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A container whose spec asks for DNS settings or extra hosts gets a
// resolv.conf or hosts file of its own, written under its directory in the
// data root and bind-mounted read-only over the image's; otherwise it gets
// the host's, as before. Each file is named for its content, so that a
// change writes a new file and the running task keeps reading the one it
// started with until the change stops it (an upgrade that rolls back goes
// back to that file); a commit removes the ones no task uses.

// etcFile is one file of a container's /etc.
type etcFile struct {
	// Target is the path in the container, "/etc/resolv.conf".
	Target string
	// Path is the file on the host: a container's own, or the host's.
	Path string
	// Data is the content of a container's own file; nil for the host's.
	Data []byte
}

// etcFiles are the files a container's spec gives its /etc/resolv.conf
// and /etc/hosts, built from the host's own.
func (e *Engine) etcFiles(spec ContainerSpec) ([]etcFile, error) {
	resolv := etcFile{Target: "/etc/resolv.conf", Path: "/etc/resolv.conf"}
	if !spec.DNS.IsZero() {
		host, err := e.readHostFile("/etc/resolv.conf")
		if err != nil {
			return nil, err
		}
		resolv = e.ownEtcFile(spec.Name, resolv.Target, resolvConf(host, spec.DNS))
	}
	hosts := etcFile{Target: "/etc/hosts", Path: "/etc/hosts"}
	if len(spec.ExtraHosts) > 0 {
		host, err := e.readHostFile("/etc/hosts")
		if err != nil {
			return nil, err
		}
		hosts = e.ownEtcFile(spec.Name, hosts.Target, hostsFile(host, spec.ExtraHosts))
	}
	// In the order the spec has always had them.
	return []etcFile{hosts, resolv}, nil
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

// ownEtcFile is container id's own file for target, named for its data.
func (e *Engine) ownEtcFile(id, target string, data []byte) etcFile {
	sum := sha256.Sum256(data)
	name := filepath.Base(target) + "-" + hex.EncodeToString(sum[:6])
	return etcFile{Target: target, Path: filepath.Join(e.etcDir(id), name), Data: data}
}

// etcDir holds container id's own /etc files.
func (e *Engine) etcDir(id string) string { return filepath.Join(e.containerDir(id), "etc") }

// etcMounts are the read-only bind mounts of files.
func etcMounts(files []etcFile) []specs.Mount {
	out := make([]specs.Mount, 0, len(files))
	for _, f := range files {
		out = append(out, specs.Mount{Type: "bind", Source: f.Path, Destination: f.Target,
			Options: []string{"rbind", "rprivate", "ro"}})
	}
	return out
}

// writeEtcFiles writes the container's own files of files that are not
// written yet.
func (e *Engine) writeEtcFiles(id string, files []etcFile) error {
	for _, f := range files {
		if f.Data == nil {
			continue
		}
		if err := e.host.MkdirAll(e.etcDir(id), 0o700); err != nil {
			return fmt.Errorf("create %s: %w", e.etcDir(id), err)
		}
		if ok, err := e.host.Exists(f.Path); err == nil && ok {
			continue
		}
		if err := e.host.WriteFile(f.Path, f.Data, 0o644); err != nil {
			return fmt.Errorf("write the container's %s: %w", f.Target, err)
		}
	}
	return nil
}

// pruneEtcFiles removes container id's own files that are not in files,
// the ones its task uses now.
func (e *Engine) pruneEtcFiles(id string, files []etcFile) {
	entries, err := os.ReadDir(e.etcDir(id))
	if err != nil {
		return
	}
	for _, entry := range entries {
		p := filepath.Join(e.etcDir(id), entry.Name())
		if !slices.ContainsFunc(files, func(f etcFile) bool { return f.Path == p }) {
			_ = e.host.RemoveAll(p)
		}
	}
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
