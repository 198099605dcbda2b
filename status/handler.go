package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Routes served by NewHandler.
const (
	PathStatus  = "/api/v1/status"
	PathService = "/api/v1/status/{service}"
)

// DefaultRefresh is how often the dashboard fetches the status again.
const DefaultRefresh = 5 * time.Second

// Option configures NewHandler.
type Option func(*handler)

// WithClock sets the clock used for generated_at and days_left. Default
// time.Now.
func WithClock(now func() time.Time) Option { return func(h *handler) { h.now = now } }

// WithRecent sets how many transitions and history events per container are
// shown. Default DefaultRecent.
func WithRecent(n int) Option { return func(h *handler) { h.recent = n } }

// WithRefresh sets the dashboard's refresh interval. Default
// DefaultRefresh.
func WithRefresh(d time.Duration) Option { return func(h *handler) { h.refresh = d } }

type handler struct {
	src     Source
	now     func() time.Time
	recent  int
	refresh time.Duration
	mux     *http.ServeMux
}

// NewHandler serves the status surface, read-only:
//
//	GET /api/v1/status            Report (JSON)
//	GET /api/v1/status/{service}  ServiceReport (JSON); 404 for an unknown service
//	GET /                         the dashboard (HTML)
//
// Both API paths take ?recent=N and ?since= (see ParseQuery); a bad value
// is a JSON 400.
//
// Every other path under /api/ is a JSON 404; JSON errors are ErrorBody.
// Mount it at the root of a mux (mux.Handle("/", h)); more specific
// patterns such as "GET /metrics" keep precedence.
func NewHandler(src Source, opts ...Option) http.Handler {
	h := &handler{src: src, now: time.Now, recent: DefaultRecent, refresh: DefaultRefresh}
	for _, o := range opts {
		o(h)
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc(PathStatus, getOnly(h.status))
	h.mux.HandleFunc(PathService, getOnly(h.service))
	h.mux.HandleFunc("GET /{$}", h.dashboard)
	h.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The status is only ever read, and a stale copy in a cache would hide
	// the drift it exists to show.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, r)
}

// report gathers the records and builds the report r asks for.
func (h *handler) report(r *http.Request) (Report, error) {
	now := h.now()
	q, err := ParseQuery(r.URL.Query(), now)
	if err != nil {
		return Report{}, err
	}
	if q.Recent == 0 && q.Since.IsZero() {
		q.Recent = h.recent
	}
	return h.build(q, now)
}

func (h *handler) build(q Query, now time.Time) (Report, error) {
	recs, err := h.src.Records()
	if err != nil {
		return Report{}, fmt.Errorf("listing state records: %w", err)
	}
	return Build(recs, h.src.Summary(), now, q), nil
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	rep, err := h.report(r)
	if err != nil {
		writeError(w, errorCode(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (h *handler) service(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("service")
	rep, err := h.report(r)
	if err != nil {
		writeError(w, errorCode(err), err.Error())
		return
	}
	sr, ok := ForService(rep, name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no managed container of service %q", name))
		return
	}
	writeJSON(w, http.StatusOK, sr)
}

func errorCode(err error) int {
	if errors.Is(err, errBadQuery) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// getOnly answers anything but GET and HEAD with a JSON 405: the surface is
// read-only.
func getOnly(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: the status API is read-only", r.Method))
			return
		}
		f(w, r)
	}
}

// writeJSON sends v compact: at a thousand containers indentation would
// double the encoding time and the bytes on the wire (pipe to jq, or use
// `controller status -o json`, to read it).
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// Only a bug in the model can get here; say so rather than send
		// half a document.
		writeError(w, http.StatusInternalServerError, "encoding status: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(ErrorBody{Error: strings.TrimSpace(msg)})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
