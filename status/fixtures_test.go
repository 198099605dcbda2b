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
			RenewAt:      t0.Add(30 * 24 * time.Hour),
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

// bundleExpires sets when the bundle's leaves expire, renewal a month
// before, and the served leaf to the bundle's.
func bundleExpires(at time.Time) recOpt {
	return func(r *state.Record) {
		r.Bundle.NotAfter, r.Level.ServedNotAfter = at, at
		r.Bundle.RenewAt = time.Time{}
		if !at.IsZero() {
			r.Bundle.RenewAt = at.Add(-30 * 24 * time.Hour)
		}
	}
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
// services of one to eight replicas. When churn says so for a service,
// each of its records holds as many transitions and events as the state
// keeps, all within the last hour. One service in nineteen is drifted, one
// in thirty-one below its floor, one in twenty-three never probed. It feeds
// the benchmarks (everything churns: the worst case) and the 1,000
// container browser tests.
func bigStack(n int, churn func(svc int) bool) []state.Record {
	recs := make([]state.Record, 0, n)
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
			if !churn(svc) {
				recs = append(recs, record(name, fmt.Sprintf("crank-%s-%d", name, replica), opts...))
				continue
			}
			opts = append(opts, func(r *state.Record) {
				// Up at mtls, then down and back to where it is now, again
				// and again: a restart loop.
				step := time.Hour / time.Duration(state.MaxTransitions+1)
				now := r.ObservedLevel
				if now == "" {
					now = "mtls"
				}
				from := "unknown"
				for i := range state.MaxTransitions {
					to := "down"
					switch {
					case i == 0:
						to = "mtls"
					case (state.MaxTransitions-1-i)%2 == 0: // the last is now
						to = now
					}
					r.AddTransition(state.Transition{At: t0.Add(-time.Hour + time.Duration(i+1)*step), From: from, To: to, Cause: "after restart"})
					from = to
				}
				step = time.Hour / time.Duration(state.MaxHistory+1)
				for i := range state.MaxHistory {
					r.AddEvent(state.Event{At: t0.Add(-time.Hour + time.Duration(i+1)*step), Action: []string{"issue", "restart", "restart", "restart", "restart"}[i%5],
						Result: "ok", Reason: "drift: observed plain < desired mtls; findings untrusted-server-cert"})
				}
			})
			recs = append(recs, record(name, fmt.Sprintf("crank-%s-%d", name, replica), opts...))
		}
	}
	return recs
}

func always(int) bool { return true }

// troubled is the services of bigStack that drift or fall below the floor.
func troubled(svc int) bool { return svc%31 == 5 || svc%19 == 3 }

