package swarm

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// Generation is one issuance of an identity's bundle: five secrets (one
// per file) and a manifest config with the public half. Secrets are
// immutable and unreadable, so a renewal or a CA phase is a new generation,
// swapped into the service's references by a rolling update.
type Generation struct {
	N        int
	Identity string
	Secrets  map[string]dockerwatch.Secret // by file name
	// Manifest is nil until the manifest config exists: it is created
	// last, so a generation without one is a creation that did not finish.
	Manifest *Manifest
}

// Manifest is the public half of a generation, read back from its config:
// facts as labels, certificates as data.
type Manifest struct {
	ConfigID          string
	CreatedAt         time.Time
	ServerFingerprint string
	Issuer            string   // SHA-256 of the CA that signed both leaves
	Trust             []string // SHA-256 of each CA in ca.crt, sorted
	NotAfter, RenewAt time.Time
	IssuedReason      string
	ServerSerial      string
	ClientSerial      string
	DNSNames          []string
	Owner             string
	PEM               ManifestPEM
}

// ManifestPEM is the data of a manifest config: the three certificate
// files of the generation. No key ever goes into a config.
type ManifestPEM struct {
	ServerCert []byte `json:"tls.crt"`
	ClientCert []byte `json:"client.crt"`
	CA         []byte `json:"ca.crt"`
}

// Complete reports whether every file's secret and the manifest exist.
func (g Generation) Complete() bool {
	if g.Manifest == nil {
		return false
	}
	for _, f := range bundleFiles {
		if _, ok := g.Secrets[f]; !ok {
			return false
		}
	}
	return true
}

// SecretIDs are the IDs of the generation's secrets.
func (g Generation) SecretIDs() []string {
	ids := make([]string, 0, len(g.Secrets))
	for _, s := range g.Secrets {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids
}

// Generations groups an identity's bundle secrets and manifest configs
// into generations, oldest first. Objects of other identities, or whose
// labels do not parse, are left out. Pure.
func Generations(identity string, secrets []dockerwatch.Secret, configs []dockerwatch.SwarmConfig) []Generation {
	byN := map[int]*Generation{}
	get := func(labels map[string]string) *Generation {
		n, err := strconv.Atoi(labels[LabelGeneration])
		if err != nil || n < 1 || labels[LabelIdentity] != identity || labels[LabelManaged] != ManagedBundle {
			return nil
		}
		if byN[n] == nil {
			byN[n] = &Generation{N: n, Identity: identity, Secrets: map[string]dockerwatch.Secret{}}
		}
		return byN[n]
	}
	for _, s := range secrets {
		if g := get(s.Labels); g != nil && slices.Contains(bundleFiles, s.Labels[LabelFile]) {
			g.Secrets[s.Labels[LabelFile]] = s
		}
	}
	for _, c := range configs {
		if g := get(c.Labels); g != nil {
			g.Manifest = manifestOf(c)
		}
	}
	out := make([]Generation, 0, len(byN))
	for _, g := range byN {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b Generation) int { return cmp.Compare(a.N, b.N) })
	return out
}

// manifestOf reads a manifest config. Unparseable facts are left zero,
// which the bundle checks treat as "must reissue".
func manifestOf(c dockerwatch.SwarmConfig) *Manifest {
	l := c.Labels
	m := &Manifest{
		ConfigID: c.ID, CreatedAt: c.CreatedAt,
		ServerFingerprint: l[LabelServerFingerprint], Issuer: l[LabelIssuer], Trust: splitList(l[LabelTrust]),
		NotAfter: parseTime(l[LabelNotAfter]), RenewAt: parseTime(l[LabelRenewAt]),
		IssuedReason: l[LabelIssuedReason], ServerSerial: l[LabelServerSerial], ClientSerial: l[LabelClientSerial],
		DNSNames: splitList(l[LabelDNSNames]), Owner: l[LabelOwner],
	}
	_ = json.Unmarshal(c.Data, &m.PEM) // a bad body leaves the PEM empty: reissued
	return m
}

// Latest is the newest complete generation, or nil.
func Latest(gens []Generation) *Generation {
	for i := len(gens) - 1; i >= 0; i-- {
		if gens[i].Complete() {
			return &gens[i]
		}
	}
	return nil
}

// NextN is the number of the generation to create next: one past every
// generation seen, complete or not, so a name is never reused.
func NextN(gens []Generation) int {
	if len(gens) == 0 {
		return 1
	}
	return gens[len(gens)-1].N + 1
}

// MountedGeneration is the generation whose secrets refs mount, by secret
// ID, or 0 when they mount none of gens (no bundle, or one already gone).
func MountedGeneration(refs []dockerwatch.SecretRef, gens []Generation) int {
	for _, r := range refs {
		for _, g := range gens {
			for _, s := range g.Secrets {
				if s.ID == r.SecretID {
					return g.N
				}
			}
		}
	}
	return 0
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	out := strings.Split(s, ",")
	slices.Sort(out)
	return out
}

func joinList(s []string) string {
	c := slices.Clone(s)
	slices.Sort(c)
	return strings.Join(c, ",")
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
