package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// NormalizeImage returns the fully qualified form of an image reference
// ("busybox" -> "docker.io/library/busybox:latest"), as containerd names
// images.
func NormalizeImage(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return named.String(), nil
}

// resolvedImage is an image present in the content store and unpacked into
// the engine's snapshotter.
type resolvedImage struct {
	image  containerd.Image
	config ImageConfig
}

// PullPolicy says when an image is pulled from its registry.
type PullPolicy string

const (
	// PullMissing pulls an image that is not on the host (the default).
	PullMissing PullPolicy = "missing"
	// PullAlways asks the registry for the tag's digest at every create
	// and upgrade, and pulls it when it moved; a registry that cannot be
	// asked leaves the image on the host in use, if there is one.
	PullAlways PullPolicy = "always"
	// PullNever uses only an image already on the host.
	PullNever PullPolicy = "never"
)

// orDefault is p, PullMissing when empty.
func (p PullPolicy) orDefault() PullPolicy {
	if p == "" {
		return PullMissing
	}
	return p
}

// resolveImage returns the image named by ref, pulled from its registry as
// policy says, and makes sure it is unpacked into the engine's
// snapshotter.
func (e *Engine) resolveImage(ctx context.Context, client *containerd.Client, ref string, policy PullPolicy) (resolvedImage, error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return resolvedImage{}, err
	}
	img, err := e.stageImage(ctx, client, name, policy.orDefault(), "")
	if err != nil {
		return resolvedImage{}, err
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return resolvedImage{}, fmt.Errorf("read config of image %q: %w", name, err)
	}
	return resolvedImage{image: img, config: imageConfigOf(spec.Config)}, nil
}

// stageImage makes image name present and unpacked, once at a time per
// name (and policy and platform) in this engine: the creates and upgrades that need the
// same image at the same time (an apply of many containers) share one pull
// and unpack instead of each pulling it. (Pulls of other processes, or of
// images that share layers, wait for each other in containerd: its
// content writers retry a ref that another pull holds.) A shared pull
// that its first caller gave up (its context ended) is started again by a
// caller that has not.
// platform is "" for the host's, or a normalized platform
// ("linux/arm64"); an image of another platform than the host's is
// pulled, not unpacked.
func (e *Engine) stageImage(ctx context.Context, client *containerd.Client, name string, policy PullPolicy, platform string) (containerd.Image, error) {
	for {
		flight := e.stages.DoChan(name+" "+string(policy)+" "+platform, func() (any, error) {
			return e.pullAndUnpack(ctx, client, name, policy, platform)
		})
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case r := <-flight:
			if r.Err != nil && r.Shared && ctx.Err() == nil &&
				(errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, context.DeadlineExceeded)) {
				continue
			}
			if r.Err != nil {
				return nil, r.Err
			}
			return r.Val.(containerd.Image), nil
		}
	}
}

