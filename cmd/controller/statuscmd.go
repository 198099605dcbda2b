package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/status"
)

// Exit codes of `controller status`, for scripts and CI gates.
const (
	statusOK         = 0 // every managed container is at or above its floor
	statusBelowFloor = 1 // some container is below its floor (listed on stderr); with --as production, would be
	statusUsage      = 2 // bad usage, or the controller could not be asked
)

// asProduction is the one value of --as: judge against the production
// floor, whatever the controller's environment.
const asProduction = "production"

// Defaults of `controller status`.
const (
	defaultStatusURL = "http://127.0.0.1:9090"
	envStatusURL     = "CRANK_STATUS_URL"
	envStatusTLSDir  = "CRANK_STATUS_TLS_DIR"
)

// statusOptions is the parsed command line of `controller status`.
type statusOptions struct {
	url     string
	output  string
	service string
	tlsDir  string
	as      string // "" or asProduction
	timeout time.Duration
}

// runStatus is `controller status`: it asks a running controller for its
// status API and prints a table or the JSON. getenv is lookupEnv in main.
func runStatus(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	opts, err := parseStatusArgs(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return statusOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "controller status: %v\n", err)
		return statusUsage
	}
	body, doc, err := loadStatus(opts)
	if err != nil {
		fmt.Fprintf(stderr, "controller status: %v\n", err)
		return statusUsage
	}
	verdict := doc.production()
	if opts.as == asProduction && verdict == nil {
		fmt.Fprintf(stderr, "controller status: the controller at %s does not judge production readiness (an older release?): upgrade it, or drop --as\n", opts.url)
		return statusUsage
	}
	switch {
	case opts.output == "json":
		var out bytes.Buffer
		if err := json.Indent(&out, body, "", "  "); err != nil {
			fmt.Fprintf(stderr, "controller status: %v\n", err)
			return statusUsage
		}
		_, _ = stdout.Write(bytes.TrimRight(out.Bytes(), "\n"))
		fmt.Fprintln(stdout)
	case opts.as == asProduction:
		printReadinessTable(stdout, doc, verdict)
	default:
		printStatusTable(stdout, doc)
	}
	if opts.as == asProduction {
		return readinessExit(stderr, doc)
	}
	return belowFloorExit(stderr, doc)
}

