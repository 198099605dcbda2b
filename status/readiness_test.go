package status

import (
	"reflect"
	"slices"
	"testing"

	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

func TestJudgeProduction(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in ReadinessInput
		// wantFloor is the level production would require; wantReady the
		// verdict; wantCodes every finding's code in order, and
		// wantBlocking which of them block.
		wantFloor    probe.Level
		wantReady    bool
		wantCodes    []ReadinessCode
		wantBlocking []bool
	}{
		"should pass a container serving mtls as it asks": {
			in:        ReadinessInput{Observed: "mtls", Desired: "mtls", Minimum: probe.MTLS},
			wantFloor: probe.MTLS, wantReady: true,
		},
		"should refuse a plain-only service whose label asks for plain": {
			in:        ReadinessInput{Observed: "plain", Desired: "plain", Minimum: probe.MTLS},
			wantFloor: probe.MTLS, wantCodes: []ReadinessCode{ReadinessLabelBelowMinimum}, wantBlocking: []bool{true},
		},
		"should refuse a service that serves tls as its label asks when the minimum is mtls": {
			in: ReadinessInput{Observed: "tls", Desired: "tls", Minimum: probe.MTLS,
				ProbeFindings: []string{string(probe.ClientAuthNotEnforced)}},
			wantFloor: probe.MTLS, wantCodes: []ReadinessCode{ReadinessLabelBelowMinimum}, wantBlocking: []bool{true},
		},
		"should pass a tls label at tls when the minimum is tls": {
			in:        ReadinessInput{Observed: "tls", Desired: "tls", Minimum: probe.TLS},
			wantFloor: probe.TLS, wantReady: true,
		},
		"should note, without blocking, a label production lifts when the service already serves the minimum": {
			in:        ReadinessInput{Observed: "mtls", Desired: "plain", Minimum: probe.MTLS},
			wantFloor: probe.MTLS, wantReady: true,
			wantCodes: []ReadinessCode{ReadinessLabelLifted}, wantBlocking: []bool{false},
		},
		"should keep a label above the minimum as the floor": {
			in:        ReadinessInput{Observed: "tls", Desired: "mtls", Minimum: probe.TLS},
			wantFloor: probe.MTLS, wantCodes: []ReadinessCode{ReadinessBelowDesired}, wantBlocking: []bool{true},
		},
		"should refuse a drifted service as below its own desired level": {
			in: ReadinessInput{Observed: "plain", Desired: "mtls", Minimum: probe.MTLS,
				ProbeFindings: []string{string(probe.UntrustedServerCert), string(probe.HTTPAlsoOpen)}},
			wantFloor: probe.MTLS, wantCodes: []ReadinessCode{ReadinessBelowDesired}, wantBlocking: []bool{true},
		},
		"should refuse a container that is down": {
			in:        ReadinessInput{Observed: "down", Desired: "plain", Minimum: probe.MTLS},
			wantFloor: probe.MTLS, wantCodes: []ReadinessCode{ReadinessDown}, wantBlocking: []bool{true},
		},
		"should refuse a container never probed, with no level finding": {
			in:        ReadinessInput{Observed: LevelUnknown, Minimum: probe.TLS},
			wantFloor: probe.TLS, wantCodes: []ReadinessCode{ReadinessNotObserved}, wantBlocking: []bool{true},
		},
		"should treat an empty observed level as never probed": {
			in:        ReadinessInput{Desired: "mtls", Minimum: probe.MTLS},
			wantFloor: probe.MTLS, wantCodes: []ReadinessCode{ReadinessNotObserved}, wantBlocking: []bool{true},
		},
		"should name both an identity refusal and the missing observation": {
			in:        ReadinessInput{Observed: LevelUnknown, Minimum: probe.MTLS, IdentityRefused: true},
			wantFloor: probe.MTLS, wantCodes: []ReadinessCode{ReadinessIdentityRefused, ReadinessNotObserved},
			wantBlocking: []bool{true, true},
		},
		"should default an unset minimum to mtls, the flag's default": {
			in:        ReadinessInput{Observed: "tls", Desired: "tls"},
			wantFloor: probe.MTLS, wantCodes: []ReadinessCode{ReadinessLabelBelowMinimum}, wantBlocking: []bool{true},
		},
		"should never take down as a minimum": {
			in:        ReadinessInput{Observed: "plain", Desired: "plain", Minimum: probe.Down},
			wantFloor: probe.MTLS, wantCodes: []ReadinessCode{ReadinessLabelBelowMinimum}, wantBlocking: []bool{true},
		},
		"should pass everything that answers under a plain minimum": {
			in:        ReadinessInput{Observed: "plain", Desired: "plain", Minimum: probe.Plain},
			wantFloor: probe.Plain, wantReady: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := JudgeProduction(tc.in)
			if got.Floor != string(tc.wantFloor) || got.Ready != tc.wantReady {
				t.Errorf("got floor %s, ready %v, want %s, %v", got.Floor, got.Ready, tc.wantFloor, tc.wantReady)
			}
			var codes []ReadinessCode
			var blocking []bool
			for _, f := range got.Findings {
				codes, blocking = append(codes, f.Code), append(blocking, f.Blocking)
				if f.Message == "" {
					t.Errorf("finding %s has no message", f.Code)
				}
			}
			if !slices.Equal(codes, tc.wantCodes) || !slices.Equal(blocking, tc.wantBlocking) {
				t.Errorf("got codes %v (blocking %v), want %v (blocking %v)", codes, blocking, tc.wantCodes, tc.wantBlocking)
			}
			if got.Findings == nil {
				t.Errorf("got findings nil, want an empty list so the JSON says []")
			}
		})
	}
}

