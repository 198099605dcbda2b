package certs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// WriteBundle publishes b as the bundle of service, atomically: a reader of
// <root>/<service>/tls.crt etc. sees either the previous bundle or all of b,
// never a mix, and after a crash the directory holds one of the two.
//
// Steps (Kubernetes AtomicWriter plus fsync):
//  1. write the five files into a fresh generation dir ..<timestamp>.<rand>,
//     fsyncing each file and the dir; apply modes and owner;
//  2. fsync the service dir so the generation's entry is durable;
//  3. make sure the visible names are relative symlinks into ..data
//     (done before the swap, so that when a bundle first appears, all five
//     files appear together);
//  4. point ..data_tmp at the generation and rename it over ..data, the one
//     atomic step; fsync the service dir;
//  5. remove older generations and anything a killed writer left behind.
//
// All five fields must be non-empty: the volume never publishes an
// incomplete bundle. It returns the new generation's name.
func (v *Volume) WriteBundle(service string, b *BundleFiles, owner Owner) (generation string, err error) {
	if err := ValidateServiceName(service); err != nil {
		return "", err
	}
	if err := checkComplete(b); err != nil {
		return "", fmt.Errorf("writing bundle for service %s: %w", service, err)
	}
	defer v.lock(service)()
	sub, err := v.ensureServiceDir(service, owner)
	if err != nil {
		return "", fmt.Errorf("writing bundle for service %s: %w", service, err)
	}
	defer sub.Close()
	gen, err := v.publish(sub, b, owner)
	if err != nil {
		return "", fmt.Errorf("writing bundle for service %s: %w", service, err)
	}
	return gen, nil
}

// WriteCA replaces only ca.crt: it publishes a new generation holding the
// current generation's other four files and caPEM, with the same atomicity as
// WriteBundle. Used when only the trust bundle changed (a CA rollover), so
// the leaf keys stay as they are. If the current bundle is absent or lacks
// one of the other files, the error wraps fs.ErrNotExist: the caller should
// issue a whole bundle instead. So does a current bundle with an unsafe file,
// and then the error also wraps ErrUnsafeFile.
func (v *Volume) WriteCA(service string, caPEM []byte, owner Owner) (generation string, err error) {
	if err := ValidateServiceName(service); err != nil {
		return "", err
	}
	if len(caPEM) == 0 {
		return "", fmt.Errorf("writing %s for service %s: empty trust bundle", FileCA, service)
	}
	defer v.lock(service)()
	sub, err := v.openServiceDir(service)
	if err != nil {
		return "", fmt.Errorf("writing %s for service %s: %w", FileCA, service, err)
	}
	defer sub.Close()
	cur, err := readCurrent(sub)
	if err != nil {
		return "", fmt.Errorf("writing %s for service %s: reading current bundle: %w", FileCA, service, err)
	}
	if len(cur.Unsafe) > 0 {
		return "", fmt.Errorf("writing %s for service %s: current bundle %s: %w: %w",
			FileCA, service, cur.Generation, unsafeError(cur.Unsafe), fs.ErrNotExist)
	}
	next := &BundleFiles{
		ServerCert: cur.ServerCert, ServerKey: cur.ServerKey,
		ClientCert: cur.ClientCert, ClientKey: cur.ClientKey,
		CA: caPEM,
	}
	if err := checkComplete(next); err != nil {
		return "", fmt.Errorf("writing %s for service %s: current bundle %s is incomplete: %w: %w",
			FileCA, service, cur.Generation, err, fs.ErrNotExist)
	}
	if err := applyDirModeOwner(sub, volDirMode, owner); err != nil {
		return "", fmt.Errorf("writing %s for service %s: %w", FileCA, service, err)
	}
	gen, err := v.publish(sub, next, owner)
	if err != nil {
		return "", fmt.Errorf("writing %s for service %s: %w", FileCA, service, err)
	}
	return gen, nil
}

// FixPermissions re-applies directory and file modes and ownership to the
// service dir and its current generation, without rewriting content. Files
// missing from the generation are skipped (Validate reports them). An absent
// bundle is an error wrapping fs.ErrNotExist. If any file of the generation
// is unsafe (see UnsafeFile), nothing in the generation is changed and the
// error wraps ErrUnsafeFile: the caller should write a new bundle instead.
func (v *Volume) FixPermissions(service string, owner Owner) error {
	if err := ValidateServiceName(service); err != nil {
		return err
	}
	defer v.lock(service)()
	if err := v.fixPermissions(service, owner); err != nil {
		return fmt.Errorf("fixing permissions for service %s: %w", service, err)
	}
	return nil
}

