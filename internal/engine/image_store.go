package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The images kept for their own sake (the provider's pouch_image): pulled
// from a registry or imported from an archive, read back, and removed
// while no container runs from them. Each is stored under its name and
// under its pinned name (repository@digest), so that a container given the
// pinned name finds it on the host, even when the name was not pulled from
// a registry.

// ownerLabelPrefix names the labels of an image record that pouch made
// (PullImage, ImportImage), one per owner (a pouch_image resource), whose
// value is "stored". DeleteImage removes its owner's label, and the record
// with the last one; a record that had none when pouch came to it was not
// made by pouch, and never gets one.
const ownerLabelPrefix = "io.pouch.image/"

// ownerLabel is the label of owner on the image records it stored.
func ownerLabel(owner string) string { return ownerLabelPrefix + owner }

// owned reports whether an image record has an owner.
func owned(rec images.Image) bool {
	for k := range rec.Labels {
		if strings.HasPrefix(k, ownerLabelPrefix) {
			return true
		}
	}
	return false
}

// ImageSpec names an image to pull or import.
type ImageSpec struct {
	// Name is the image's reference: what is pulled, or the name the
	// image of an archive is stored under (whatever names the archive
	// holds).
	Name string `json:"name"`
	// Platform is "os/arch[/variant]", "" for the host's. An image of a
	// platform the host cannot run is stored, not unpacked.
	Platform string `json:"platform,omitempty"`
	// Owner names who stores the image (a pouch_image resource): several
	// owners may store one image, which DeleteImage removes with the last.
	// "" only reads (InspectImage).
	Owner string `json:"owner,omitempty"`
}

// Image is an image on the containerd host.
type Image struct {
	// Name is the normalized reference, "docker.io/library/app:1".
	Name string `json:"name"`
	// Digest is the digest of the image's manifest or index.
	Digest string `json:"digest"`
	// PinnedReference is Name's repository @Digest: a container given it
	// runs exactly this image.
	PinnedReference string `json:"pinned_reference"`
	// Platform is the platform of the image's config that was read.
	Platform string      `json:"platform"`
	Config   ImageConfig `json:"config"`
	// Size is the bytes of the image's content for Platform: manifest,
	// config and (compressed) layers.
	Size int64 `json:"size"`
	// Managed says that pouch stored the image under Name (PullImage,
	// ImportImage), for one owner or more.
	Managed bool `json:"managed"`
}

// ErrImageInUse means an image cannot be removed: a container runs from it.
var ErrImageInUse = errors.New("image is in use")

// maxMetadataBytes bounds the index.json, manifests and configs an
// archive may hold: each is read whole into memory.
const maxMetadataBytes = 4 << 20

// checkImageSpec returns spec's name normalized, and its platform
// normalized ("" for the host's).
func checkImageSpec(spec ImageSpec) (name, platform string, _ error) {
	if err := CheckImageReference(spec.Name); err != nil {
		return "", "", fmt.Errorf("%w: image %v", ErrInvalidSpec, err)
	}
	if err := CheckPlatform(spec.Platform); err != nil {
		return "", "", fmt.Errorf("%w: platform %v", ErrInvalidSpec, err)
	}
	if strings.ContainsAny(spec.Owner, "/ ") || len(spec.Owner) > 64 {
		return "", "", fmt.Errorf("%w: image owner %q: use letters and digits", ErrInvalidSpec, spec.Owner)
	}
	name, _ = NormalizeImage(spec.Name)
	if spec.Platform != "" {
		p, _ := platforms.Parse(spec.Platform)
		platform = platforms.Format(platforms.Normalize(p))
	}
	return name, platform, nil
}

// hostPlatform matches platform, the host's when "".
func hostPlatform(platform string) platforms.MatchComparer {
	if platform == "" {
		return platforms.Default()
	}
	p, _ := platforms.Parse(platform)
	return platforms.Only(p)
}

// runsHere reports whether the host runs images of platform.
func runsHere(platform string) bool {
	if platform == "" {
		return true
	}
	p, err := platforms.Parse(platform)
	return err == nil && platforms.Default().Match(p)
}

// PullImage pulls spec's image from its registry, asking the registry for
// the tag's digest even when the image is on the host (a tag that moved is
// pulled again), unpacks it when the host runs its platform, and stores it
// under its name and its pinned name. A registry that cannot be asked
// leaves the image on the host, if there is one.
func (e *Engine) PullImage(ctx context.Context, spec ImageSpec) (Image, error) {
	name, platform, err := checkImageSpec(spec)
	if err != nil {
		return Image{}, err
	}
	defer e.locks.lock("image/" + name)()
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return Image{}, err
	}
	is := client.ImageService()
	old, err := is.Get(ctx, name)
	existed := err == nil
	if err != nil && !errdefs.IsNotFound(err) {
		return Image{}, fmt.Errorf("look up image %q: %w", name, err)
	}
	img, err := e.stageImage(ctx, client, name, PullAlways, platform)
	if err != nil {
		return Image{}, err
	}
	if err := checkPlatform(ctx, img, platform); err != nil {
		// Put the name back as it was: nothing is changed.
		if !existed {
			_ = is.Delete(ctx, name)
		} else if _, rerr := is.Update(ctx, old, "target"); rerr != nil {
			err = errors.Join(err, fmt.Errorf("put image %q back at %s: %w", name, old.Target.Digest, rerr))
		}
		return Image{}, fmt.Errorf("pull image %q: %w", name, err)
	}
	// A pull rewrites the record whole: this owner's label is added, and
	// the others' put back while the name is still their image, unless
	// pouch did not make the record.
	if !existed || owned(old) {
		labels := map[string]string{}
		for k, v := range old.Labels {
			if strings.HasPrefix(k, ownerLabelPrefix) && old.Target.Digest == img.Target().Digest {
				labels[k] = v
			}
		}
		if spec.Owner != "" {
			labels[ownerLabel(spec.Owner)] = "stored"
		}
		if err := setLabels(ctx, is, name, labels); err != nil {
			return Image{}, err
		}
	}
	if err := storePinned(ctx, is, name, img.Target(), spec.Owner); err != nil {
		return Image{}, err
	}
	return e.describeImage(ctx, client, name, platform)
}

