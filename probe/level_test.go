package probe

import (
	"errors"
	"slices"
	"testing"
)

func TestParseLevel(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in string
		// want is the parsed level; wantErr says an ErrUnknownLevel is expected.
		want    Level
		wantErr bool
	}{
		"should parse mtls":                         {in: "mtls", want: MTLS},
		"should parse tls":                          {in: "tls", want: TLS},
		"should parse plain":                        {in: "plain", want: Plain},
		"should parse down, for stored status":      {in: "down", want: Down},
		"should ignore case and surrounding spaces": {in: " mTLS ", want: MTLS},
		"should reject an empty value":              {in: "", wantErr: true},
		"should reject an unknown level":            {in: "https", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseLevel(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrUnknownLevel) {
					t.Errorf("got %q, %v, want an error wrapping ErrUnknownLevel", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v, want %q", got, err, tc.want)
			}
		})
	}
}

func TestRankOrdersLevels(t *testing.T) {
	t.Parallel()
	got := []int{Down.Rank(), Plain.Rank(), TLS.Rank(), MTLS.Rank(), Level("bogus").Rank()}
	if want := []int{0, 1, 2, 3, -1}; !slices.Equal(got, want) {
		t.Errorf("got ranks %v, want %v", got, want)
	}
}

func TestResultReasonsDeduplicates(t *testing.T) {
	t.Parallel()
	r := Result{Findings: []Finding{{Reason: SANMismatch}, {Reason: HealthNotOK}, {Reason: SANMismatch}}}
	if got, want := r.Reasons(), []Reason{SANMismatch, HealthNotOK}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestFingerprintOfNil(t *testing.T) {
	t.Parallel()
	if got := Fingerprint(nil); got != "" {
		t.Errorf("got %q, want empty", got)
	}
}
