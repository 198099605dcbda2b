package swarm

import (
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// Modes of mounted bundle files. Secrets are files on a tmpfs only the
// task's container sees, so the key modes are about the users inside it.
const (
	certMode     fs.FileMode = 0o444
	keyMode      fs.FileMode = 0o400
	keyGroupMode fs.FileMode = 0o440
)

// Mount is where and as whom a generation is mounted into a service.
type Mount struct {
	Root     string // the certs root inside tasks, e.g. /certs
	Identity string
	Owner    certs.Owner // from crank.security.key-owner or the numeric user; -1 is root
}

// DesiredSecrets returns the secret references svc must have to mount g:
// every reference that is not part of the identity's bundle is kept as it
// is, in its order, and the five bundle files of g follow, at
// <root>/<identity>/<file>. A reference is part of the bundle when it
// points at one of the bundle's targets or at a secret of any of its
// generations (gens): so an old generation is swapped out, never mounted
// twice. Pure.
func DesiredSecrets(current []dockerwatch.SecretRef, g Generation, gens []Generation, m Mount) []dockerwatch.SecretRef {
	ours := map[string]bool{}
	for _, gen := range gens {
		for _, id := range gen.SecretIDs() {
			ours[id] = true
		}
	}
	targets := map[string]bool{}
	for _, f := range bundleFiles {
		targets[Target(m.Root, m.Identity, f)] = true
	}
	var out []dockerwatch.SecretRef
	for _, r := range current {
		if !ours[r.SecretID] && !targets[r.Target] {
			out = append(out, r)
		}
	}
	uid, gid := idString(m.Owner.UID), idString(m.Owner.GID)
	for _, f := range bundleFiles {
		s := g.Secrets[f]
		mode := certMode
		if isKeyFile(f) {
			mode = keyMode
			if m.Owner.GroupRead {
				mode = keyGroupMode
			}
		}
		out = append(out, dockerwatch.SecretRef{SecretID: s.ID, SecretName: s.Name, Target: Target(m.Root, m.Identity, f),
			UID: uid, GID: gid, Mode: mode})
	}
	return out
}

func idString(id int) string {
	if id < 0 {
		return "0"
	}
	return strconv.Itoa(id)
}

// SameSecrets reports whether two reference lists mount the same secrets
// at the same targets with the same owners and modes, in any order.
func SameSecrets(a, b []dockerwatch.SecretRef) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(r dockerwatch.SecretRef) string {
		return strings.Join([]string{r.SecretID, r.Target, r.UID, r.GID, strconv.FormatUint(uint64(r.Mode), 8)}, "|")
	}
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i], kb[i] = key(a[i]), key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}
