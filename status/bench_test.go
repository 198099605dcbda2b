package status

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/state"
)

// The status API at 1,000 containers must answer within 100 ms. These
// benchmarks build the report (and encode it, as the handler does) and
// report the response size and the CPU used per operation (GC included),
// for two stacks of bigStack: "churning", where
// every container holds a full hour of transitions and actions (as many as
// the state keeps: the worst case), and "rebuild", where only the troubled
// services do. Run them with
//
//	go test ./status -run '^$' -bench . -benchmem

const benchContainers = 1000

var benchStacks = []struct {
	name  string
	churn func(svc int) bool
}{{"churning", always}, {"rebuild", troubled}}

func BenchmarkBuild1000(b *testing.B) {
	for _, s := range benchStacks {
		b.Run(s.name, func(b *testing.B) {
			recs := bigStack(benchContainers, s.churn)
			defer reportCPU(b)()
			for b.Loop() {
				Build(recs, devSummary(), t0, Query{})
			}
		})
	}
}

func BenchmarkBuildAndEncode1000(b *testing.B) {
	for _, s := range benchStacks {
		b.Run(s.name, func(b *testing.B) {
			recs := bigStack(benchContainers, s.churn)
			var size int
			defer reportCPU(b)()
			for b.Loop() {
				cw := &countingWriter{}
				if err := json.NewEncoder(cw).Encode(Build(recs, devSummary(), t0, Query{})); err != nil {
					b.Fatal(err)
				}
				size = cw.n
			}
			b.ReportMetric(float64(size), "bytes/response")
		})
	}
}

// BenchmarkStatusAPI1000 is a whole GET through the handler: the default
// answer, and the dashboard's (every action of the hour).
func BenchmarkStatusAPI1000(b *testing.B) {
	for _, s := range benchStacks {
		for _, path := range []string{PathStatus, PathStatus + "?since=1h"} {
			b.Run(s.name+path, func(b *testing.B) {
				benchGet(b, &fakeSource{recs: bigStack(benchContainers, s.churn), sum: devSummary()}, path)
			})
		}
	}
}

// BenchmarkStatusAPI1000FromStore adds what the controller's Source does
// on every request: list (and decode) the records from the state file.
func BenchmarkStatusAPI1000FromStore(b *testing.B) {
	for _, s := range benchStacks {
		b.Run(s.name, func(b *testing.B) {
			store, err := state.Open(b.TempDir(), state.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = store.Close() })
			for _, r := range bigStack(benchContainers, s.churn) {
				if err := store.Put(r); err != nil {
					b.Fatal(err)
				}
			}
			benchGet(b, Funcs{RecordsFunc: store.List, SummaryFunc: devSummary}, PathStatus+"?since=1h")
		})
	}
}

func benchGet(b *testing.B, src Source, path string) {
	h := NewHandler(src, WithClock(func() time.Time { return t0 }))
	var size int
	defer reportCPU(b)()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			b.Fatalf("GET %s: %d %s", path, w.Code, w.Body.String())
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/response")
}

// reportCPU starts counting CPU; the func it returns reports it per
// operation as cpu-ms/op.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}

type countingWriter struct{ n int }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

var _ io.Writer = (*countingWriter)(nil)
