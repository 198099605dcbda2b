package state

import (
	"encoding/json"
	"slices"
	"sort"
	"sync"
)

// recordCache holds every record that decodes, as last written, so List
// (the status API on every request, the rollover on every step) costs a
// copy rather than a JSON decode of the whole store. It is filled by the
// first List and then kept by Put and Delete, after their transaction
// commits; this process holds the file's lock, so nothing else writes it.
type recordCache struct {
	mu     sync.Mutex
	filled bool
	recs   map[string]Record
	// writes counts every Put and Delete, filled or not, so a fill read
	// before a write that committed meanwhile is not taken.
	writes uint64
}

// put records raw, the JSON just committed for id. Decoding it again,
// rather than keeping the caller's value, shares no memory with a record
// the caller goes on changing.
func (c *recordCache) put(id string, raw []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if !c.filled {
		return
	}
	var r Record
	if json.Unmarshal(raw, &r) != nil {
		delete(c.recs, id)
		return
	}
	c.recs[id] = r
}

func (c *recordCache) delete(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	delete(c.recs, id)
}

// version is the write count a fill must still find to be taken.
func (c *recordCache) version() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// list returns copies of the cached records ordered by container ID, and
// false when the cache has not been filled yet.
func (c *recordCache) list() ([]Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.filled {
		return nil, false
	}
	out := make([]Record, 0, len(c.recs))
	for _, r := range c.recs {
		out = append(out, r.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerID < out[j].ContainerID })
	return out, true
}

// fill sets the cache to recs, read in one transaction that began when
// the write count was v; if anything was written since, the next List
// reads the store again.
func (c *recordCache) fill(v uint64, recs []Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writes != v {
		return
	}
	c.recs = make(map[string]Record, len(recs))
	for _, r := range recs {
		c.recs[r.ContainerID] = r.clone()
	}
	c.filled = true
}

// clone copies r's slices, so a caller that changes a listed record does
// not change the cache.
func (r Record) clone() Record {
	r.DNSNames = slices.Clone(r.DNSNames)
	r.Findings = slices.Clone(r.Findings)
	r.Identity.Findings = slices.Clone(r.Identity.Findings)
	r.Level.ProbeFindings = slices.Clone(r.Level.ProbeFindings)
	r.Level.ProbeMessages = slices.Clone(r.Level.ProbeMessages)
	r.History = slices.Clone(r.History)
	r.Transitions = slices.Clone(r.Transitions)
	return r
}
