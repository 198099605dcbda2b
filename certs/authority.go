package certs

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"
)

// Files of the Authority inside its state directory.
const (
	authCertFile     = "ca.crt"          // active (issuing) CA certificate
	authKeyFile      = "ca.key"          // active CA key
	authNextCertFile = "ca-next.crt"     // successor certificate, during a rollover
	authNextKeyFile  = "ca-next.key"     // successor key
	authRetiringFile = "ca-retiring.crt" // old CA certificates still trusted
	// authCreatingFile marks a first-run creation in progress. Without it a
	// crash between writing ca.key and ca.crt would leave a lone key that is
	// indistinguishable from an operator's mistake, and the controller could
	// never start again without a human.
	authCreatingFile = "ca.creating"
	// authImportCertFile and authImportKeyFile hold a CA staged by
	// `controller ca import` (StageImport): its certificate with the chain
	// above it, and its key. The CLI writes them, never ca.* files; the
	// running controller adopts them as the successor (AdoptSuccessor), or
	// OpenAuthority installs them when there is no CA yet.
	authImportCertFile = "ca-import.crt"
	authImportKeyFile  = "ca-import.key"

	authKeyPerm  fs.FileMode = 0o600
	authCertPerm fs.FileMode = 0o644
	authDirPerm  fs.FileMode = 0o700
)

// Defaults of AuthorityOptions.
const (
	DefaultCACommonName = "crank-mtls-controller CA"
	DefaultCALifetime   = 10 * 365 * 24 * time.Hour // 87600h
)

// ErrSuccessorExists is returned by CreateSuccessor during a rollover that
// already has a successor; ErrNoSuccessor by Promote when there is none.
var (
	ErrSuccessorExists = errors.New("a successor CA already exists")
	ErrNoSuccessor     = errors.New("no successor CA to promote")
)

// AuthorityOptions configures OpenAuthority. Zero values take the defaults.
type AuthorityOptions struct {
	// CommonName of a CA the controller creates. Default
	// DefaultCACommonName. Successors get the creation time appended so two
	// CAs in one trust bundle are told apart in logs and by OpenSSL.
	CommonName string
	// KeyAlgorithm of a CA the controller creates (first run and
	// successors). Default ECDSAP256. An existing CA of any supported type
	// is loaded regardless.
	KeyAlgorithm KeyAlgorithm
	// Lifetime of a CA the controller creates. Default DefaultCALifetime.
	Lifetime time.Duration
}

func (o AuthorityOptions) withDefaults() (AuthorityOptions, error) {
	if o.CommonName == "" {
		o.CommonName = DefaultCACommonName
	}
	if o.KeyAlgorithm == "" {
		o.KeyAlgorithm = ECDSAP256
	}
	if _, err := ParseKeyAlgorithm(string(o.KeyAlgorithm)); err != nil {
		return o, err
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultCALifetime
	}
	if o.Lifetime < 0 {
		return o, fmt.Errorf("CA lifetime %v, want > 0", o.Lifetime)
	}
	return o, nil
}

// Authority is the controller's CA material in its STATE dir (never the
// shared volume):
//
//	ca.crt, ca.key (0600)            the active (issuing) CA
//	ca-next.crt, ca-next.key (0600)  successor, during a rollover (created, not yet issuing)
//	ca-retiring.crt                  old CA cert(s) still trusted after the switch, until retired
//	ca-import.crt, ca-import.key     a CA staged by `controller ca import`, until adopted
//
// A CA certificate file holds the CA's certificate followed by its chain up
// to the root (CA.ChainPEM): one certificate for a CA the controller
// created. ca-retiring.crt holds such runs one after the other. Peers are
// given the trust anchors (roots) only; leaves carry the intermediates.
//
// A rollover is CreateSuccessor (peers learn to trust the successor), then
// Promote once every bundle carries the new trust bundle (issuance
// switches), then Retire once every leaf of the old CA has been replaced.
//
// Every write goes through writeFileDurable (temp file, fsync, rename, fsync
// dir) inside an os.Root of the directory, and writes are ordered so that a
// crash at any point leaves a directory that OpenAuthority loads as either
// the state before or the state after the operation; no key is removed
// before its replacement is durable. The orderings are documented on each
// method and proven by TestAuthorityCrashStatesLoad.
//
// An Authority is safe for concurrent use.
type Authority struct {
	dir  string
	opts AuthorityOptions

	mu        sync.RWMutex
	active    *CA
	successor *CA
	retiring  []certPath // each old CA's certificate and its chain
	// pendingPromote is set once a Promote has switched ca.crt but not yet
	// finished rewriting ca.key and removing ca-next.*; mutators finish it
	// first, so CreateSuccessor can never overwrite the only copy of the
	// active key in ca-next.key.
	pendingPromote bool

	// afterStep, if set, is called after every durable file step with its
	// name. Tests use it to snapshot each intermediate state of the
	// directory and prove that every one of them loads.
	afterStep func(step string)
}

