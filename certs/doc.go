// Package certs is the controller's certificate authority and its bundle
// store: it issues, checks and writes the mTLS material of every service.
//
// Crypto half (no I/O except the Authority's own state directory):
//
//   - Authority (authority.go) owns the CA in the controller's STATE dir,
//     never in the shared volume: it creates an ECDSA P-256 CA on first run,
//     loads an existing or operator-provided one, refuses to replace CA
//     material it cannot use (ErrInvalidCA), and rolls the CA over in
//     crash-safe steps (CreateSuccessor or AdoptSuccessor, Promote,
//     Retire). Peers trust each CA's anchor (its root); leaves carry the
//     intermediates (chain.go).
//   - CheckImport (importcheck.go) is the ordered list of checks an
//     operator's root or intermediate must pass before anything is
//     written; StageImport (import.go) leaves it in the state dir for the
//     running controller to adopt, or for OpenAuthority to start with.
//   - IssueBundle (issue.go) signs a server and a client leaf per service,
//     clamped to the CA's lifetime, and returns them with the trust bundle
//     as PEM in a BundleFiles. IssueBundleFrom signs with the Successor
//     instead, for the prober's client bundle during a rollover.
//   - Validate (validate.go) is a pure, ordered list of checks, in the
//     style of cert-manager's renewal policies, that says why a bundle
//     must be reissued, rewritten or chmodded (Finding, Reason).
//
// Volume half (volume*.go, safeopen*.go, owner_*.go, names.go, fsutil.go):
// the shared certs volume, one directory per service, each bundle swapped
// atomically the way Kubernetes' AtomicWriter does, with all file work
// through os.Root. A service can plant anything in its own directory, so
// files there are opened without blocking or following links and judged by
// the opened file itself. This half imports no crypto.
//
// # Why one package
//
// The halves meet in the bundle model (bundle.go), and that model is not
// crypto: BundleFiles carries what the volume found on disk (generation,
// key modes and owners, unsafe files) next to the PEM, and Validate turns
// those findings into reasons. A change to what the volume can find, such
// as a hard-linked key, is a change to ReadBundle, UnsafeFile and Validate
// together. Split off, the volume would import certs for the model while the
// Authority still needs the volume's durable write (fsutil.go) for its state
// dir, so a third package would hold that one function, and every finding
// about a file on disk would cross two package boundaries. Keeping one
// package keeps those changes in one place; the two halves stay apart by
// file, and the volume's files use nothing of the crypto half but the model.
//
// The package talks to nothing but the file system; it does not know about
// Docker. Its callers decide when to issue, rotate or roll over.
package certs
