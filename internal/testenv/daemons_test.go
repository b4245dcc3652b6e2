package testenv

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/vishvananda/netlink"

	"github.com/pouch/terraform-provider-pouch/internal/childproc"
	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

func TestNewDaemon(t *testing.T) {
	e := Get(t)
	var d1, d2 *Env
	var dir1 string
	t.Run("two", func(t *testing.T) {
		begin := time.Now()
		d1 = e.NewDaemon(t)
		d2 = e.NewDaemon(t)
		t.Logf("two daemons up in %v", time.Since(begin))
		dir1 = d1.Dir
		envs := []*Env{e, d1, d2}
		for i, a := range envs {
			for _, b := range envs[i+1:] {
				if a.Namespace == b.Namespace || a.Address == b.Address || a.Bridge == b.Bridge ||
					a.DataRoot == b.DataRoot || a.Dir == b.Dir || overlap(t, a.Subnet, b.Subnet) {
					t.Fatalf("envs share something:\n%+v\n%+v", a, b)
				}
			}
		}
		for _, d := range []*Env{d1, d2} {
			if !strings.HasPrefix(d.Namespace, e.Namespace+"-d") || len(d.Bridge) > 15 || d.parent != e {
				t.Fatalf("daemon %+v", d)
			}
			ctx, cancel := context.WithTimeout(d.Context(), 10*time.Second)
			v, err := d.Client.Version(ctx)
			cancel()
			if err != nil {
				t.Fatalf("%s: Version: %v", d.Address, err)
			}
			t.Logf("%s %s %s %s: containerd %s", d.Namespace, d.Address, d.Bridge, d.Subnet, v.Version)
		}
		// A daemon from a daemon belongs to the package's Env too.
		if d3 := d1.NewDaemon(t); !strings.HasPrefix(d3.Namespace, e.Namespace+"-d") || strings.Count(d3.Namespace, "-d") != 1 {
			t.Fatalf("daemon of a daemon: %s", d3.Namespace)
		}

		// The helpers work on a daemon; its images are its own.
		img := imagebuild.Image{Name: "docker.io/pouchtest/testenv-daemon:v1", Files: map[string]string{"/v": "d1\n"}}
		d1.ImportImage(t, img)
		if _, err := e.Client.GetImage(e.Context(), img.Name); err == nil {
			t.Fatal("image imported into d1 is in the package's daemon")
		}
		ctx := d1.Context()
		image, err := d1.Client.GetImage(ctx, img.Name)
		if err != nil {
			t.Fatal(err)
		}
		const id = "testenv-d1"
		c, err := d1.Client.NewContainer(ctx, id,
			containerd.WithImage(image),
			containerd.WithNewSnapshot(id+"-snap", image),
			containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "300")),
		)
		if err != nil {
			t.Fatal(err)
		}
		task, err := c.NewTask(ctx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Start(ctx); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 10*time.Second, "task running", func() bool { return d1.TaskStatus(t, id) == "running" })
		if out, err := d1.Exec(t, id, "cat", "/v"); err != nil || out != "d1\n" {
			t.Fatalf("exec: %q, %v", out, err)
		}
		if _, err := os.Stat(filepath.Join("/run/containerd/runc", d1.Namespace, id)); err != nil {
			t.Fatalf("runc state of the task: %v", err)
		}
		// A bridge, as the provider's CNI would create it.
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: d1.Bridge}}); err != nil {
			t.Fatalf("create bridge %s: %v", d1.Bridge, err)
		}
		// The task is left running: the cleanup removes it.
	})
	if d1 == nil {
		return
	}
	// The subtest's cleanup stopped the daemons.
	for _, d := range []*Env{d1, d2} {
		if !childproc.Exited(d.exited) {
			t.Errorf("daemon %s still running", d.Namespace)
		}
	}
	if _, err := os.Stat(dir1); !os.IsNotExist(err) {
		t.Errorf("daemon dir %s: %v", dir1, err)
	}
	if _, err := netlink.LinkByName(d1.Bridge); err == nil {
		t.Errorf("bridge %s not deleted", d1.Bridge)
	}
	if _, err := os.Stat(filepath.Join("/run/containerd/runc", d1.Namespace)); !os.IsNotExist(err) {
		t.Errorf("runc state of %s: %v", d1.Namespace, err)
	}
	if left := findProcs(func(cmdline string) bool { return strings.Contains(cmdline, dir1) }); len(left) > 0 {
		t.Errorf("processes of %s left: %v", dir1, left)
	}
	extrasMu.Lock()
	n := len(extras)
	extrasMu.Unlock()
	if n != 0 {
		t.Errorf("%d extras still registered", n)
	}
}

func overlap(t *testing.T, a, b string) bool {
	t.Helper()
	_, na, err1 := net.ParseCIDR(a)
	_, nb, err2 := net.ParseCIDR(b)
	if err1 != nil || err2 != nil {
		t.Fatalf("subnets %q %q", a, b)
	}
	return na.Contains(nb.IP) || nb.Contains(na.IP)
}