// Dir returns the state directory.
func (a *Authority) Dir() string { return a.dir }

// Active returns the issuing CA.
func (a *Authority) Active() *CA {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.active
}

// Successor returns the CA created by CreateSuccessor, or nil.
func (a *Authority) Successor() *CA {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.successor
}

// Retiring returns the old CA certificates still trusted after a Promote
// (each CA's own certificate, not the chain above it).
func (a *Authority) Retiring() []*x509.Certificate {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]*x509.Certificate, len(a.retiring))
	for i, p := range a.retiring {
		out[i] = p[0]
	}
	return out
}

// TrustBundle returns, as PEM, every trust anchor a peer must hold: the
// active CA's, the successor's, then the retiring ones', without
// duplicates. A CA's anchor is the root of its chain, so two intermediates
// of one root share it; a CA the controller created is its own anchor. The
// order is stable so that an unchanged bundle compares equal bytewise.
func (a *Authority) TrustBundle() []byte {
	return encodeCertsPEM(a.trustCerts())
}

// TrustPool returns a new pool holding the TrustBundle certificates.
func (a *Authority) TrustPool() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range a.trustCerts() {
		pool.AddCert(c)
	}
	return pool
}

func (a *Authority) trustCerts() []*x509.Certificate {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.trustCertsLocked()
}

// snapshot is the active CA and the trust bundle, read together; a nil
// Authority has neither.
func (a *Authority) snapshot() (*CA, []*x509.Certificate) {
	if a == nil {
		return nil, nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.active, a.trustCertsLocked()
}

func (a *Authority) trustCertsLocked() []*x509.Certificate {
	certs := []*x509.Certificate{a.active.Anchor()}
	if a.successor != nil {
		certs = append(certs, a.successor.Anchor())
	}
	for _, p := range a.retiring {
		certs = append(certs, p.anchor())
	}
	return dedupeCerts(certs)
}

// CreateSuccessor creates the next CA (options as for a first-run CA) and
// stores it as ca-next.*. It does not change issuance; the successor only
// joins the trust bundle. Order: ca-next.key, then ca-next.crt; a crash in
// between leaves a lone ca-next.key that nothing ever trusted, which
// OpenAuthority removes.
func (a *Authority) CreateSuccessor(now time.Time) (*CA, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.successor != nil {
		return nil, fmt.Errorf("creating successor CA: %w (%q)", ErrSuccessorExists, a.successor.Cert.Subject.CommonName)
	}
	name := a.opts.CommonName + " " + now.UTC().Format("2006-01-02T15:04:05Z")
	ca, err := NewCA(name, a.opts.KeyAlgorithm, a.opts.Lifetime, now)
	if err != nil {
		return nil, fmt.Errorf("creating successor CA: %w", err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return nil, fmt.Errorf("creating successor CA: %w", err)
	}
	err = a.withRoot(func(root *os.Root) error {
		if err := a.completePromoteLocked(root); err != nil {
			return err
		}
		if err := a.write(root, authNextKeyFile, keyPEM, authKeyPerm); err != nil {
			return err
		}
		return a.write(root, authNextCertFile, ca.ChainPEM(), authCertPerm)
	})
	if err != nil {
		return nil, fmt.Errorf("creating successor CA in %s: %w", a.dir, err)
	}
	a.successor = ca
	return ca, nil
}

// Promote makes the successor the issuing CA and moves the old active
// certificate (with its chain) to the retiring set, which stays in the
// trust bundle until Retire. Order, each step durable before the next:
//
//  1. ca-retiring.crt += old ca.crt   (still trusted whatever happens next)
//  2. ca.crt = successor certificate  (from here on OpenAuthority resolves the
//     successor as active, taking its key from ca-next.key)
//  3. ca.key = successor key
//  4. remove ca-next.crt, then ca-next.key
func (a *Authority) Promote() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.successor == nil {
		return fmt.Errorf("promoting CA: %w", ErrNoSuccessor)
	}
	next := a.successor
	retiring := dedupePaths(append(slices.Clone(a.retiring), a.active.path()))
	err := a.withRoot(func(root *os.Root) error {
		if err := a.completePromoteLocked(root); err != nil {
			return err
		}
		if err := a.write(root, authRetiringFile, encodePaths(retiring), authCertPerm); err != nil {
			return err
		}
		if err := a.write(root, authCertFile, next.ChainPEM(), authCertPerm); err != nil {
			return err
		}
		// Committed: a restart now loads the successor as active.
		a.active, a.successor, a.retiring, a.pendingPromote = next, nil, retiring, true
		return a.completePromoteLocked(root)
	})
	if err != nil {
		return fmt.Errorf("promoting CA in %s: %w", a.dir, err)
	}
	return nil
}

// completePromoteLocked finishes steps 3-4 of Promote if they are pending
// (after a failure, or after OpenAuthority found an interrupted Promote;
// ca.crt already holds the new active certificate then). Every step is
// idempotent.
func (a *Authority) completePromoteLocked(root *os.Root) error {
	if !a.pendingPromote {
		return nil
	}
	keyPEM, err := a.active.KeyPEM()
	if err != nil {
		return err
	}
	if err := a.write(root, authKeyFile, keyPEM, authKeyPerm); err != nil {
		return err
	}
	if err := a.remove(root, authNextCertFile); err != nil {
		return err
	}
	if err := a.remove(root, authNextKeyFile); err != nil {
		return err
	}
	a.pendingPromote = false
	return nil
}

// Retire drops the retiring certificates from the trust bundle by removing
// ca-retiring.crt (one atomic step). Call it only once no valid leaf signed
// by a retiring CA remains anywhere.
func (a *Authority) Retire() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.withRoot(func(root *os.Root) error {
		if err := a.completePromoteLocked(root); err != nil {
			return err
		}
		return a.remove(root, authRetiringFile)
	})
	if err != nil {
		return fmt.Errorf("retiring old CAs in %s: %w", a.dir, err)
	}
	a.retiring = nil
	return nil
}

