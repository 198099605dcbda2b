package certs_test

import (
	"errors"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// dnsLabel is an independent statement of RFC 1123 label syntax, lowercase
// only, used as the oracle for ValidateServiceName.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func FuzzValidateServiceName(f *testing.F) {
	for _, seed := range []string{
		"web", "a", "api-2", strings.Repeat("a", 63), strings.Repeat("a", 64),
		"", ".", "..", "../etc", "/", `\`, "a/b", "a\x00", "Web", "-a", "a-",
		"..data", "my_service", "wéb", "web\n", "a..b", "./a", "%2e%2e",
	} {
		f.Add(seed)
	}
	root := filepath.Join(string(filepath.Separator), "var", "lib", "certs")
	f.Fuzz(func(t *testing.T, name string) {
		err := certs.ValidateServiceName(name)
		if want := dnsLabel.MatchString(name); (err == nil) != want {
			t.Fatalf("ValidateServiceName(%q) = %v, want accepted=%v (DNS label oracle)", name, err, want)
		}
		if err != nil {
			if !errors.Is(err, certs.ErrInvalidServiceName) {
				t.Fatalf("errors.Is(%v, ErrInvalidServiceName) = false, want true", err)
			}
			quoted := name
			if len(quoted) > 128 {
				quoted = quoted[:128]
			}
			if q := strconv.Quote(quoted); !strings.Contains(err.Error(), q) {
				t.Fatalf("got error %q, want it to quote the input as %s", err, q)
			}
			return
		}
		if strings.Contains(name, "/") || strings.Contains(name, `\`) || strings.Contains(name, "..") {
			t.Fatalf("accepted %q, which contains a separator or ..", name)
		}
		if !filepath.IsLocal(name) {
			t.Fatalf("accepted %q, which filepath.IsLocal rejects", name)
		}
		joined := filepath.Join(root, name)
		if filepath.Dir(joined) != root || filepath.Base(joined) != name {
			t.Fatalf("filepath.Join(%q, %q) = %q, want a direct child of the root", root, name, joined)
		}
	})
}
