package status

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/crank-platform/crank-mtls-controller/state"
)

// MaxRecent bounds ?recent=: nothing beyond what the state keeps exists.
const MaxRecent = max(state.MaxHistory, state.MaxTransitions)

// Query is what a request asks of the report.
type Query struct {
	// Recent is how many of the latest transitions and events each
	// container lists. Zero means DefaultRecent, or every one the state
	// keeps when Since is set.
	Recent int
	// Since starts the timelines and, when set, drops transitions and
	// events before it. Zero means DefaultWindow before now.
	Since time.Time
}

// errBadQuery marks an error of ParseQuery, answered with a 400.
var errBadQuery = errors.New("bad query")

// ParseQuery reads ?recent=N (1 or more, capped at MaxRecent) and ?since=
// (an RFC 3339 time, or a duration back from now such as 15m or 1h; not in
// the future, and capped at MaxWindow back).
func ParseQuery(v url.Values, now time.Time) (Query, error) {
	var q Query
	if s := v.Get("recent"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, fmt.Errorf("%w: recent=%q: want a whole number of 1 or more (at most %d are kept)", errBadQuery, s, MaxRecent)
		}
		q.Recent = min(n, MaxRecent)
	}
	if s := v.Get("since"); s != "" {
		t, err := parseSince(s, now)
		if err != nil {
			return q, err
		}
		q.Since = later(t, now.Add(-MaxWindow))
	}
	return q, nil
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%w: since=%q: want a positive duration back from now, e.g. 1h", errBadQuery, s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: since=%q: want an RFC 3339 time or a duration such as 15m or 1h", errBadQuery, s)
	}
	if !t.Before(now) {
		return time.Time{}, fmt.Errorf("%w: since=%q is not in the past", errBadQuery, s)
	}
	return t, nil
}