// pullAndUnpack is stageImage's work: the image from the content store, or
// pulled from its registry as policy says, then unpacked if need be.
func (e *Engine) pullAndUnpack(ctx context.Context, client *containerd.Client, name string, policy PullPolicy, platform string) (containerd.Image, error) {
	match := hostPlatform(platform)
	img, err := client.GetImage(ctx, name)
	present := err == nil
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("look up image %q: %w", name, err)
	}
	if present && platform != "" {
		img = containerd.NewImageWithPlatform(client, img.Metadata(), match)
	}
	pull := !present
	switch policy {
	case PullNever:
		if !present {
			return nil, fmt.Errorf("image %q is not on the containerd host, and pull_policy is %q: import it there "+
				"(ctr -n %s image import), or set pull_policy = %q", name, PullNever, e.opts.Namespace, PullMissing)
		}
	case PullAlways:
		dgst, err := e.registryDigest(ctx, name)
		switch {
		case err != nil && present:
			e.log.Info(ctx, "could not ask the registry for the image's digest: using the image on the host",
				map[string]any{"image": name, "error": err.Error()})
		case err != nil:
			return nil, err
		case present && img.Target().Digest.String() == dgst && hasPlatform(ctx, img, platform):
			e.log.Debug(ctx, "the image on the host is the registry's", map[string]any{"image": name, "digest": dgst})
		default:
			if present {
				e.log.Info(ctx, "the image's tag moved in its registry", map[string]any{"image": name,
					"from": img.Target().Digest.String(), "to": dgst})
			}
			pull = true
		}
	}
	if pull {
		e.log.Info(ctx, "pulling image", map[string]any{"image": name})
		start := time.Now()
		progress := e.startPullProgress(ctx, client, name)
		opts := []containerd.RemoteOpt{
			containerd.WithResolver(e.resolver(ctx)),
			containerd.WithImageHandler(progress.handler()),
			containerd.WithPullSnapshotter(e.opts.Snapshotter),
			containerd.WithPlatformMatcher(match),
		}
		if runsHere(platform) {
			opts = append(opts, containerd.WithPullUnpack)
		}
		img, err = client.Pull(ctx, name, opts...)
		total := progress.stop()
		if err != nil {
			return nil, pullError("pull", name, err)
		}
		e.log.Info(ctx, "pulled image", map[string]any{"image": name, "mib": mib(total), "took": time.Since(start).String()})
	}
	if !runsHere(platform) {
		return img, nil
	}
	unpacked, err := img.IsUnpacked(ctx, e.opts.Snapshotter)
	if err != nil {
		return nil, fmt.Errorf("check image %q: %w", name, err)
	}
	if !unpacked {
		e.log.Debug(ctx, "unpacking image", map[string]any{"image": name, "snapshotter": e.opts.Snapshotter})
		if err := img.Unpack(ctx, e.opts.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %q: %w", name, err)
		}
	}
	return img, nil
}

// hasPlatform reports whether the content of img's manifest for platform
// ("" for the host's, which a present image always has) is on the host: a
// multi-platform image pulled for one platform lacks the others'.
func hasPlatform(ctx context.Context, img containerd.Image, platform string) bool {
	if platform == "" {
		return true
	}
	_, err := img.Spec(ctx)
	return err == nil
}

// PinnedReference is ref pinned to digest: its repository (with the tag
// dropped) @digest, "registry.example:5000/app@sha256:...".
func PinnedReference(ref, dgst string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return "", fmt.Errorf("invalid digest %q: %w", dgst, err)
	}
	pinned, err := reference.WithDigest(reference.TrimNamed(named), d)
	if err != nil {
		return "", err
	}
	return pinned.String(), nil
}

// RegistryDigest is the digest that ref has in its registry now (of the
// manifest or index a pull would fetch), asked with the engine's registry
// settings, without pulling anything. It needs no containerd.
func (e *Engine) RegistryDigest(ctx context.Context, ref string) (string, error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return "", err
	}
	return e.registryDigest(ctx, name)
}

func (e *Engine) registryDigest(ctx context.Context, name string) (string, error) {
	_, desc, err := e.resolver(ctx).Resolve(ctx, name)
	if err != nil {
		return "", pullError("look up", name, err)
	}
	return desc.Digest.String(), nil
}

// digest is the content digest of the image's target (manifest or index).
func (r resolvedImage) digest() string { return r.image.Target().Digest.String() }

func imageConfigOf(cfg ocispec.ImageConfig) ImageConfig {
	volumes := make([]string, 0, len(cfg.Volumes))
	for v := range cfg.Volumes {
		volumes = append(volumes, v)
	}
	sort.Strings(volumes)
	return ImageConfig{
		Entrypoint: cfg.Entrypoint,
		Cmd:        cfg.Cmd,
		Env:        cfg.Env,
		WorkingDir: cfg.WorkingDir,
		User:       cfg.User,
		Volumes:    volumes,
	}
}
