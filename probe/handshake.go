package probe

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Alerts (RFC 8446, section 6) that name why a server refused a handshake;
// crypto/tls keeps its own constants for them unexported.
const (
	alertProtocolVersion       tls.AlertError = 70
	alertNoApplicationProtocol tls.AlertError = 120
)

// handshakeFinding says why a handshake failed when no certificate was to
// blame: versions or application protocols with nothing in common, or
// whatever else the error says.
func handshakeFinding(o observation) Finding {
	if v, ok := serverSelectedVersion(o.err); ok && v < tls.VersionTLS12 {
		return Finding{TLSVersionUnsupported, fmt.Sprintf("server on %s offers only %s; TLS 1.2 is the minimum", o.Addr, tls.VersionName(v))}
	}
	switch {
	case peerSent(o.err, alertProtocolVersion):
		return Finding{TLSVersionUnsupported, fmt.Sprintf("server on %s offers only TLS versions older than 1.2 (it refused 1.2 and 1.3); TLS 1.2 is the minimum", o.Addr)}
	case peerSent(o.err, alertNoApplicationProtocol):
		return Finding{TLSHandshakeFailed, fmt.Sprintf("server on %s accepts none of the application protocols we offer (ALPN %s)", o.Addr, strings.Join(alpn, ", "))}
	}
	return Finding{TLSHandshakeFailed, fmt.Sprintf("TLS handshake with %s failed: %v", o.Addr, o.err)}
}

// remoteAlert reports whether err is a TLS alert sent by the peer. crypto/tls
// reports those as a *net.OpError with Op "remote error" around an
// unexported alert type; the Op field is the only typed handle there is.
func remoteAlert(err error) bool {
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "remote error"
}

// peerSent reports whether err is the alert a, sent by the peer. The
// unexported alert type inside the remote error holds the code but shows
// only its text; tls.AlertError (what QUIC connections return instead)
// renders its code from the same table, so equal texts mean equal codes.
func peerSent(err error, a tls.AlertError) bool {
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "remote error" && op.Err != nil && op.Err.Error() == a.Error()
}

// serverSelectedVersion returns the version a server picked in its
// ServerHello when crypto/tls refused it, as an old server does that ignores
// the supported_versions extension and answers with what it has. This is
// the one failure read from an error's text: crypto/tls reports it with
// fmt.Errorf, no type and no sentinel, and only the text names the version.
// Should the wording change, the failure is reported as tls-handshake-failed
// with the error in the message, which loses only the version's name.
func serverSelectedVersion(err error) (uint16, bool) {
	const text = "tls: server selected unsupported protocol version "
	_, hex, ok := strings.Cut(err.Error(), text)
	if !ok {
		return 0, false
	}
	v, perr := strconv.ParseUint(hex, 16, 16)
	return uint16(v), perr == nil
}
