// Package testpki mints certificate authorities and leaf certificates in
// memory for tests, so no key or certificate is ever committed to expire
// later (as mkcert's and caddy's tests do).
//
// A CA comes from NewCA (a root) or NewIntermediate (signed by another
// CA, and knowing its Parents up to the root) and signs leaves with Issue;
// all take the same option functions, so a test states only what it cares
// about (a name, a validity window, a key, a usage, a path length). Every
// certificate comes with its PEM and its PKCS#8 key PEM ready to write into
// a bundle.
//
// It imports nothing from this module, so any package's tests, certs'
// own included, can use it without an import cycle. It talks to nothing:
// all it needs is crypto/rand.
package testpki
