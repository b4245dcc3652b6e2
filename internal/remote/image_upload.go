package remote

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// An archive to import (pouch_image's source_archive) is on the machine
// that runs Terraform: the provider sends it to the agent in pieces
// (importUpload), which the agent streams, through a pipe, into the
// engine's import as they come; importImage ends it and answers the
// image. Nothing of the archive is written to the host's disk but the
// content store's blobs, and an upload that is given up (importImage with
// Abort, or a lost connection) ends its import with an error, which
// leaves no image.

// uploadChunk is the size of each piece sent.
const uploadChunk = 1 << 20

// upload is one archive being imported as it is received.
type upload struct {
	w    *io.PipeWriter
	done chan struct{}
	img  engine.Image
	err  error
}

// uploads are the agent's imports in progress, by name.
type uploads struct {
	mu sync.Mutex
	m  map[string]*upload
}

// begin starts importing spec's image from an archive that importUpload
// calls send, and returns the upload's name. The import is bounded by the
// deadline of the call that began it (p), not by its end.
func (u *uploads) begin(e *engine.Engine, p callParams, spec engine.ImageSpec) string {
	var id [8]byte
	_, _ = rand.Read(id[:])
	name := hex.EncodeToString(id[:])
	r, w := io.Pipe()
	up := &upload{w: w, done: make(chan struct{})}
	ctx, cancel := callContext(p)
	go func() {
		defer cancel()
		up.img, up.err = e.ImportImage(ctx, spec, r)
		// Whatever the import did not read is refused to the writer.
		r.CloseWithError(cmp.Or(up.err, errors.New("the import ended before the end of the archive")))
		close(up.done)
	}()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[string]*upload{}
	}
	u.m[name] = up
	return name
}

func (u *uploads) get(name string) (*upload, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	up, ok := u.m[name]
	if !ok {
		return nil, fmt.Errorf("the agent has no upload %q (its connection was probably lost): apply again", name)
	}
	return up, nil
}

// write passes a piece of the archive to upload name's import.
func (u *uploads) write(name string, data []byte) error {
	up, err := u.get(name)
	if err != nil {
		return err
	}
	if _, err := up.w.Write(data); err != nil {
		// The import ended (failed): so does the upload.
		u.mu.Lock()
		delete(u.m, name)
		u.mu.Unlock()
		<-up.done
		return cmp.Or(up.err, err)
	}
	return nil
}

// finish ends upload name's archive (or gives it up, with abort) and
// answers its import's result.
func (u *uploads) finish(name string, abort bool) (engine.Image, error) {
	up, err := u.get(name)
	if err != nil {
		return engine.Image{}, err
	}
	u.mu.Lock()
	delete(u.m, name)
	u.mu.Unlock()
	if abort {
		up.w.CloseWithError(errors.New("the provider gave the upload up"))
	} else {
		up.w.Close()
	}
	<-up.done
	return up.img, up.err
}

// removeAll gives up the uploads in progress (the connection is gone) and
// waits for their imports to end.
func (u *uploads) removeAll() {
	u.mu.Lock()
	all := u.m
	u.m = nil
	u.mu.Unlock()
	for _, up := range all {
		up.w.CloseWithError(errors.New("the connection to the provider was lost"))
		<-up.done
	}
}

// PullImage pulls an image on the host.
func (c *Client) PullImage(ctx context.Context, spec engine.ImageSpec) (engine.Image, error) {
	var img engine.Image
	err := c.call(ctx, methodPullImage, &imageParams{Spec: spec}, &img)
	return img, err
}

// ImportImage sends the archive r to the host, where it is imported as
// it comes.
func (c *Client) ImportImage(ctx context.Context, spec engine.ImageSpec, r io.Reader) (engine.Image, error) {
	var upload string
	buf := make([]byte, uploadChunk)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 || upload == "" {
			p := &uploadParams{Upload: upload, Data: buf[:n]}
			if upload == "" {
				p.Spec = &spec
			}
			if err := c.call(ctx, methodImportUpload, p, &upload); err != nil {
				c.abortUpload(upload)
				return engine.Image{}, fmt.Errorf("send the archive of image %q to %s: %w", spec.Name, c.cfg.Host, err)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			c.abortUpload(upload)
			return engine.Image{}, fmt.Errorf("read the archive of image %q: %w", spec.Name, rerr)
		}
	}
	var img engine.Image
	err := c.call(ctx, methodImportImage, &imageParams{Spec: spec, Upload: upload}, &img)
	return img, err
}

// abortUpload gives up an upload on the host, if one was begun.
func (c *Client) abortUpload(upload string) {
	if upload == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.call(ctx, methodImportImage, &imageParams{Upload: upload, Abort: true}, nil)
}

// InspectImage reads an image on the host.
func (c *Client) InspectImage(ctx context.Context, spec engine.ImageSpec) (engine.Image, error) {
	var img engine.Image
	err := c.call(ctx, methodInspectImage, &imageParams{Spec: spec}, &img)
	return img, err
}

// DeleteImage removes an image from the host.
func (c *Client) DeleteImage(ctx context.Context, name, digest, owner string) error {
	return c.call(ctx, methodDeleteImage, &imageParams{Spec: engine.ImageSpec{Name: name}, Digest: digest, Owner: owner}, nil)
}
