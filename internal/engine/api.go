package engine

import (
	"context"
	"io"
)

// API is what the provider asks of an engine, wherever the engine runs:
// *Engine on this machine, or a client of an engine that runs on the
// containerd host (package remote). The provider depends on this, not on
// where the containers are.
type API interface {
	// Create, Inspect, Update and Delete are Engine's.
	Create(ctx context.Context, spec ContainerSpec) (State, error)
	Inspect(ctx context.Context, id string) (State, error)
	Update(ctx context.Context, id string, spec ContainerSpec) (State, error)
	Delete(ctx context.Context, id string) error
	CreateVolume(ctx context.Context, spec VolumeSpec) (Volume, error)
	InspectVolume(ctx context.Context, name string) (Volume, error)
	DeleteVolume(ctx context.Context, name string) error
	// PullImage, ImportImage, InspectImage and DeleteImage are the images
	// kept for their own sake (image_store.go).
	PullImage(ctx context.Context, spec ImageSpec) (Image, error)
	ImportImage(ctx context.Context, spec ImageSpec, archive io.Reader) (Image, error)
	InspectImage(ctx context.Context, spec ImageSpec) (Image, error)
	DeleteImage(ctx context.Context, name, digest, owner string) error
	// RegistryDigest is the digest of an image reference in its registry
	// now, without pulling it.
	RegistryDigest(ctx context.Context, ref string) (string, error)
	// Ping checks that containerd answers.
	Ping(ctx context.Context) error
	// Options are the options in effect, defaults filled in.
	Options() Options
	Close() error
}

var _ API = (*Engine)(nil)
