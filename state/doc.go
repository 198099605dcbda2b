// Package state is the controller's embedded memory across restarts: one
// bbolt file, <dir>/state.db, holding a JSON record per container (identity,
// bundle serials and expiry, last observed security level, remediation
// history) plus a small meta bucket (schema version, CA rollover progress).
//
// What it talks to: only the local filesystem, through go.etcd.io/bbolt. It
// never talks to Docker or the certs volume; callers gather from those and
// hand plain values to Put.
//
// The store is a CACHE. Everything in it can be rebuilt from Docker (which
// containers exist) and the certs volume (what bundles were written), so
// Open never refuses to start because of bad state: a file that bbolt cannot
// read, that fails its consistency check, or whose schema version is unknown
// is renamed to state.db.corrupt-<UTC timestamp>, logged at ERROR, and
// replaced with an empty store (Store.Rebuilt reports this). What is NOT a
// reason to rebuild: a lock held by another process (ErrLocked; another
// controller may be running on the same state dir and its file is fine) and
// errors opening the file at all, such as permission denied. Those are
// returned so the operator can fix them.
//
// The CA is NOT in this store. Its key and certificates live as files in the
// state dir (see certs.Authority), because losing them would force every
// service to be reissued and re-trusted; losing this file only costs a
// re-observation pass.
//
// Besides the records, a services bucket indexes them by service, so the
// replicas of one service are found without reading the whole store
// (ListService), and an identities bucket remembers the one owner of each
// identity (ClaimIdentity). Unlike the records, owners cannot be rebuilt
// from Docker: a rebuilt store starts first-claim-wins again.
//
// Writes: Put and Delete are durable when they return (a bbolt commit, an
// fdatasync). Note is for a record that differs from the stored one only in
// what a crash may lose, such as when a container was last probed: every
// read sees it at once, and Flush (every 10 s in the daemon, and at Close)
// writes all notes in one transaction. List answers from a copy of every
// record kept by Put, Delete and Flush.
//
// Schema: the meta bucket's "schema_version" key holds SchemaVersion as JSON.
// Version 2 added the services index; opening a version 1 file builds it.
// Opening an older version runs the migrations in schema.go in order;
// a newer, missing or undecodable version means a file we cannot interpret
// and is rebuilt as above.
package state
