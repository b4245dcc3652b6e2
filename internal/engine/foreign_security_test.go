package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// Import tells the truth: a container that another tool made (here the
// containerd client, as ctr and nerdctl use it) is imported with its
// security settings as they are, or refused when pouch cannot represent
// them; an upgrade of an imported container never weakens them.

const (
	impImageV1 = "docker.io/pouchtest/impsec:v1"
	impImageV2 = "pouchtest/impsec:v2"
)

// Capability bits, as /proc/<pid>/status shows them.
const (
	impCapChown     = 0
	impCapNetAdmin  = 12
	impCapNetRaw    = 13
	impCapSysPtrace = 19
)

// impImages imports the v1 and v2 images the foreign containers run.
func impImages(t *testing.T, env *testenv.Env) {
	t.Helper()
	env.ImportImage(t, versionImage("impsec", "v1"))
	env.ImportImage(t, versionImage("impsec", "v2"))
}

// impProc is what the kernel says about a process's privileges.
type impProc struct {
	CapBnd, CapEff, CapPrm, NoNewPrivs, Seccomp string
}

func (p impProc) String() string {
	return fmt.Sprintf("CapBnd=%s CapEff=%s CapPrm=%s NoNewPrivs=%s Seccomp=%s", p.CapBnd, p.CapEff, p.CapPrm, p.NoNewPrivs, p.Seccomp)
}

// impParseStatus reads the privilege fields of a /proc/<pid>/status.
func impParseStatus(t *testing.T, status string) impProc {
	t.Helper()
	fields := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	p := impProc{CapBnd: fields["CapBnd"], CapEff: fields["CapEff"], CapPrm: fields["CapPrm"],
		NoNewPrivs: fields["NoNewPrivs"], Seccomp: fields["Seccomp"]}
	if p.CapBnd == "" || p.NoNewPrivs == "" || p.Seccomp == "" {
		t.Fatalf("status lacks the privilege fields:\n%s", status)
	}
	return p
}

// impTaskProc reads, from the host, the privileges of the init process of
// container id's task: what the task really runs with.
func impTaskProc(t *testing.T, env *testenv.Env, id string) impProc {
	t.Helper()
	pid := env.TaskPID(t, id)
	if pid == 0 {
		t.Fatalf("container %s has no task", id)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	return impParseStatus(t, string(b))
}

// impExecProc reads the privileges of a process started in the container:
// grep /proc/self/status, as a user would.
func impExecProc(t *testing.T, env *testenv.Env, id string) impProc {
	t.Helper()
	return impParseStatus(t, mustExec(t, env, id, "grep", "-E", "^(Cap|NoNewPrivs|Seccomp:)", "/proc/self/status"))
}

// impHostCapBnd is the bounding set of this (root) test process: every
// capability of the running kernel.
func impHostCapBnd(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	return impParseStatus(t, string(b)).CapBnd
}

func impHasCap(t *testing.T, mask string, bit uint) bool {
	t.Helper()
	v, err := strconv.ParseUint(mask, 16, 64)
	if err != nil {
		t.Fatalf("capability mask %q: %v", mask, err)
	}
	return v&(1<<bit) != 0
}

// impRemove deletes a container with the containerd client, as its
// maker would: pouch refuses to manage it.
func impRemove(t *testing.T, env *testenv.Env, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(env.Context(), time.Minute)
	defer cancel()
	c, err := env.Client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return
	}
	if err != nil {
		t.Errorf("load %s to delete it: %v", id, err)
		return
	}
	if task, err := c.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			t.Errorf("delete the task of %s: %v", id, err)
		}
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		t.Errorf("delete %s: %v", id, err)
	}
}

