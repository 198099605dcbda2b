package main

// `controller ca rotate|import|export|status`: the operator's side of a CA
// rollover (package rotation) and of bringing one's own CA.
//
// All run inside the controller's container (docker exec <controller>
// /controller ca ...), next to the daemon that holds the state store's
// lock, so none opens bbolt: `rotate` writes rotation.RequestFile,
// `import` (and `rotate --to-cert`) stages the checked CA beside it
// (rotation.RequestImport), `export` and `status` only read. No HTTP
// endpoint mutates anything.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crank-platform/crank-mtls-controller/rotation"
)

// Exit codes of `controller ca`.
const (
	caOK      = 0
	caRefused = 1 // import: the CA failed a check, or cannot be taken now; nothing was written
	caUsage   = 2 // bad usage, or the state dir could not be read or written
)

const caUsageText = `usage: controller ca rotate [--state-dir DIR] [--to-cert FILE --to-key FILE [--chain FILE]]
       controller ca import --cert FILE --key FILE [--chain FILE] [--state-dir DIR]
       controller ca export [--state-dir DIR]
       controller ca status [--state-dir DIR] [-o table|json]

rotate  asks the running controller to roll its CA over (it starts within --ca-rotate-interval);
        with --to-cert and --to-key, to that CA instead of a new one of its own (as import)
import  checks your root or intermediate CA (--chain: the certificates above it, up to the root)
        and, only if every check passes, hands it to the controller: the running controller rolls
        over to it; a controller that has no CA yet starts with it. Exit 1 names the failed check.
export  prints the trust bundle (PEM, certificates only) for clients outside the stack
status  prints the rollover's phase and progress as the controller last wrote it`

// caArgs are the parsed arguments of one `controller ca` subcommand.
type caArgs struct {
	stateDir, output string
	imp              importArgs
}

// runCA dispatches `controller ca <sub>`. now is time.Now in main.
func runCA(args []string, stdout, stderr io.Writer, getenv func(string) string, now func() time.Time) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, caUsageText)
		if len(args) == 0 {
			return caUsage
		}
		return caOK
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "rotate", "import", "export", "status":
	default:
		fmt.Fprintf(stderr, "controller ca: unknown command %q\n%s\n", sub, caUsageText)
		return caUsage
	}
	a, code, ok := parseCAArgs(sub, args, stderr, getenv)
	if !ok {
		return code
	}
	switch sub {
	case "rotate":
		if a.imp.certFile != "" {
			return caImport(a.stateDir, a.imp, "controller ca rotate", stdout, stderr, now())
		}
		return caRotate(a.stateDir, stdout, stderr, now())
	case "import":
		return caImport(a.stateDir, a.imp, "controller ca import", stdout, stderr, now())
	case "export":
		return caExport(a.stateDir, stdout, stderr, now())
	}
	return caStatus(a.stateDir, a.output, stdout, stderr, now())
}

// parseCAArgs parses the flags of sub. ok false means return code.
func parseCAArgs(sub string, args []string, stderr io.Writer, getenv func(string) string) (a caArgs, code int, ok bool) {
	fs := flag.NewFlagSet("controller ca "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv("CRANK_STATE_DIR")
	if def == "" {
		def = "/state"
	}
	fs.StringVar(&a.stateDir, "state-dir", def, "the controller's state dir (env CRANK_STATE_DIR)")
	a.output = "table"
	switch sub {
	case "status":
		fs.StringVar(&a.output, "o", "table", "output: table or json")
	case "import":
		a.imp.register(fs, "cert", "key", getenv)
	case "rotate":
		a.imp.register(fs, "to-cert", "to-key", getenv)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return a, caOK, false
		}
		return a, caUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "controller ca %s: unexpected argument %q\n", sub, fs.Arg(0))
		return a, caUsage, false
	}
	if err := a.imp.check(sub); err != nil {
		fmt.Fprintf(stderr, "controller ca %s: %v\n", sub, err)
		return a, caUsage, false
	}
	if a.output != "table" && a.output != "json" {
		fmt.Fprintf(stderr, "controller ca status: -o %q: want table or json\n", a.output)
		return a, caUsage, false
	}
	return a, caOK, true
}

