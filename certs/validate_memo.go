package certs

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"hash"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Validator is Validate with a memory of the last findings per service. A
// bundle byte for byte the same as the last one validated for its service,
// with the same key modes and unsafe files, judged against the same
// expectation and the same active CA and trust bundle, before any of the
// certificates involved reaches a date a check looks at, has the same
// findings: they are returned without parsing a key or verifying a chain
// again. That is every periodic pass over a settled container, where these
// parses were a tenth of the controller's CPU.
//
// Findings that depend on the time (expired, not-yet-valid, renew-due) are
// never remembered, since their messages name it; nor is anything for
// longer than validatorMaxAge. The zero Validator is ready; it is safe for
// concurrent use and keeps one small entry per service, no certificate or
// key.
type Validator struct {
	mu   sync.Mutex
	last map[string]remembered
	ran  atomic.Int64 // validations run rather than remembered
}

// remembered is what one validation found and until when it holds.
type remembered struct {
	input    [sha256.Size]byte
	findings []Finding
	at       time.Time // when it was found
	until    time.Time // when it may no longer hold
}

// validatorMaxAge bounds how long findings are reused, whatever the dates.
const validatorMaxAge = 10 * time.Minute

// Validate returns what Validate(b, exp) returns.
func (m *Validator) Validate(b *BundleFiles, exp Expectation) []Finding {
	if b == nil {
		return Validate(b, exp)
	}
	if exp.Now.IsZero() {
		exp.Now = time.Now()
	}
	active, trust := exp.Authority.snapshot()
	input := validationInput(b, exp, active, trust)
	service := exp.Identity.Service
	m.mu.Lock()
	r, ok := m.last[service]
	m.mu.Unlock()
	if ok && r.input == input && !exp.Now.Before(r.at) && exp.Now.Before(r.until) {
		return slices.Clone(r.findings)
	}
	v := validate(b, exp, active, trust)
	m.ran.Add(1)
	if !v.timed() {
		m.mu.Lock()
		if m.last == nil {
			m.last = map[string]remembered{}
		}
		m.last[service] = remembered{input: input, findings: slices.Clone(v.findings), at: exp.Now, until: v.stableUntil()}
		m.mu.Unlock()
	}
	return v.findings
}

// Forget drops what is remembered of service, once its container is gone.
func (m *Validator) Forget(service string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.last, service)
}

// timed reports whether a finding depends on the time of validation.
func (v *validation) timed() bool {
	return slices.ContainsFunc(v.findings, func(f Finding) bool {
		return f.Reason == ReasonExpired || f.Reason == ReasonNotYetValid || f.Reason == ReasonRenewDue
	})
}

// stableUntil is the first date after now at which a check could judge
// the same inputs differently: a leaf's renewal point, or the start or end
// of validity of any certificate the checks read; validatorMaxAge from now
// at the latest.
func (v *validation) stableUntil() time.Time {
	now := v.exp.Now
	until := now.Add(validatorMaxAge)
	bound := func(t time.Time) {
		if t.After(now) && t.Before(until) {
			until = t
		}
	}
	window := func(cs ...*x509.Certificate) {
		for _, c := range cs {
			if c != nil {
				bound(c.NotBefore)
				bound(c.NotAfter.Add(time.Nanosecond)) // valid at NotAfter itself
			}
		}
	}
	for _, l := range v.leaves() {
		if l.cert != nil {
			bound(RenewAt(l.cert, v.exp.RenewFraction))
		}
		window(l.cert)
		window(l.chain...)
	}
	window(v.trust...)
	window(v.caCerts...)
	if v.active != nil {
		window(v.active.Cert)
	}
	return until
}

// validationInput digests everything a validation reads except the time:
// the files, their modes as found, the unsafe ones, the expectation and
// the authority's snapshot. Each part is length-prefixed, so no two
// different inputs run together into the same bytes.
func validationInput(b *BundleFiles, exp Expectation, active *CA, trust []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	field := func(p []byte) {
		_ = binary.Write(h, binary.BigEndian, uint64(len(p)))
		h.Write(p)
	}
	for _, name := range validateFileOrder {
		field(b.file(name))
	}
	number(h, uint64(b.ServerKeyMode), uint64(b.ClientKeyMode), boolBit(b.Generation != ""), uint64(len(b.Unsafe)))
	for _, u := range b.Unsafe {
		field([]byte(u.Name))
		field([]byte(u.What))
		number(h, boolBit(u.Linked))
	}
	id := exp.Identity
	field([]byte(id.Service))
	field([]byte(id.SPIFFEID().String()))
	number(h, uint64(len(id.DNSNames)))
	for _, n := range id.DNSNames {
		field([]byte(n))
	}
	number(h, math.Float64bits(exp.RenewFraction), uint64(exp.KeyMode), boolBit(active != nil), uint64(len(trust)))
	if active != nil {
		field(active.Cert.Raw)
	}
	for _, c := range trust {
		field(c.Raw)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func number(h hash.Hash, ns ...uint64) {
	for _, n := range ns {
		_ = binary.Write(h, binary.BigEndian, n)
	}
}

func boolBit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