// setLabels sets labels on image record name, leaving its others.
func setLabels(ctx context.Context, is images.Store, name string, labels map[string]string) error {
	if len(labels) == 0 {
		return nil
	}
	paths := make([]string, 0, len(labels))
	for k := range labels {
		paths = append(paths, "labels."+k)
	}
	if _, err := is.Update(ctx, images.Image{Name: name, Labels: labels}, paths...); err != nil {
		return fmt.Errorf("label image %q: %w", name, err)
	}
	return nil
}

// storePinned stores target under the pinned name of name too, for owner:
// a new record, or owner's label on one that pouch made.
func storePinned(ctx context.Context, is images.Store, name string, target ocispec.Descriptor, owner string) error {
	pinned, err := PinnedReference(name, target.Digest.String())
	if err != nil || pinned == name {
		return err
	}
	rec := images.Image{Name: pinned, Target: target}
	if owner != "" {
		rec.Labels = map[string]string{ownerLabel(owner): "stored"}
	}
	_, err = is.Create(ctx, rec)
	if !errdefs.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("store image %q: %w", pinned, err)
		}
		return nil
	}
	existing, err := is.Get(ctx, pinned)
	if err != nil {
		return fmt.Errorf("look up image %q: %w", pinned, err)
	}
	if owner != "" && owned(existing) {
		return setLabels(ctx, is, pinned, rec.Labels)
	}
	return nil
}

