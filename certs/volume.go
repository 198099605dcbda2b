package certs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"
)

// Layout of <root>/<service>/, after Kubernetes' AtomicWriter
// (pkg/volume/util/atomic_writer.go):
//
//	..2026_11_29_12_00_00.1a2b3c4d5e6f/   one generation: all five files
//	..data -> ..2026_11_29_12_00_00.1a2b3c4d5e6f
//	tls.crt -> ..data/tls.crt             visible files (and the other four)
//
// A reader that opens tls.crt resolves ..data at that moment, and ..data is
// replaced by a single rename, so a reader never sees a cert from one
// issuance next to a key from another.
const (
	dataLink    = "..data"
	dataTmpLink = "..data_tmp"
	// linkTmpPrefix names temporary visible links. It starts with ".." so
	// that generation cleanup removes any left behind by a crash.
	linkTmpPrefix        = "..link_tmp."
	generationTimeLayout = "2006_01_02_15_04_05"

	volDirMode      fs.FileMode = 0o755
	volCertMode     fs.FileMode = 0o644
	volKeyMode      fs.FileMode = 0o600
	volGroupKeyMode fs.FileMode = 0o640

	// maxBundleFileSize bounds what ReadBundle reads from a file that other
	// processes can write to; real PEM bundles are a few KiB.
	maxBundleFileSize = 1 << 20
)

// ErrUnsafePath is wrapped by errors about a volume layout the controller
// refuses to follow, such as a service directory that is a symlink. Writing a
// new bundle cannot repair it; a human has to look at the volume.
var ErrUnsafePath = errors.New("unsafe path in certs volume")

// ErrUnsafeFile is wrapped by errors about a bundle file that is not a
// regular file with one link (see UnsafeFile). Unlike ErrUnsafePath, writing
// a new bundle repairs it.
var ErrUnsafeFile = errors.New("unsafe file in bundle")

// bundleFileNames lists the files of a bundle in the order they are written.
var bundleFileNames = []string{FileServerCert, FileServerKey, FileClientCert, FileClientKey, FileCA}

// Volume is the shared certs volume: one directory per service, each holding
// an atomically swapped bundle. All file work goes through an os.Root of the
// volume (and of each service directory), so no service name, label or
// symlink planted inside the volume can make the controller read or write
// outside it.
//
// A Volume is safe for concurrent use. Operations on the same service are
// serialized; the volume must not be written by two processes at once (the
// state store's lock guarantees a single controller).
type Volume struct {
	dir  string
	root *os.Root
	now  func() time.Time // names generations; a field so tests can pin it

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per service, never removed (one per service ever seen)
}

// OpenVolume creates dir (0755) if needed and opens it as the certs root.
func OpenVolume(dir string) (*Volume, error) {
	if err := os.MkdirAll(dir, volDirMode); err != nil {
		return nil, fmt.Errorf("creating certs volume %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening certs volume %s: %w", dir, err)
	}
	return &Volume{dir: dir, root: root, now: time.Now, locks: map[string]*sync.Mutex{}}, nil
}

// Close releases the volume's directory handle.
func (v *Volume) Close() error { return v.root.Close() }

// Dir returns the directory the volume was opened with.
func (v *Volume) Dir() string { return v.dir }

// Owner says who should own a service's files, so that a container running
// as a non-root user can read its own key and, on engines without subpath
// mounts, cannot read other services' keys.
//
// The zero Owner means root:root; use -1 for UID and GID to leave ownership
// as created (the controller's own user).
type Owner struct {
	UID, GID  int  // -1 = leave as is
	GroupRead bool // keys 0640 instead of 0600, for a service that reads its key via its group
}

func (o Owner) keyMode() fs.FileMode {
	if o.GroupRead {
		return volGroupKeyMode
	}
	return volKeyMode
}

// fileMode is the mode a bundle file should have.
func (o Owner) fileMode(name string) fs.FileMode {
	if name == FileServerKey || name == FileClientKey {
		return o.keyMode()
	}
	return volCertMode
}

// Services lists the service directories present in the volume. Entries that
// are not real directories or whose names are not valid service names are
// left out: the controller never created them and must not act on them.
func (v *Volume) Services() ([]string, error) {
	d, err := v.root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("listing certs volume %s: %w", v.dir, err)
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("listing certs volume %s: %w", v.dir, err)
	}
	var services []string
	for _, e := range entries {
		if e.IsDir() && ValidateServiceName(e.Name()) == nil {
			services = append(services, e.Name())
		}
	}
	slices.Sort(services)
	return services, nil
}

// EnsureServiceDir creates <root>/<service> owned per owner. Engines that
// mount a volume subpath require the subdirectory to exist before the
// container is created.
func (v *Volume) EnsureServiceDir(service string, owner Owner) error {
	if err := ValidateServiceName(service); err != nil {
		return err
	}
	defer v.lock(service)()
	sub, err := v.ensureServiceDir(service, owner)
	if err != nil {
		return fmt.Errorf("ensuring directory for service %s: %w", service, err)
	}
	return sub.Close()
}

// RemoveBundle removes <root>/<service> entirely. A missing directory is not
// an error. If the entry is a symlink, only the link is removed.
func (v *Volume) RemoveBundle(service string) error {
	if err := ValidateServiceName(service); err != nil {
		return err
	}
	defer v.lock(service)()
	if err := v.root.RemoveAll(service); err != nil {
		return fmt.Errorf("removing bundle of service %s: %w", service, err)
	}
	if err := syncDir(v.root, "."); err != nil {
		return fmt.Errorf("removing bundle of service %s: %w", service, err)
	}
	return nil
}

// lock serializes operations on one service and returns the unlock func.
func (v *Volume) lock(service string) func() {
	v.mu.Lock()
	l, ok := v.locks[service]
	if !ok {
		l = new(sync.Mutex)
		v.locks[service] = l
	}
	v.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// openServiceDir opens <root>/<service> as its own os.Root, which confines
// every later operation to that one directory: a symlink inside it pointing
// at another service cannot be followed. The entry must be a real directory;
// os.Root would follow a symlink that stays inside the volume, so we check
// with Lstat and then confirm we opened the same directory. The open itself
// cannot block on whatever was swapped in after the Lstat.
func (v *Volume) openServiceDir(service string) (*os.Root, error) {
	fi, err := v.root.Lstat(service)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory (type %s); refusing to use it", ErrUnsafePath, service, fi.Mode().Type())
	}
	sub, same, err := openDirRoot(v.root, service, fi)
	if err != nil {
		return nil, err
	}
	if !same {
		return nil, fmt.Errorf("%w: %s changed while it was being opened", ErrUnsafePath, service)
	}
	return sub, nil
}

// ensureServiceDir creates the service directory if needed, applies the
// directory mode and owner, and opens it.
func (v *Volume) ensureServiceDir(service string, owner Owner) (*os.Root, error) {
	created := false
	if err := v.root.Mkdir(service, volDirMode); err == nil {
		created = true
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	sub, err := v.openServiceDir(service)
	if err != nil {
		return nil, err
	}
	if err := applyDirModeOwner(sub, volDirMode, owner); err != nil {
		sub.Close()
		return nil, err
	}
	if created {
		if err := syncDir(v.root, "."); err != nil {
			sub.Close()
			return nil, err
		}
	}
	return sub, nil
}