// rebuildStory is a stack an hour into a rebuild during a CA rollover, as
// the history screenshot shows it: replicas recreated, one flapping,
// image-classifier drifted and degraded after its restarts and a failed
// relabel, a renewal and its reload, and a legacy service that only
// speaks plain. Pair it with rolloverSummary.
func rebuildStory() []state.Record {
	ev := func(m int, action, result, reason string) state.Event {
		return state.Event{At: at(m), Action: action, Result: result, Reason: reason}
	}
	phaseReload := "CA rollover reload (phase overlap, once per phase)"
	return []state.Record{
		record("platform", "crank-platform-1", func(r *state.Record) {
			r.Transitions = []state.Transition{tr(-300, "unknown", "mtls")}
			r.History = []state.Event{ev(-24, "issue", "ok", "ca-changed"), ev(-23, "signal", "ok", phaseReload)}
		}),
		record("email-parser", "crank-email-parser-1", func(r *state.Record) {
			r.Transitions = []state.Transition{tr(-35, "unknown", "plain"), tr(-34, "plain", "mtls"), tr(-12, "mtls", "down"), tr(-10, "down", "mtls")}
			r.History = []state.Event{ev(-36, "issue", "ok", "missing"), ev(-22, "restart", "ok", phaseReload), ev(-12, "restart", "ok", "down for 30s")}
		}),
		record("email-parser", "crank-email-parser-2", func(r *state.Record) {
			r.Transitions = []state.Transition{tr(-35, "unknown", "plain"), tr(-34, "plain", "mtls")}
			r.History = []state.Event{ev(-36, "issue", "ok", "missing"), ev(-22, "restart", "ok", phaseReload)}
		}),
		record("email-parser", "crank-email-parser-3", func(r *state.Record) {
			r.Transitions = []state.Transition{tr(-34, "unknown", "mtls"), tr(-21, "mtls", "down"), tr(-20, "down", "mtls")}
			r.History = []state.Event{ev(-35, "issue", "ok", "missing"), ev(-21, "restart", "ok", phaseReload)}
		}),
		record("image-classifier", "crank-image-classifier-1", observed("plain"), drifted(false),
			probeFindings("untrusted-server-cert", "served certificate is not signed by the controller's CA (self-signed: CN=image-classifier)"),
			remediation(3, 3, "restart budget (3) spent; relabel failed; observed plain, desired mtls", "relabel", at(-3)),
			func(r *state.Record) {
				r.Level.LastPlan = "restart budget (3) spent"
				r.LevelSince = at(-18)
				r.Transitions = []state.Transition{tr(-50, "unknown", "mtls"), tr(-18, "mtls", "plain"), tr(-16, "plain", "down"), tr(-15, "down", "plain")}
				r.History = []state.Event{ev(-51, "issue", "ok", "missing"), ev(-16, "restart", "ok", "drift: observed plain, desired mtls"),
					ev(-12, "restart", "ok", "drift: observed plain, desired mtls"), ev(-7, "restart", "ok", "drift: observed plain, desired mtls"),
					ev(-3, "relabel", "error", "restart budget spent: recreate with the observed level")}
			}),
		record("document-converter", "crank-document-converter-1", func(r *state.Record) {
			r.Transitions = []state.Transition{tr(-400, "unknown", "mtls")}
			r.Bundle.IssuedReason, r.Bundle.IssuedAt = "renew-due", at(-40)
			r.Bundle.NotAfter, r.Level.ServedNotAfter = at(90*24*60-40), at(90*24*60-40)
			r.Bundle.RenewAt = at(60 * 24 * 60)
			r.History = []state.Event{ev(-40, "issue", "ok", "renew-due"), ev(-39, "signal", "ok", "served certificate is not the current tls.crt"),
				ev(-24, "issue", "ok", "ca-changed"), ev(-23, "signal", "ok", phaseReload)}
		}),
		record("streaming", "crank-streaming-1", func(r *state.Record) {
			r.Transitions = []state.Transition{tr(-200, "unknown", "mtls"), tr(-30, "mtls", "down"), tr(-26, "down", "mtls")}
			r.History = []state.Event{ev(-30, "restart", "ok", "bundle newer than the process"), ev(-22, "restart", "ok", phaseReload)}
			r.Bundle.NotAfter, r.Level.ServedNotAfter = at(12*24*60), at(12*24*60)
			r.Bundle.RenewAt = at(-1 * 24 * 60)
			r.Findings = []string{"renew-due"}
		}),
		record("legacy-reporter", "crank-legacy-reporter-1", desired("plain", "plain"), observed("plain"), func(r *state.Record) {
			r.Transitions = []state.Transition{tr(-600, "unknown", "plain")}
			r.Level.ServedFingerprint, r.Level.ServedNotAfter = "", time.Time{}
		}),
	}
}

// rolloverSummary is devSummary during a CA rollover's overlap, begun 25
// minutes ago.
func rolloverSummary() Summary {
	s := devSummary()
	s.CARollover = &Rollover{Phase: "overlap", Since: at(-25), Done: 6, Total: 8, WaitingFor: []string{"image-classifier", "legacy-reporter"}}
	return s
}