func TestJudgeProductionQuotesTheProbesFindings(t *testing.T) {
	t.Parallel()
	got := JudgeProduction(ReadinessInput{Observed: "tls", Desired: "tls", Minimum: probe.MTLS,
		ProbeFindings: []string{"client-auth-not-enforced"}})
	want := "serves tls (client-auth-not-enforced) as its label asks; production lifts it to mtls"
	if len(got.Findings) != 1 || got.Findings[0].Message != want {
		t.Errorf("got %+v, want one finding saying %q", got.Findings, want)
	}
}

func TestBuildCarriesTheProductionVerdict(t *testing.T) {
	t.Parallel()
	// demoStack in development: email-classifier asks for tls and serves
	// it, image-classifier drifted to plain; the other five serve mtls.
	sum := devSummary()
	sum.ProductionMinimum = probe.MTLS
	rep := Build(demoStack(), sum, t0, Query{})

	wantVerdict := ProductionVerdict{Minimum: "mtls", Ready: 5, Total: 7, Verdict: "ready for production: 5/7",
		Blocking: map[string]int{string(ReadinessLabelBelowMinimum): 1, string(ReadinessBelowDesired): 1}}
	if got := rep.Summary.Production; !reflect.DeepEqual(got, wantVerdict) {
		t.Errorf("summary.production: got %+v, want %+v", got, wantVerdict)
	}
	byService := map[string]Readiness{}
	for _, c := range rep.Containers {
		byService[c.Service] = c.Production
	}
	for svc, want := range map[string]ReadinessCode{"email-classifier": ReadinessLabelBelowMinimum, "image-classifier": ReadinessBelowDesired} {
		if got := byService[svc]; got.Ready || len(got.Findings) != 1 || got.Findings[0].Code != want {
			t.Errorf("%s: got %+v, want not ready with %s", svc, got, want)
		}
	}
	if got := byService["platform"]; !got.Ready || got.Floor != "mtls" {
		t.Errorf("platform: got %+v, want ready at floor mtls", got)
	}
	readyPerService := map[string]int{}
	for _, s := range rep.Services {
		readyPerService[s.Service] = s.ProductionReady
	}
	if readyPerService["email-parser"] != 2 || readyPerService["image-classifier"] != 0 {
		t.Errorf("services[].production_ready: got %v, want email-parser 2 and image-classifier 0", readyPerService)
	}

	sr, _ := ForService(rep, "email-parser")
	if sr.Production.Verdict != "ready for production: 2/2" {
		t.Errorf("service report verdict: got %q, want %q", sr.Production.Verdict, "ready for production: 2/2")
	}
}

func TestBuildJudgesARefusedIdentity(t *testing.T) {
	t.Parallel()
	rep := Build([]state.Record{record("platform", "intruder-1", neverProbed(),
		func(r *state.Record) { r.Identity.Refused = true })}, devSummary(), t0, Query{})
	got := rep.Containers[0].Production
	if got.Ready || len(got.Findings) != 2 || got.Findings[0].Code != ReadinessIdentityRefused || got.Findings[1].Code != ReadinessNotObserved {
		t.Errorf("got %+v, want not ready with identity-refused then not-observed", got)
	}
	if rep.Summary.Production.Verdict != "ready for production: 0/1" {
		t.Errorf("verdict: got %q, want %q", rep.Summary.Production.Verdict, "ready for production: 0/1")
	}
}
