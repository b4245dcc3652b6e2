package engine

import (
	"fmt"
	"path/filepath"
	"strings"
)

// The data root holds the engine's files, each kind in a private (0700)
// directory of its own, so that nothing an image brings (setuid binaries,
// device nodes in its volumes) is reachable by an unprivileged host user:
//
//	volumes/<ns>/<name>/_data, volume.json   named volumes
//	volumes/<ns>/_anonymous/<id>/<target>   the image volumes of container <id>
//	containers/<ns>/<id>/container.log*     its log, rotated
//	netns/<ns>/<id>/<file>                  its persistent network namespace
//	network/                                CNI state: IPAM, cache, conflist
//	locks/<ns>/<id>.lock                    its cross-process lock
//	bin/                                    the log driver's binary, by checksum
//
// Every path the engine removes is built here from a name it validated, or,
// when it comes from a container's record or journal, checked to lie in the
// directory it belongs to (see contained).
const (
	volumesDir      = "volumes"
	containersDir   = "containers"
	netnsDirName    = "netns"
	networkStateDir = "network"
	locksDir        = "locks"
	binDir          = "bin"
	volumeDataDir   = "_data"
	anonymousDir    = "_anonymous"
)

// dataRootDirs are the data root's top-level directories.
var dataRootDirs = []string{volumesDir, containersDir, netnsDirName, networkStateDir, locksDir, binDir}

func (e *Engine) volumesDir() string {
	return filepath.Join(e.opts.DataRoot, volumesDir, e.opts.Namespace)
}

func (e *Engine) volumeDir(name string) string { return filepath.Join(e.volumesDir(), name) }

// volumeData is the host directory a named volume mounts.
func (e *Engine) volumeData(name string) string {
	return filepath.Join(e.volumeDir(name), volumeDataDir)
}

// anonymousVolumesDir holds the image volumes of container id. Volume
// names cannot start with '_', so it is never a named volume's directory.
func (e *Engine) anonymousVolumesDir(id string) string {
	return filepath.Join(e.volumesDir(), anonymousDir, id)
}

// imageVolumePath is the host directory of container id's image volume at
// target (clean and absolute, see CheckImageVolume).
func (e *Engine) imageVolumePath(id, target string) string {
	return filepath.Join(e.anonymousVolumesDir(id), volumeDirName(target))
}

// volumeDirName is the directory name of an image volume at target: the
// path without its leading '/', with '%' written "%25" and '/' written
// "%2F". Distinct targets get distinct names (the mapping is undone by
// reading "%2F" and "%25" back), and a name is one path element: never
// empty, "." or "..", and without '/'.
func volumeDirName(target string) string {
	return strings.NewReplacer("%", "%25", "/", "%2F").Replace(strings.TrimPrefix(target, "/"))
}

// containerDir holds container id's log.
func (e *Engine) containerDir(id string) string {
	return filepath.Join(e.opts.DataRoot, containersDir, e.opts.Namespace, id)
}

// logPath is where a container's stdout and stderr go.
func (e *Engine) logPath(id string) string {
	return filepath.Join(e.containerDir(id), "container.log")
}

// netnsDir holds the persistent network namespaces of the namespace's
// containers, one directory per container.
func (e *Engine) netnsDir() string {
	return filepath.Join(e.opts.DataRoot, netnsDirName, e.opts.Namespace)
}

func (e *Engine) lockPath(id string) string {
	return filepath.Join(e.opts.DataRoot, locksDir, e.opts.Namespace, id+".lock")
}

// contained returns an error unless p, a path read from a container's
// record or journal, lies strictly inside dir once cleaned. A record is
// written by a pouch engine, but maybe one with another data root: the
// engine acts only on paths of its own.
func contained(dir, p string) error {
	clean := filepath.Clean(p)
	if !filepath.IsAbs(p) || !strings.HasPrefix(clean, dir+string(filepath.Separator)) {
		return fmt.Errorf("recorded path %q is not inside %s, which this engine's data root gives: "+
			"not touching it (was the container made with another data_root?)", p, dir)
	}
	return nil
}