// impForeign makes container id as another tool would, from image ref
// with opts on top of the image's config, and starts its task when run.
// The container is deleted when the test ends: with pouch, unless refused
// says pouch will not manage it or pouch refuses it, then with the
// containerd client.
func impForeign(t *testing.T, e *engine.Engine, env *testenv.Env, id, ref string, run, refused bool, opts ...oci.SpecOpts) {
	t.Helper()
	ctx := env.Context()
	image, err := env.Client.GetImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	impRemove(t, env, id) // left by an earlier, interrupted run
	c, err := env.Client.NewContainer(ctx, id,
		containerd.WithImage(image),
		containerd.WithNewSnapshot(id+"-foreign", image),
		containerd.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(image)}, opts...)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !refused {
			err := e.Delete(context.Background(), id)
			if err == nil {
				return
			}
			if !errors.Is(err, engine.ErrUnrepresentable) {
				t.Errorf("pouch could not delete %s: %v", id, err)
			}
		}
		impRemove(t, env, id)
	})
	if !run {
		return
	}
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// impSameSecurity compares security settings as pouch applies them:
// capability lists as sets, and, for a privileged task, any seccomp
// setting but a profile file as none (pouch applies no profile then).
func impSameSecurity(a, b engine.Security) bool {
	norm := func(s engine.Security) engine.Security {
		for _, caps := range []*[]string{&s.CapAdd, &s.CapDrop} {
			c := slices.Clone(*caps)
			slices.Sort(c)
			if len(c) == 0 {
				c = nil
			}
			*caps = c
		}
		if s.Privileged && (s.SeccompProfile == "" || s.SeccompProfile == "default" || s.SeccompProfile == "unconfined") {
			s.SeccompProfile = ""
		}
		return s
	}
	a, b = norm(a), norm(b)
	return slices.Equal(a.CapAdd, b.CapAdd) && slices.Equal(a.CapDrop, b.CapDrop) &&
		a.Privileged == b.Privileged && a.ReadOnlyRootfs == b.ReadOnlyRootfs &&
		a.SeccompProfile == b.SeccompProfile && a.AllowNewPrivileges == b.AllowNewPrivileges
}

// impRootfsReadOnly reports whether the container's root filesystem
// refuses a write.
func impRootfsReadOnly(t *testing.T, env *testenv.Env, id string) bool {
	t.Helper()
	_, err := env.Exec(t, id, "touch", "/x")
	return err != nil
}

// impImport is a foreign container imported and upgraded to v2 with its
// derived spec.
type impImport struct {
	derived        engine.ContainerSpec // what Inspect derived
	spec           engine.ContainerSpec // the spec the upgrade applied
	before, after  impProc              // the task's init, before and after the upgrade
	beforeExec     impProc              // a process started in the container
	afterExec      impProc
	readOnlyBefore bool
	readOnlyAfter  bool
	// The security settings of the runtime spec, before and after.
	specBefore, specAfter impSpecSecurity
}

// impSpecSecurity is what a runtime spec says of a task's privileges, in
// a form that compares: what an upgrade must not change.
type impSpecSecurity struct {
	Bounding, Effective, Permitted, Inheritable, Ambient []string
	NoNewPrivileges, ReadonlyRoot                        bool
	Seccomp                                              string // JSON
	Apparmor, Selinux                                    string
	MaskedPaths, ReadonlyPaths                           []string
	Namespaces                                           []string // types
	Rlimits, Sysctl, DeviceRules                         string   // JSON
	Devices                                              int
	SysfsWritable                                        bool
}

func impSpecSecurityOf(t *testing.T, env *testenv.Env, id string) impSpecSecurity {
	t.Helper()
	var s specs.Spec
	if err := json.Unmarshal(containerInfo(t, env, id).Spec.GetValue(), &s); err != nil {
		t.Fatal(err)
	}
	sorted := func(l []string) []string {
		l = slices.Clone(l)
		slices.Sort(l)
		return l
	}
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var r impSpecSecurity
	if p := s.Process; p != nil {
		if c := p.Capabilities; c != nil {
			r.Bounding, r.Effective, r.Permitted = sorted(c.Bounding), sorted(c.Effective), sorted(c.Permitted)
			r.Inheritable, r.Ambient = sorted(c.Inheritable), sorted(c.Ambient)
		}
		r.NoNewPrivileges, r.Apparmor, r.Selinux, r.Rlimits = p.NoNewPrivileges, p.ApparmorProfile, p.SelinuxLabel, js(p.Rlimits)
	}
	r.ReadonlyRoot = s.Root != nil && s.Root.Readonly
	if l := s.Linux; l != nil {
		r.Seccomp, r.Sysctl = js(l.Seccomp), js(l.Sysctl)
		r.MaskedPaths, r.ReadonlyPaths = sorted(l.MaskedPaths), sorted(l.ReadonlyPaths)
		for _, ns := range l.Namespaces {
			r.Namespaces = append(r.Namespaces, string(ns.Type))
		}
		r.Namespaces = sorted(r.Namespaces)
		if l.Resources != nil {
			r.DeviceRules = js(l.Resources.Devices)
		}
		r.Devices = len(l.Devices)
	}
	for _, m := range s.Mounts {
		if m.Destination == "/sys" {
			r.SysfsWritable = !slices.Contains(m.Options, "ro")
		}
	}
	return r
}

