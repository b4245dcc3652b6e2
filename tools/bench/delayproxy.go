package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// delayProxy forwards TCP connections from a loopback port to target and
// delays every byte by the same time in each direction, which adds twice
// that to every round trip. It stands in for netem (absent from kernels
// built without sch_netem) and touches no interface of the machine. Bytes
// keep their order; the delay is per chunk read, not per connection, so
// throughput is bounded only by the window of what is in flight.
type delayProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration // one way

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// startDelayProxy listens on 127.0.0.1 and forwards to target with delay
// each way.
func startDelayProxy(target string, delay time.Duration) (*delayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &delayProxy{ln: ln, target: target, delay: delay, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is where to connect.
func (p *delayProxy) Addr() string { return p.ln.Addr().String() }

func (p *delayProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, up) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			var both sync.WaitGroup
			both.Add(2)
			go func() { defer both.Done(); p.pipe(up, c) }()
			go func() { defer both.Done(); p.pipe(c, up) }()
			both.Wait()
			p.untrack(c, up)
		}()
	}
}

// track records an open pair, unless the proxy is closing.
func (p *delayProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

// untrack closes a pair whose pipes are done.
func (p *delayProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(p.conns, c)
	}
}

// chunk is bytes read at a time, to be written delay later.
type chunk struct {
	due  time.Time
	data []byte
}

// pipe copies src to dst, each chunk written delay after it was read.
func (p *delayProxy) pipe(dst, src net.Conn) {
	queue := make(chan chunk, 4096)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				queue <- chunk{due: time.Now().Add(p.delay), data: buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		time.Sleep(time.Until(c.due)) // the delay itself, not a synchronisation
		if _, err := dst.Write(c.data); err != nil {
			src.Close() // ends the reader
			break
		}
	}
	// The other side is done writing: pass the end on.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		dst.Close()
	}
	for range queue { // drain, so that the reader ends
	}
}

// Close stops accepting, closes every connection and waits for the pipes.
func (p *delayProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

var _ io.Closer = (*delayProxy)(nil)
