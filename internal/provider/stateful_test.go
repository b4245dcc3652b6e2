package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// stateAttr returns attribute attr of resource addr in the state.
func stateAttr(s *terraform.State, addr, attr string) (string, error) {
	rs, ok := s.RootModule().Resources[addr]
	if !ok {
		return "", fmt.Errorf("no %s in state", addr)
	}
	v, ok := rs.Primary.Attributes[attr]
	if !ok {
		return "", fmt.Errorf("%s has no attribute %s", addr, attr)
	}
	return v, nil
}

// execOut runs args in the container and returns its trimmed output.
func execOut(t *testing.T, env *testenv.Env, id string, args ...string) (string, error) {
	out, err := env.Exec(t, id, args...)
	return strings.TrimSpace(out), err
}

// pidChanges records the task's pid (record) and then checks that it is a
// new one (changed) or the same one (same).
type pidTracker struct {
	t   *testing.T
	env *testenv.Env
	id  string
	pid uint32
}

func (p *pidTracker) record(*terraform.State) error {
	p.pid = p.env.TaskPID(p.t, p.id)
	if p.pid == 0 {
		return fmt.Errorf("container %s has no task", p.id)
	}
	return nil
}

func (p *pidTracker) same(s *terraform.State) error {
	if now := p.env.TaskPID(p.t, p.id); now != p.pid {
		return fmt.Errorf("task pid of %s is %d, was %d: the task was restarted", p.id, now, p.pid)
	}
	return nil
}

func (p *pidTracker) changed(s *terraform.State) error {
	before := p.pid
	if err := p.record(s); err != nil {
		return err
	}
	if p.pid == before {
		return fmt.Errorf("task pid of %s is still %d: the task was not restarted", p.id, p.pid)
	}
	return nil
}

// httpGet polls url until it answers want or timeout passes.
func httpGet(url, want string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("status %d, body %q, read error %v", resp.StatusCode, body, rerr)
			if rerr == nil && resp.StatusCode == http.StatusOK && string(body) == want {
				return nil
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s: want %q within %v, last: %s", url, want, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestAccContainer_envChangeKeepsRootfs: a restart in place keeps what the
// task wrote to its root filesystem, and the container.
func TestAccContainer_envChangeKeepsRootfs(t *testing.T) {
	env := accEnv(t)
	const name = "acc-keeprootfs"
	v1 := testImage("keeprootfs", "v1")
	env.ImportImage(t, v1)
	sameID := statecheck.CompareValue(compare.ValuesSame())
	pids := &pidTracker{t: t, env: env, id: name}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config:            containerConfig(env, name, v1.Name, `env = { MODE = "a" }`),
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check: resource.ComposeTestCheckFunc(
					func(*terraform.State) error {
						_, err := env.Exec(t, name, "sh", "-c", "echo kept > /kept")
						return err
					},
					pids.record,
				),
			},
			{
				Config: containerConfig(env, name, v1.Name, `env = { MODE = "b" }`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check: resource.ComposeTestCheckFunc(
					checkExec(t, env, name, "kept\n", "cat", "/kept"),
					checkExecContains(t, env, name, []string{"env"}, "MODE=b"),
					pids.changed,
					checkNoLeakedSnapshots(t, env),
				),
			},
		},
	})
}

