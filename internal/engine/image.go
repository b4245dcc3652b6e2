package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
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

// resolveImage returns the image named by ref from the local content store,
// pulling it from its registry when it is missing, and makes sure it is
// unpacked into the engine's snapshotter.
func (e *Engine) resolveImage(ctx context.Context, client *containerd.Client, ref string) (resolvedImage, error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return resolvedImage{}, err
	}
	img, err := e.stageImage(ctx, client, name)
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
// name in this engine: the creates and upgrades that need the same image
// at the same time (an apply of many containers) share one pull and
// unpack instead of each pulling it. (Pulls of other processes, or of
// images that share layers, wait for each other in containerd: its
// content writers retry a ref that another pull holds.) A shared pull
// that its first caller gave up (its context ended) is started again by a
// caller that has not.
func (e *Engine) stageImage(ctx context.Context, client *containerd.Client, name string) (containerd.Image, error) {
	for {
		flight := e.stages.DoChan(name, func() (any, error) { return e.pullAndUnpack(ctx, client, name) })
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
// pulled from its registry, then unpacked if need be.
func (e *Engine) pullAndUnpack(ctx context.Context, client *containerd.Client, name string) (containerd.Image, error) {
	img, err := client.GetImage(ctx, name)
	switch {
	case errdefs.IsNotFound(err):
		e.log.Info(ctx, "pulling image", map[string]any{"image": name})
		img, err = client.Pull(ctx, name,
			containerd.WithResolver(e.resolver(ctx)),
			containerd.WithPullUnpack,
			containerd.WithPullSnapshotter(e.opts.Snapshotter))
		if err != nil {
			return nil, pullError(name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("look up image %q: %w", name, err)
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
