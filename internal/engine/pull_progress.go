package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pullProgressInterval is how often a pull in progress is logged.
var pullProgressInterval = 5 * time.Second

// pullProgress logs how much of a pull is done, every
// pullProgressInterval: the bytes of the image's blobs already in the
// content store or being written, of those the pull has found so far.
type pullProgress struct {
	mu    sync.Mutex
	blobs map[string]int64 // digest -> size, found by the pull's handler
	quit  chan struct{}
	ended chan struct{}
}

// startPullProgress starts logging the pull of name.
func (e *Engine) startPullProgress(ctx context.Context, client *containerd.Client, name string) *pullProgress {
	p := &pullProgress{blobs: map[string]int64{}, quit: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(p.ended)
		tick := time.NewTicker(pullProgressInterval)
		defer tick.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				done, total := p.measure(ctx, client)
				e.log.Info(ctx, "pulling image: progress", map[string]any{"image": name,
					"done_mib": mib(done), "total_mib": mib(total), "percent": percent(done, total)})
			}
		}
	}()
	return p
}

// handler records the blobs the pull fetches.
func (p *pullProgress) handler() images.Handler {
	return images.HandlerFunc(func(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		p.mu.Lock()
		p.blobs[desc.Digest.String()] = desc.Size
		p.mu.Unlock()
		return nil, nil
	})
}

// measure is the bytes done and the total of the blobs found so far.
func (p *pullProgress) measure(ctx context.Context, client *containerd.Client) (done, total int64) {
	p.mu.Lock()
	blobs := make(map[string]int64, len(p.blobs))
	for d, size := range p.blobs {
		blobs[d] = size
		total += size
	}
	p.mu.Unlock()
	cs := client.ContentStore()
	writing := map[string]int64{}
	if statuses, err := cs.ListStatuses(ctx); err == nil {
		for _, st := range statuses {
			for d := range blobs {
				if strings.HasSuffix(st.Ref, d) {
					writing[d] = st.Offset
				}
			}
		}
	}
	for d, size := range blobs {
		if off, ok := writing[d]; ok {
			done += off
		} else if info, err := cs.Info(ctx, digest.Digest(d)); err == nil && info.Size == size {
			done += size
		}
	}
	return done, total
}

// stop stops the logging; it returns the size of the blobs the pull found.
func (p *pullProgress) stop() (total int64) {
	close(p.quit)
	<-p.ended
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, size := range p.blobs {
		total += size
	}
	return total
}

func mib(n int64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }

func percent(done, total int64) int {
	if total <= 0 {
		return 0
	}
	return int(done * 100 / total)
}
