package certs_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

func TestValidateServiceName(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		name string
		// wantErr is a substring the error must contain; "" means the name
		// must be accepted.
		wantErr string
	}{
		"should accept a simple lowercase name":             {name: "web"},
		"should accept digits and inner hyphens":            {name: "api-2-worker"},
		"should accept a single character":                  {name: "a"},
		"should accept a name made only of digits":          {name: "123"},
		"should accept exactly 63 characters":               {name: strings.Repeat("a", 63)},
		"should reject the empty name":                      {name: "", wantErr: "must not be empty"},
		"should reject a single dot":                        {name: ".", wantErr: "relative path element"},
		"should reject a parent directory reference":        {name: "..", wantErr: "relative path element"},
		"should reject a traversal with a slash":            {name: "../etc", wantErr: "path separator"},
		"should reject an absolute path":                    {name: "/", wantErr: "path separator"},
		"should reject a backslash":                         {name: `a\b`, wantErr: "path separator"},
		"should reject a NUL byte":                          {name: "a\x00b", wantErr: "NUL"},
		"should reject uppercase instead of folding it":     {name: "Web", wantErr: "must be lowercase"},
		"should reject 64 characters":                       {name: strings.Repeat("a", 64), wantErr: "at most 63"},
		"should reject a leading hyphen":                    {name: "-web", wantErr: "start or end with '-'"},
		"should reject a trailing hyphen":                   {name: "web-", wantErr: "start or end with '-'"},
		"should reject an underscore that compose allows":   {name: "my_service", wantErr: `invalid character '_'`},
		"should reject a dot inside the name":               {name: "web.internal", wantErr: `invalid character '.'`},
		"should reject a name starting with two dots":       {name: "..data", wantErr: `invalid character '.'`},
		"should reject non-ASCII letters":                   {name: "wéb", wantErr: `invalid character 'é'`},
		"should reject a newline that could forge log text": {name: "web\nlevel=ERROR", wantErr: `invalid character '\n'`},
		"should quote only the start of a huge name":        {name: strings.Repeat("x", 1000), wantErr: `"` + strings.Repeat("x", 128) + `"... (1000 bytes)`},
	}
	for desc, tc := range tests {
		t.Run(desc, func(t *testing.T) {
			t.Parallel()
			err := certs.ValidateServiceName(tc.name)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateServiceName(%q) = %v, want nil", tc.name, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateServiceName(%q) = nil, want an error containing %q", tc.name, tc.wantErr)
			}
			if !errors.Is(err, certs.ErrInvalidServiceName) {
				t.Errorf("errors.Is(%v, ErrInvalidServiceName) = false, want true", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %q, want it to contain %q", err, tc.wantErr)
			}
			if q := strconv.Quote(tc.name); len(tc.name) <= 128 && !strings.Contains(err.Error(), q) {
				t.Errorf("got error %q, want it to name the input as %s", err, q)
			}
		})
	}
}
