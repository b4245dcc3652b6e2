package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
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
	img, err := e.PullImage(ctx, engine.ImageSpec{Name: ref, Owner: "a"})
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
	err = e.DeleteImage(ctx, ref, img.Digest, "a")
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
	if err := e.DeleteImage(ctx, ref, img.Digest, "a"); err != nil {
		t.Fatalf("remove an image no container uses: %v", err)
	}
	if _, err := e.InspectImage(ctx, engine.ImageSpec{Name: ref}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("inspect a removed image: %v, want ErrNotFound", err)
	}
	if imageTarget(t, env, img.PinnedReference) != "" {
		t.Fatal("the pinned name is left after the removal")
	}
	if err := e.DeleteImage(ctx, ref, img.Digest, "a"); err != nil {
		t.Fatalf("remove it again: %v, want nothing to do", err)
	}
}

// Pulling a tag that moved stores its new image for its new owner;
// removing the old one then leaves the tag (now the new image) and removes
// only the old pinned name, as a replaced pouch_image with
// create_before_destroy does. The last owner's removal removes the tag.
func TestPullImageFollowsAMovedTag(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	ref := env.PushImage(t, "pouchtest/store-moved:v1", versionImage("store-moved", "one"))
	old, err := e.PullImage(ctx, engine.ImageSpec{Name: ref, Owner: "old"})
	if err != nil {
		t.Fatal(err)
	}
	env.PushImage(t, "pouchtest/store-moved:v1", versionImage("store-moved", "two"))
	moved, err := e.PullImage(ctx, engine.ImageSpec{Name: ref, Owner: "new"})
	if err != nil {
		t.Fatal(err)
	}
	if moved.Digest == old.Digest || imageTarget(t, env, ref) != moved.Digest || !moved.Managed {
		t.Fatalf("after the tag moved: pulled %s (was %s, managed %v), the tag names %s", moved.Digest, old.Digest,
			moved.Managed, imageTarget(t, env, ref))
	}
	if err := e.DeleteImage(ctx, ref, old.Digest, "old"); err != nil {
		t.Fatal(err)
	}
	if imageTarget(t, env, ref) != moved.Digest || imageTarget(t, env, moved.PinnedReference) != moved.Digest {
		t.Fatal("removing the old image removed the new one's names")
	}
	if imageTarget(t, env, old.PinnedReference) != "" {
		t.Fatalf("the old pinned name %s is left", old.PinnedReference)
	}
	if err := e.DeleteImage(ctx, ref, moved.Digest, "new"); err != nil {
		t.Fatal(err)
	}
	if imageTarget(t, env, ref) != "" || imageTarget(t, env, moved.PinnedReference) != "" {
		t.Fatal("the last owner's removal left the image")
	}
}