// fixPermissions changes modes and owners only through descriptors of files
// it opened and checked, so a chown never reaches another file through a
// hard link, a symlink or a swap after the check.
func (v *Volume) fixPermissions(service string, owner Owner) error {
	sub, err := v.openServiceDir(service)
	if err != nil {
		return err
	}
	defer sub.Close()
	if err := applyDirModeOwner(sub, volDirMode, owner); err != nil {
		return err
	}
	gen, gr, _, err := resolveGeneration(sub)
	if err != nil {
		return err
	}
	defer gr.Close()
	entries, err := openEntries(gr)
	if err != nil {
		return fmt.Errorf("generation %s: %w", gen, err)
	}
	defer closeEntries(entries)
	if unsafe := unsafeEntries(entries); len(unsafe) > 0 {
		return fmt.Errorf("generation %s: %w", gen, unsafeError(unsafe))
	}
	if err := applyDirModeOwner(gr, volDirMode, owner); err != nil {
		return fmt.Errorf("generation %s: %w", gen, err)
	}
	for _, e := range entries {
		if e.f == nil {
			continue
		}
		if err := setModeOwner(e.f, e.fi, owner.fileMode(e.name), owner); err != nil {
			return fmt.Errorf("generation %s: %w", gen, err)
		}
	}
	return nil
}

