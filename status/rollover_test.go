package status

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestBuildShowsWhatTheRolloverWaitsForAndWhatNot(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CET", 3600)
	at := time.Date(2026, 11, 29, 13, 0, 0, 0, paris)
	sum := Summary{CARollover: &Rollover{
		Phase: "overlap", Since: at, Done: 0, Total: 1, WaitingFor: []string{"platform"},
		Waiting: []RolloverMember{{Service: "platform", Container: "crank-platform-1", Reason: "process-older-than-bundle",
			Message: "waiting for a restart", Since: at, Stalled: true}},
		NotWaitedFor: []RolloverMember{{Service: "legacy-reporter", Container: "crank-legacy-reporter-1", Reason: "client-auth-not-enforced",
			Message: "quoted -----BEGIN CERTIFICATE-----"}},
	}}
	rep := Build(nil, sum, at, Query{})
	r := rep.Summary.CARollover
	if r == nil || r.Stalled != 1 || len(r.Waiting) != 1 || len(r.NotWaitedFor) != 1 {
		t.Fatalf("got rollover %+v, want one stalled service waited for and one container not waited for", r)
	}
	if loc := r.Waiting[0].Since.Location(); loc != time.UTC || r.Since.Location() != time.UTC {
		t.Errorf("got times in %v, want UTC", loc)
	}
	if msg := r.NotWaitedFor[0].Message; strings.Contains(msg, "BEGIN") {
		t.Errorf("got message %q, want PEM material redacted", msg)
	}
	if sum.CARollover.Waiting[0].Since.Location() != paris {
		t.Errorf("got the source summary changed, want it left as it was")
	}
	raw, err := json.Marshal(rep.Summary)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"waiting_for":["platform"]`, `"reason":"process-older-than-bundle"`, `"stalled":1`, `"not_waited_for":[{`} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("got %s, want it to hold %s", raw, field)
		}
	}
}
