package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// An archive to import (pouch_image's source_archive) is on the machine
// that runs Terraform: the provider sends it to the agent in pieces
// (importUpload), which the agent writes to a file of its own under the
// data root, then imports it (importImage) and removes the file.

// uploadChunk is the size of each piece sent.
const uploadChunk = 1 << 20

// uploads are the agent's archives being received, by name.
type uploads struct {
	mu    sync.Mutex
	files map[string]*os.File
}

// write appends data to upload, a new one (in dataRoot/uploads) when
// upload is "", and returns its name.
func (u *uploads) write(dataRoot, upload string, data []byte) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if upload == "" {
		dir := filepath.Join(dataRoot, "uploads")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("receive an archive: %w", err)
		}
		f, err := os.CreateTemp(dir, "import-*.tar")
		if err != nil {
			return "", fmt.Errorf("receive an archive: %w", err)
		}
		var id [8]byte
		_, _ = rand.Read(id[:])
		upload = hex.EncodeToString(id[:])
		if u.files == nil {
			u.files = map[string]*os.File{}
		}
		u.files[upload] = f
	}
	f, ok := u.files[upload]
	if !ok {
		return "", fmt.Errorf("the agent has no upload %q (its connection was probably lost): apply again", upload)
	}
	if _, err := f.Write(data); err != nil {
		return "", fmt.Errorf("receive an archive in %s: %w", filepath.Dir(f.Name()), err)
	}
	return upload, nil
}

// take removes upload from those being received and returns its file,
// rewound.
func (u *uploads) take(upload string) (*os.File, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f, ok := u.files[upload]
	if !ok {
		return nil, fmt.Errorf("the agent has no upload %q (its connection was probably lost): apply again", upload)
	}
	delete(u.files, upload)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		discardUpload(f)
		return nil, err
	}
	return f, nil
}

// importImage imports upload's archive as spec's image, then removes it.
func (u *uploads) importImage(ctx context.Context, e *engine.Engine, spec engine.ImageSpec, upload string) (engine.Image, error) {
	f, err := u.take(upload)
	if err != nil {
		return engine.Image{}, err
	}
	defer discardUpload(f)
	return e.ImportImage(ctx, spec, f)
}

// removeAll removes the uploads never imported.
func (u *uploads) removeAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for name, f := range u.files {
		discardUpload(f)
		delete(u.files, name)
	}
}

func discardUpload(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}

// PullImage pulls an image on the host.
func (c *Client) PullImage(ctx context.Context, spec engine.ImageSpec) (engine.Image, error) {
	var img engine.Image
	err := c.call(ctx, methodPullImage, &imageParams{Spec: spec}, &img)
	return img, err
}

// ImportImage sends the archive r to the host and imports it there.
func (c *Client) ImportImage(ctx context.Context, spec engine.ImageSpec, r io.Reader) (engine.Image, error) {
	var upload string
	buf := make([]byte, uploadChunk)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 || upload == "" {
			p := &uploadParams{Upload: upload, Data: buf[:n]}
			if cerr := c.call(ctx, methodImportUpload, p, &upload); cerr != nil {
				return engine.Image{}, fmt.Errorf("send the archive of image %q to %s: %w", spec.Name, c.cfg.Host, cerr)
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return engine.Image{}, fmt.Errorf("read the archive of image %q: %w", spec.Name, err)
		}
	}
	var img engine.Image
	err := c.call(ctx, methodImportImage, &imageParams{Spec: spec, Upload: upload}, &img)
	return img, err
}

// InspectImage reads an image on the host.
func (c *Client) InspectImage(ctx context.Context, spec engine.ImageSpec) (engine.Image, error) {
	var img engine.Image
	err := c.call(ctx, methodInspectImage, &imageParams{Spec: spec}, &img)
	return img, err
}

// DeleteImage removes an image from the host.
func (c *Client) DeleteImage(ctx context.Context, name, digest string) error {
	return c.call(ctx, methodDeleteImage, &imageParams{Spec: engine.ImageSpec{Name: name}, Digest: digest}, nil)
}