// impImportAndUpgrade makes a running foreign container with opts, reads
// its privileges, imports it with Inspect and upgrades it to v2 with the
// derived spec (running, image v2, everything else as derived), then reads
// the new task's privileges.
func impImportAndUpgrade(t *testing.T, e *engine.Engine, env *testenv.Env, id string, opts ...oci.SpecOpts) impImport {
	t.Helper()
	impForeign(t, e, env, id, impImageV1, true, false, opts...)
	var r impImport
	r.before, r.beforeExec = impTaskProc(t, env, id), impExecProc(t, env, id)
	r.readOnlyBefore = impRootfsReadOnly(t, env, id)
	r.specBefore = impSpecSecurityOf(t, env, id)
	oldPID := env.TaskPID(t, id)

	st, err := e.Inspect(context.Background(), id)
	if err != nil {
		t.Fatalf("import %s: %v", id, err)
	}
	if st.Status != engine.StatusRunning {
		t.Fatalf("imported %s reads as %s, want running", id, st.Status)
	}
	r.derived = st.Spec
	r.spec = st.Spec
	r.spec.Image = impImageV2
	r.spec.Running = true
	up, err := e.Update(context.Background(), id, r.spec)
	if err != nil {
		t.Fatalf("upgrade imported %s with its derived spec %+v: %v", id, r.spec, err)
	}
	if up.Status != engine.StatusRunning {
		t.Fatalf("after the upgrade %s is %s", id, up.Status)
	}
	if got := mustExec(t, env, id, "cat", "/version"); got != "v2" {
		t.Fatalf("after the upgrade /version = %q, want v2", got)
	}
	if env.TaskPID(t, id) == oldPID {
		t.Fatal("the upgrade did not start a new task")
	}
	r.after, r.afterExec = impTaskProc(t, env, id), impExecProc(t, env, id)
	r.readOnlyAfter = impRootfsReadOnly(t, env, id)
	r.specAfter = impSpecSecurityOf(t, env, id)
	return r
}