// Two owners of one image (a pouch_image replaced by one of the same
// digest): removing the first leaves the image to the second, whose
// removal removes it.
func TestImageOfTwoOwners(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	ref := env.PushImage(t, "pouchtest/store-owners:v1", versionImage("store-owners", "v1"))
	a, err := e.PullImage(ctx, engine.ImageSpec{Name: ref, Owner: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.PullImage(ctx, engine.ImageSpec{Name: ref, Owner: "b"}); err != nil {
		t.Fatal(err)
	}
	spec := engine.ContainerSpec{Name: "eng-store-owners", Image: a.PinnedReference, PullPolicy: engine.PullNever,
		Running: true, NetworkMode: engine.NetworkNone}
	create(t, e, spec)
	if err := e.DeleteImage(ctx, ref, a.Digest, "a"); err != nil {
		t.Fatalf("remove the first owner's image, which the second still stores: %v", err)
	}
	if imageTarget(t, env, ref) != a.Digest || imageTarget(t, env, a.PinnedReference) != a.Digest {
		t.Fatal("the first owner's removal removed the second's image")
	}
	if err := e.DeleteImage(ctx, ref, a.Digest, "b"); !errors.Is(err, engine.ErrImageInUse) {
		t.Fatalf("the last owner's removal while a container runs from it: %v, want ErrImageInUse", err)
	}
	if err := e.Delete(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteImage(ctx, ref, a.Digest, "b"); err != nil {
		t.Fatal(err)
	}
	if imageTarget(t, env, ref) != "" {
		t.Fatal("the last owner's removal left the image")
	}
}

// An image already on the host that pouch did not store (imported by
// hand, pulled by a container) is never taken over: importing the same
// image under its name stores only the pinned name, and removing it leaves
// the name.
func TestDeleteImageLeavesWhatPouchDidNotStore(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	img := versionImage("store-foreign", "v1")
	dgst := env.ImportImage(t, img)
	archive, _ := testenv.OCIArchive(t, img)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := e.ImportImage(ctx, engine.ImageSpec{Name: img.Name, Owner: "a"}, f)
	if err != nil {
		t.Fatal(err)
	}
	if got.Managed {
		t.Fatal("the import took over an image pouch did not store")
	}
	if err := e.DeleteImage(ctx, img.Name, dgst, "a"); err != nil {
		t.Fatal(err)
	}
	if imageTarget(t, env, img.Name) != dgst {
		t.Fatal("DeleteImage removed an image pouch did not store")
	}
	if imageTarget(t, env, got.PinnedReference) != "" {
		t.Fatal("DeleteImage left the pinned name it stored")
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
	_, err := e.PullImage(ctx, engine.ImageSpec{Name: ref, Platform: other, Owner: "a"})
	if err == nil || !strings.Contains(err.Error(), "has no manifest for the platform asked, "+other) {
		t.Fatalf("pull for %s of an image built for %s: %v, want a refusal naming the platform", other, runtime.GOARCH, err)
	}
	if imageTarget(t, env, ref) != "" {
		t.Fatal("a refused pull stored the image")
	}
	img, err := e.PullImage(ctx, engine.ImageSpec{Name: ref, Platform: "linux/" + runtime.GOARCH, Owner: "a"})
	if err != nil || img.Platform != "linux/"+runtime.GOARCH {
		t.Fatalf("pull for the host's platform: %+v, %v", img, err)
	}
	if _, err := e.PullImage(ctx, engine.ImageSpec{Name: ref, Platform: "amd64"}); !errors.Is(err, engine.ErrInvalidSpec) {
		t.Fatalf("platform \"amd64\": %v, want ErrInvalidSpec", err)
	}
	if err := e.DeleteImage(ctx, ref, img.Digest, "a"); err != nil {
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
	img, err := e.ImportImage(ctx, engine.ImageSpec{Name: "pouchtest/store-imported:v1", Owner: "a"}, f)
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

// A `docker save` archive imports too, one image saved under two tags
// included.
func TestImportDockerArchive(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	path := testenv.DockerArchive(t, versionImage("store-docker", "saved"), "docker.io/pouchtest/whatever:tag",
		"docker.io/pouchtest/whatever:latest")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := e.ImportImage(ctx, engine.ImageSpec{Name: "pouchtest/store-docker:v1", Owner: "a"}, f)
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

// mergeArchives writes an OCI archive holding the images of the OCI
// archives a and b: their blobs, and both indexes' entries.
func mergeArchives(t *testing.T, a, b string) string {
	t.Helper()
	files := map[string][]byte{}
	var manifests []ocispec.Descriptor
	for _, p := range []string{a, b} {
		rewriteArchive(t, p, func(name string, data []byte) []byte {
			if name == ocispec.ImageIndexFile {
				var idx ocispec.Index
				if err := json.Unmarshal(data, &idx); err != nil {
					t.Fatal(err)
				}
				manifests = append(manifests, idx.Manifests...)
			} else {
				files[name] = data
			}
			return data
		})
	}
	index, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests})
	files[ocispec.ImageIndexFile] = index
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(files[name]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "merged.tar")
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
	other, _ := testenv.OCIArchive(t, versionImage("store-refused", "other"))
	twoImages := mergeArchives(t, good, other)
	// (Of an image of its own: a refused import's content stays in the
	// content store until containerd collects it.)
	incomplete, _ := testenv.OCIArchive(t, versionImage("store-refused", "incomplete"))
	missingBlob := rewriteArchive(t, incomplete, func(name string, data []byte) []byte {
		if strings.HasPrefix(name, "blobs/") && bytes.Contains(data, []byte(`"rootfs"`)) { // the image's config
			return nil
		}
		return data
	})
	// An index whose manifest is a 5 MiB blob (the pad layer's).
	padded := versionImage("store-refused", "padded")
	padded.PadBytes = 5 << 20
	paddedArchive, _ := testenv.OCIArchive(t, padded)
	var biggest string
	var biggestSize int
	rewriteArchive(t, paddedArchive, func(name string, data []byte) []byte {
		if strings.HasPrefix(name, "blobs/sha256/") && len(data) > biggestSize {
			biggest, biggestSize = strings.TrimPrefix(name, "blobs/sha256/"), len(data)
		}
		return data
	})
	hugeManifest := rewriteArchive(t, paddedArchive, func(name string, data []byte) []byte {
		if name != ocispec.ImageIndexFile {
			return data
		}
		out, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
			Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest("sha256:" + biggest),
				Size: int64(biggestSize)}}})
		return out
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
		{"a manifest of 5 MiB", hugeManifest, "pouchtest/store-refused:huge", "more than the 4194304 accepted"},
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

// A rebuilt archive imported under the same name by a new owner (a
// pouch_image replaced with create_before_destroy) moves the name; the old
// owner's removal leaves it, and the new owner's removes it.
func TestImportImageAgain(t *testing.T) {
	e, env := newEngine(t)
	ctx := context.Background()
	const name = "docker.io/pouchtest/store-again:local"
	imports := map[string]engine.Image{}
	for _, v := range []string{"one", "two"} {
		path, _ := testenv.OCIArchive(t, versionImage("store-again", v))
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if imports[v], err = e.ImportImage(ctx, engine.ImageSpec{Name: name, Owner: v}, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if imageTarget(t, env, name) != imports["two"].Digest {
		t.Fatal("the second import did not move the name")
	}
	if err := e.DeleteImage(ctx, name, imports["one"].Digest, "one"); err != nil {
		t.Fatal(err)
	}
	if imageTarget(t, env, name) != imports["two"].Digest || imageTarget(t, env, imports["one"].PinnedReference) != "" {
		t.Fatal("the old owner's removal took the new image's name, or left its own pinned name")
	}
	if err := e.DeleteImage(ctx, name, imports["two"].Digest, "two"); err != nil {
		t.Fatal(err)
	}
	if imageTarget(t, env, name) != "" || imageTarget(t, env, imports["two"].PinnedReference) != "" {
		t.Fatal("the last owner's removal left the image")
	}
}
