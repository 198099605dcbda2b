package main

import (
	"github.com/crank-platform/crank-mtls-controller/servicekit"
)

// Bundle file names, as servicekit reads them.
const (
	fileServerCert = servicekit.FileServerCert
	fileServerKey  = servicekit.FileServerKey
	fileClientCert = servicekit.FileClientCert
	fileClientKey  = servicekit.FileClientKey
	fileCA         = servicekit.FileCA
)

// Level is the security level the service actually serves.
type Level = servicekit.Level

const (
	LevelMTLS  = servicekit.LevelMTLS
	LevelTLS   = servicekit.LevelTLS
	LevelPlain = servicekit.LevelPlain
)

// fileSet is the set of bundle file names present in the certs dir.
type fileSet = servicekit.FileSet

// decision is what the service chose at boot, and why.
type decision struct {
	Level  Level
	Reason string
	// SelfSigned: serve an in-memory self-signed cert (theater without certs).
	SelfSigned bool
}

// decide is the pure boot-time choice: mode plus the files present -> level.
// Adaptive mode is servicekit's choice; the other modes imitate services
// that ignore or misuse their certs.
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
	d := servicekit.DecideLevel(present)
	return decision{Level: d.Level, Reason: d.Message}
}
