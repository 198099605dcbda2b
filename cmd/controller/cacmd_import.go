package main

// `controller ca import` (and `ca rotate --to-cert`): bring your own CA.
// The material is checked completely before anything is written (certs.
// CheckImport); then it is staged in the state dir with a request naming it
// (rotation.RequestImport), and the daemon adopts it: as the successor of a
// rollover when it runs, as its first CA when it has none yet. The CLI
// never writes the daemon's own CA files. `controller ca export` prints the
// trust bundle from the CA files, reading only.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/rotation"
)

// importArgs are the flags naming an operator's CA and the controller
// settings it is checked against.
type importArgs struct {
	certFlag, keyFlag         string // flag names, for messages
	certFile, keyFile, chain  string
	leafLifetime, trustDomain string
}

// register adds the import flags to fs under the given names for the
// certificate and key ("cert"/"key" for import, "to-cert"/"to-key" for
// rotate). The leaf lifetime and trust domain default to the controller's
// own environment, which `docker exec` shares.
func (a *importArgs) register(fs *flag.FlagSet, certFlag, keyFlag string, getenv func(string) string) {
	a.certFlag, a.keyFlag = certFlag, keyFlag
	fs.StringVar(&a.certFile, certFlag, "", "PEM file of the CA certificate, optionally followed by its chain")
	fs.StringVar(&a.keyFile, keyFlag, "", "PEM file of the CA's private key (PKCS#1, PKCS#8 or SEC1)")
	fs.StringVar(&a.chain, "chain", "", "PEM file of the certificates above the CA, up to and including the self-signed root")
	fs.StringVar(&a.leafLifetime, "leaf-lifetime", envOr(getenv, "CRANK_LEAF_LIFETIME", certs.DefaultLeafLifetime.String()),
		"the controller's leaf lifetime; the CA must outlive one (env CRANK_LEAF_LIFETIME)")
	fs.StringVar(&a.trustDomain, "trust-domain", envOr(getenv, "CRANK_TRUST_DOMAIN", certs.DefaultTrustDomain),
		"the controller's SPIFFE trust domain, for the trial client leaf (env CRANK_TRUST_DOMAIN)")
}

// check rejects incomplete import flags. Without any of them, rotate is a
// plain rollover; import needs them.
func (a *importArgs) check(sub string) error {
	if a.certFlag == "" {
		return nil
	}
	switch {
	case sub == "rotate" && a.certFile == "" && a.keyFile == "" && a.chain == "":
		return nil
	case a.certFile == "" || a.keyFile == "":
		return fmt.Errorf("--%s and --%s are both required", a.certFlag, a.keyFlag)
	}
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// read reads the files the flags name.
func (a importArgs) read() (certs.ImportInput, certs.ImportOptions, error) {
	var in certs.ImportInput
	var opts certs.ImportOptions
	lifetime, err := time.ParseDuration(a.leafLifetime)
	if err != nil || lifetime <= 0 {
		return in, opts, fmt.Errorf("--leaf-lifetime %q: want a positive duration such as 2160h", a.leafLifetime)
	}
	opts.LeafLifetime, opts.TrustDomain = lifetime, a.trustDomain
	for _, f := range []struct {
		flag, path string
		dst        *[]byte
	}{{a.certFlag, a.certFile, &in.CertPEM}, {a.keyFlag, a.keyFile, &in.KeyPEM}, {"chain", a.chain, &in.ChainPEM}} {
		if f.path == "" {
			continue
		}
		if *f.dst, err = os.ReadFile(f.path); err != nil {
			return in, opts, fmt.Errorf("--%s: %w", f.flag, err)
		}
	}
	return in, opts, nil
}

// caImport checks the CA, and only then stages it with a request. It
// prints what happens next, never the key.
func caImport(stateDir string, a importArgs, cmd string, stdout, stderr io.Writer, now time.Time) int {
	in, opts, err := a.read()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return caUsage
	}
	opts.Now = now
	ca, err := certs.CheckImport(in, opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: refused: %v\nnothing was written to %s\n", cmd, err, stateDir)
		return caRefused
	}
	fp := probe.Fingerprint(ca.Cert)
	firstCA, code, ok := importTarget(stateDir, cmd, fp, now, stdout, stderr)
	if !ok {
		return code
	}
	if err := rotation.RequestImport(stateDir, ca, now); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return caUsage
	}
	anchor := ca.Anchor().Subject.String()
	fmt.Fprintf(stdout, "CA %s checked: issued by %s, valid until %s, sha256 %s; peers will trust %s.\n",
		ca.Cert.Subject, ca.Cert.Issuer, ca.NotAfter().UTC().Format(time.RFC3339), fp, anchor)
	if firstCA {
		fmt.Fprintf(stdout, "Staged in %s. There is no CA there yet: the controller starts with this one.\n", stateDir)
		return caOK
	}
	fmt.Fprintf(stdout, "Staged in %s and asked the running controller to roll over to it (overlap, reissue, retire, as `controller ca rotate`); follow it with `controller ca status`.\n"+
		"Clients outside the stack must trust %s too: `controller ca export` prints what to trust.\n", stateDir, anchor)
	return caOK
}

