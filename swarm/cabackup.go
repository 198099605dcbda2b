package swarm

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// ConfigStore is the part of the engine the CA backup uses.
type ConfigStore interface {
	Configs(ctx context.Context, label string) ([]dockerwatch.SwarmConfig, error)
	CreateConfig(ctx context.Context, name string, data []byte, labels map[string]string) (string, error)
	RemoveConfig(ctx context.Context, id string) error
}

// LabelDigest is a backup config's digest of what it holds, to tell
// whether the CA directory changed since.
const LabelDigest = "crank.security.digest"

// CABackup keeps the CA alive across the loss of the controller's node.
// The CA's directory (certs.Authority's files: the active CA, a successor
// and retiring CAs during a rollover) is a working copy, on a tmpfs in the
// stack file; its durable home is the swarm's Raft store, as a config
// sealed under the key-encryption key (see Seal). Secret values cannot be
// read back through the API, which is why the backup is a sealed config
// and the secret is only the small, never-changing KEK.
//
// Restore runs before the Authority opens: an empty directory is filled
// from the newest backup. Start then saves a new backup whenever the
// directory changed (a first CA, a rollover step), within Interval, and
// keeps the newest Keep. A crash between a CA step and its backup leaves
// the backup one step behind, which the rollover recovers from as from any
// crash (the CA files win; see rotation.ReconcileMeta).
type CABackup struct {
	Dir      string
	KEK      []byte
	Configs  ConfigStore
	Interval time.Duration // default 1s
	Keep     int           // default 3
	Log      *slog.Logger
	Clock    func() time.Time

	saved string // digest of the last backup written or read
}

// maxCAFile bounds what is read of one file of the CA directory.
const maxCAFile = 1 << 20

// Restore fills an empty CA directory from the newest backup and reports
// whether it did. A directory that holds files is left as it is: it is
// newer than any backup or equal to one.
func (b *CABackup) Restore(ctx context.Context) (bool, error) {
	files, err := readCADir(b.Dir)
	if err != nil {
		return false, err
	}
	newest, err := b.newest(ctx)
	if err != nil || newest == nil {
		return false, err
	}
	if len(files) > 0 {
		if digestOf(files) == newest.Labels[LabelDigest] {
			b.saved = newest.Labels[LabelDigest]
		}
		return false, nil
	}
	plain, err := Unseal(b.KEK, newest.Data)
	if err != nil {
		return false, fmt.Errorf("restoring the CA from backup %s: %w", newest.Name, err)
	}
	defer clear(plain)
	if err := json.Unmarshal(plain, &files); err != nil {
		return false, fmt.Errorf("restoring the CA from backup %s: %w", newest.Name, err)
	}
	if err := writeCADir(b.Dir, files); err != nil {
		return false, err
	}
	b.saved = digestOf(files)
	b.logger().Info("CA restored from its sealed backup in the swarm", keyBackups, newest.Name, keyDigest, b.saved)
	return true, nil
}

// Save writes a backup if the directory changed since the last one.
func (b *CABackup) Save(ctx context.Context) error {
	files, err := readCADir(b.Dir)
	if err != nil || len(files) == 0 {
		return err
	}
	d := digestOf(files)
	if d == b.saved {
		return nil
	}
	plain, err := json.Marshal(files)
	if err != nil {
		return fmt.Errorf("encoding the CA backup: %w", err)
	}
	blob, err := Seal(b.KEK, plain)
	clear(plain)
	if err != nil {
		return fmt.Errorf("sealing the CA backup: %w", err)
	}
	now := b.now()
	name := "crank-ca-backup-" + strconv.FormatInt(now.UnixNano(), 10)
	labels := map[string]string{LabelManaged: ManagedCABackup, LabelDigest: d}
	if _, err := b.Configs.CreateConfig(ctx, name, blob, labels); err != nil {
		return fmt.Errorf("saving the CA backup: %w", err)
	}
	b.saved = d
	b.logger().Info("CA backed up, sealed, to the swarm", keyBackups, name, keyDigest, d)
	return b.prune(ctx)
}

// Start saves at once and then every Interval until ctx ends. A failed
// save is logged and retried; Start returns nil when ctx ends.
func (b *CABackup) Start(ctx context.Context) error {
	every := cmp.Or(b.Interval, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	var last string
	for {
		err := b.Save(ctx)
		if msg := errString(err); msg != last && ctx.Err() == nil {
			last = msg
			if err != nil {
				b.logger().Error("backing up the CA to the swarm failed; the CA survives only on this node until it works", keyError, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// newest returns the newest backup config, or nil.
func (b *CABackup) newest(ctx context.Context) (*dockerwatch.SwarmConfig, error) {
	all, err := b.backups(ctx)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	return &all[len(all)-1], nil
}

// backups lists the backup configs, oldest first.
func (b *CABackup) backups(ctx context.Context) ([]dockerwatch.SwarmConfig, error) {
	all, err := b.Configs.Configs(ctx, LabelManaged+"="+ManagedCABackup)
	if err != nil {
		return nil, fmt.Errorf("listing CA backups: %w", err)
	}
	slices.SortFunc(all, func(x, y dockerwatch.SwarmConfig) int {
		return cmp.Or(x.CreatedAt.Compare(y.CreatedAt), cmp.Compare(x.Name, y.Name))
	})
	return all, nil
}

// prune keeps the newest Keep backups.
func (b *CABackup) prune(ctx context.Context) error {
	all, err := b.backups(ctx)
	if err != nil {
		return err
	}
	keep := cmp.Or(b.Keep, 3)
	var errs []error
	for i := 0; i < len(all)-keep; i++ {
		errs = append(errs, b.Configs.RemoveConfig(ctx, all[i].ID))
	}
	return errors.Join(errs...)
}

// readCADir reads every regular file of dir; a missing dir is empty.
func readCADir(dir string) (map[string][]byte, error) {
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening the CA directory: %w", err)
	}
	defer root.Close()
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		return nil, fmt.Errorf("reading the CA directory: %w", err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := fs.ReadFile(root.FS(), e.Name())
		if err != nil {
			return nil, fmt.Errorf("reading %s of the CA directory: %w", e.Name(), err)
		}
		if len(data) > maxCAFile {
			return nil, fmt.Errorf("%s in the CA directory is %d bytes, more than a CA file ever is", e.Name(), len(data))
		}
		files[e.Name()] = data
	}
	return files, nil
}

// writeCADir writes files into dir, each 0600 through a temporary name
// renamed into place, so the Authority never reads half a file.
func writeCADir(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the CA directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening the CA directory: %w", err)
	}
	defer root.Close()
	for name, data := range files {
		if !fs.ValidPath(name) || name == "." {
			return fmt.Errorf("restoring the CA: bad file name %q in the backup", name)
		}
		if err := root.WriteFile(name+".restore", data, 0o600); err != nil {
			return fmt.Errorf("restoring %s: %w", name, err)
		}
		if err := root.Rename(name+".restore", name); err != nil {
			return fmt.Errorf("restoring %s: %w", name, err)
		}
	}
	return nil
}

// digestOf is a SHA-256 over the files' names and contents, in name order.
func digestOf(files map[string][]byte) string {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(files[name]))
		h.Write(files[name])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (b *CABackup) logger() *slog.Logger {
	if b.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Log
}

func (b *CABackup) now() time.Time {
	if b.Clock == nil {
		return time.Now()
	}
	return b.Clock()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
