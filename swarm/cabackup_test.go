package swarm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

func TestCABackupSurvivesTheLossOfTheNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	engine := newFakeEngine()
	kek := bytes.Repeat([]byte{1}, 32)
	first := &CABackup{Dir: t.TempDir(), KEK: kek, Configs: engine}
	a, created, err := certs.OpenAuthority(first.Dir, certs.AuthorityOptions{}, t0)
	if err != nil || !created {
		t.Fatalf("creating the CA: %v", err)
	}
	if err := first.Save(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range engine.configs {
		if bytes.Contains(c.Data, []byte("PRIVATE KEY")) || c.Labels[LabelManaged] != ManagedCABackup {
			t.Fatalf("got backup %s with labels %v and a readable key", c.Name, c.Labels)
		}
	}

	// Another node: an empty working copy, the same swarm and KEK.
	second := &CABackup{Dir: filepath.Join(t.TempDir(), "ca"), KEK: kek, Configs: engine}
	restored, err := second.Restore(ctx)
	if err != nil || !restored {
		t.Fatalf("got restored=%v, %v; want the CA restored", restored, err)
	}
	b, _, err := certs.OpenAuthority(second.Dir, certs.AuthorityOptions{}, t0.Add(time.Hour))
	if err != nil || !b.Active().Cert.Equal(a.Active().Cert) {
		t.Fatalf("got CA %v (%v), want the same CA as before the loss", b, err)
	}
	if fi, err := os.Stat(filepath.Join(second.Dir, "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("got ca.key %v (%v), want mode 0600", fi, err)
	}
}

func TestCABackupSavesOnlyChangesAndKeepsThree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	engine := newFakeEngine()
	b := &CABackup{Dir: t.TempDir(), KEK: bytes.Repeat([]byte{1}, 32), Configs: engine}
	for i := range 5 {
		if err := os.WriteFile(filepath.Join(b.Dir, "ca.crt"), []byte{byte(i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := b.Save(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Save(ctx); err != nil { // unchanged: no new backup
			t.Fatal(err)
		}
	}
	all, err := b.backups(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("got %d backups (%v), want the newest 3", len(all), err)
	}
	plain, err := Unseal(b.KEK, all[2].Data)
	if err != nil || !bytes.Contains(plain, []byte(`"ca.crt":"BA=="`)) {
		t.Errorf("got newest backup %s (%v), want the last ca.crt", plain, err)
	}
}

func TestCABackupLeavesAWorkingCopyAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	engine := newFakeEngine()
	kek := bytes.Repeat([]byte{1}, 32)
	old := &CABackup{Dir: t.TempDir(), KEK: kek, Configs: engine}
	_ = os.WriteFile(filepath.Join(old.Dir, "ca.crt"), []byte("old"), 0o600)
	if err := old.Save(ctx); err != nil {
		t.Fatal(err)
	}
	newer := &CABackup{Dir: t.TempDir(), KEK: kek, Configs: engine}
	_ = os.WriteFile(filepath.Join(newer.Dir, "ca.crt"), []byte("newer"), 0o600)
	if restored, err := newer.Restore(ctx); err != nil || restored {
		t.Fatalf("got restored=%v, %v; want a directory with files left as it is", restored, err)
	}
	if got, _ := os.ReadFile(filepath.Join(newer.Dir, "ca.crt")); string(got) != "newer" {
		t.Errorf("got ca.crt %q, want the working copy's", got)
	}
}
