package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

// release010 is the commit of pouch 0.1.0, whose container schema is
// version 0.
const release010 = "9da8c70"

// buildProviderAt builds the provider of an earlier commit into a
// directory of its own and returns a CLI configuration whose dev_overrides
// point terraform at it.
func buildProviderAt(t *testing.T, commit string) (rc string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		t.Skipf("the history of the repository lacks %s, whose state this test upgrades (a shallow clone?)", commit)
	}
	src := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("git", "-C", root, "worktree", "add", "--detach", src, commit).CombinedOutput(); err != nil {
		t.Fatalf("check out %s: %v\n%s", commit, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("git", "-C", root, "worktree", "remove", "--force", src).Run() })
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), tfCommandTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, "terraform-provider-pouch"), ".")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the provider of %s: %v\n%s", commit, err, out)
	}
	rc = filepath.Join(bin, "cli.tfrc")
	cfg := fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"pouch/pouch\" = %q\n  }\n  direct {}\n}\n", bin)
	if err := os.WriteFile(rc, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestAccContainer_stateUpgradeFrom010: the state that pouch 0.1.0 wrote
// (container schema version 0) is upgraded by this version. The first plan
// after the provider upgrade changes one thing only, the start window's new
// default (upgrade.verify_seconds 0 -> 1, a setting: no restart); the image
// volumes, the network identity and every other attribute read the same.
func TestAccContainer_stateUpgradeFrom010(t *testing.T) {
	env := accEnv(t)
	const name = "acc-state-010"
	img := testImage("state010", "v1")
	img.Volumes = []string{"/var/lib/app"}
	img.Entries = []imagebuild.Entry{{Path: "/var/lib/app/seed", Type: imagebuild.File, Mode: 0o644, Data: "seed"}}
	env.ImportImage(t, img)
	old := buildProviderAt(t, release010)
	tf := newTFCLI(t)
	tf.destroyAtEnd(env, name)
	tf.write(containerConfig(env, name, img.Name))

	oldRC := []string{"TF_CLI_CONFIG_FILE=" + old}
	if out, code := tf.run(oldRC, "apply", "-auto-approve", "-no-color"); code != 0 {
		t.Fatalf("apply with pouch 0.1.0: exit code %d\n%s", code, out)
	}
	before := stateOf(t, tf)
	if before.SchemaVersion != 0 {
		t.Fatalf("pouch 0.1.0 wrote schema version %d, want 0", before.SchemaVersion)
	}
	pid := env.TaskPID(t, name)

	// This version: one change, the new default of the start window.
	tf.mustRun("plan", "-no-color", "-out=upgrade.plan")
	var plan struct {
		ResourceChanges []struct {
			Change struct {
				Actions []string       `json:"actions"`
				Before  map[string]any `json:"before"`
				After   map[string]any `json:"after"`
			} `json:"change"`
		} `json:"resource_changes"`
	}
	if err := json.Unmarshal([]byte(tf.mustRun("show", "-json", "upgrade.plan")), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.ResourceChanges) != 1 || !slices.Equal(plan.ResourceChanges[0].Change.Actions, []string{"update"}) {
		t.Fatalf("plan after the provider upgrade: %+v, want one update in place", plan.ResourceChanges)
	}
	ch := plan.ResourceChanges[0].Change
	var changed []string
	for k, v := range ch.After {
		if !reflect.DeepEqual(ch.Before[k], v) {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	if !slices.Equal(changed, []string{"upgrade"}) {
		t.Fatalf("attributes the first plan changes: %v, want only upgrade (verify_seconds 0 -> 1)\nbefore %v\nafter  %v",
			changed, ch.Before, ch.After)
	}
	if got := ch.After["upgrade"].(map[string]any)["verify_seconds"]; got != float64(1) {
		t.Fatalf("upgrade.verify_seconds planned as %v, want 1", got)
	}
	if vols := ch.Before["image_volumes"].([]any); len(vols) != 1 ||
		vols[0].(map[string]any)["target"] != "/var/lib/app" {
		t.Fatalf("image_volumes after the state upgrade: %v", vols)
	}

	tf.mustRun("apply", "-auto-approve", "-no-color", "upgrade.plan")
	if got := env.TaskPID(t, name); got != pid {
		t.Errorf("the settings change restarted the task: pid %d, was %d", got, pid)
	}
	after := stateOf(t, tf)
	if after.SchemaVersion != containerSchemaVersion {
		t.Errorf("state schema version %d after the apply, want %d", after.SchemaVersion, containerSchemaVersion)
	}
	for _, k := range []string{"id", "image_id", "ip_address", "mac_address", "image_volumes", "log_path"} {
		if !reflect.DeepEqual(before.Attributes[k], after.Attributes[k]) {
			t.Errorf("%s: %v before the provider upgrade, %v after", k, before.Attributes[k], after.Attributes[k])
		}
	}
	if out, code := tf.run(nil, "plan", "-no-color", "-detailed-exitcode"); code != 0 {
		t.Errorf("plan after the upgrade's apply: exit code %d, want 0 (no changes)\n%s", code, out)
	}
	if got, err := env.Exec(t, name, "cat", "/var/lib/app/seed"); err != nil || strings.TrimSpace(got) != "seed" {
		t.Errorf("the image volume's data: %q, %v", got, err)
	}
}

// resourceState is the state of the working directory's only resource.
type resourceState struct {
	SchemaVersion int            `json:"schema_version"`
	Attributes    map[string]any `json:"attributes"`
}

func stateOf(t *testing.T, tf *tfCLI) resourceState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tf.dir, "terraform.tfstate"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Resources []struct {
			Type      string          `json:"type"`
			Instances []resourceState `json:"instances"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Resources {
		if r.Type == "pouch_container" && len(r.Instances) == 1 {
			return r.Instances[0]
		}
	}
	t.Fatalf("no pouch_container in the state:\n%s", b)
	return resourceState{}
}
