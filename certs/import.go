package certs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// ErrNoCA is returned by ReadTrustBundle for a state dir in which no CA
// exists yet.
var ErrNoCA = errors.New("no CA yet")

// StageImport writes ca, which CheckImport accepted, into the state dir as
// the staged import: ca-import.crt (certificate and chain), then
// ca-import.key (0600), each durably. It touches no other file, so it is
// safe next to a running controller, which adopts the staged CA when asked
// (AdoptSuccessor), or next to none, whose OpenAuthority then starts with
// it. The certificate goes first: a crash in between leaves a staged
// certificate without its key, which nobody adopts, and never a lone key.
func StageImport(dir string, ca *CA) error {
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return fmt.Errorf("staging the imported CA: %w", err)
	}
	if err := os.MkdirAll(dir, authDirPerm); err != nil {
		return fmt.Errorf("staging the imported CA: creating state dir: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("staging the imported CA: opening state dir: %w", err)
	}
	defer root.Close()
	staged := *ca
	staged.Imported = true
	if err := writeFileDurable(root, authImportCertFile, staged.ChainPEM(), authCertPerm, Owner{UID: -1, GID: -1}); err != nil {
		return fmt.Errorf("staging the imported CA in %s: %w", dir, err)
	}
	if err := writeFileDurable(root, authImportKeyFile, keyPEM, authKeyPerm, Owner{UID: -1, GID: -1}); err != nil {
		return fmt.Errorf("staging the imported CA in %s: %w", dir, err)
	}
	return nil
}

// ReadStagedImport reads the CA that StageImport staged in dir and checks
// it again with CheckImport at opts.Now (time has passed since the CLI
// checked it). fingerprint is the SHA-256 (hex) of the staged certificate,
// "" when the certificate file is missing or does not parse. err wraps
// fs.ErrNotExist when either file is missing, or is an *ImportError.
//
// dir is where the CLI staged it, next to its request: the Authority's own
// directory in a compose deployment, but not in swarm mode, where the
// Authority works on a copy elsewhere.
func ReadStagedImport(dir string, opts ImportOptions) (fingerprint string, ca *CA, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", nil, fmt.Errorf("reading the staged import: %w", err)
	}
	defer root.Close()
	err = func() error {
		certPEM, err := root.ReadFile(authImportCertFile)
		if err != nil {
			return fmt.Errorf("reading the staged import: %w", err)
		}
		if certs, err := ParseCertificatesPEM(certPEM); err == nil {
			fingerprint = certFingerprint(certs[0])
		}
		keyPEM, err := root.ReadFile(authImportKeyFile)
		if err != nil {
			return fmt.Errorf("reading the staged import: %w", err)
		}
		ca, err = CheckImport(ImportInput{CertPEM: certPEM, KeyPEM: keyPEM}, opts)
		return err
	}()
	return fingerprint, ca, err
}

// AdoptSuccessor makes ca, an imported CA (ReadStagedImport), the successor,
// as CreateSuccessor does with a new one, then removes the staged files.
// Order: ca-next.key, ca-next.crt, then ca-import.key and ca-import.crt
// (only while they still hold ca: a newer import staged meanwhile stays).
// A crash before ca-next.crt leaves a lone ca-next.key, which OpenAuthority
// removes, and the import still staged; one after it leaves a staged
// import equal to the successor, which OpenAuthority removes.
func (a *Authority) AdoptSuccessor(ca *CA) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.successor != nil && !a.successor.Cert.Equal(ca.Cert):
		return fmt.Errorf("adopting the imported CA: %w (%q)", ErrSuccessorExists, a.successor.Cert.Subject.CommonName)
	case ca.Cert.Equal(a.active.Cert):
		return fmt.Errorf("adopting the imported CA: %q is already the active CA", ca.Cert.Subject.CommonName)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return fmt.Errorf("adopting the imported CA: %w", err)
	}
	next := *ca
	next.Imported = true
	err = a.withRoot(func(root *os.Root) error {
		if err := a.completePromoteLocked(root); err != nil {
			return err
		}
		if a.successor == nil {
			if err := a.write(root, authNextKeyFile, keyPEM, authKeyPerm); err != nil {
				return err
			}
			if err := a.write(root, authNextCertFile, next.ChainPEM(), authCertPerm); err != nil {
				return err
			}
		}
		return dropStagedIf(root, certFingerprint(ca.Cert), a.remove)
	})
	if err != nil {
		return fmt.Errorf("adopting the imported CA in %s: %w", a.dir, err)
	}
	a.successor = &next
	return nil
}

