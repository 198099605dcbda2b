package servicekit

import (
	"slices"
	"testing"
)

func TestDecideLevel(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		present FileSet
		// want is the level and reason code; wantMessage the exact text,
		// since humans read it in the start-up line.
		want        Level
		wantReason  LevelReason
		wantMessage string
	}{
		"should serve mtls with the full bundle": {
			present: AllFiles(), want: LevelMTLS, wantReason: ReasonFullBundle, wantMessage: "full bundle present",
		},
		"should serve mtls without the client pair, which only outgoing calls use": {
			present: FileSet{FileServerCert: true, FileServerKey: true, FileCA: true},
			want:    LevelMTLS, wantReason: ReasonFullBundle, wantMessage: "full bundle present",
		},
		"should serve tls without client auth when ca.crt is missing": {
			present: FileSet{FileServerCert: true, FileServerKey: true}, want: LevelTLS, wantReason: ReasonNoTrustBundle,
			wantMessage: "tls.crt and tls.key present but no ca.crt: TLS without client auth",
		},
		"should serve plain and name the missing key": {
			present: FileSet{FileServerCert: true, FileCA: true}, want: LevelPlain, wantReason: ReasonNoServerPair,
			wantMessage: "no usable server cert (missing tls.key): plain HTTP",
		},
		"should serve plain and name both server files when nothing is there": {
			present: FileSet{}, want: LevelPlain, wantReason: ReasonNoServerPair,
			wantMessage: "no usable server cert (missing tls.crt, tls.key): plain HTTP",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := DecideLevel(tc.present)
			if got.Level != tc.want || got.Reason != tc.wantReason || got.Message != tc.wantMessage {
				t.Errorf("got %+v, want level %s reason %s message %q", got, tc.want, tc.wantReason, tc.wantMessage)
			}
		})
	}
}

func TestParseEnvironment(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in string
		// want is the environment; wantErr whether the value is refused.
		want    Environment
		wantErr bool
	}{
		"should default to development":          {in: "", want: Development},
		"should accept production":               {in: "production", want: Production},
		"should accept development":              {in: "development", want: Development},
		"should refuse a value it does not know": {in: "prod", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseEnvironment(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestFileSetNames(t *testing.T) {
	t.Parallel()
	if got := (FileSet{}).Names(); got == nil || len(got) != 0 {
		t.Errorf("got %#v for an empty set, want an empty non-nil slice", got)
	}
	want := []string{FileServerCert, FileServerKey, FileClientCert, FileClientKey, FileCA}
	if got := AllFiles().Names(); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