// importTarget decides, from the state dir, whether an import can be
// staged now: firstCA when there is no CA yet. It refuses during a
// rollover (the request would wait; better to say so and write nothing),
// and does nothing for the CA already active.
func importTarget(stateDir, cmd, fp string, now time.Time, stdout, stderr io.Writer) (firstCA bool, code int, ok bool) {
	_, err := certs.ReadTrustBundle(stateDir, now)
	switch {
	case errors.Is(err, certs.ErrNoCA), errors.Is(err, fs.ErrNotExist):
		return true, caOK, true
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\nnothing was written\n", cmd, err)
		return false, caUsage, false
	}
	st, err := rotation.ReadStatus(stateDir)
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stderr, "%s: warning: %v\n", cmd, err) // the rotator checks again
	case err != nil:
	case st.Phase != rotation.PhaseIdle && st.Phase != "":
		fmt.Fprintf(stderr, "%s: a CA rollover is in progress (phase %s since %s); import once `controller ca status` says idle\nnothing was written to %s\n",
			cmd, st.Phase, st.Since.UTC().Format(time.RFC3339), stateDir)
		return false, caRefused, false
	case strings.EqualFold(st.ActiveCA.Fingerprint, fp):
		fmt.Fprintf(stdout, "this CA (sha256 %s) is already the active CA; nothing to do\n", fp)
		return false, caOK, false
	}
	return false, caOK, true
}

// caExport prints the trust bundle: every anchor peers must trust now (the
// active CA's root, and during a rollover the other CA's too). It holds
// certificates only; what they are goes to stderr, so stdout can be
// redirected into a file as it is.
func caExport(stateDir string, stdout, stderr io.Writer, now time.Time) int {
	bundle, err := certs.ReadTrustBundle(stateDir, now)
	if err != nil {
		fmt.Fprintf(stderr, "controller ca export: %v\n", err)
		return caUsage
	}
	anchors, err := certs.ParseCertificatesPEM(bundle)
	if err != nil {
		fmt.Fprintf(stderr, "controller ca export: %v\n", err)
		return caUsage
	}
	if _, err := stdout.Write(bundle); err != nil {
		fmt.Fprintf(stderr, "controller ca export: %v\n", err)
		return caUsage
	}
	names := make([]string, len(anchors))
	for i, c := range anchors {
		names[i] = c.Subject.String()
	}
	fmt.Fprintf(stderr, "%d trust anchor(s): %s\n", len(anchors), strings.Join(names, "; "))
	if len(anchors) > 1 {
		fmt.Fprintln(stderr, "a CA rollover is under way: clients must trust all of them until it ends")
	}
	return caOK
}
