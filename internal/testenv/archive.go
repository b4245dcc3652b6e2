package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/imagebuild"
)

// OCIArchive writes img as an OCI image layout tar in a temporary
// directory of the test and returns its path and the image's manifest
// digest.
func OCIArchive(t testing.TB, img imagebuild.Image) (path, digest string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "image.tar")
	d, err := imagebuild.WriteArchiveFile(path, img)
	if err != nil {
		t.Fatalf("testenv.OCIArchive: %v", err)
	}
	return path, d.String()
}

// DockerArchive writes img as a `docker save` tar (converted by skopeo
// from its OCI archive), tagged name and the other tags, and returns its
// path.
func DockerArchive(t testing.TB, img imagebuild.Image, name string, tags ...string) string {
	t.Helper()
	oci, _ := OCIArchive(t, img)
	dir := filepath.Dir(oci)
	path := filepath.Join(dir, "docker.tar")
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"--policy", policy, "copy", "--quiet"}
	for _, tag := range tags {
		args = append(args, "--additional-tag", tag)
	}
	cmd := exec.CommandContext(ctx, "skopeo", append(args, "oci-archive:"+oci, "docker-archive:"+path+":"+name)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv.DockerArchive: skopeo copy: %v\n%s", err, out)
	}
	return path
}