// An imported container's security settings are derived as they are, and
// the task of an upgrade made with the derived spec has the very same
// privileges, as the kernel reports them.
func TestImportRepresentsSecurity(t *testing.T) {
	e, env := newEngine(t)
	impImages(t, env)
	hostCaps := impHostCapBnd(t)

	for _, tc := range []struct {
		name string
		opts []oci.SpecOpts
		want engine.Security
		// check judges the privileges a task has, before and after.
		check func(t *testing.T, p impProc)
	}{
		{
			name: "readonly",
			opts: []oci.SpecOpts{oci.WithRootFSReadonly()},
			want: engine.Security{ReadOnlyRootfs: true, SeccompProfile: engine.SeccompUnconfined},
		},
		{
			name: "capdrop",
			opts: []oci.SpecOpts{oci.WithDroppedCapabilities([]string{"CAP_NET_RAW", "CAP_CHOWN"})},
			want: engine.Security{CapDrop: []string{"NET_RAW", "CHOWN"}, SeccompProfile: engine.SeccompUnconfined},
			check: func(t *testing.T, p impProc) {
				for _, mask := range []string{p.CapBnd, p.CapEff} {
					if impHasCap(t, mask, impCapChown) || impHasCap(t, mask, impCapNetRaw) {
						t.Errorf("CHOWN or NET_RAW not dropped: %s", p)
					}
				}
			},
		},
		{
			name: "capadd",
			opts: []oci.SpecOpts{oci.WithAddedCapabilities([]string{"CAP_NET_ADMIN"})},
			want: engine.Security{CapAdd: []string{"NET_ADMIN"}, SeccompProfile: engine.SeccompUnconfined},
			check: func(t *testing.T, p impProc) {
				if !impHasCap(t, p.CapBnd, impCapNetAdmin) || !impHasCap(t, p.CapEff, impCapNetAdmin) {
					t.Errorf("NET_ADMIN not added: %s", p)
				}
			},
		},
		{
			name: "newprivs",
			opts: []oci.SpecOpts{oci.WithNewPrivileges},
			want: engine.Security{AllowNewPrivileges: true, SeccompProfile: engine.SeccompUnconfined},
			check: func(t *testing.T, p impProc) {
				if p.NoNewPrivs != "0" {
					t.Errorf("no_new_privileges is on: %s", p)
				}
			},
		},
		{
			// containerd's default spec has no seccomp filter.
			name: "default",
			want: engine.Security{SeccompProfile: engine.SeccompUnconfined},
			check: func(t *testing.T, p impProc) {
				if p.NoNewPrivs != "1" || p.Seccomp != "0" {
					t.Errorf("want no_new_privileges and no seccomp filter: %s", p)
				}
			},
		},
		{
			name: "seccomp-default",
			opts: []oci.SpecOpts{seccomp.WithDefaultProfile()},
			want: engine.Security{SeccompProfile: engine.SeccompDefault},
			check: func(t *testing.T, p impProc) {
				if p.Seccomp != "2" {
					t.Errorf("want a seccomp filter: %s", p)
				}
			},
		},
		{
			name: "privileged",
			opts: []oci.SpecOpts{oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices},
			want: engine.Security{Privileged: true},
			check: func(t *testing.T, p impProc) {
				if p.CapBnd != hostCaps || p.CapEff != hostCaps || p.Seccomp != "0" {
					t.Errorf("want every capability (%s) and no seccomp filter: %s", hostCaps, p)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "eng-imp-" + tc.name
			r := impImportAndUpgrade(t, e, env, id, tc.opts...)
			if got := r.derived.Security; !impSameSecurity(got, tc.want) {
				t.Errorf("derived security = %+v, want %+v", got, tc.want)
			}
			if r.derived.NetworkMode != engine.NetworkNone {
				t.Errorf("derived network_mode = %q, want none (the container has its own network namespace)", r.derived.NetworkMode)
			}
			if r.after != r.before {
				t.Errorf("the upgrade changed the task's privileges:\nbefore %s\nafter  %s", r.before, r.after)
			}
			if !reflect.DeepEqual(r.specAfter, r.specBefore) {
				t.Errorf("the upgrade changed the security settings of the runtime spec:\nbefore %+v\nafter  %+v", r.specBefore, r.specAfter)
			}
			if r.afterExec != r.beforeExec {
				t.Errorf("the upgrade changed the privileges of processes run in the container:\nbefore %s\nafter  %s",
					r.beforeExec, r.afterExec)
			}
			if r.readOnlyBefore != tc.want.ReadOnlyRootfs || r.readOnlyAfter != tc.want.ReadOnlyRootfs {
				t.Errorf("root filesystem read-only: before %v, after %v, want %v",
					r.readOnlyBefore, r.readOnlyAfter, tc.want.ReadOnlyRootfs)
			}
			if tc.check != nil {
				t.Run("before", func(t *testing.T) { tc.check(t, r.before) })
				t.Run("after", func(t *testing.T) { tc.check(t, r.after) })
				t.Run("exec-after", func(t *testing.T) { tc.check(t, r.afterExec) })
			}
		})
	}
}

// impCustomSeccomp is containerd's default profile for the spec without
// mkdir: a profile pouch cannot reproduce.
func impCustomSeccomp(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	p := seccomp.DefaultProfile(s)
	for i := range p.Syscalls {
		p.Syscalls[i].Names = slices.DeleteFunc(slices.Clone(p.Syscalls[i].Names), func(n string) bool {
			return n == "mkdir" || n == "mkdirat"
		})
	}
	s.Linux.Seccomp = p
	return nil
}

func impSysctl(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	return nil
}

func impRlimits(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 4096, Soft: 4096}}
	return nil
}

func impMaskVersion(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/version")
	return nil
}

