package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Bundle file names (Kubernetes TLS naming, same as the controller writes).
const (
	fileServerCert = "tls.crt"
	fileServerKey  = "tls.key"
	fileClientCert = "client.crt"
	fileClientKey  = "client.key"
	fileCA         = "ca.crt"
)

var bundleFiles = []string{fileServerCert, fileServerKey, fileClientCert, fileClientKey, fileCA}

// Level is the security level the service actually serves.
type Level string

const (
	LevelMTLS  Level = "mtls"
	LevelTLS   Level = "tls"
	LevelPlain Level = "plain"
)

// fileSet is the set of bundle file names present in the certs dir.
type fileSet map[string]bool

// names returns the present names in a stable order, for logs and /bootinfo.
func (s fileSet) names() []string {
	out := []string{}
	for _, n := range bundleFiles {
		if s[n] {
			out = append(out, n)
		}
	}
	return out
}

// decision is what the service chose at boot, and why.
type decision struct {
	Level  Level
	Reason string
	// SelfSigned: serve an in-memory self-signed cert (theater without certs).
	SelfSigned bool
}

// decide is the pure boot-time choice: mode plus the files present -> level.
// Client cert files never change the server's level; they only matter for
// outgoing calls.
func decide(mode Mode, present fileSet) decision {
	serverPair := present[fileServerCert] && present[fileServerKey]
	switch mode {
	case ModePlainOnly:
		return decision{Level: LevelPlain, Reason: "plain-only mode ignores certs"}
	case ModeTheater:
		if serverPair {
			return decision{Level: LevelTLS, Reason: "theater mode: serving tls.crt but accepting any client"}
		}
		return decision{Level: LevelTLS, SelfSigned: true,
			Reason: "theater mode: no server cert and key, serving an in-memory self-signed cert and accepting any client"}
	}
	switch {
	case serverPair && present[fileCA]:
		return decision{Level: LevelMTLS, Reason: "full bundle present"}
	case serverPair:
		return decision{Level: LevelTLS, Reason: "tls.crt and tls.key present but no ca.crt: TLS without client auth"}
	}
	var missing []string
	for _, n := range []string{fileServerCert, fileServerKey} {
		if !present[n] {
			missing = append(missing, n)
		}
	}
	return decision{Level: LevelPlain, Reason: fmt.Sprintf("no usable server cert (missing %s): plain HTTP", strings.Join(missing, ", "))}
}

// scanFiles reports which bundle files exist in dir. It follows symlinks
// (the controller's visible files point into ..data), so a dangling link
// counts as absent. A missing dir is simply an empty set: services start
// before anyone wrote certs for them.
func scanFiles(dir string) (fileSet, error) {
	present := fileSet{}
	for _, n := range bundleFiles {
		fi, err := os.Stat(filepath.Join(dir, n))
		switch {
		case err == nil && fi.Mode().IsRegular():
			present[n] = true
		case err == nil, errors.Is(err, fs.ErrNotExist):
		default:
			// Unreadable dir (permissions): report it rather than guess.
			return nil, fmt.Errorf("checking %s: %w", n, err)
		}
	}
	return present, nil
}
