package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketIdentities maps an identity name (the bundle directory, the client
// CN) to the one owner allowed to hold it. Unlike container records it is
// not a cache of anything Docker knows: it is the memory of who claimed a
// name first. A reader that predates the bucket ignores it, so adding it
// needs no schema version.
var bucketIdentities = []byte("identities")

// IdentityOwner is who holds an identity: one (compose project, compose
// service), or one container that compose did not create.
type IdentityOwner struct {
	// Key is the comparable form: "compose:<project>/<service>" or
	// "container:<name>". Two claims are the same owner iff keys are equal.
	Key       string
	Project   string    `json:",omitempty"`
	Service   string    `json:",omitempty"` // compose service
	Container string    `json:",omitempty"` // the container that made the first claim
	ClaimedAt time.Time // set by ClaimIdentity from Options.Now
}

// ClaimIdentity makes o the owner of name unless it already has one, and
// returns the owner on record after the call: o itself when the claim held,
// the earlier owner otherwise. The read and the write are one transaction,
// so two concurrent first claims cannot both win.
func (s *Store) ClaimIdentity(name string, o IdentityOwner) (IdentityOwner, error) {
	if name == "" || o.Key == "" {
		return IdentityOwner{}, errors.New("claiming identity: empty name or owner")
	}
	var owner IdentityOwner
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketIdentities)
		if err != nil {
			return err
		}
		if raw := b.Get([]byte(name)); raw != nil {
			if json.Unmarshal(raw, &owner) == nil && owner.Key != "" {
				return nil
			}
			// An owner that does not decode is no owner: the claim below
			// replaces it, and the reconciler logs who took it.
		}
		o.ClaimedAt = s.now().UTC()
		raw, err := json.Marshal(o)
		if err != nil {
			return err
		}
		owner = o
		return b.Put([]byte(name), raw)
	})
	if err != nil {
		return IdentityOwner{}, fmt.Errorf("claiming identity %s: %w", name, err)
	}
	return owner, nil
}

// IdentityOwnerOf returns the owner of name, if any.
func (s *Store) IdentityOwnerOf(name string) (IdentityOwner, bool, error) {
	var raw []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketIdentities); b != nil {
			if v := b.Get([]byte(name)); v != nil {
				raw = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		return IdentityOwner{}, false, fmt.Errorf("reading identity %s: %w", name, err)
	}
	var o IdentityOwner
	if raw == nil || json.Unmarshal(raw, &o) != nil || o.Key == "" {
		return IdentityOwner{}, false, nil
	}
	return o, true, nil
}

// ReleaseIdentity forgets name's owner, so the next claim wins it. Releasing
// a name that has no owner is not an error.
func (s *Store) ReleaseIdentity(name string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketIdentities); b != nil {
			return b.Delete([]byte(name))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("releasing identity %s: %w", name, err)
	}
	return nil
}

// Identities returns every owned identity by name.
func (s *Store) Identities() (map[string]IdentityOwner, error) {
	out := map[string]IdentityOwner{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdentities)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var o IdentityOwner
			if json.Unmarshal(v, &o) == nil && o.Key != "" {
				out[string(k)] = o
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing identities: %w", err)
	}
	return out, nil
}