// TestAccContainer_bindMount: bytes written to a bind-mounted host directory
// are the host's, and survive a restart and an upgrade.
func TestAccContainer_bindMount(t *testing.T) {
	env := accEnv(t)
	const name = "acc-bind"
	v1, v2 := testImage("bind", "v1"), testImage("bind", "v2")
	env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	dir := t.TempDir()
	mounts := fmt.Sprintf(`mounts = [{ type = "bind", source = %q, target = "/bind" }]`, dir)
	hostFile := func(want string) resource.TestCheckFunc {
		return func(*terraform.State) error {
			b, err := os.ReadFile(filepath.Join(dir, "file"))
			if err != nil || string(b) != want {
				return fmt.Errorf("host file %s: %q, %v; want %q", filepath.Join(dir, "file"), b, err, want)
			}
			return nil
		}
	}
	sameID := statecheck.CompareValue(compare.ValuesSame())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name, mounts),
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					expectState("mounts", knownvalue.ListExact([]knownvalue.Check{knownvalue.ObjectExact(map[string]knownvalue.Check{
						"type": knownvalue.StringExact("bind"), "source": knownvalue.StringExact(dir),
						"target": knownvalue.StringExact("/bind"), "read_only": knownvalue.Bool(false),
						"tmpfs_size": knownvalue.Null(),
					})})),
				},
				Check: resource.ComposeTestCheckFunc(
					func(*terraform.State) error {
						_, err := env.Exec(t, name, "sh", "-c", "echo bound > /bind/file")
						return err
					},
					hostFile("bound\n"),
				),
			},
			{
				// A restart in place.
				Config:            containerConfig(env, name, v1.Name, mounts, `env = { X = "1" }`),
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check:             checkExec(t, env, name, "bound\n", "cat", "/bind/file"),
			},
			{
				// An upgrade.
				Config: containerConfig(env, name, v2.Name, mounts, `env = { X = "1" }`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check: resource.ComposeTestCheckFunc(
					checkExec(t, env, name, "v2\n", "cat", "/version"),
					checkExec(t, env, name, "bound\n", "cat", "/bind/file"),
					hostFile("bound\n"),
				),
			},
		},
	})
	// Destroying the container leaves the host's directory alone.
	if _, err := os.Stat(filepath.Join(dir, "file")); err != nil {
		t.Errorf("host file after destroy: %v", err)
	}
}

// imageVolumeImage declares VOLUME /var/lib/app with a seed file.
func imageVolumeImage(test, tag string) imagebuild.Image {
	img := testImage(test, tag)
	img.Volumes = []string{"/var/lib/app"}
	img.Files["/var/lib/app/seed"] = "seeded-" + tag
	return img
}

// TestAccContainer_imageVolume: an image's VOLUME gets an anonymous volume,
// populated from the image, kept across an upgrade (the new image's seed does
// not overwrite the data) and removed on destroy.
func TestAccContainer_imageVolume(t *testing.T) {
	env := accEnv(t)
	const name = "acc-imgvol"
	v1, v2 := imageVolumeImage("imgvol", "v1"), imageVolumeImage("imgvol", "v2")
	env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	var hostPath string
	samePath := statecheck.CompareValue(compare.ValuesSame())
	volPath := tfjsonpath.New("image_volumes").AtSliceIndex(0).AtMapKey("path")

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy: resource.ComposeTestCheckFunc(
			checkDestroyed(t, env, name),
			func(*terraform.State) error {
				if _, err := os.Stat(hostPath); !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("image volume %s after destroy: %v; want it removed", hostPath, err)
				}
				return nil
			},
		),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name),
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("image_volumes", knownvalue.ListSizeExact(1)),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("image_volumes").AtSliceIndex(0).AtMapKey("target"),
						knownvalue.StringExact("/var/lib/app")),
					samePath.AddStateValue(testAddr, volPath),
				},
				Check: resource.ComposeTestCheckFunc(
					checkExec(t, env, name, "seeded-v1", "cat", "/var/lib/app/seed"),
					func(s *terraform.State) error {
						var err error
						if hostPath, err = stateAttr(s, testAddr, "image_volumes.0.path"); err != nil {
							return err
						}
						if b, err := os.ReadFile(filepath.Join(hostPath, "seed")); err != nil || string(b) != "seeded-v1" {
							return fmt.Errorf("seed on the host at %s: %q, %v", hostPath, b, err)
						}
						_, err = env.Exec(t, name, "sh", "-c", "echo mine > /var/lib/app/mine")
						return err
					},
				),
			},
			{
				Config: containerConfig(env, name, v2.Name),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("image_volumes", knownvalue.ListSizeExact(1)),
					samePath.AddStateValue(testAddr, volPath),
				},
				Check: resource.ComposeTestCheckFunc(
					checkExec(t, env, name, "v2\n", "cat", "/version"),
					checkExec(t, env, name, "mine\n", "cat", "/var/lib/app/mine"),
					// The volume's data wins over the new image's files.
					checkExec(t, env, name, "seeded-v1", "cat", "/var/lib/app/seed"),
				),
			},
		},
	})
}

