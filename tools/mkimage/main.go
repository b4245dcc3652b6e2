// Command mkimage writes a small busybox-based OCI image archive (see
// internal/imagebuild) and prints its manifest digest, e.g.
//
//	go run ./tools/mkimage -name docker.io/pouch/demo:v1 -out /tmp/demo.tar \
//	    -env K=V -file /version=v1 -cmd 'httpd -f -p 8080'
//	ctr -n pouch images import /tmp/demo.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		img                  imagebuild.Image
		envs, files, labels  list
		volumes              list
		entrypoint, cmd, out string
	)
	flag.StringVar(&img.Name, "name", "", "image reference, e.g. docker.io/pouch/demo:v1 (required)")
	flag.StringVar(&out, "out", "", "output archive path (required)")
	flag.Var(&envs, "env", "environment entry K=V (repeatable; the default PATH is kept unless one is given)")
	flag.Var(&files, "file", "extra file /abs/path=content (repeatable)")
	flag.Var(&labels, "label", "image label K=V (repeatable)")
	flag.Var(&volumes, "volume", "image volume path (repeatable)")
	flag.StringVar(&entrypoint, "entrypoint", "", "entrypoint, split on whitespace")
	flag.StringVar(&cmd, "cmd", "", "cmd, split on whitespace")
	flag.StringVar(&img.WorkingDir, "workdir", "", "working directory")
	flag.StringVar(&img.User, "user", "", "user")
	flag.StringVar(&img.StopSignal, "stop-signal", "", "stop signal, e.g. SIGINT")
	flag.Int64Var(&img.PadBytes, "pad", 0, "size of an extra incompressible /pad layer in bytes")
	flag.BoolVar(&img.NoBusybox, "no-busybox", false, "omit the busybox layer")
	flag.Parse()
	if img.Name == "" || out == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if len(envs) > 0 {
		// Keep the default PATH unless -env sets one.
		hasPath := false
		for _, e := range envs {
			hasPath = hasPath || strings.HasPrefix(e, "PATH=")
		}
		if !hasPath {
			img.Env = append(img.Env, imagebuild.DefaultEnv...)
		}
		img.Env = append(img.Env, envs...)
	}
	img.Entrypoint = strings.Fields(entrypoint)
	img.Cmd = strings.Fields(cmd)
	img.Volumes = volumes
	for _, f := range files {
		p, content, ok := strings.Cut(f, "=")
		if !ok {
			fatalf("-file %q: want /path=content", f)
		}
		if img.Files == nil {
			img.Files = map[string]string{}
		}
		img.Files[p] = content
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			fatalf("-label %q: want K=V", l)
		}
		if img.Labels == nil {
			img.Labels = map[string]string{}
		}
		img.Labels[k] = v
	}
	d, err := imagebuild.WriteArchiveFile(out, img)
	if err != nil {
		fatalf("%v", err)
	}
	fmt.Println(d)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mkimage: "+format+"\n", args...)
	os.Exit(1)
}
