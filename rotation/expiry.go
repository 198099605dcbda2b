package rotation

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// DefaultExpiryWarn are the default --expiry-warn thresholds: 30, 7 and 1
// days before the CA expires.
var DefaultExpiryWarn = []time.Duration{720 * time.Hour, 168 * time.Hour, 24 * time.Hour}

// ParseThresholds parses --expiry-warn: a comma-separated list of positive
// durations ("720h,168h,24h"), returned longest first without duplicates.
// An empty string is an error: there is no way to say "no warnings" by
// accident.
func ParseThresholds(s string) ([]time.Duration, error) {
	var out []time.Duration
	seen := map[time.Duration]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		d, err := time.ParseDuration(part)
		if err != nil {
			return nil, err
		}
		if d <= 0 {
			return nil, fmt.Errorf("threshold %s is not positive", d)
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("want a comma-separated list of durations, e.g. 720h,168h,24h")
	}
	sort.Slice(out, func(i, j int) bool { return out[i] > out[j] })
	return out, nil
}

// expiryWarnings remembers which thresholds were already logged, per CA
// (by fingerprint), for the life of the process. A restart logs the current
// one again, which is fine: it is still true.
type expiryWarnings struct {
	warned map[string]time.Duration // CA fingerprint -> tightest threshold logged
}

// due returns the threshold to log now for a CA expiring at notAfter, or
// false. Crossing several thresholds at once (a start 5 days before expiry)
// logs only the tightest one: the looser ones say less.
func (w *expiryWarnings) due(fingerprint string, notAfter, now time.Time, thresholds []time.Duration) (time.Duration, bool) {
	left := notAfter.Sub(now)
	var tightest time.Duration
	for _, t := range thresholds {
		if left <= t && (tightest == 0 || t < tightest) {
			tightest = t
		}
	}
	if tightest == 0 {
		return 0, false
	}
	if w.warned == nil {
		w.warned = map[string]time.Duration{}
	}
	if last, ok := w.warned[fingerprint]; ok && last <= tightest {
		return 0, false
	}
	w.warned[fingerprint] = tightest
	return tightest, true
}