// withRoot runs fn with an os.Root of the state dir. The root is opened per
// operation: mutations are rare, and the Authority then needs no Close.
func (a *Authority) withRoot(fn func(root *os.Root) error) error {
	root, err := os.OpenRoot(a.dir)
	if err != nil {
		return fmt.Errorf("opening state dir: %w", err)
	}
	defer root.Close()
	return fn(root)
}

func (a *Authority) write(root *os.Root, name string, data []byte, perm fs.FileMode) error {
	if err := writeFileDurable(root, name, data, perm, Owner{UID: -1, GID: -1}); err != nil {
		return err
	}
	a.step("write " + name)
	return nil
}

// remove deletes name if it exists and makes the removal durable.
func (a *Authority) remove(root *os.Root, name string) error {
	removed, err := removeFileDurable(root, name)
	if removed && err == nil {
		a.step("remove " + name)
	}
	return err
}

// removeDurable is removeFileDurable for callers that need not know
// whether the file was there.
func removeDurable(root *os.Root, name string) error {
	_, err := removeFileDurable(root, name)
	return err
}

// removeFileDurable deletes name if it exists and makes the removal
// durable (fsync of the directory); removed reports that it existed.
func removeFileDurable(root *os.Root, name string) (removed bool, err error) {
	err = root.Remove(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("removing %s: %w", name, err)
	}
	return true, syncDir(root, ".")
}

func (a *Authority) step(name string) {
	if a.afterStep != nil {
		a.afterStep(name)
	}
}

// OpenAuthority loads the CA material in dir, creating dir (0700) and a new
// CA when neither ca.crt nor ca.key exists; created reports that. When a
// CA staged by `controller ca import` waits there (StageImport) and is
// valid now, that CA becomes the first one instead of a new one (created is
// true as well).
//
// It never creates a CA over existing material. One of ca.crt/ca.key
// without the other, corrupt PEM, a key that does not match its
// certificate, a certificate that is not a CA, or rollover files without an
// active CA are errors wrapping ErrInvalidCA, and so is a CA that is not
// valid yet (a wrong clock). Operator-provided CAs (RSA, ECDSA or Ed25519
// keys in PKCS#1, PKCS#8 or SEC1 PEM) load like our own.
//
// An expired active CA is an error wrapping ErrCAExpired (and not
// ErrInvalidCA), returned together with the loaded, non-nil Authority, so a
// rotation policy can recover with CreateSuccessor and Promote.
//
// If a previous process crashed in the middle of creating the CA or of a
// rollover step, OpenAuthority finishes that step (see Authority) before
// returning.
func OpenAuthority(dir string, opts AuthorityOptions, now time.Time) (a *Authority, created bool, err error) {
	return openAuthority(dir, opts, now, nil)
}