// loadStatus fetches the status API and decodes it, refusing an API
// version this CLI does not speak.
func loadStatus(opts statusOptions) ([]byte, statusDoc, error) {
	var doc statusDoc
	client, err := statusClient(opts)
	if err != nil {
		return nil, doc, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()
	body, err := fetchStatus(ctx, client, opts)
	if err != nil {
		return nil, doc, err
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, doc, fmt.Errorf("decoding the answer of %s: %w", opts.url, err)
	}
	if doc.APIVersion != status.APIVersion {
		return nil, doc, fmt.Errorf("the controller speaks api_version %q, this CLI %q: use the CLI of the same release",
			doc.APIVersion, status.APIVersion)
	}
	return body, doc, nil
}

// belowFloorExit names every container below its floor on stderr and
// returns the exit code: statusBelowFloor if there is one.
func belowFloorExit(stderr io.Writer, doc statusDoc) int {
	below := 0
	for _, c := range doc.Containers {
		if c.BelowFloor {
			below++
			fmt.Fprintf(stderr, "below floor: %s/%s observed %s, floor %s\n",
				clean(c.Service), clean(c.Container), clean(c.Observed), clean(c.Floor))
		}
	}
	if below > 0 {
		return statusBelowFloor
	}
	return statusOK
}

// statusDoc decodes both answers: Report (summary set) and ServiceReport
// (production set).
type statusDoc struct {
	APIVersion string                    `json:"api_version"`
	Summary    *status.Overview          `json:"summary"`
	Production *status.ProductionVerdict `json:"production"`
	Containers []status.ContainerStatus  `json:"containers"`
}

// production is the production verdict of either answer, nil from a
// controller that does not judge it.
func (d statusDoc) production() *status.ProductionVerdict {
	v := d.Production
	if d.Summary != nil {
		v = &d.Summary.Production
	}
	if v == nil || v.Verdict == "" {
		return nil
	}
	return v
}

func parseStatusArgs(args []string, stderr io.Writer, getenv func(string) string) (statusOptions, error) {
	fs := flag.NewFlagSet("controller status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := statusOptions{}
	addConnectionFlags(fs, &opts, getenv)
	fs.StringVar(&opts.output, "output", "table", "same as -o")
	fs.StringVar(&opts.service, "service", "", "show only this service's containers")
	fs.StringVar(&opts.as, "as", "", "judge against another environment's floor: production (exit 1 if anything would be below it)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: controller status [--url URL] [-o table|json] [--service NAME] [--tls-dir DIR] [--as production]\n\n"+
			"Exit status: 0 every container at or above its floor, 1 some below (with --as production: some would be),\n"+
			"2 usage or connection error.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if opts.as != "" && opts.as != asProduction {
		return opts, fmt.Errorf("invalid --as %q: want production", opts.as)
	}
	return opts, checkConnectionFlags(fs, opts)
}

// addConnectionFlags declares the flags of every command that asks the
// status API: where it is, how to reach it, and the output.
func addConnectionFlags(fs *flag.FlagSet, opts *statusOptions, getenv func(string) string) {
	defURL := getenv(envStatusURL)
	if defURL == "" {
		defURL = defaultStatusURL
	}
	fs.StringVar(&opts.url, "url", defURL, "controller base URL (env "+envStatusURL+")")
	fs.StringVar(&opts.output, "o", "table", "output: table or json")
	fs.StringVar(&opts.tlsDir, "tls-dir", getenv(envStatusTLSDir),
		"directory with client.crt, client.key and ca.crt for an mTLS (https) URL (env "+envStatusTLSDir+")")
	fs.DurationVar(&opts.timeout, "timeout", 10*time.Second, "give up after this long")
}

// checkConnectionFlags refuses what addConnectionFlags read when it cannot
// work, and any argument left over.
func checkConnectionFlags(fs *flag.FlagSet, opts statusOptions) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	if opts.output != "table" && opts.output != "json" {
		return fmt.Errorf("invalid -o %q: want table or json", opts.output)
	}
	if opts.timeout <= 0 {
		return fmt.Errorf("invalid --timeout %s: want a positive duration", opts.timeout)
	}
	u, err := url.Parse(opts.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid --url %q: want http://host:port or https://host:port", opts.url)
	}
	if opts.tlsDir != "" && u.Scheme != "https" {
		return fmt.Errorf("--tls-dir %s needs an https URL, got %s", opts.tlsDir, opts.url)
	}
	return nil
}

// statusClient is a plain client, or with --tls-dir one that presents the
// operator's client certificate and trusts only the controller's CA.
func statusClient(opts statusOptions) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the controller is local; a proxy would only see the mTLS fail
	if opts.tlsDir != "" {
		cfg, err := operatorTLS(opts.tlsDir)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = cfg
	}
	return &http.Client{Transport: tr}, nil
}

func operatorTLS(dir string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, certs.FileClientCert), filepath.Join(dir, certs.FileClientKey))
	if err != nil {
		return nil, fmt.Errorf("loading the client certificate from --tls-dir %s: %w", dir, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, certs.FileCA))
	if err != nil {
		return nil, fmt.Errorf("reading the CA from --tls-dir: %w", err)
	}
	cas, err := certs.ParseCertificatesPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("parsing %s in --tls-dir %s: %w", certs.FileCA, dir, err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	// RootCAs is the controller's CA only: a server certificate from any
	// other CA, public ones included, is refused.
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool}, nil
}

func fetchStatus(ctx context.Context, client *http.Client, opts statusOptions) ([]byte, error) {
	endpoint := strings.TrimRight(opts.url, "/") + status.PathStatus
	if opts.service != "" {
		endpoint += "/" + url.PathEscape(opts.service)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, explainFetchError(opts, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e status.ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s: %s", endpoint, resp.Status, clean(e.Error))
		}
		return nil, fmt.Errorf("%s: %s", endpoint, resp.Status)
	}
	return body, nil
}

