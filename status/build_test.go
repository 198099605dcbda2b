package status

import (
	"crypto"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/state"
)

func TestBuild(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		recs []state.Record
		// check inspects the report built at t0 with DefaultRecent.
		check func(t *testing.T, rep Report)
	}{
		"should pre-fill all four levels and count each container under its observed level": {
			recs: []state.Record{
				record("a", "a-1"), record("b", "b-1", observed("tls")), record("c", "c-1", observed("plain")),
				record("d", "d-1", observed("mtls")),
			},
			check: func(t *testing.T, rep Report) {
				want := map[string]int{"mtls": 2, "tls": 1, "plain": 1, "down": 0}
				if !reflect.DeepEqual(rep.Summary.Counts, want) {
					t.Errorf("counts: got %v, want %v", rep.Summary.Counts, want)
				}
				if rep.Summary.Containers != 4 {
					t.Errorf("containers: got %d, want 4", rep.Summary.Containers)
				}
			},
		},
		"should carry a swarm task's node, and none in compose mode": {
			recs: []state.Record{record("web", "web.1", func(r *state.Record) { r.Node = "n0de1d" }), record("api", "api-1")},
			check: func(t *testing.T, rep Report) {
				nodes := map[string]string{}
				for _, c := range rep.Containers {
					nodes[c.Container] = c.Node
				}
				if nodes["web.1"] != "n0de1d" || nodes["api-1"] != "" {
					t.Errorf("nodes: got %v, want web.1 on n0de1d and api-1 on none", nodes)
				}
			},
		},
		"should list identity findings with their source, reason and message": {
			recs: []state.Record{record("platform", "intruder-1", neverProbed(), func(r *state.Record) {
				r.Identity = state.IdentityRecord{Refused: true, Findings: []state.Finding{
					{Reason: "identity-conflict", Message: "identity platform belongs to compose service crank/platform"},
				}}
			})},
			check: func(t *testing.T, rep Report) {
				want := Finding{Source: SourceIdentity, Reason: "identity-conflict", Message: "identity platform belongs to compose service crank/platform"}
				if got := rep.Containers[0].Findings; len(got) != 1 || got[0] != want {
					t.Errorf("findings: got %+v, want [%+v]", got, want)
				}
			},
		},
		"should count a container that was never probed as unknown": {
			recs: []state.Record{record("a", "a-1", neverProbed())},
			check: func(t *testing.T, rep Report) {
				if got := rep.Containers[0].Observed; got != LevelUnknown {
					t.Errorf("observed: got %q, want %q", got, LevelUnknown)
				}
				if rep.Summary.Counts[LevelUnknown] != 1 || rep.Summary.Counts["down"] != 0 {
					t.Errorf("counts: got %v, want unknown=1 and down=0", rep.Summary.Counts)
				}
			},
		},
		"should give an empty stack all-zero counts and an empty, non-null container list": {
			check: func(t *testing.T, rep Report) {
				if rep.Containers == nil || len(rep.Containers) != 0 {
					t.Errorf("containers: got %#v, want []", rep.Containers)
				}
				if len(rep.Summary.Counts) != 4 {
					t.Errorf("counts: got %v, want the four levels at 0", rep.Summary.Counts)
				}
			},
		},
		"should round days_left down, and make it negative once expired": {
			recs: []state.Record{
				record("a", "a-1", bundleExpires(t0.Add(30*24*time.Hour-time.Second))),
				record("b", "b-1", bundleExpires(t0.Add(12*time.Hour))),
				record("c", "c-1", bundleExpires(t0.Add(-time.Hour))),
				record("d", "d-1", bundleExpires(time.Time{})),
			},
			check: func(t *testing.T, rep Report) {
				for i, want := range []*int{new(29), new(0), new(-1), nil} {
					got := rep.Containers[i].Bundle.DaysLeft
					if (got == nil) != (want == nil) || (got != nil && *got != *want) {
						t.Errorf("%s: days_left got %s, want %s", rep.Containers[i].Service, intp(got), intp(want))
					}
				}
			},
		},
		"should report the CA's days left": {
			check: func(t *testing.T, rep Report) {
				if d := rep.Summary.CADaysLeft; d == nil || *d != 3650 {
					t.Errorf("ca_days_left: got %s, want 3650", intp(d))
				}
			},
		},
		"should compute budget_left as budget minus attempts, never below zero": {
			recs: []state.Record{
				record("a", "a-1", remediation(1, 3, "", "restart", t0)),
				record("b", "b-1", remediation(5, 3, "restart budget (3) spent", "restart", t0)),
				record("c", "c-1"),
			},
			check: func(t *testing.T, rep Report) {
				for i, want := range []int{2, 0, 3} {
					if got := rep.Containers[i].Remediation.BudgetLeft; got != want {
						t.Errorf("%s: budget_left got %d, want %d", rep.Containers[i].Service, got, want)
					}
				}
			},
		},
		"should count drift, below_floor and degraded separately": {
			recs: []state.Record{
				record("a", "a-1", observed("plain"), drifted(false), remediation(3, 3, "spent", "restart", t0)),
				record("b", "b-1", observed("tls"), desired("mtls", "mtls"), drifted(true)),
				record("c", "c-1"),
			},
			check: func(t *testing.T, rep Report) {
				s := rep.Summary
				if s.Drift != 2 || s.BelowFloor != 1 || s.Degraded != 1 {
					t.Errorf("got drift=%d below_floor=%d degraded=%d, want 2, 1, 1", s.Drift, s.BelowFloor, s.Degraded)
				}
				if !rep.Containers[1].BelowFloor || rep.Containers[0].BelowFloor {
					t.Errorf("below_floor per container: got %v, %v, want false, true",
						rep.Containers[0].BelowFloor, rep.Containers[1].BelowFloor)
				}
			},
		},
		"should sort by service, then container name, then ID": {
			recs: []state.Record{
				record("streaming", "s-1", withID("e")), record("email-parser", "p-2", withID("d")),
				record("email-parser", "p-1", withID("b")), record("email-parser", "p-1", withID("a")),
				record("document-converter", "d-1", withID("c")),
			},
			check: func(t *testing.T, rep Report) {
				var got []string
				for _, c := range rep.Containers {
					got = append(got, c.Service+"/"+c.Container+"/"+c.ContainerID)
				}
				want := []string{"document-converter/d-1/c", "email-parser/p-1/a", "email-parser/p-1/b", "email-parser/p-2/d", "streaming/s-1/e"}
				if !slices.Equal(got, want) {
					t.Errorf("order: got %v, want %v", got, want)
				}
			},
		},
		"should keep only the last few transitions and events, oldest first": {
			recs: []state.Record{record("a", "a-1", transitions(8))},
			check: func(t *testing.T, rep Report) {
				c := rep.Containers[0]
				if len(c.Transitions) != DefaultRecent || len(c.History) != DefaultRecent {
					t.Fatalf("got %d transitions and %d events, want %d of each", len(c.Transitions), len(c.History), DefaultRecent)
				}
				if last := c.Transitions[DefaultRecent-1].At; !last.Equal(t0.Add(-time.Minute)) {
					t.Errorf("last transition at %v, want the newest (%v)", last, t0.Add(-time.Minute))
				}
			},
		},
		"should pair probe findings with their messages, then list bundle findings": {
			recs: []state.Record{record("a", "a-1",
				probeFindings("client-auth-not-enforced", "served a client without a certificate"),
				func(r *state.Record) { r.Level.ProbeFindings = append(r.Level.ProbeFindings, "http-also-open") }, // no message
				bundleFindings("renew-due"))},
			check: func(t *testing.T, rep Report) {
				want := []Finding{
					{Source: SourceProbe, Reason: "client-auth-not-enforced", Message: "served a client without a certificate"},
					{Source: SourceProbe, Reason: "http-also-open"},
					{Source: SourceBundle, Reason: "renew-due"},
				}
				if got := rep.Containers[0].Findings; !reflect.DeepEqual(got, want) {
					t.Errorf("findings: got %+v, want %+v", got, want)
				}
			},
		},
		"should carry identity, bundle, served, probe and remediation fields through": {
			recs: []state.Record{record("a", "a-1", remediation(1, 3, "", "restart", t0.Add(-time.Minute)),
				func(r *state.Record) { r.NeedsRestart, r.NeedsRestartReason = true, "key changed" })},
			check: func(t *testing.T, rep Report) {
				c := rep.Containers[0]
				if c.ContainerID != fakeID("a/a-1") || c.Project != "crank" || c.Bundle.ServerSerial != "5A1E" ||
					c.Bundle.IssuedReason != "missing" || c.Served.Fingerprint == "" || c.Probe.DurationMS != 12.5 ||
					c.Probe.Plan != "at desired level" || c.Remediation.OnDrift != "restart" || c.Remediation.LastAction != "restart" ||
					!c.NeedsRestart || c.NeedsRestartReason != "key changed" {
					t.Errorf("got %+v, want every field of the record carried through", c)
				}
			},
		},
		"should redact a free-text field that holds PEM material": {
			recs: []state.Record{record("a", "a-1",
				probeFindings("not-tls", "got -----BEGIN PRIVATE KEY-----\nMIGH...\n-----END PRIVATE KEY-----"))},
			check: func(t *testing.T, rep Report) {
				if m := rep.Containers[0].Findings[0].Message; strings.Contains(m, "PRIVATE KEY") {
					t.Errorf("message: got %q, want it redacted", m)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rep := Build(tc.recs, devSummary(), t0, Query{})
			if rep.APIVersion != "v1" {
				t.Errorf("api_version: got %q, want v1", rep.APIVersion)
			}
			tc.check(t, rep)
		})
	}
}

