package main

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// callLoop is the worker side of the seed: every CallInterval it calls each
// CALL_URL over mTLS with its own client certificate, on a new connection
// with the bundle current at that call (see peerClient), so renewed or
// rotated certs are used at once. Each outcome is counted (see /bootinfo)
// and failures are logged, so a test can count the requests lost during a
// rotation.
func (a *app) callLoop(ctx context.Context) {
	if len(a.cfg.CallURLs) == 0 {
		return
	}
	t := time.NewTicker(a.cfg.CallInterval)
	defer t.Stop()
	succeeded := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, u := range a.cfg.CallURLs {
			res, status := a.callPeer(ctx, u)
			ok := status == http.StatusOK && res.Status >= 200 && res.Status < 300
			a.calls.add(ok, res.Error)
			if ok && !succeeded[u] {
				// Positive evidence, once per peer, that the worker's client
				// certificate is accepted.
				succeeded[u] = true
				a.logger.Info("call to peer succeeded over mTLS", keyURL, u, keyStatus, res.Status)
			}
			if !ok && ctx.Err() == nil {
				a.logger.Warn("call to peer failed", keyURL, u, keyStatus, res.Status, keyError, res.Error)
			}
		}
	}
}

// callStats is the worker's tally, served in /bootinfo.
type callStats struct {
	OK        int    `json:"ok"`
	Failed    int    `json:"failed"`
	LastError string `json:"last_error,omitempty"`
}

type callCounter struct {
	mu sync.Mutex
	s  callStats
}

func (c *callCounter) add(ok bool, errText string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		c.s.OK++
		return
	}
	c.s.Failed++
	c.s.LastError = errText
}

func (c *callCounter) snapshot() callStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}
