package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/testenv"
)

// imageTarget is the digest image name has in the daemon, "" if none.
func imageTarget(t *testing.T, env *testenv.Env, name string) string {
	t.Helper()
	img, err := env.Client.ImageService().Get(env.Context(), name)
	if err != nil {
		return ""
	}
	return img.Target.Digest.String()
}

// A pulled image is stored under its name and its pinned name: a
// container given the pinned name runs it without asking the registry.
// Removing it is refused while that container runs, naming it, and works
// once it is gone.
func TestPullImageAndRemoveIt(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	src := versionImage("store", "v1")
	src.Entrypoint, src.Volumes = []string{"/bin/sh", "-c"}, []string{"/data"}
	ref := env.PushImage(t, "pouchtest/store-pull:v1", src)
	img, err := e.PullImage(ctx, engine.ImageSpec{Name: ref})
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != imageTarget(t, env, ref) || img.Digest == "" {
		t.Fatalf("pulled digest %q, the daemon has %q", img.Digest, imageTarget(t, env, ref))
	}
	if !strings.HasSuffix(img.PinnedReference, "/pouchtest/store-pull@"+img.Digest) || imageTarget(t, env, img.PinnedReference) != img.Digest {
		t.Fatalf("pinned reference %q is not stored at %s", img.PinnedReference, img.Digest)
	}
	if !slices.Equal(img.Config.Entrypoint, src.Entrypoint) || !slices.Equal(img.Config.Cmd, src.Cmd) ||
		!slices.Equal(img.Config.Env, src.Env) || !slices.Equal(img.Config.Volumes, src.Volumes) {
		t.Fatalf("config %+v, want the image's %v %v %v %v", img.Config, src.Entrypoint, src.Cmd, src.Env, src.Volumes)
	}
	if img.Size <= 0 || !img.Managed || img.Platform != "linux/"+runtime.GOARCH {
		t.Fatalf("size %d, managed %v, platform %q", img.Size, img.Managed, img.Platform)
	}

	spec := engine.ContainerSpec{Name: "eng-store-user", Image: img.PinnedReference, PullPolicy: engine.PullNever,
		Command: []string{"sleep 3600"}, Running: true, NetworkMode: engine.NetworkNone}
	if _, err := e.Create(ctx, spec); err != nil {
		t.Fatalf("a container of the pinned name, pull_policy never: %v", err)
	}
	err = e.DeleteImage(ctx, ref, img.Digest)
	if !errors.Is(err, engine.ErrImageInUse) || !strings.Contains(err.Error(), "eng-store-user") ||
		!strings.Contains(err.Error(), "create_before_destroy") {
		t.Fatalf("removing the image of a running container: %v, want ErrImageInUse naming it", err)
	}
	if imageTarget(t, env, ref) != img.Digest || imageTarget(t, env, img.PinnedReference) != img.Digest {
		t.Fatal("a refused removal removed an image name")
	}
	if got := mustExec(t, env, spec.Name, "cat", "/version"); got != "v1" {
		t.Fatalf("the container runs /version %q after the refusal", got)
	}
	if err := e.Delete(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteImage(ctx, ref, img.Digest); err != nil {
		t.Fatalf("remove an image no container uses: %v", err)
	}
	if _, err := e.InspectImage(ctx, engine.ImageSpec{Name: ref}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("inspect a removed image: %v, want ErrNotFound", err)
	}
	if imageTarget(t, env, img.PinnedReference) != "" {
		t.Fatal("the pinned name is left after the removal")
	}
	if err := e.DeleteImage(ctx, ref, img.Digest); err != nil {
		t.Fatalf("remove it again: %v, want nothing to do", err)
	}
}

// Pulling a tag that moved stores its new image; removing the old one
// then leaves the tag (now the new image) and removes only the old pinned
// name, as a replaced pouch_image with create_before_destroy does.
func TestPullImageFollowsAMovedTag(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	ref := env.PushImage(t, "pouchtest/store-moved:v1", versionImage("store-moved", "one"))
	old, err := e.PullImage(ctx, engine.ImageSpec{Name: ref})
	if err != nil {
		t.Fatal(err)
	}
	env.PushImage(t, "pouchtest/store-moved:v1", versionImage("store-moved", "two"))
	moved, err := e.PullImage(ctx, engine.ImageSpec{Name: ref})
	if err != nil {
		t.Fatal(err)
	}
	if moved.Digest == old.Digest || imageTarget(t, env, ref) != moved.Digest {
		t.Fatalf("after the tag moved: pulled %s (was %s), the tag names %s", moved.Digest, old.Digest, imageTarget(t, env, ref))
	}
	if err := e.DeleteImage(ctx, ref, old.Digest); err != nil {
		t.Fatal(err)
	}
	if imageTarget(t, env, ref) != moved.Digest || imageTarget(t, env, moved.PinnedReference) != moved.Digest {
		t.Fatal("removing the old image removed the new one's names")
	}
	if imageTarget(t, env, old.PinnedReference) != "" {
		t.Fatalf("the old pinned name %s is left", old.PinnedReference)
	}
	if err := e.DeleteImage(ctx, ref, moved.Digest); err != nil {
		t.Fatal(err)
	}
}

// An image already on the host that pouch did not store (imported by
// hand, pulled by a container) is left by DeleteImage.
func TestDeleteImageLeavesWhatPouchDidNotStore(t *testing.T) {
	e, env := newEngine(t)
	img := versionImage("store-foreign", "v1")
	dgst := env.ImportImage(t, img)
	if err := e.DeleteImage(context.Background(), img.Name, dgst); err != nil {
		t.Fatal(err)
	}
	if imageTarget(t, env, img.Name) != dgst {
		t.Fatal("DeleteImage removed an image pouch did not store")
	}
}

// A platform the image is not built for is refused with the reason, and
// nothing is stored; the host's platform, named, is the default's image.
func TestPullImagePlatform(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	ref := env.PushImage(t, "pouchtest/store-platform:v1", versionImage("store-platform", "v1"))
	other := "linux/arm64"
	if runtime.GOARCH == "arm64" {
		other = "linux/amd64"
	}
	_, err := e.PullImage(ctx, engine.ImageSpec{Name: ref, Platform: other})
	if err == nil || !strings.Contains(err.Error(), "platform") {
		t.Fatalf("pull for %s of an image built for %s: %v, want a refusal naming the platform", other, runtime.GOARCH, err)
	}
	if imageTarget(t, env, ref) != "" {
		t.Fatal("a refused pull stored the image")
	}
	img, err := e.PullImage(ctx, engine.ImageSpec{Name: ref, Platform: "linux/" + runtime.GOARCH})
	if err != nil || img.Platform != "linux/"+runtime.GOARCH {
		t.Fatalf("pull for the host's platform: %+v, %v", img, err)
	}
	if _, err := e.PullImage(ctx, engine.ImageSpec{Name: ref, Platform: "amd64"}); !errors.Is(err, engine.ErrInvalidSpec) {
		t.Fatalf("platform \"amd64\": %v, want ErrInvalidSpec", err)
	}
	if err := e.DeleteImage(ctx, ref, img.Digest); err != nil {
		t.Fatal(err)
	}
}

// An archive's image is stored under the name asked, whatever names the
// archive gives itself: one naming an image already on the host does not
// touch it. A container then runs the imported image's files.
func TestImportImageIgnoresTheArchivesNames(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	canary := versionImage("store-canary", "v1")
	canaryDigest := env.ImportImage(t, canary)
	hostile := versionImage("store-canary", "hostile")
	hostile.Name = canary.Name // the archive says it is the canary
	archive, dgst := testenv.OCIArchive(t, hostile)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := e.ImportImage(ctx, engine.ImageSpec{Name: "pouchtest/store-imported:v1"}, f)
	if err != nil {
		t.Fatal(err)
	}
	if imageTarget(t, env, canary.Name) != canaryDigest {
		t.Fatalf("the archive's own name moved %s", canary.Name)
	}
	if img.Name != "docker.io/pouchtest/store-imported:v1" || img.Digest != dgst || !img.Managed {
		t.Fatalf("imported %+v, want docker.io/pouchtest/store-imported:v1 at %s", img, dgst)
	}
	spec := engine.ContainerSpec{Name: "eng-store-imported", Image: img.PinnedReference, PullPolicy: engine.PullNever,
		Running: true, NetworkMode: engine.NetworkNone}
	create(t, e, spec)
	if got := mustExec(t, env, spec.Name, "cat", "/version"); got != "hostile" {
		t.Fatalf("the imported image's container has /version %q", got)
	}
}

// A `docker save` archive imports too.
func TestImportDockerArchive(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	path := testenv.DockerArchive(t, versionImage("store-docker", "saved"), "docker.io/pouchtest/whatever:tag")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := e.ImportImage(ctx, engine.ImageSpec{Name: "pouchtest/store-docker:v1"}, f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(img.Config.Cmd, []string{"sleep", "3600"}) || imageTarget(t, env, "docker.io/pouchtest/whatever:tag") != "" {
		t.Fatalf("imported %+v; the archive's tag stored: %q", img, imageTarget(t, env, "docker.io/pouchtest/whatever:tag"))
	}
	spec := engine.ContainerSpec{Name: "eng-store-docker", Image: img.Name, PullPolicy: engine.PullNever, Running: true,
		NetworkMode: engine.NetworkNone}
	create(t, e, spec)
	if got := mustExec(t, env, spec.Name, "cat", "/version"); got != "saved" {
		t.Fatalf("the imported image's container has /version %q", got)
	}
}

// rewriteArchive copies the tar at path, passing each file's bytes through
// edit (nil drops the file), to a new file.
func rewriteArchive(t *testing.T, path string, edit func(name string, data []byte) []byte) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(data)), tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if hdr.Typeflag == tar.TypeReg {
			if body = edit(hdr.Name, body); body == nil {
				continue
			}
			hdr.Size = int64(len(body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "rewritten.tar")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Archives that cannot be imported are refused with the reason, and no
// image is stored; an image of the name that pouch did not store is not
// replaced.
func TestImportImageRefusals(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	good, _ := testenv.OCIArchive(t, versionImage("store-refused", "v1"))
	twoImages := rewriteArchive(t, good, func(name string, data []byte) []byte {
		if name != ocispec.ImageIndexFile {
			return data
		}
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			t.Fatal(err)
		}
		second := idx.Manifests[0]
		second.Annotations = map[string]string{ocispec.AnnotationRefName: "other"}
		idx.Manifests = append(idx.Manifests, second)
		out, _ := json.Marshal(idx)
		return out
	})
	// (Of an image of its own: a refused import's content stays in the
	// content store until containerd collects it.)
	incomplete, _ := testenv.OCIArchive(t, versionImage("store-refused", "incomplete"))
	missingBlob := rewriteArchive(t, incomplete, func(name string, data []byte) []byte {
		if strings.HasPrefix(name, "blobs/") && bytes.Contains(data, []byte(`"rootfs"`)) { // the image's config
			return nil
		}
		return data
	})
	notAnArchive := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notAnArchive, []byte("not a tar at all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := versionImage("store-refused", "foreign")
	foreignDigest := env.ImportImage(t, foreign)

	for _, tc := range []struct {
		name, archive, image, want string
	}{
		{"two images", twoImages, "pouchtest/store-refused:two", "holds 2 images"},
		{"a blob missing", missingBlob, "pouchtest/store-refused:missing", "incomplete"},
		{"not an archive", notAnArchive, "pouchtest/store-refused:notes", "OCI image layout or a `docker save` tar"},
		{"a name pouch did not store", good, foreign.Name, "pouch did not store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(tc.archive)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = e.ImportImage(ctx, engine.ImageSpec{Name: tc.image}, f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("import: %v, want an error saying %q", err, tc.want)
			}
			if tc.image != foreign.Name && imageTarget(t, env, "docker.io/"+tc.image) != "" {
				t.Fatalf("a refused import stored %s", tc.image)
			}
		})
	}
	if imageTarget(t, env, foreign.Name) != foreignDigest {
		t.Fatal("a refused import replaced an image pouch did not store")
	}
	if _, err := e.InspectImage(ctx, engine.ImageSpec{Name: "pouchtest/store-refused:v1"}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("inspect: %v, want ErrNotFound", err)
	}
}
