package status

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// OperatorIdentity is the service name (client certificate CN, and
// spiffe://<trust-domain>/service/operator) of the operator's client bundle.
const OperatorIdentity = "operator"

// WriteOperatorBundle issues a client identity for a human operator and
// writes it into dir as client.crt, client.key (0600) and ca.crt, the files
// `controller status --tls-dir dir` reads. dir is created 0700 (an existing
// one is tightened to 0700); it must be a real directory, not a symlink,
// and should live in the controller's state dir, never the shared certs
// volume, where every service could read the key.
//
// Each file is written durably (temporary file, fsync, rename, fsync of
// dir). The key is written before its certificate; a crash between the two
// leaves a mismatched pair that the next call (at the next start) replaces.
func WriteOperatorBundle(dir string, a *certs.Authority, opts certs.IssueOptions, now time.Time) error {
	opts.Now = now
	b, _, err := a.IssueBundle(certs.Identity{Service: OperatorIdentity, DNSNames: []string{OperatorIdentity}}, opts)
	if err != nil {
		return fmt.Errorf("issuing the operator's client certificate: %w", err)
	}
	if err := ensurePrivateDir(dir); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening operator dir %s: %w", dir, err)
	}
	defer root.Close()
	for _, f := range []struct {
		name string
		data []byte
		perm fs.FileMode
	}{
		{certs.FileCA, b.CA, 0o644},
		{certs.FileClientKey, b.ClientKey, 0o600},
		{certs.FileClientCert, b.ClientCert, 0o644},
	} {
		if err := certs.WriteFileDurable(root, f.name, f.data, f.perm); err != nil {
			return fmt.Errorf("writing operator bundle in %s: %w", dir, err)
		}
	}
	return nil
}

// ensurePrivateDir creates dir 0700, or checks that an existing dir is a
// directory (not a symlink someone planted) and makes it 0700.
func ensurePrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating operator dir: %w", err)
		}
		// MkdirAll's mode is filtered by the umask; set it exactly.
		return os.Chmod(dir, 0o700)
	case err != nil:
		return fmt.Errorf("checking operator dir: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("operator dir %s is not a directory (%s)", dir, fi.Mode().Type())
	case fi.Mode().Perm() != 0o700:
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("restricting operator dir: %w", err)
		}
	}
	return nil
}