// DropStagedImport removes the import staged in dir, unless it holds a CA
// other than the one whose fingerprint is given (an import staged since,
// which its own request will bring). The rotator calls it for an import it
// refused or adopted, so no staged key stays behind.
func DropStagedImport(dir, fingerprint string) error {
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing the staged import: %w", err)
	}
	defer root.Close()
	if err := dropStagedIf(root, fingerprint, removeDurable); err != nil {
		return fmt.Errorf("removing the staged import in %s: %w", dir, err)
	}
	return nil
}

// dropStagedIf removes the staged files with remove, unless the staged
// certificate parses and has another fingerprint.
func dropStagedIf(root *os.Root, fingerprint string, remove func(*os.Root, string) error) error {
	data, err := root.ReadFile(authImportCertFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading %s: %w", authImportCertFile, err)
	default:
		if certs, err := ParseCertificatesPEM(data); err == nil && certFingerprint(certs[0]) != fingerprint {
			return nil
		}
	}
	return removeStagedImport(root, remove)
}

// removeStagedImport removes ca-import.key, then ca-import.crt: a crash in
// between leaves only the public half.
func removeStagedImport(root *os.Root, remove func(*os.Root, string) error) error {
	if err := remove(root, authImportKeyFile); err != nil {
		return err
	}
	return remove(root, authImportCertFile)
}

// installImportLocked makes a staged import the first CA, in the order of
// createLocked: ca.creating, ca.key, ca.crt, then the staged files go and
// the marker last. A crash leaves the marker and the staged import, from
// which OpenAuthority finishes the same installation (resolveCreation).
func (a *Authority) installImportLocked(root *os.Root, ca *CA) error {
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if err := a.write(root, authCreatingFile, nil, authKeyPerm); err != nil {
		return err
	}
	if err := a.write(root, authKeyFile, keyPEM, authKeyPerm); err != nil {
		return err
	}
	if err := a.write(root, authCertFile, ca.ChainPEM(), authCertPerm); err != nil {
		return err
	}
	if err := removeStagedImport(root, a.remove); err != nil {
		return err
	}
	if err := a.remove(root, authCreatingFile); err != nil {
		return err
	}
	a.active = ca
	return nil
}

// ReadTrustBundle returns the trust bundle (TrustBundle) of the CA files
// in dir, reading them only: no repair, no creation, so the CLI can run it
// next to a running controller. A dir without a CA yet is ErrNoCA.
func ReadTrustBundle(dir string, now time.Time) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the trust bundle: %w", err)
	}
	defer root.Close()
	files, err := readAuthorityFiles(root)
	if err != nil {
		return nil, fmt.Errorf("reading the trust bundle in %s: %w", dir, err)
	}
	st, err := resolveAuthorityFiles(files, now)
	if err != nil {
		return nil, fmt.Errorf("reading the trust bundle in %s: %w", dir, err)
	}
	if st.active == nil {
		return nil, fmt.Errorf("reading the trust bundle in %s: %w: the controller creates (or installs an import as) its CA when it starts", dir, ErrNoCA)
	}
	a := &Authority{active: st.active, successor: st.successor, retiring: st.retiring}
	return a.TrustBundle(), nil
}