// explainFetchError adds what to do to the usual connection failures.
func explainFetchError(opts statusOptions, err error) error {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	switch {
	case errors.As(err, &unknownCA) || (errors.As(err, &certErr) && !errors.As(err, &hostname)):
		if opts.tlsDir == "" {
			return fmt.Errorf("%s presents a certificate this machine does not trust; pass --tls-dir with the controller's operator bundle: %w", opts.url, err)
		}
		return fmt.Errorf("refusing %s: its certificate is not from the CA in --tls-dir %s: %w", opts.url, opts.tlsDir, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("refusing %s: its certificate does not name this host: %w", opts.url, err)
	case errors.As(err, &alert):
		if opts.tlsDir == "" {
			return fmt.Errorf("%s refused the TLS handshake; it requires a client certificate: pass --tls-dir: %w", opts.url, err)
		}
		return fmt.Errorf("%s refused the client certificate in --tls-dir %s (from another CA?): %w", opts.url, opts.tlsDir, err)
	}
	return fmt.Errorf("cannot reach the controller at %s (is it running? set --url or %s): %w", opts.url, envStatusURL, err)
}

func printStatusTable(w io.Writer, doc statusDoc) {
	if s := doc.Summary; s != nil {
		ca := "unknown"
		if !s.CANotAfter.IsZero() && s.CADaysLeft != nil {
			ca = fmt.Sprintf("%s (%d days)", s.CANotAfter.Format("2006-01-02"), *s.CADaysLeft)
		}
		fmt.Fprintf(w, "mode %s, environment %s, CA expires %s\n", clean(s.Mode), clean(s.Environment), ca)
		fmt.Fprintf(w, "%d containers: %d mtls, %d tls, %d plain, %d down; %d drifted, %d below floor\n",
			s.Containers, s.Counts["mtls"], s.Counts["tls"], s.Counts["plain"], s.Counts["down"], s.Drift, s.BelowFloor)
		if v := doc.production(); v != nil && s.Environment != asProduction {
			fmt.Fprintf(w, "%s (see --as production)\n", clean(v.Verdict))
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tCONTAINER\tDESIRED\tOBSERVED\tFLOOR\tFINDINGS\tEXPIRES(days)\tLAST-ACTION")
	for _, c := range doc.Containers {
		observed := c.Observed
		switch {
		case c.BelowFloor:
			observed += " BELOW-FLOOR"
		case c.Drift:
			observed += " DRIFT"
		}
		var reasons []string
		for _, f := range c.Findings {
			reasons = append(reasons, f.Reason)
		}
		expires := "-"
		if c.Bundle.DaysLeft != nil {
			expires = fmt.Sprint(*c.Bundle.DaysLeft)
		}
		last := dash(c.Remediation.LastAction)
		if c.Remediation.Degraded != "" {
			last += " (degraded)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(c.Service), clean(c.Container), dash(clean(c.Desired)),
			clean(observed), dash(clean(c.Floor)), dash(clean(strings.Join(reasons, ","))), expires, clean(last))
	}
	_ = tw.Flush()
}

// printReadinessTable is `--as production`: the verdict, then every
// container that would not be ready (or that production would change),
// with the finding codes.
func printReadinessTable(w io.Writer, doc statusDoc, v *status.ProductionVerdict) {
	env := ""
	if doc.Summary != nil {
		env = "; environment now " + clean(doc.Summary.Environment)
	}
	fmt.Fprintf(w, "%s (minimum %s%s)\n", clean(v.Verdict), clean(v.Minimum), env)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := false
	for _, c := range doc.Containers {
		if len(c.Production.Findings) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w)
			fmt.Fprintln(tw, "SERVICE\tCONTAINER\tOBSERVED\tPRODUCTION-FLOOR\tVERDICT\tFINDING")
			header = true
		}
		verdict := "ready"
		if !c.Production.Ready {
			verdict = "NOT READY"
		}
		for i, f := range c.Production.Findings {
			svc, ctr, obs, floor := clean(c.Service), clean(c.Container), clean(c.Observed), clean(c.Production.Floor)
			if i > 0 {
				svc, ctr, obs, floor, verdict = "", "", "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s: %s\n", svc, ctr, obs, floor, verdict, clean(string(f.Code)), clean(f.Message))
		}
	}
	_ = tw.Flush()
}

// readinessExit names on stderr every container that would be below the
// production floor, with its blocking codes, and returns the exit status.
func readinessExit(stderr io.Writer, doc statusDoc) int {
	code := statusOK
	for _, c := range doc.Containers {
		if c.Production.Ready {
			continue
		}
		var codes []string
		for _, f := range c.Production.Findings {
			if f.Blocking {
				codes = append(codes, clean(string(f.Code)))
			}
		}
		fmt.Fprintf(stderr, "would be below the production floor: %s/%s observed %s, floor %s: %s\n",
			clean(c.Service), clean(c.Container), clean(c.Observed), clean(c.Production.Floor), strings.Join(codes, ","))
		code = statusBelowFloor
	}
	return code
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean keeps text from the server from driving the terminal: control
// characters (escape sequences, carriage returns) become '?'.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