// impContainerState is what containerd has of a container: what a refused
// update must leave alone.
type impContainerState struct {
	spec        []byte
	image       string
	snapshotKey string
	labels      map[string]string
	pid         uint32
	status      string
}

func impStateOf(t *testing.T, env *testenv.Env, id string) impContainerState {
	t.Helper()
	info := containerInfo(t, env, id)
	if info.Spec == nil {
		t.Fatalf("container %s has no runtime spec", id)
	}
	return impContainerState{spec: info.Spec.GetValue(), image: info.Image, snapshotKey: info.SnapshotKey,
		labels: info.Labels, pid: env.TaskPID(t, id), status: env.TaskStatus(t, id)}
}

// impCheckRefusal checks that err refuses a container for what wants
// names, and says what to do.
func impCheckRefusal(t *testing.T, what string, err error, wants []string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one wrapping ErrUnrepresentable", what)
		return
	}
	if !errors.Is(err, engine.ErrUnrepresentable) {
		t.Errorf("%s: err = %v, want one wrapping ErrUnrepresentable", what, err)
	}
	msg := strings.ToLower(err.Error())
	for _, w := range wants {
		if !strings.Contains(msg, strings.ToLower(w)) {
			t.Errorf("%s: the error does not name %q: %v", what, w, err)
		}
	}
	if !strings.Contains(msg, "recreate it with pouch") {
		t.Errorf("%s: the error does not say what to do: %v", what, err)
	}
}

// A container with settings pouch cannot represent is refused, by
// Inspect (so it is never imported) and by Update (so it is never
// changed), with an error that lists the settings; the refused update
// leaves the container and its task as they were.
func TestImportRefusesWhatPouchCannotRepresent(t *testing.T) {
	e, env := newEngine(t)
	impImages(t, env)

	for _, tc := range []struct {
		name string
		opts []oci.SpecOpts
		run  bool
		// wants are what the error must name.
		wants []string
		// check proves that the foreign task has the setting.
		check func(t *testing.T, id string)
	}{
		{
			name: "seccomp", opts: []oci.SpecOpts{impCustomSeccomp}, run: true,
			wants: []string{"seccomp profile"},
			check: func(t *testing.T, id string) {
				if _, err := env.Exec(t, id, "mkdir", "/tmp/d"); err == nil {
					t.Fatal("setup: the custom seccomp profile allows mkdir")
				}
			},
		},
		{
			name: "hostpid", opts: []oci.SpecOpts{oci.WithHostNamespace(specs.PIDNamespace)}, run: true,
			wants: []string{"pid namespace"},
		},
		{
			// The profile does not exist on this host: no task.
			name: "apparmor", opts: []oci.SpecOpts{oci.WithApparmorProfile("pouch-test")},
			wants: []string{"AppArmor", "pouch-test"},
		},
		{
			name: "sysctl", opts: []oci.SpecOpts{impSysctl}, run: true,
			wants: []string{"sysctls"},
			check: func(t *testing.T, id string) {
				if got := mustExec(t, env, id, "cat", "/proc/sys/net/ipv4/ip_forward"); got != "1" {
					t.Fatalf("setup: ip_forward = %q in the container", got)
				}
			},
		},
		{
			name: "rlimits", opts: []oci.SpecOpts{impRlimits}, run: true,
			wants: []string{"rlimits"},
			check: func(t *testing.T, id string) {
				if got := mustExec(t, env, id, "sh", "-c", "ulimit -n"); got != "4096" {
					t.Fatalf("setup: ulimit -n = %q in the container", got)
				}
			},
		},
		{
			name: "masked", opts: []oci.SpecOpts{impMaskVersion}, run: true,
			wants: []string{"masked paths", "/version"},
			check: func(t *testing.T, id string) {
				if got := mustExec(t, env, id, "cat", "/version"); got != "" {
					t.Fatalf("setup: /version is not masked: %q", got)
				}
			},
		},
		{
			name: "seccomp-hostpid", opts: []oci.SpecOpts{impCustomSeccomp, oci.WithHostNamespace(specs.PIDNamespace)}, run: true,
			wants: []string{"seccomp profile", "pid namespace"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "eng-imp-no-" + tc.name
			impForeign(t, e, env, id, impImageV1, tc.run, true, tc.opts...)
			if tc.check != nil {
				tc.check(t, id)
			}
			before := impStateOf(t, env, id)

			_, err := e.Inspect(context.Background(), id)
			impCheckRefusal(t, "inspect", err, tc.wants)

			for i, spec := range []engine.ContainerSpec{
				{Image: impImageV2, Running: true, NetworkMode: engine.NetworkNone},
				{Image: "pouchtest/impsec:v1", Running: tc.run, NetworkMode: engine.NetworkNone, StopTimeout: engine.DefaultStopTimeout,
					Security: engine.Security{SeccompProfile: engine.SeccompUnconfined, AllowNewPrivileges: true}},
			} {
				_, err := e.Update(context.Background(), id, spec)
				impCheckRefusal(t, fmt.Sprintf("update %d", i), err, tc.wants)
			}

			after := impStateOf(t, env, id)
			if !bytes.Equal(after.spec, before.spec) {
				t.Errorf("a refused update changed the runtime spec:\nbefore %s\nafter  %s", before.spec, after.spec)
			}
			if after.image != before.image || after.snapshotKey != before.snapshotKey || !maps.Equal(after.labels, before.labels) {
				t.Errorf("a refused update changed the container: image %s -> %s, snapshot %s -> %s, labels %v -> %v",
					before.image, after.image, before.snapshotKey, after.snapshotKey, before.labels, after.labels)
			}
			if after.pid != before.pid || after.status != before.status {
				t.Errorf("a refused update touched the task: pid %d -> %d, status %q -> %q",
					before.pid, after.pid, before.status, after.status)
			}
			// Nothing was recorded: the container is still refused.
			_, err = e.Inspect(context.Background(), id)
			impCheckRefusal(t, "inspect after the refused updates", err, tc.wants)
		})
	}
}