// ImportImage stores the image of an OCI image layout or `docker save`
// archive under spec's name (and its pinned name), and unpacks it when
// the host runs its platform. The archive must hold one image (one entry
// of its index, which may be a multi-platform index); the names it gives
// itself are ignored. An image of that name that pouch did not make, and
// that is another image, is left alone: the import is refused.
func (e *Engine) ImportImage(ctx context.Context, spec ImageSpec, r io.Reader) (Image, error) {
	name, platform, err := checkImageSpec(spec)
	if err != nil {
		return Image{}, err
	}
	defer e.locks.lock("image/" + name)()
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return Image{}, err
	}
	// The imported content is unreferenced until the image record names
	// it: a lease keeps it from the garbage collector meanwhile.
	ctx, done, err := client.WithLease(ctx)
	if err != nil {
		return Image{}, fmt.Errorf("import image %q: take a lease: %w", name, err)
	}
	defer func() { _ = done(context.WithoutCancel(ctx)) }()

	cs := client.ContentStore()
	index, err := archive.ImportIndex(ctx, cs, r)
	if err != nil {
		return Image{}, fmt.Errorf("import image %q: %w: the archive must be an OCI image layout or a `docker save` tar", name, err)
	}
	target, err := archiveImage(ctx, cs, index)
	if err != nil {
		return Image{}, fmt.Errorf("import image %q: %w", name, err)
	}
	// Label the content for the garbage collector, from the image down,
	// as a pull does, and check that all of it is there (in the archive,
	// or in the content store already).
	present := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		info, err := cs.Info(ctx, desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", desc.MediaType, desc.Digest, err)
		}
		if info.Size != desc.Size {
			return nil, fmt.Errorf("%s %s is %d bytes, and its descriptor says %d", desc.MediaType, desc.Digest, info.Size, desc.Size)
		}
		if (images.IsManifestType(desc.MediaType) || images.IsIndexType(desc.MediaType) || images.IsConfigType(desc.MediaType)) &&
			info.Size > maxMetadataBytes {
			return nil, fmt.Errorf("%s %s is %d bytes, more than the %d accepted", desc.MediaType, desc.Digest, info.Size, maxMetadataBytes)
		}
		return nil, nil
	})
	walk := images.Handlers(present, images.SetChildrenLabels(cs,
		images.FilterPlatforms(images.ChildrenHandler(cs), hostPlatform(platform))))
	if err := images.WalkNotEmpty(ctx, walk, target); err != nil {
		return Image{}, fmt.Errorf("import image %q: the archive's image is incomplete, or has no manifest for platform %s: %w",
			name, platformOrHost(platform), err)
	}
	is := client.ImageService()
	old, err := is.Get(ctx, name)
	existed := err == nil
	switch {
	case err != nil && !errdefs.IsNotFound(err):
		return Image{}, fmt.Errorf("look up image %q: %w", name, err)
	case existed && old.Target.Digest != target.Digest && !owned(old):
		return Image{}, fmt.Errorf("%w: image %q is already on the containerd host as another image (%s), which pouch did not "+
			"store: give the archive's image another name, or remove that one first (ctr -n %s images rm %s)",
			ErrInvalidSpec, name, old.Target.Digest, e.opts.Namespace, name)
	}
	record := images.Image{Name: name, Target: target}
	if err := checkPlatform(ctx, containerd.NewImageWithPlatform(client, record, hostPlatform(platform)), platform); err != nil {
		return Image{}, fmt.Errorf("import image %q: %w", name, err)
	}
	if runsHere(platform) {
		img := containerd.NewImageWithPlatform(client, record, hostPlatform(platform))
		if err := img.Unpack(ctx, e.opts.Snapshotter); err != nil {
			return Image{}, fmt.Errorf("unpack image %q: %w", name, err)
		}
	}
	record.Labels = map[string]string{}
	if spec.Owner != "" {
		record.Labels[ownerLabel(spec.Owner)] = "stored"
	}
	switch {
	case !existed:
		if _, err := is.Create(ctx, record); err != nil {
			return Image{}, fmt.Errorf("store image %q: %w (another process may have stored it meanwhile: apply again)", name, err)
		}
	case owned(old) && old.Target.Digest == target.Digest:
		if err := setLabels(ctx, is, name, record.Labels); err != nil {
			return Image{}, err
		}
	case owned(old):
		// Another image now: its owners were the old image's.
		for k, v := range old.Labels {
			if !strings.HasPrefix(k, ownerLabelPrefix) {
				record.Labels[k] = v
			}
		}
		if _, err := is.Update(ctx, record, "target", "labels"); err != nil {
			return Image{}, fmt.Errorf("store image %q: %w", name, err)
		}
	default:
		// The same image, under a name pouch did not store: left as it is.
	}
	if err := storePinned(ctx, is, name, target, spec.Owner); err != nil {
		return Image{}, err
	}
	e.log.Info(ctx, "imported image", map[string]any{"image": name, "digest": target.Digest.String()})
	return e.describeImage(ctx, client, name, platform)
}

