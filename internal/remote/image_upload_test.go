package remote

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// An archive bigger than one piece reaches the host whole: the image
// imported there has the archive's digest and a container runs its files.
// Removing the image while the container runs is refused across the
// protocol as it is on the host.
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
	got, err := c.ImportImage(ctx, engine.ImageSpec{Name: "pouchtest/remote-imported:v1", Owner: "test"}, f)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != dgst {
		t.Fatalf("imported digest %s, the archive's is %s", got.Digest, dgst)
	}
	spec := engine.ContainerSpec{Name: "remote-imported", Image: got.PinnedReference, PullPolicy: engine.PullNever,
		Running: true, NetworkMode: engine.NetworkNone}
	if _, err := c.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if out, err := env.Exec(t, spec.Name, "cat", "/version"); err != nil || out != "v1" {
		t.Fatalf("the container of the imported image has /version %q (%v)", out, err)
	}
	if err := c.DeleteImage(ctx, got.Name, got.Digest, "test"); !errors.Is(err, engine.ErrImageInUse) {
		t.Fatalf("remove the image of a running container: %v, want ErrImageInUse", err)
	}
	if err := c.Delete(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteImage(ctx, got.Name, got.Digest, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InspectImage(ctx, engine.ImageSpec{Name: got.Name}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("inspect a removed image: %v, want ErrNotFound", err)
	}
}

// failingReader gives n bytes of r, then an error.
type failingReader struct {
	r io.Reader
	n int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("the disk went away")
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// An archive that cannot be read to its end is given up on the host: the
// error says why, no image is stored, and the connection serves on.
func TestImportImageGivenUpHalfWay(t *testing.T) {
	env := testenv.Get(t)
	c := newPipeClient(t, env, nil)
	ctx := context.Background()
	img := image("remote-import-cut", "v1")
	img.PadBytes = 3 * uploadChunk
	path, _ := testenv.OCIArchive(t, img)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spec := engine.ImageSpec{Name: "pouchtest/remote-import-cut:v1", Owner: "test"}
	_, err = c.ImportImage(ctx, spec, &failingReader{r: f, n: 2*uploadChunk + 100})
	if err == nil || !strings.Contains(err.Error(), "the disk went away") {
		t.Fatalf("import of an archive cut half-way: %v, want the reader's error", err)
	}
	if _, err := c.InspectImage(ctx, engine.ImageSpec{Name: spec.Name}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("inspect after the import was given up: %v, want ErrNotFound", err)
	}
	if err := c.Ping(ctx); err != nil || c.dials.Load() != 1 {
		t.Fatalf("the connection after the import was given up: %v, %d dials", err, c.dials.Load())
	}
}
