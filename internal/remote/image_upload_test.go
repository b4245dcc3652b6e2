package remote

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// An archive bigger than one piece reaches the host whole: the image
// imported there has the archive's digest and a container runs its files.
// The agent keeps no copy of the archive, and removing the image while the
// container runs is refused across the protocol as it is on the host.
func TestImportImageSendsTheArchive(t *testing.T) {
	env := testenv.Get(t)
	c := newPipeClient(t, env, nil)
	ctx := context.Background()
	img := image("remote-import", "v1")
	img.PadBytes = 3*uploadChunk + 12345
	path, dgst := testenv.OCIArchive(t, img)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := c.ImportImage(ctx, engine.ImageSpec{Name: "pouchtest/remote-imported:v1"}, f)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != dgst {
		t.Fatalf("imported digest %s, the archive's is %s", got.Digest, dgst)
	}
	left, err := os.ReadDir(filepath.Join(env.DataRoot, "uploads"))
	if err != nil || len(left) != 0 {
		t.Fatalf("the agent's uploads after the import: %v, %v; want none", left, err)
	}
	spec := engine.ContainerSpec{Name: "remote-imported", Image: got.PinnedReference, PullPolicy: engine.PullNever,
		Running: true, NetworkMode: engine.NetworkNone}
	if _, err := c.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if out, err := env.Exec(t, spec.Name, "cat", "/version"); err != nil || out != "v1" {
		t.Fatalf("the container of the imported image has /version %q (%v)", out, err)
	}
	if err := c.DeleteImage(ctx, got.Name, got.Digest); !errors.Is(err, engine.ErrImageInUse) {
		t.Fatalf("remove the image of a running container: %v, want ErrImageInUse", err)
	}
	if err := c.Delete(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteImage(ctx, got.Name, got.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InspectImage(ctx, engine.ImageSpec{Name: got.Name}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("inspect a removed image: %v, want ErrNotFound", err)
	}
}