// caRotate writes the request, unless a rollover is already running.
func caRotate(stateDir string, stdout, stderr io.Writer, now time.Time) int {
	st, err := rotation.ReadStatus(stateDir)
	switch {
	case err == nil && st.Phase != rotation.PhaseIdle && st.Phase != "":
		fmt.Fprintf(stdout, "a CA rollover is already in progress (phase %s since %s); nothing to do. Follow it with `controller ca status`.\n",
			st.Phase, st.Since.UTC().Format(time.RFC3339))
		return caOK
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		// An unreadable status must not block a rotation; the rotator
		// decides anyway.
		fmt.Fprintf(stderr, "controller ca rotate: warning: %v\n", err)
	}
	if err := rotation.WriteRequest(stateDir, now); err != nil {
		fmt.Fprintf(stderr, "controller ca rotate: %v\n", err)
		return caUsage
	}
	fmt.Fprintf(stdout, "CA rollover requested (%s). The controller starts it on its next check; follow it with `controller ca status`.\n",
		rotation.RequestFile)
	return caOK
}

func caStatus(stateDir, output string, stdout, stderr io.Writer, now time.Time) int {
	st, err := rotation.ReadStatus(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "controller ca status: no rollover status in %s yet: is the controller running with this --state-dir?\n", stateDir)
		return caUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "controller ca status: %v\n", err)
		return caUsage
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			fmt.Fprintf(stderr, "controller ca status: %v\n", err)
			return caUsage
		}
		return caOK
	}
	printCAStatus(stdout, st, now)
	return caOK
}

func printCAStatus(w io.Writer, st rotation.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), relative(now, t))
	}
	phase := string(st.Phase)
	if st.Trigger != "" && st.Phase != rotation.PhaseIdle {
		phase += " (" + st.Trigger + ")"
	}
	fmt.Fprintf(tw, "phase:\t%s\n", phase)
	fmt.Fprintf(tw, "since:\t%s\n", at(st.Since))
	if st.Phase != rotation.PhaseIdle {
		fmt.Fprintf(tw, "rollover started:\t%s\n", at(st.StartedAt))
		fmt.Fprintf(tw, "progress:\t%d/%d services\n", st.Done, st.Total)
		for _, svc := range st.WaitingFor {
			fmt.Fprintf(tw, "waiting for:\t%s\t%s\n", svc, st.Why[svc])
		}
		for _, b := range st.Blockers {
			if b.Stalled {
				fmt.Fprintf(tw, "stalled:\t%s\tlacks %s since %s\n", b.Service, b.Lacks, at(b.Since))
			}
		}
		for _, k := range st.Skipped {
			fmt.Fprintf(tw, "not waited for:\t%s\t%s: %s\n", k.Container, k.Reason, k.Message)
		}
	}
	fmt.Fprintf(tw, "active CA:\t%s\texpires %s\tsha256 %s\n", caLabel(st.ActiveCA), at(st.ActiveCA.NotAfter), shortFP(st.ActiveCA.Fingerprint))
	if st.Successor != nil {
		fmt.Fprintf(tw, "successor CA:\t%s\texpires %s\tsha256 %s\n", caLabel(*st.Successor), at(st.Successor.NotAfter), shortFP(st.Successor.Fingerprint))
	}
	fmt.Fprintf(tw, "retiring CAs:\t%d\n", st.Retiring)
	switch {
	case st.RotateAt.IsZero() && st.ActiveCA.Imported:
		fmt.Fprintf(tw, "automatic rollover:\tnone: the CA was imported; import its successor before it expires\n")
	default:
		fmt.Fprintf(tw, "automatic rollover:\t%s\n", at(st.RotateAt))
	}
	if st.RequestPending {
		fmt.Fprintf(tw, "request pending:\tyes\n")
	}
	if im := st.Import; im != nil {
		line := string(im.State)
		if im.Reason != "" {
			line += " (" + im.Reason + ")"
		}
		fmt.Fprintf(tw, "last import:\t%s\tsha256 %s\t%s: %s\n", line, shortFP(im.Fingerprint), at(im.At), im.Message)
	}
	fmt.Fprintf(tw, "checked:\t%s\n", at(st.CheckedAt))
	_ = tw.Flush()
}

// relative renders t relative to now, in days or hours, for humans.
func relative(now, t time.Time) string {
	d := t.Sub(now)
	suffix := "from now"
	if d < 0 {
		d, suffix = -d, "ago"
	}
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days %s", int(d.Hours()/24), suffix)
	case d >= time.Minute:
		return strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s") + " " + suffix
	}
	return d.Truncate(time.Second).String() + " " + suffix
}

// caLabel is a CA's subject, with its issuer for an intermediate and a
// note for an imported one.
func caLabel(c rotation.CAStatus) string {
	s := c.Subject
	if c.Issuer != "" {
		s += " (issued by " + c.Issuer + ")"
	}
	if c.Imported {
		s += " [imported]"
	}
	return s
}

func shortFP(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}