func TestForService(t *testing.T) {
	t.Parallel()
	rep := Build(demoStack(), devSummary(), t0, Query{})
	tests := map[string]struct {
		service    string
		wantFound  bool
		wantNumber int // containers returned
	}{
		"should return every container of a scaled service": {service: "email-parser", wantFound: true, wantNumber: 2},
		"should return the one container of a service":      {service: "platform", wantFound: true, wantNumber: 1},
		"should not find a service that has no container":   {service: "nope", wantFound: false, wantNumber: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sr, found := ForService(rep, tc.service)
			if found != tc.wantFound || len(sr.Containers) != tc.wantNumber {
				t.Errorf("got found=%v with %d containers, want %v with %d", found, len(sr.Containers), tc.wantFound, tc.wantNumber)
			}
		})
	}
}

// TestModelCarriesNoKeyMaterial walks the JSON model: no field may be named
// like key material or be able to hold it (bytes, interfaces, crypto types).
func TestModelCarriesNoKeyMaterial(t *testing.T) {
	t.Parallel()
	suspicious := regexp.MustCompile(`(?i)key|private|secret|pem|password|token`)
	signer := reflect.TypeFor[crypto.Signer]()
	seen := map[reflect.Type]bool{}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			if typ.Elem().Kind() == reflect.Uint8 {
				t.Errorf("%s is %s: raw bytes could carry key material", path, typ)
				return
			}
			walk(path+"[]", typ.Elem())
			return
		case reflect.Map:
			walk(path+"{}", typ.Elem())
			return
		case reflect.Interface:
			t.Errorf("%s is an interface (%s): it could hold anything, keys included", path, typ)
			return
		case reflect.Struct:
		default:
			return
		}
		if seen[typ] || typ == reflect.TypeFor[time.Time]() {
			return
		}
		seen[typ] = true
		if typ.Implements(signer) || reflect.PointerTo(typ).Implements(signer) {
			t.Errorf("%s (%s) is a crypto.Signer", path, typ)
		}
		if pkg := typ.PkgPath(); strings.HasPrefix(pkg, "crypto") {
			t.Errorf("%s is %s, a crypto type", path, typ)
		}
		for f := range typ.Fields() {
			name := f.Name + " " + f.Tag.Get("json")
			if suspicious.MatchString(name) {
				t.Errorf("%s.%s (json %q) is named like key material", path, f.Name, f.Tag.Get("json"))
			}
			walk(path+"."+f.Name, f.Type)
		}
	}
	for _, v := range []any{Report{}, ServiceReport{}, ErrorBody{}} {
		walk(reflect.TypeOf(v).Name(), reflect.TypeOf(v))
	}
}

func intp(p *int) string {
	if p == nil {
		return "nil"
	}
	return strconv.Itoa(*p)
}
