package servicekit

import (
	"fmt"
	"strings"
)

// Level is the security level a service serves.
type Level string

const (
	// LevelMTLS is TLS with a client certificate required and verified
	// against ca.crt.
	LevelMTLS Level = "mtls"
	// LevelTLS is TLS without client authentication.
	LevelTLS Level = "tls"
	// LevelPlain is plain HTTP.
	LevelPlain Level = "plain"
)

// Bundle file names, the Kubernetes TLS naming the controller writes.
const (
	FileServerCert = "tls.crt"
	FileServerKey  = "tls.key"
	FileClientCert = "client.crt"
	FileClientKey  = "client.key"
	FileCA         = "ca.crt"
)

// fileOrder is the order in which messages name files.
var fileOrder = []string{FileServerCert, FileServerKey, FileClientCert, FileClientKey, FileCA}

// FileSet is a set of bundle file names.
type FileSet map[string]bool

// AllFiles is the complete bundle.
func AllFiles() FileSet {
	s := FileSet{}
	for _, n := range fileOrder {
		s[n] = true
	}
	return s
}

// Names returns the bundle files in s in a stable order, never nil, so
// that logs and JSON show [] rather than null.
func (s FileSet) Names() []string {
	out := []string{}
	for _, n := range fileOrder {
		if s[n] {
			out = append(out, n)
		}
	}
	return out
}

// missing returns the files of need that s lacks, in order.
func (s FileSet) missing(need FileSet) []string {
	var out []string
	for _, n := range fileOrder {
		if need[n] && !s[n] {
			out = append(out, n)
		}
	}
	return out
}

// LevelReason is why DecideLevel chose a level: a stable code for tests,
// metrics and branches; the Decision's Message is for humans.
type LevelReason string

const (
	ReasonFullBundle    LevelReason = "full-bundle"
	ReasonNoTrustBundle LevelReason = "no-trust-bundle"
	ReasonNoServerPair  LevelReason = "no-server-pair"
)

// Decision is a level and why.
type Decision struct {
	Level   Level
	Reason  LevelReason
	Message string
}

// DecideLevel is the adaptive choice from the files present: mtls with the
// server pair and ca.crt, tls with the server pair only, plain otherwise.
// The client pair never changes the server's level; it only matters for
// outgoing calls.
func DecideLevel(present FileSet) Decision {
	serverPair := present[FileServerCert] && present[FileServerKey]
	switch {
	case serverPair && present[FileCA]:
		return Decision{Level: LevelMTLS, Reason: ReasonFullBundle, Message: "full bundle present"}
	case serverPair:
		return Decision{Level: LevelTLS, Reason: ReasonNoTrustBundle,
			Message: "tls.crt and tls.key present but no ca.crt: TLS without client auth"}
	}
	missing := present.missing(FileSet{FileServerCert: true, FileServerKey: true})
	return Decision{Level: LevelPlain, Reason: ReasonNoServerPair,
		Message: fmt.Sprintf("no usable server cert (missing %s): plain HTTP", strings.Join(missing, ", "))}
}

// Environment is development or production (CRANK_ENVIRONMENT).
type Environment string

const (
	// Development degrades when the bundle is incomplete, with one WARN.
	Development Environment = "development"
	// Production refuses to run, or to build a client, without the bundle.
	Production Environment = "production"
)

// ParseEnvironment reads a CRANK_ENVIRONMENT value; empty means development.
func ParseEnvironment(s string) (Environment, error) {
	switch e := Environment(s); e {
	case "":
		return Development, nil
	case Development, Production:
		return e, nil
	}
	return "", fmt.Errorf("%s=%q: want %s or %s", EnvEnvironment, s, Development, Production)
}