// TestAccContainer_keepImageVolumes: with keep_image_volumes the anonymous
// volume outlives the container.
func TestAccContainer_keepImageVolumes(t *testing.T) {
	env := accEnv(t)
	const name = "acc-keepvol"
	v1 := imageVolumeImage("keepvol", "v1")
	env.ImportImage(t, v1)
	var hostPath string
	t.Cleanup(func() {
		if hostPath != "" {
			os.RemoveAll(hostPath)
		}
	})

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy: resource.ComposeTestCheckFunc(
			checkDestroyed(t, env, name),
			func(*terraform.State) error {
				b, err := os.ReadFile(filepath.Join(hostPath, "mine"))
				if err != nil || string(b) != "mine\n" {
					return fmt.Errorf("kept image volume %s after destroy: %q, %v", hostPath, b, err)
				}
				return nil
			},
		),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name, "keep_image_volumes = true"),
				Check: func(s *terraform.State) error {
					var err error
					if hostPath, err = stateAttr(s, testAddr, "image_volumes.0.path"); err != nil {
						return err
					}
					_, err = env.Exec(t, name, "sh", "-c", "echo mine > /var/lib/app/mine")
					return err
				},
			},
		},
	})
}

// TestAccContainer_networkIdentity: a bridge container keeps its IP and MAC
// address across an upgrade and a restart, and serves on its own IP and on
// the published port.
func TestAccContainer_networkIdentity(t *testing.T) {
	env := accEnv(t)
	const name = "acc-net"
	web := func(tag string) imagebuild.Image {
		img := testImage("net", tag)
		img.Files["/www/index.html"] = tag + "\n"
		return img
	}
	v1, v2 := web("v1"), web("v2")
	env.ImportImage(t, v1)
	env.ImportImage(t, v2)
	port := freePort(t)
	extra := []string{
		`command = ["httpd", "-f", "-p", "80", "-h", "/www"]`,
		fmt.Sprintf(`ports = [{ internal = 80, external = %d, ip = "127.0.0.1" }]`, port),
	}
	sameIP := statecheck.CompareValue(compare.ValuesSame())
	sameMAC := statecheck.CompareValue(compare.ValuesSame())
	sameID := statecheck.CompareValue(compare.ValuesSame())
	identity := func() []statecheck.StateCheck {
		return []statecheck.StateCheck{
			sameIP.AddStateValue(testAddr, tfjsonpath.New("ip_address")),
			sameMAC.AddStateValue(testAddr, tfjsonpath.New("mac_address")),
			sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
		}
	}
	serves := func(want string) resource.TestCheckFunc {
		return func(s *terraform.State) error {
			ip, err := stateAttr(s, testAddr, "ip_address")
			if err != nil {
				return err
			}
			if err := httpGet("http://"+net.JoinHostPort(ip, "80")+"/", want, 15*time.Second); err != nil {
				return err
			}
			return httpGet("http://127.0.0.1:"+strconv.Itoa(port)+"/", want, 15*time.Second)
		}
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name, extra...),
				ConfigStateChecks: append([]statecheck.StateCheck{
					expectState("network_mode", knownvalue.StringExact("bridge")),
					expectState("ip_address", knownvalue.StringRegexp(regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`))),
					expectState("mac_address", knownvalue.StringRegexp(regexp.MustCompile(`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`))),
					expectState("hostname", knownvalue.StringExact(name)),
				}, identity()...),
				Check: resource.ComposeTestCheckFunc(
					serves("v1\n"),
					checkExec(t, env, name, name+"\n", "hostname"),
				),
			},
			{
				Config: containerConfig(env, name, v2.Name, extra...),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("ip_address"), knownvalue.NotNull()),
					},
				},
				ConfigStateChecks: identity(),
				Check:             serves("v2\n"),
			},
			{
				// A restart in place.
				Config:            containerConfig(env, name, v2.Name, append(extra, `env = { X = "1" }`)...),
				ConfigStateChecks: identity(),
				Check:             serves("v2\n"),
			},
			{
				ResourceName:            testAddr,
				ImportState:             true,
				ImportStateId:           name,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
		},
	})
}

// memoryLimit reads the memory limit of the container's cgroup from the
// host.
func memoryLimit(t *testing.T, env *testenv.Env, id string) (int64, error) {
	ctx, cancel := context.WithTimeout(env.Context(), 30*time.Second)
	defer cancel()
	c, err := env.Client.LoadContainer(ctx, id)
	if err != nil {
		return 0, err
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return 0, err
	}
	if spec.Linux == nil || spec.Linux.CgroupsPath == "" {
		return 0, fmt.Errorf("container %s has no cgroups path", id)
	}
	cg := spec.Linux.CgroupsPath
	file := filepath.Join("/sys/fs/cgroup/memory", cg, "memory.limit_in_bytes")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil { // cgroup v2
		file = filepath.Join("/sys/fs/cgroup", cg, "memory.max")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// TestAccContainer_resizeLive: a memory change is applied to the running
// task: same pid, new cgroup limit.
func TestAccContainer_resizeLive(t *testing.T) {
	env := accEnv(t)
	const name = "acc-resize"
	v1 := testImage("resize", "v1")
	env.ImportImage(t, v1)
	pids := &pidTracker{t: t, env: env, id: name}
	limit := func(mib int64) resource.TestCheckFunc {
		return func(*terraform.State) error {
			got, err := memoryLimit(t, env, name)
			if err != nil {
				return err
			}
			if got != mib<<20 {
				return fmt.Errorf("memory limit of %s is %d bytes, want %d MiB", name, got, mib)
			}
			return nil
		}
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config:            containerConfig(env, name, v1.Name, "memory = 64", "pids_limit = 50"),
				ConfigStateChecks: []statecheck.StateCheck{expectState("memory", knownvalue.Int64Exact(64))},
				Check:             resource.ComposeTestCheckFunc(limit(64), pids.record),
			},
			{
				Config: containerConfig(env, name, v1.Name, "memory = 128", "pids_limit = 50"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
						// A resize does not change the task's status.
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("memory"), knownvalue.Int64Exact(128)),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{expectState("memory", knownvalue.Int64Exact(128))},
				Check:             resource.ComposeTestCheckFunc(limit(128), pids.same, checkTaskStatus(t, env, name, "running")),
			},
		},
	})
}

// TestAccContainer_imageDrift: an image changed outside Terraform shows up
// in the plan and the apply puts the configured image back.
func TestAccContainer_imageDrift(t *testing.T) {
	env := accEnv(t)
	const name = "acc-imgdrift"
	v1, other := testImage("imgdrift", "v1"), testImage("imgdrift", "other")
	digest1 := env.ImportImage(t, v1)
	env.ImportImage(t, other)
	config := containerConfig(env, name, v1.Name)
	changeImage := func() {
		ctx, cancel := context.WithTimeout(env.Context(), 30*time.Second)
		defer cancel()
		c, err := env.Client.LoadContainer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Update(ctx, func(_ context.Context, _ *containerd.Client, c *containers.Container) error {
			c.Image = other.Name
			return nil
		}); err != nil {
			t.Fatalf("change the image outside terraform: %v", err)
		}
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{Config: config},
			{
				PreConfig: changeImage,
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("image"), knownvalue.StringExact(v1.Name)),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("image", knownvalue.StringExact(v1.Name)),
					expectState("image_id", knownvalue.StringExact(digest1)),
				},
				Check: resource.ComposeTestCheckFunc(
					checkExec(t, env, name, "v1\n", "cat", "/version"),
					func(*terraform.State) error {
						ctx, cancel := context.WithTimeout(env.Context(), 30*time.Second)
						defer cancel()
						c, err := env.Client.LoadContainer(ctx, name)
						if err != nil {
							return err
						}
						info, err := c.Info(ctx)
						if err != nil {
							return err
						}
						if info.Image != v1.Name {
							return fmt.Errorf("containerd records image %s, want %s", info.Image, v1.Name)
						}
						return nil
					},
				),
			},
		},
	})
}

// TestAccContainer_importForeign imports a container created with the
// containerd client (as `ctr run` would): the matching configuration then
// plans nothing, and the container can be managed like any other.
func TestAccContainer_importForeign(t *testing.T) {
	env := accEnv(t)
	const name = "acc-foreign"
	v1 := testImage("foreign", "v1")
	env.ImportImage(t, v1)

	ctx, cancel := context.WithTimeout(env.Context(), time.Minute)
	defer cancel()
	img, err := env.Client.GetImage(ctx, v1.Name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := env.Client.NewContainer(ctx, name,
		containerd.WithImage(img),
		containerd.WithSnapshotter(env.Snapshotter),
		containerd.WithNewSnapshot(name+"-foreign", img),
		containerd.WithNewSpec(
			oci.WithImageConfig(img),
			oci.WithProcessArgs("sleep", "3000"),
			oci.WithEnv([]string{"A=1"}),
			oci.WithHostNamespace(specs.NetworkNamespace),
			oci.WithMounts([]specs.Mount{{
				Type: "tmpfs", Source: "tmpfs", Destination: "/scratch",
				Options: []string{"nosuid", "nodev", "size=16m"},
			}}),
		),
	)
	if err != nil {
		t.Fatalf("create the foreign container: %v", err)
	}
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		c.Delete(ctx, containerd.WithSnapshotCleanup)
		t.Fatalf("create the foreign task: %v", err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start the foreign task: %v", err)
	}
	t.Cleanup(func() {
		// The test's destroy removes it; this is for a failed import.
		if _, err := env.Client.LoadContainer(env.Context(), name); err == nil {
			deleteOutside(t, env, name)
		}
	})

	config := containerConfig(env, name, v1.Name,
		`command = ["sleep", "3000"]`,
		`env = { A = "1" }`,
		`network_mode = "host"`,
		`mounts = [{ type = "tmpfs", target = "/scratch", tmpfs_size = 16 }]`,
		// The truth of a container ctr made: no seccomp filter. A
		// configuration without this line plans the change to pouch's
		// default filter, visibly, rather than getting it silently.
		`seccomp_profile = "unconfined"`,
	)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config:             config,
				ResourceName:       testAddr,
				ImportState:        true,
				ImportStateId:      name,
				ImportStatePersist: true,
				ImportStateCheck: func(states []*terraform.InstanceState) error {
					if len(states) != 1 {
						return fmt.Errorf("%d imported states", len(states))
					}
					a := states[0].Attributes
					for k, want := range map[string]string{
						"name": name, "image": v1.Name, "command.#": "2", "command.1": "3000", "env.A": "1",
						"network_mode": "host", "mounts.#": "1", "mounts.0.type": "tmpfs",
						"mounts.0.target": "/scratch", "mounts.0.tmpfs_size": "16", "status": "running",
						// What the container runs with, as ctr gives it: no seccomp filter.
						"seccomp_profile": "unconfined", "no_new_privileges": "true", "read_only_rootfs": "false",
					} {
						if a[k] != want {
							return fmt.Errorf("imported %s = %q, want %q (state %v)", k, a[k], want, a)
						}
					}
					return nil
				},
			},
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				// Managed from now on: an env change restarts it in place.
				Config: containerConfig(env, name, v1.Name,
					`command = ["sleep", "3000"]`, `env = { A = "2" }`, `network_mode = "host"`,
					`mounts = [{ type = "tmpfs", target = "/scratch", tmpfs_size = 16 }]`, `seccomp_profile = "unconfined"`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate)},
				},
				Check: resource.ComposeTestCheckFunc(
					checkExecContains(t, env, name, []string{"env"}, "A=2"),
					checkExecContains(t, env, name, []string{"cat", "/proc/1/cmdline"}, "sleep\x003000\x00"),
				),
			},
		},
	})
}

// TestAccContainer_restartAlways: with restart = "always", a task killed
// outside Terraform is started again by containerd's restart monitor, and
// Terraform sees nothing to do.
func TestAccContainer_restartAlways(t *testing.T) {
	env := accEnv(t)
	const name = "acc-restart"
	v1 := testImage("restart", "v1")
	env.ImportImage(t, v1)
	config := containerConfig(env, name, v1.Name, `restart = "always"`)
	var pid uint32
	kill := func() {
		ctx, cancel := context.WithTimeout(env.Context(), 30*time.Second)
		defer cancel()
		c, err := env.Client.LoadContainer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		task, err := c.Task(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		pid = task.Pid()
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatalf("kill the task: %v", err)
		}
		// The monitor checks every 10 s by default.
		testenv.Eventually(t, 30*time.Second, "the restart monitor starts the task again", func() bool {
			now := env.TaskPID(t, name)
			return now != 0 && now != pid && env.TaskStatus(t, name) == "running"
		})
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config:            config,
				ConfigStateChecks: []statecheck.StateCheck{expectState("restart", knownvalue.StringExact("always"))},
			},
			{
				PreConfig: kill,
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeTestCheckFunc(
					checkTaskStatus(t, env, name, "running"),
					checkExec(t, env, name, "v1\n", "cat", "/version"),
				),
			},
		},
	})
}

// TestAccContainer_settingsWithoutRestart: labels, restart policy, stop
// signal, stop timeout and keep_image_volumes change without restarting the
// task, as their descriptions say.
func TestAccContainer_settingsWithoutRestart(t *testing.T) {
	env := accEnv(t)
	const name = "acc-norestart"
	v1 := testImage("norestart", "v1")
	env.ImportImage(t, v1)
	pids := &pidTracker{t: t, env: env, id: name}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name),
				Check:  pids.record,
			},
			{
				Config: containerConfig(env, name, v1.Name,
					`labels = { tier = "db" }`, `restart = "unless-stopped"`, `stop_signal = "SIGQUIT"`,
					`stop_timeout = 3`, `keep_image_volumes = true`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					expectState("restart", knownvalue.StringExact("unless-stopped")),
					expectState("stop_signal", knownvalue.StringExact("SIGQUIT")),
				},
				Check: resource.ComposeTestCheckFunc(pids.same, checkTaskStatus(t, env, name, "running")),
			},
		},
	})
}

// procStatus returns the value of field in /proc/1/status of the container.
func procStatus(t *testing.T, env *testenv.Env, id, field string) (string, error) {
	out, err := env.Exec(t, id, "grep", "^"+field+":", "/proc/1/status")
	if err != nil {
		return "", err
	}
	_, v, _ := strings.Cut(out, ":")
	return strings.TrimSpace(v), nil
}

func checkProcStatus(t *testing.T, env *testenv.Env, id, field string, ok func(string) bool) resource.TestCheckFunc {
	return func(*terraform.State) error {
		v, err := procStatus(t, env, id, field)
		if err != nil {
			return err
		}
		if !ok(v) {
			return fmt.Errorf("%s of the task of %s is %q", field, id, v)
		}
		return nil
	}
}

// capBit reports whether capability bit n is set in a CapEff hex mask.
func capBit(n uint) func(string) bool {
	return func(mask string) bool {
		v, err := strconv.ParseUint(mask, 16, 64)
		return err == nil && v&(1<<n) != 0
	}
}

func not(f func(string) bool) func(string) bool { return func(s string) bool { return !f(s) } }

func equals(want string) func(string) bool { return func(s string) bool { return s == want } }

// TestAccContainer_security: the safe defaults (no_new_privileges, the
// default seccomp profile, a writable root filesystem), then a restart in
// place with the settings loosened and tightened.
func TestAccContainer_security(t *testing.T) {
	env := accEnv(t)
	const name = "acc-security"
	v1 := testImage("security", "v1")
	env.ImportImage(t, v1)
	const capChown, capNetAdmin = 0, 12
	sameID := statecheck.CompareValue(compare.ValuesSame())
	secured := []string{
		"read_only_rootfs  = true",
		"no_new_privileges = false",
		`seccomp_profile   = "unconfined"`,
		`capabilities      = { add = ["NET_ADMIN"], drop = ["CAP_CHOWN"] }`,
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		CheckDestroy:             checkDestroyed(t, env, name),
		Steps: []resource.TestStep{
			{
				Config: containerConfig(env, name, v1.Name),
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					expectState("no_new_privileges", knownvalue.Bool(true)),
					expectState("seccomp_profile", knownvalue.StringExact("default")),
					expectState("capabilities", knownvalue.Null()),
				},
				Check: resource.ComposeTestCheckFunc(
					checkProcStatus(t, env, name, "NoNewPrivs", equals("1")),
					checkProcStatus(t, env, name, "Seccomp", equals("2")),
					checkProcStatus(t, env, name, "CapEff", capBit(capChown)),
					checkProcStatus(t, env, name, "CapEff", not(capBit(capNetAdmin))),
					func(*terraform.State) error {
						_, err := env.Exec(t, name, "touch", "/writable")
						return err
					},
				),
			},
			{
				Config: containerConfig(env, name, v1.Name, secured...),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(testAddr, tfjsonpath.New("id"))},
				Check: resource.ComposeTestCheckFunc(
					checkProcStatus(t, env, name, "NoNewPrivs", equals("0")),
					checkProcStatus(t, env, name, "Seccomp", equals("0")),
					checkProcStatus(t, env, name, "CapEff", not(capBit(capChown))),
					checkProcStatus(t, env, name, "CapEff", capBit(capNetAdmin)),
					func(*terraform.State) error {
						if _, err := env.Exec(t, name, "touch", "/denied"); err == nil {
							return errors.New("wrote to a read-only root filesystem")
						}
						return nil
					},
				),
			},
			{
				ResourceName:            testAddr,
				ImportState:             true,
				ImportStateId:           name,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
		},
	})
}
