package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// identityStore is the state as the identity requests use it.
type identityStore interface {
	ReleaseIdentity(name string) error
	Identities() (map[string]state.IdentityOwner, error)
	List() ([]state.Record, error)
}

// identityRequests carries out `controller identity release` requests and
// keeps identitiesFile current for `controller identity list`. Start blocks
// until ctx ends.
type identityRequests struct {
	stateDir string
	store    identityStore
	enqueue  func(id string)
	every    time.Duration
	log      *slog.Logger
	written  map[string]state.IdentityOwner
}

func (q *identityRequests) Start(ctx context.Context) error {
	t := time.NewTicker(q.every)
	defer t.Stop()
	for {
		if err := q.step(); err != nil {
			q.log.Error("identity requests", keyError, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// step releases every requested identity, then rewrites the owners file if
// it changed. After a release every container is reconciled again, so a
// refused claimant can take the name at once.
func (q *identityRequests) step() error {
	released, err := q.release()
	if err != nil {
		return err
	}
	if released > 0 {
		recs, err := q.store.List()
		if err != nil {
			return fmt.Errorf("listing records after a release: %w", err)
		}
		for _, r := range recs {
			q.enqueue(r.ContainerID)
		}
	}
	owners, err := q.store.Identities()
	if err != nil {
		return err
	}
	if q.written != nil && reflect.DeepEqual(owners, q.written) {
		return nil
	}
	return q.writeOwners(owners)
}

func (q *identityRequests) release() (int, error) {
	entries, err := os.ReadDir(q.stateDir)
	if err != nil {
		return 0, fmt.Errorf("reading state dir for identity requests: %w", err)
	}
	n := 0
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), identityReleasePrefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if err := certs.ValidateServiceName(name); err == nil {
			if err := q.store.ReleaseIdentity(name); err != nil {
				return n, err
			}
			n++
			q.log.Info(fmt.Sprintf("identity %s released by the operator; the next container that claims it becomes its owner", name),
				keyIdentity, name)
		}
		if err := os.Remove(filepath.Join(q.stateDir, e.Name())); err != nil {
			return n, fmt.Errorf("removing identity request %s: %w", e.Name(), err)
		}
	}
	return n, nil
}

func (q *identityRequests) writeOwners(owners map[string]state.IdentityOwner) error {
	raw, err := json.MarshalIndent(owners, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding identity owners: %w", err)
	}
	root, err := os.OpenRoot(q.stateDir)
	if err != nil {
		return fmt.Errorf("opening state dir: %w", err)
	}
	defer root.Close()
	if err := certs.WriteFileDurable(root, identitiesFile, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", identitiesFile, err)
	}
	q.written = owners
	return nil
}
