package servicekit

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// ServerConfig returns a listener config whose every handshake uses the
// Source's current material: its server certificate and, at LevelMTLS,
// RequireAndVerifyClientCert against its ca.crt. level is LevelMTLS or
// LevelTLS. base supplies everything else (NextProtos, MinVersion...); it
// may be nil, and is not modified.
func (s *Source) ServerConfig(level Level, base *tls.Config) *tls.Config {
	return ServerConfig(s.Current, level, base)
}

// ServerConfig is Source.ServerConfig for any supplier of material, such
// as a fixed one.
//
// GetConfigForClient is what makes a swap reach the next handshake: the
// certificate and the ClientCAs pool are both taken from the config it
// returns. Each material gets its own session ticket key, so a session
// made under an older bundle is never resumed under a newer one; resuming
// would skip both the new certificate and the new client CAs.
func ServerConfig(get func() *Material, level Level, base *tls.Config) *tls.Config {
	if base == nil {
		base = &tls.Config{}
	}
	sc := &serverConfigs{get: get, level: level, base: base.Clone()}
	out := base.Clone()
	out.GetConfigForClient = sc.forClient
	return out
}

// serverConfigs builds one config per material and reuses it until the
// material changes.
type serverConfigs struct {
	get   func() *Material
	level Level
	base  *tls.Config
	last  atomic.Pointer[builtConfig]
}

type builtConfig struct {
	m   *Material
	cfg *tls.Config
}

func (sc *serverConfigs) forClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	m := sc.get()
	if b := sc.last.Load(); b != nil && b.m == m {
		return b.cfg, nil
	}
	cfg, err := serverConfigFor(m, sc.level, sc.base)
	if err != nil {
		return nil, err
	}
	sc.last.Store(&builtConfig{m: m, cfg: cfg})
	return cfg, nil
}

// serverConfigFor is the config of every handshake made with m.
func serverConfigFor(m *Material, level Level, base *tls.Config) (*tls.Config, error) {
	if m == nil || m.Server == nil {
		return nil, fmt.Errorf("no usable server certificate (%s, %s)", FileServerCert, FileServerKey)
	}
	cfg := base.Clone()
	cfg.GetConfigForClient = nil
	cfg.Certificates = []tls.Certificate{*m.Server}
	switch level {
	case LevelMTLS:
		if m.Roots == nil {
			return nil, fmt.Errorf("level %s: %w", level, ErrNoTrustBundle)
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = m.Roots
	case LevelTLS:
		cfg.ClientAuth = tls.NoClientCert
		cfg.ClientCAs = nil
	default:
		return nil, fmt.Errorf("level %q: want %s or %s for a TLS listener", level, LevelMTLS, LevelTLS)
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("generating a session ticket key: %w", err)
	}
	cfg.SetSessionTicketKeys([][32]byte{key})
	return cfg, nil
}