// What is derived is kept: once pouch manages the imported container, it
// reads back the same security settings, a plan with the same spec
// changes nothing, and an update with it leaves the task alone.
func TestImportDerivationIsStable(t *testing.T) {
	e, env := newEngine(t)
	impImages(t, env)

	for _, tc := range []struct {
		name string
		opts []oci.SpecOpts
		want engine.Security
	}{
		{
			// The seccomp profile last: containerd's default profile
			// depends on the capabilities (SYS_PTRACE allows ptrace).
			name: "combined",
			opts: []oci.SpecOpts{oci.WithRootFSReadonly(), oci.WithDroppedCapabilities([]string{"CAP_NET_RAW"}),
				oci.WithAddedCapabilities([]string{"CAP_SYS_PTRACE"}), oci.WithNewPrivileges, seccomp.WithDefaultProfile()},
			want: engine.Security{ReadOnlyRootfs: true, CapDrop: []string{"NET_RAW"}, CapAdd: []string{"SYS_PTRACE"},
				SeccompProfile: engine.SeccompDefault, AllowNewPrivileges: true},
		},
		{
			name: "privileged",
			opts: []oci.SpecOpts{oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices},
			want: engine.Security{Privileged: true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "eng-imp-stable-" + tc.name
			r := impImportAndUpgrade(t, e, env, id, tc.opts...)
			if !impSameSecurity(r.derived.Security, tc.want) {
				t.Errorf("derived security = %+v, want %+v", r.derived.Security, tc.want)
			}
			if !reflect.DeepEqual(r.specAfter, r.specBefore) {
				t.Errorf("the upgrade changed the security settings of the runtime spec:\nbefore %+v\nafter  %+v", r.specBefore, r.specAfter)
			}
			if r.after != r.before || r.readOnlyAfter != r.readOnlyBefore {
				t.Errorf("the upgrade changed the task's privileges:\nbefore %s read-only %v\nafter  %s read-only %v",
					r.before, r.readOnlyBefore, r.after, r.readOnlyAfter)
			}
			if tc.name == "combined" && (r.after.Seccomp != "2" || r.after.NoNewPrivs != "0" ||
				!impHasCap(t, r.after.CapBnd, impCapSysPtrace) || impHasCap(t, r.after.CapBnd, impCapNetRaw)) {
				t.Errorf("the upgraded task lacks the settings: %s", r.after)
			}

			st, err := e.Inspect(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if !impSameSecurity(st.Spec.Security, r.derived.Security) {
				t.Errorf("security read back as %+v after the upgrade, derived %+v", st.Spec.Security, r.derived.Security)
			}
			if c := engine.Classify(st.Spec, r.spec); c != engine.ChangeNone {
				t.Errorf("a plan with the applied spec would do %q, want none (read back %+v)", c, st.Spec)
			}

			before := impStateOf(t, env, id)
			if _, err := e.Update(context.Background(), id, r.spec); err != nil {
				t.Fatal(err)
			}
			after := impStateOf(t, env, id)
			if after.pid != before.pid || after.snapshotKey != before.snapshotKey {
				t.Errorf("an update with the same spec restarted the task: pid %d -> %d, snapshot %s -> %s",
					before.pid, after.pid, before.snapshotKey, after.snapshotKey)
			}
			if !bytes.Equal(after.spec, before.spec) {
				t.Errorf("an update with the same spec changed the runtime spec")
			}
			if st, err = e.Inspect(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			if !impSameSecurity(st.Spec.Security, r.derived.Security) {
				t.Errorf("security read back as %+v after a second update, derived %+v", st.Spec.Security, r.derived.Security)
			}
		})
	}
}

// What else makes a process's privileges: the user it runs as and the
// options of its mounts. An import either refuses a container whose
// settings pouch cannot represent, or the upgrade keeps them: a task
// that ran as an unprivileged user must not come back as root, a mount
// that was noexec, nosuid or nodev must not lose that, a tmpfs must keep
// its size.
func TestImportNeverWeakensUserOrMounts(t *testing.T) {
	e, env := newEngine(t)
	impImages(t, env)
	for _, v := range []string{"v1", "v2"} {
		img := versionImage("impuser", v)
		img.User = "root"
		env.ImportImage(t, img)
	}
	dir := t.TempDir()
	mountOptions := func(target string) string {
		return "grep ' " + target + " ' /proc/mounts | cut -d' ' -f4"
	}
	for _, tc := range []struct {
		name, v1, v2 string
		opts         []oci.SpecOpts
		// probe prints what must not change.
		probe string
	}{
		{
			// The image says USER root; the container runs as app.
			name: "user", v1: "docker.io/pouchtest/impuser:v1", v2: "pouchtest/impuser:v2",
			opts:  []oci.SpecOpts{oci.WithUIDGID(1000, 1000)},
			probe: "id",
		},
		{
			name: "bind-options", v1: impImageV1, v2: impImageV2,
			opts: []oci.SpecOpts{oci.WithMounts([]specs.Mount{{Type: "bind", Source: dir, Destination: "/data",
				Options: []string{"rbind", "nosuid", "noexec", "nodev"}}})},
			probe: mountOptions("/data"),
		},
		{
			name: "tmpfs-options", v1: impImageV1, v2: impImageV2,
			opts: []oci.SpecOpts{oci.WithMounts([]specs.Mount{{Type: "tmpfs", Source: "tmpfs", Destination: "/scratch",
				Options: []string{"nosuid", "noexec", "nodev", "size=8m"}}})},
			probe: mountOptions("/scratch"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "eng-imp-keep-" + tc.name
			impForeign(t, e, env, id, tc.v1, true, false, tc.opts...)
			before := mustExec(t, env, id, "sh", "-c", tc.probe)
			if before == "" {
				t.Fatalf("setup: %q printed nothing", tc.probe)
			}
			st, err := e.Inspect(context.Background(), id)
			if errors.Is(err, engine.ErrUnrepresentable) {
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			spec := st.Spec
			spec.Image, spec.Running = tc.v2, true
			if _, err := e.Update(context.Background(), id, spec); err != nil {
				t.Fatalf("upgrade with the derived spec %+v: %v", spec, err)
			}
			if got := mustExec(t, env, id, "cat", "/version"); got != "v2" {
				t.Fatalf("/version = %q after the upgrade", got)
			}
			if after := mustExec(t, env, id, "sh", "-c", tc.probe); after != before {
				t.Errorf("imported (derived user %q, mounts %+v), and the upgrade changed %q:\nbefore %s\nafter  %s",
					st.Spec.User, st.Spec.Mounts, tc.probe, before, after)
			}
		})
	}
}
