package status

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// t0 is the fixed "now" of these tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeSource is a Source over fixed values. When first is set, the first
// Records call returns it instead of recs (the browser test uses this to
// tell the server-rendered table from the one the script rendered).
type fakeSource struct {
	Source // unexpected calls panic

	mu    sync.Mutex
	recs  []state.Record
	first []state.Record
	calls int
	sum   Summary
	err   error
}

func (f *fakeSource) Records() ([]state.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.first != nil && f.calls == 1 {
		return f.first, f.err
	}
	return f.recs, f.err
}

func (f *fakeSource) Summary() Summary { return f.sum }

func devSummary() Summary {
	return Summary{
		Mode:        reconcile.Enforce,
		Environment: reconcile.Development,
		Project:     "crank",
		Version:     "v0.5.0 (1b1ddfc0a1b2)",
		CANotAfter:  t0.Add(3650 * 24 * time.Hour),
		CASubject:   "CN=crank-mtls-controller CA",
	}
}

// recOpt changes a record built by record.
type recOpt func(*state.Record)

// record builds a healthy record: desired mtls, floor plain, observed mtls,
// a bundle with 60 days left, probed a minute ago.
func record(service, container string, opts ...recOpt) state.Record {
	r := state.Record{
		ContainerID:   fakeID(service + "/" + container),
		ContainerName: container,
		Service:       service,
		Project:       "crank",
		DNSNames:      []string{service, container, "localhost"},
		Bundle: state.BundleRecord{
			Generation:   "..2026_01_01_12_00_00.000000001",
			WrittenAt:    t0.Add(-30 * 24 * time.Hour),
			ServerSerial: "5A1E",
			ClientSerial: "C11E",
			NotAfter:     t0.Add(60 * 24 * time.Hour),
			IssuedReason: "missing",
			IssuedAt:     t0.Add(-30 * 24 * time.Hour),
		},
		ObservedLevel: "mtls",
		LevelSince:    t0.Add(-2 * time.Hour),
		Level: state.LevelRecord{
			Desired:           "mtls",
			Floor:             "plain",
			LastProbeAt:       t0.Add(-time.Minute),
			ProbeDuration:     12500 * time.Microsecond,
			ServedFingerprint: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			ServedNotAfter:    t0.Add(60 * 24 * time.Hour),
			LastPlan:          "at desired level",
			Budget:            3,
			OnDrift:           "restart",
		},
		UpdatedAt: t0.Add(-time.Minute),
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// fakeID is a stable 64-hex-digit ID, like Docker's.
func fakeID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}

func withID(id string) recOpt { return func(r *state.Record) { r.ContainerID = id } }

func observed(level string) recOpt {
	return func(r *state.Record) { r.ObservedLevel = level }
}

func desired(level, floor string) recOpt {
	return func(r *state.Record) { r.Level.Desired, r.Level.Floor = level, floor }
}

// drifted sets the drift flags as the reconciler would for observed <
// desired (and < floor when below).
func drifted(below bool) recOpt {
	return func(r *state.Record) { r.Level.Drift, r.Level.BelowFloor = true, below }
}

func bundleExpires(at time.Time) recOpt {
	return func(r *state.Record) { r.Bundle.NotAfter = at }
}

func probeFindings(pairs ...string) recOpt {
	return func(r *state.Record) {
		for i := 0; i+1 < len(pairs); i += 2 {
			r.Level.ProbeFindings = append(r.Level.ProbeFindings, pairs[i])
			r.Level.ProbeMessages = append(r.Level.ProbeMessages, pairs[i+1])
		}
	}
}

func bundleFindings(reasons ...string) recOpt {
	return func(r *state.Record) { r.Findings = append(r.Findings, reasons...) }
}

func remediation(attempts, budget int, degraded, last string, lastAt time.Time) recOpt {
	return func(r *state.Record) {
		r.Remediation = state.RemediationState{Attempts: attempts, Degraded: degraded, LastAction: last, LastActionAt: lastAt,
			NextActionAt: lastAt.Add(2 * time.Minute)}
		r.Level.Budget = budget
	}
}

func neverProbed() recOpt {
	return func(r *state.Record) {
		r.ObservedLevel, r.LevelSince = "", time.Time{}
		r.Level = state.LevelRecord{}
	}
}

func transitions(n int) recOpt {
	return func(r *state.Record) {
		for i := range n {
			r.AddTransition(state.Transition{At: t0.Add(time.Duration(i-n) * time.Minute), From: "down", To: "mtls", Cause: "probe"})
			r.AddEvent(state.Event{At: t0.Add(time.Duration(i-n) * time.Minute), Action: "restart", Result: "ok", Reason: "probe"})
		}
	}
}

// demoStack is the six Crank services as the demo runs them in
// development, with image-classifier drifted to plain and degraded. It
// feeds the browser test and the README screenshot.
func demoStack() []state.Record {
	return []state.Record{
		record("platform", "crank-platform-1"),
		record("document-converter", "crank-document-converter-1",
			bundleExpires(t0.Add(21*24*time.Hour)), bundleFindings("renew-due")),
		record("email-classifier", "crank-email-classifier-1", desired("tls", "plain"), observed("tls"),
			probeFindings("client-auth-not-enforced", "the HTTPS port served a client without a certificate")),
		record("email-parser", "crank-email-parser-1"),
		record("email-parser", "crank-email-parser-2",
			func(r *state.Record) {
				r.Remediation = state.RemediationState{LastAction: "signal", LastActionAt: t0.Add(-42 * time.Minute)}
				r.AddEvent(state.Event{At: t0.Add(-42 * time.Minute), Action: "signal", Result: "ok", Reason: "served certificate is not the current tls.crt"})
			}),
		record("image-classifier", "crank-image-classifier-1", observed("plain"), drifted(false),
			probeFindings(
				"untrusted-server-cert", "served certificate is not signed by the controller's CA (self-signed: CN=image-classifier)",
				"http-also-open", "plain HTTP answers on port 8080 next to HTTPS"),
			remediation(3, 3, "restart budget (3) spent; observed plain, desired mtls", "restart", t0.Add(-7*time.Minute)),
			func(r *state.Record) {
				r.Level.LastPlan = "restart budget (3) spent"
				r.LevelSince = t0.Add(-18 * time.Minute)
				r.AddTransition(state.Transition{At: t0.Add(-18 * time.Minute), From: "mtls", To: "plain", Cause: "probe"})
				for _, at := range []time.Duration{-16, -12, -7} {
					r.AddEvent(state.Event{At: t0.Add(at * time.Minute), Action: "restart", Result: "ok", Reason: "drift: observed plain, desired mtls"})
				}
			}),
		record("streaming", "crank-streaming-1", bundleExpires(t0.Add(88*24*time.Hour))),
	}
}

// bigStack is n containers as a large stack in the middle of a rebuild:
// services of one to eight replicas, every record holding as many
// transitions and events as the state keeps, all within the last hour.
// One service in nineteen is drifted, one in thirty-one below its floor,
// one in twenty-three never probed. It feeds the benchmarks and the 1,000
// container browser test.
func bigStack(n int) []state.Record {
	recs := make([]state.Record, 0, n)
	levels := []string{"mtls", "down", "plain", "tls"}
	for svc := 0; len(recs) < n; svc++ {
		name := fmt.Sprintf("svc-%04d", svc)
		for replica := 1; replica <= 1+svc%8 && len(recs) < n; replica++ {
			var opts []recOpt
			switch {
			case svc%31 == 5:
				opts = append(opts, observed("tls"), desired("mtls", "mtls"), drifted(true),
					probeFindings("client-auth-not-enforced", "the HTTPS port served a client without a certificate"))
			case svc%19 == 3:
				opts = append(opts, observed("plain"), drifted(false),
					probeFindings("untrusted-server-cert", "served certificate is not signed by the controller's CA"),
					remediation(3, 3, "restart budget (3) spent", "restart", t0.Add(-7*time.Minute)))
			case svc%23 == 7:
				opts = append(opts, neverProbed())
			}
			opts = append(opts, func(r *state.Record) {
				step := time.Hour / time.Duration(state.MaxTransitions+1)
				for i := range state.MaxTransitions {
					at := t0.Add(-time.Hour + time.Duration(i+1)*step)
					r.AddTransition(state.Transition{At: at, From: levels[i%4], To: levels[(i+1)%4], Cause: "after restart"})
				}
				step = time.Hour / time.Duration(state.MaxHistory+1)
				for i := range state.MaxHistory {
					r.AddEvent(state.Event{At: t0.Add(-time.Hour + time.Duration(i+1)*step), Action: []string{"restart", "signal", "issue", "relabel"}[i%4],
						Result: "ok", Reason: "drift: observed plain < desired mtls; findings untrusted-server-cert"})
				}
			})
			recs = append(recs, record(name, fmt.Sprintf("crank-%s-%d", name, replica), opts...))
		}
	}
	return recs
}
