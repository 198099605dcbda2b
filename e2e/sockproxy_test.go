//go:build e2e

package e2e

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// SockProxy is a unix-socket proxy in front of the Docker engine that tests
// use to break the connection in the ways real ones break: closed under the
// client (daemon restart, host sleep) or silently stalled (half-open proxy,
// hung daemon). Bytes are forwarded untouched.
type SockProxy struct {
	upstream string
	dir      string
	path     string
	ln       net.Listener
	wg       sync.WaitGroup

	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	hung   bool          // every connection, new ones included, is stalled
	resume chan struct{} // closed by Resume; nil while nothing is stalled
	closed bool
}

// proxyConn is one client connection and its upstream twin.
type proxyConn struct {
	client, server net.Conn
	done           chan struct{}
	once           sync.Once

	// Guarded by SockProxy.mu.
	hung        bool   // stalled by HangEventStreams
	lastRequest []byte // request line of the client's latest request
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// StartSockProxy listens on a fresh unix socket and forwards every
// connection to the unix socket upstream (e.g. /var/run/docker.sock). It is
// closed, with every connection, when the test ends.
func StartSockProxy(t testing.TB, upstream string) *SockProxy {
	t.Helper()
	// Not t.TempDir(): a unix socket path must fit in 108 bytes, and test
	// names make those long.
	dir, err := os.MkdirTemp("", "sockproxy")
	if err != nil {
		t.Fatalf("creating socket dir: %v", err)
	}
	p := &SockProxy{
		upstream: upstream,
		dir:      dir,
		path:     filepath.Join(dir, "docker.sock"),
		conns:    map[*proxyConn]struct{}{},
	}
	p.ln, err = net.Listen("unix", p.path)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("listening on %s: %v", p.path, err)
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Path is the proxy's socket; use it as DOCKER_HOST=unix://<Path()>.
func (p *SockProxy) Path() string { return p.path }

// Cut closes every live connection, as a daemon restart does, and keeps
// accepting new ones.
func (p *SockProxy) Cut() {
	p.mu.Lock()
	live := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		live = append(live, c)
	}
	p.mu.Unlock()
	for _, c := range live {
		c.close()
	}
}

// Hang stops forwarding bytes in both directions on every connection, new
// ones included, without closing any: the peer sees a connection that is
// open and silent. Resume undoes it.
func (p *SockProxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = true
	if p.resume == nil {
		p.resume = make(chan struct{})
	}
}

// HangEventStreams stalls only the live connections whose latest request
// was an events request, i.e. the watcher's stream; pings, lists and new
// connections keep working. This is the half-open case a ping alone cannot
// see. Resume undoes it.
func (p *SockProxy) HangEventStreams() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		if bytes.Contains(c.lastRequest, []byte("/events")) {
			c.hung = true
			n++
		}
	}
	if n > 0 && p.resume == nil {
		p.resume = make(chan struct{})
	}
	return n
}

// Resume forwards again everything Hang or HangEventStreams held back.
func (p *SockProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = false
	for c := range p.conns {
		c.hung = false
	}
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
}

// Close stops listening, closes every connection and removes the socket.
// It is registered with t.Cleanup; calling it again is harmless.
func (p *SockProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.Resume()
	p.Cut()
	p.wg.Wait()
	_ = os.RemoveAll(p.dir)
}

func (p *SockProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		server, err := net.Dial("unix", p.upstream)
		if err != nil {
			_ = client.Close()
			continue
		}
		c := &proxyConn{client: client, server: server, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, c.server, c.client, true)
		go p.pipe(c, c.client, c.server, false)
	}
}

// pipe copies src to dst, holding each chunk back while the connection is
// stalled. Either direction ending ends the whole connection.
func (p *SockProxy) pipe(c *proxyConn, dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	defer func() {
		c.close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fromClient {
				p.noteRequest(c, buf[:n])
			}
			if !p.wait(c) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF, or the connection was cut
		}
	}
}

// noteRequest remembers the request line when a chunk starts a request.
func (p *SockProxy) noteRequest(c *proxyConn, chunk []byte) {
	for _, m := range []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE "} {
		if bytes.HasPrefix(chunk, []byte(m)) {
			line, _, _ := bytes.Cut(chunk, []byte("\r\n"))
			p.mu.Lock()
			c.lastRequest = bytes.Clone(line)
			p.mu.Unlock()
			return
		}
	}
}

// wait blocks while c is stalled; false if c was closed meanwhile.
func (p *SockProxy) wait(c *proxyConn) bool {
	for {
		p.mu.Lock()
		stalled := p.hung || c.hung
		resume := p.resume
		p.mu.Unlock()
		if !stalled {
			return true
		}
		select {
		case <-resume:
		case <-c.done:
			return false
		}
	}
}
