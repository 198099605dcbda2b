package main

import (
	"net/http"
	"time"
)

// Limits of both HTTP listeners: the plain one (health, metrics and, without
// mTLS, the status API) and the mTLS status listener. Every endpoint answers
// a small GET from memory or the state store; none streams or long-polls
// (the dashboard polls /api/v1/status every 5s with a new request), so one
// write deadline per response cuts nothing legitimate. The numbers bound
// what an idle or deliberately slow client on the host or a shared network
// can hold, with generous room for a real one.
const (
	// serverReadHeaderTimeout: a client that trickles its headers
	// (slowloris) is dropped after 5s; real clients send them in one packet.
	serverReadHeaderTimeout = 5 * time.Second
	// serverReadTimeout bounds the whole request. No endpoint takes a body,
	// so this only adds a little to the header deadline.
	serverReadTimeout = 10 * time.Second
	// serverWriteTimeout bounds one response, counted from the end of its
	// request's headers: a metrics scrape or the status of a large project
	// takes milliseconds, so 30s only ever cuts a client that stopped reading.
	serverWriteTimeout = 30 * time.Second
	// serverIdleTimeout closes a keep-alive connection that sent no request
	// for a minute. The dashboard (every 5s) and Prometheus at its usual 15s
	// or 30s interval keep theirs; an abandoned one stops holding a socket
	// and a goroutine. Without it, Go falls back to the read timeout.
	serverIdleTimeout = 60 * time.Second
	// serverMaxHeaderBytes is 16 KiB, Node.js's limit since it found 8 KiB
	// too small for browsers' cookies: the dashboard runs on localhost, where
	// every other local web app's cookies are sent too. Go's default is 1 MiB
	// per request. A larger header block gets 431.
	serverMaxHeaderBytes = 16 << 10
)

// serverLimits are an HTTP server's timeouts and header cap, a value so
// tests can shorten them; production uses defaultServerLimits.
type serverLimits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

var defaultServerLimits = serverLimits{
	ReadHeaderTimeout: serverReadHeaderTimeout,
	ReadTimeout:       serverReadTimeout,
	WriteTimeout:      serverWriteTimeout,
	IdleTimeout:       serverIdleTimeout,
	MaxHeaderBytes:    serverMaxHeaderBytes,
}

// newHTTPServer is the one way this command builds an http.Server, so no
// listener is left with Go's defaults (no deadlines, 1 MiB of headers).
func newHTTPServer(h http.Handler, l serverLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}