// openAuthority is OpenAuthority with a test hook called after every
// durable step (see Authority.afterStep).
// applyPlanLocked carries out the repair plan st that resolveAuthorityFiles
// made of the files on disk: a creation (fresh, from a key left by an
// interrupted one, or from a staged import), or the clean-up of files a
// crash left and the end of a promotion. It reports whether a CA was
// created.
func (a *Authority) applyPlanLocked(root *os.Root, st authorityState, now time.Time) (bool, error) {
	a.active, a.successor, a.retiring, a.pendingPromote = st.active, st.successor, st.retiring, st.pendingPromote
	switch {
	case st.create:
		return true, a.createLocked(root, now)
	case st.createFromKey != nil:
		return true, a.finishCreateLocked(root, st.createFromKey, now)
	case st.createFromImport != nil:
		return true, a.installImportLocked(root, st.createFromImport)
	}
	if st.removeImport {
		if err := removeStagedImport(root, a.remove); err != nil {
			return false, err
		}
	}
	if st.removeNext {
		if err := a.remove(root, authNextKeyFile); err != nil {
			return false, err
		}
	}
	if st.removeMarker {
		if err := a.remove(root, authCreatingFile); err != nil {
			return false, err
		}
	}
	return false, a.completePromoteLocked(root)
}

func openAuthority(dir string, opts AuthorityOptions, now time.Time, afterStep func(string)) (a *Authority, created bool, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, false, fmt.Errorf("opening CA: %w", err)
	}
	if dir == "" {
		return nil, false, errors.New("opening CA: empty state dir")
	}
	if err := os.MkdirAll(dir, authDirPerm); err != nil {
		return nil, false, fmt.Errorf("opening CA: creating state dir: %w", err)
	}
	a = &Authority{dir: dir, opts: opts, afterStep: afterStep}
	err = a.withRoot(func(root *os.Root) error {
		files, err := readAuthorityFiles(root)
		if err != nil {
			return err
		}
		st, err := resolveAuthorityFiles(files, now)
		if err != nil {
			return err
		}
		created, err = a.applyPlanLocked(root, st, now)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("opening CA in %s: %w", dir, err)
	}
	if err := checkCATime(a.active, now); err != nil {
		if errors.Is(err, ErrCAExpired) {
			return a, created, fmt.Errorf("opening CA in %s: %w", dir, err)
		}
		return nil, false, fmt.Errorf("opening CA in %s: %w", dir, err)
	}
	return a, created, nil
}

// createLocked creates the first CA. Order: ca.creating marker, ca.key,
// ca.crt, remove the marker. A crash leaves the marker, which tells
// OpenAuthority that a lone ca.key is ours and that nothing was issued yet.
func (a *Authority) createLocked(root *os.Root, now time.Time) error {
	key, err := generateKey(a.opts.KeyAlgorithm)
	if err != nil {
		return fmt.Errorf("creating CA: %w", err)
	}
	keyPEM, err := MarshalPrivateKeyPEM(key)
	if err != nil {
		return err
	}
	if err := a.write(root, authCreatingFile, nil, authKeyPerm); err != nil {
		return err
	}
	if err := a.write(root, authKeyFile, keyPEM, authKeyPerm); err != nil {
		return err
	}
	return a.finishCreateLocked(root, key, now)
}

// finishCreateLocked self-signs the CA certificate for key, writes ca.crt and
// removes the creation marker.
func (a *Authority) finishCreateLocked(root *os.Root, key crypto.Signer, now time.Time) error {
	ca, err := selfSignCA(a.opts.CommonName, key, a.opts.Lifetime, now)
	if err != nil {
		return err
	}
	if err := a.write(root, authCertFile, ca.CertPEM(), authCertPerm); err != nil {
		return err
	}
	if err := a.remove(root, authCreatingFile); err != nil {
		return err
	}
	a.active = ca
	return nil
}