// checkPlatform fails when img, read for platform, is of another: a
// registry or archive image of one manifest is never chosen by platform.
func checkPlatform(ctx context.Context, img containerd.Image, platform string) error {
	spec, err := img.Spec(ctx)
	if err != nil {
		return fmt.Errorf("read the image's config for platform %s: %w", platformOrHost(platform), err)
	}
	if !hostPlatform(platform).Match(platforms.Normalize(spec.Platform)) {
		return fmt.Errorf("the image is built for %s and has no manifest for the platform asked, %s",
			platforms.Format(platforms.Normalize(spec.Platform)), platformOrHost(platform))
	}
	return nil
}

// archiveImage is the one image of an imported archive's index.
func archiveImage(ctx context.Context, cs content.Store, index ocispec.Descriptor) (ocispec.Descriptor, error) {
	info, err := cs.Info(ctx, index.Digest)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("read the archive's index: %w", err)
	}
	if info.Size > maxMetadataBytes {
		return ocispec.Descriptor{}, fmt.Errorf("the archive's index is %d bytes, more than the %d accepted", info.Size, maxMetadataBytes)
	}
	data, err := content.ReadBlob(ctx, cs, index)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("read the archive's index: %w", err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("the archive's index is not an image index: %w", err)
	}
	// One image saved under several names (docker save app:1 app:latest)
	// is one entry per name, of one digest.
	var found []ocispec.Descriptor
	for _, m := range idx.Manifests {
		_, referrer := m.Annotations[images.AnnotationManifestSubject]
		seen := slices.ContainsFunc(found, func(f ocispec.Descriptor) bool { return f.Digest == m.Digest })
		if !referrer && !seen {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return ocispec.Descriptor{}, errors.New("the archive holds no image")
	}
	var names []string
	for _, m := range found {
		n := m.Annotations[images.AnnotationImageName]
		if n == "" {
			n = m.Annotations[ocispec.AnnotationRefName]
		}
		if n == "" {
			n = m.Digest.String()
		}
		names = append(names, fmt.Sprintf("%q", n))
	}
	if len(names) > 5 {
		names = append(names[:5], "...")
	}
	return ocispec.Descriptor{}, fmt.Errorf("the archive holds %d images (%s), and one is imported: save only the image "+
		"wanted (docker save IMAGE, skopeo copy ... oci-archive:FILE)", len(found), strings.Join(names, ", "))
}

func platformOrHost(platform string) string {
	if platform == "" {
		return platforms.Format(platforms.DefaultSpec()) + " (the host's)"
	}
	return platform
}

// InspectImage reads spec's image on the host, the config of its
// platform's manifest; errors.Is(err, ErrNotFound) when it is not there.
func (e *Engine) InspectImage(ctx context.Context, spec ImageSpec) (Image, error) {
	name, platform, err := checkImageSpec(spec)
	if err != nil {
		return Image{}, err
	}
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return Image{}, err
	}
	return e.describeImage(ctx, client, name, platform)
}

func (e *Engine) describeImage(ctx context.Context, client *containerd.Client, name, platform string) (Image, error) {
	rec, err := client.ImageService().Get(ctx, name)
	if errdefs.IsNotFound(err) {
		return Image{}, fmt.Errorf("image %s: %w on the containerd host (namespace %s)", name, ErrNotFound, e.opts.Namespace)
	}
	if err != nil {
		return Image{}, fmt.Errorf("look up image %q: %w", name, err)
	}
	img := containerd.NewImageWithPlatform(client, rec, hostPlatform(platform))
	spec, err := img.Spec(ctx)
	if err != nil {
		return Image{}, fmt.Errorf("read the config of image %q for platform %s: %w", name, platformOrHost(platform), err)
	}
	size, err := img.Size(ctx)
	if err != nil {
		return Image{}, fmt.Errorf("read the size of image %q: %w", name, err)
	}
	pinned, err := PinnedReference(name, rec.Target.Digest.String())
	if err != nil {
		return Image{}, err
	}
	return Image{
		Name:            name,
		Digest:          rec.Target.Digest.String(),
		PinnedReference: pinned,
		Platform:        platforms.Format(platforms.Normalize(spec.Platform)),
		Config:          imageConfigOf(spec.Config),
		Size:            size,
		Managed:         owned(rec),
	}, nil
}