// checkComplete rejects a bundle with any empty file.
func checkComplete(b *BundleFiles) error {
	if b == nil {
		return errors.New("nil bundle")
	}
	var missing []string
	for _, name := range bundleFileNames {
		if len(*bundleFilePtr(b, name)) == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("bundle is missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// bundleFilePtr returns a pointer to the field holding the named file's content.
func bundleFilePtr(b *BundleFiles, name string) *[]byte {
	switch name {
	case FileServerCert:
		return &b.ServerCert
	case FileServerKey:
		return &b.ServerKey
	case FileClientCert:
		return &b.ClientCert
	case FileClientKey:
		return &b.ClientKey
	case FileCA:
		return &b.CA
	}
	panic("certs: unknown bundle file " + name)
}

// Relink publishes b, a bundle read from the volume, byte for byte as a new
// generation of fresh files that carries b's WrittenAt. It breaks hard
// links that someone made to the bundle's files elsewhere in the volume,
// without changing a serial and without making a running process look
// older than its bundle: nothing it loaded has changed.
func (v *Volume) Relink(service string, b *BundleFiles, owner Owner) (generation string, err error) {
	if err := ValidateServiceName(service); err != nil {
		return "", err
	}
	if err := checkComplete(b); err != nil {
		return "", fmt.Errorf("relinking bundle of service %s: %w", service, err)
	}
	defer v.lock(service)()
	sub, err := v.ensureServiceDir(service, owner)
	if err != nil {
		return "", fmt.Errorf("relinking bundle of service %s: %w", service, err)
	}
	defer sub.Close()
	gen, err := v.publishAt(sub, b, owner, b.WrittenAt)
	if err != nil {
		return "", fmt.Errorf("relinking bundle of service %s: %w", service, err)
	}
	return gen, nil
}

// publish runs the AtomicWriter steps described on WriteBundle inside the
// service dir sub. The caller holds the service lock.
func (v *Volume) publish(sub *os.Root, b *BundleFiles, owner Owner) (string, error) {
	return v.publishAt(sub, b, owner, time.Time{})
}

// publishAt is publish with the generation's time set to writtenAt, unless
// that is zero.
func (v *Volume) publishAt(sub *os.Root, b *BundleFiles, owner Owner, writtenAt time.Time) (string, error) {
	gen := generationName(v.now())
	err := writeGeneration(sub, gen, b, owner)
	if err == nil && !writtenAt.IsZero() {
		err = sub.Chtimes(gen, writtenAt, writtenAt)
	}
	if err != nil {
		_ = sub.RemoveAll(gen) // best effort; the next write's cleanup retries it
		return "", err
	}
	if err := syncDir(sub, "."); err != nil {
		return "", err
	}
	if err := ensureVisibleLinks(sub); err != nil {
		return "", err
	}
	if err := swapData(sub, gen); err != nil {
		return "", err
	}
	if err := syncDir(sub, "."); err != nil {
		return "", err
	}
	// Cleanup is best effort: the bundle is already published, leftovers are
	// harmless to readers, and every later write retries the removal. Failing
	// the write here would only make the caller publish yet another one.
	removeStale(sub, gen)
	return gen, nil
}

// generationName returns a fresh ..<UTC timestamp>.<random> name. The random
// part keeps two writes within one second apart.
func generationName(now time.Time) string {
	return ".." + now.UTC().Format(generationTimeLayout) + "." + randomSuffix()
}

// writeGeneration creates the generation dir gen and writes every file into
// it durably, with its final mode and owner, before anything points at it.
// Files are written through a root of the new dir, so a service renaming or
// replacing gen in its directory meanwhile cannot redirect a write, and the
// dir itself goes to the owner last: until then only the controller can
// add, swap or link entries in it.
func writeGeneration(sub *os.Root, gen string, b *BundleFiles, owner Owner) error {
	if err := sub.Mkdir(gen, volDirMode); err != nil {
		return fmt.Errorf("creating generation %s: %w", gen, err)
	}
	gr, err := openNewDir(sub, gen)
	if err != nil {
		return fmt.Errorf("opening generation %s: %w", gen, err)
	}
	defer gr.Close()
	for _, name := range bundleFileNames {
		if err := writeFileDurable(gr, name, *bundleFilePtr(b, name), owner.fileMode(name), owner); err != nil {
			return fmt.Errorf("generation %s: %w", gen, err)
		}
	}
	if err := applyDirModeOwner(gr, volDirMode, owner); err != nil {
		return fmt.Errorf("generation %s: %w", gen, err)
	}
	return syncDir(gr, ".")
}

// openNewDir opens the directory name that the caller just created in sub,
// and fails if what it opened is not that directory.
func openNewDir(sub *os.Root, name string) (*os.Root, error) {
	fi, err := sub.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s was replaced by something that is not a directory (type %s)", name, fi.Mode().Type())
	}
	r, same, err := openDirRoot(sub, name, fi)
	if err == nil && !same {
		err = fmt.Errorf("%s was replaced while it was being opened", name)
	}
	return r, err
}

// ensureVisibleLinks makes each visible name a relative symlink
// "..data/<name>". A wrong entry (a regular file from an older layout, a
// symlink elsewhere, even a directory) is replaced by renaming a fresh link
// over it, so a correct-but-different entry never disappears for a moment.
func ensureVisibleLinks(sub *os.Root) error {
	changed := false
	for _, name := range bundleFileNames {
		want := dataLink + "/" + name
		if got, err := sub.Readlink(name); err == nil && got == want {
			continue
		}
		tmp := linkTmpPrefix + randomSuffix()
		if err := sub.Symlink(want, tmp); err != nil {
			return fmt.Errorf("creating link %s: %w", name, err)
		}
		if fi, err := sub.Lstat(name); err == nil && fi.IsDir() {
			if err := sub.RemoveAll(name); err != nil {
				_ = sub.Remove(tmp)
				return fmt.Errorf("removing directory in place of %s: %w", name, err)
			}
		}
		if err := sub.Rename(tmp, name); err != nil {
			_ = sub.Remove(tmp)
			return fmt.Errorf("creating link %s: %w", name, err)
		}
		changed = true
	}
	if changed {
		return syncDir(sub, ".")
	}
	return nil
}

// swapData points ..data at gen with one rename. A stale ..data_tmp from a
// killed writer is removed first; a ..data that is not a symlink (the volume
// was tampered with) is removed so the rename can replace it.
func swapData(sub *os.Root, gen string) error {
	if err := sub.RemoveAll(dataTmpLink); err != nil {
		return fmt.Errorf("removing stale %s: %w", dataTmpLink, err)
	}
	if err := sub.Symlink(gen, dataTmpLink); err != nil {
		return fmt.Errorf("creating %s: %w", dataTmpLink, err)
	}
	if fi, err := sub.Lstat(dataLink); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		if err := sub.RemoveAll(dataLink); err != nil {
			return fmt.Errorf("removing non-symlink %s: %w", dataLink, err)
		}
	}
	if err := sub.Rename(dataTmpLink, dataLink); err != nil {
		return fmt.Errorf("renaming %s over %s: %w", dataTmpLink, dataLink, err)
	}
	return nil
}

// removeStale removes every ".."-prefixed entry except ..data and the current
// generation: older generations, partial generations and temporary links
// left by a writer killed mid-way. RemoveAll through the root unlinks a
// symlink rather than following it.
func removeStale(sub *os.Root, keep string) {
	d, err := sub.Open(".")
	if err != nil {
		return
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return
	}
	// No fsync afterwards: a removal that does not survive a crash only
	// leaves a leftover that the next write removes again.
	for _, name := range names {
		if strings.HasPrefix(name, "..") && name != dataLink && name != keep {
			_ = sub.RemoveAll(name)
		}
	}
}