// DeleteImage removes what PullImage or ImportImage stored of image name
// at digest for owner: owner's label on its name (while the name still is
// that image: a later pull or import may have moved it) and on its pinned
// name, and each record whose last owner owner was. A record pouch did not
// make is never touched. Removing a record is refused, wrapping
// ErrImageInUse and naming the containers, while a container runs from it
// (or would go back to it: an upgrade in progress); then nothing changes.
// An image that is not there is no error.
func (e *Engine) DeleteImage(ctx context.Context, name, digest, owner string) error {
	name, _, err := checkImageSpec(ImageSpec{Name: name, Owner: owner})
	if err != nil {
		return err
	}
	if owner == "" {
		return fmt.Errorf("%w: DeleteImage of %s names no owner", ErrInvalidSpec, name)
	}
	pinned, err := PinnedReference(name, digest)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	defer e.locks.lock("image/" + name)()
	client, ctx, err := e.connect(ctx)
	if err != nil {
		return err
	}
	is := client.ImageService()
	var unlabel, remove []string
	for _, n := range slices.Compact([]string{name, pinned}) {
		rec, err := is.Get(ctx, n)
		switch {
		case errdefs.IsNotFound(err):
			continue
		case err != nil:
			return fmt.Errorf("look up image %q: %w", n, err)
		case rec.Target.Digest.String() != digest:
			e.log.Info(ctx, "image name now names another image: left on the host", map[string]any{"image": n,
				"digest": rec.Target.Digest.String()})
			continue
		}
		if _, ok := rec.Labels[ownerLabel(owner)]; !ok {
			e.log.Info(ctx, "image not stored by this owner: left on the host", map[string]any{"image": n})
			continue
		}
		delete(rec.Labels, ownerLabel(owner))
		if owned(rec) {
			unlabel = append(unlabel, n)
		} else {
			remove = append(remove, n)
		}
	}
	if len(remove) > 0 {
		users, err := imageUsers(ctx, client, remove)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return fmt.Errorf("%w: container %s runs from %s: upgrade or delete %s first. When a pouch_image that "+
				"containers use is replaced, give it lifecycle { create_before_destroy = true }, so that they move to the "+
				"new image before the old one is removed", ErrImageInUse, strings.Join(users, ", "), name, pronoun(users))
		}
	}
	for _, n := range unlabel {
		// A field path naming a label the record is given without it
		// removes that label.
		if _, err := is.Update(ctx, images.Image{Name: n}, "labels."+ownerLabel(owner)); err != nil {
			return fmt.Errorf("unlabel image %q: %w", n, err)
		}
		e.log.Debug(ctx, "image kept for its other owners", map[string]any{"image": n})
	}
	for _, n := range remove {
		if err := is.Delete(ctx, n); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete image %q: %w", n, err)
		}
		e.log.Info(ctx, "image deleted", map[string]any{"image": n})
	}
	return nil
}

func pronoun(users []string) string {
	if len(users) == 1 {
		return "it"
	}
	return "them"
}

// imageUsers lists the containers whose image is one of names, or whose
// upgrade in progress would go back to one.
func imageUsers(ctx context.Context, client *containerd.Client, names []string) ([]string, error) {
	all, err := client.ContainerService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var users []string
	for _, c := range all {
		j, _ := readJournal(c)
		if slices.Contains(names, c.Image) || (j.Phase != "" && slices.Contains(names, j.OldImage)) {
			users = append(users, c.ID)
		}
	}
	sort.Strings(users)
	return users, nil
}
