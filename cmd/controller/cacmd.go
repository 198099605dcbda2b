package main

// `controller ca rotate|status`: the operator's side of a CA rollover
// (package rotation).
//
// Both run inside the controller's container (docker exec <controller>
// /controller ca ...), next to the daemon that holds the state store's
// lock, so neither opens bbolt: `rotate` writes rotation.RequestFile and
// `status` reads rotation.StatusFile, both in the state dir. No HTTP
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
	caOK    = 0
	caUsage = 2 // bad usage, or the state dir could not be read or written
)

const caUsageText = `usage: controller ca rotate [--state-dir DIR]
       controller ca status [--state-dir DIR] [-o table|json]

rotate  asks the running controller to roll its CA over (it starts within --ca-rotate-interval)
status  prints the rollover's phase and progress as the controller last wrote it`

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
	fs := flag.NewFlagSet("controller ca "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv("CRANK_STATE_DIR")
	if def == "" {
		def = "/state"
	}
	stateDir := fs.String("state-dir", def, "the controller's state dir (env CRANK_STATE_DIR)")
	output := "table"
	if sub == "status" {
		fs.StringVar(&output, "o", "table", "output: table or json")
	}
	switch sub {
	case "rotate", "status":
	default:
		fmt.Fprintf(stderr, "controller ca: unknown command %q\n%s\n", sub, caUsageText)
		return caUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return caOK
		}
		return caUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "controller ca %s: unexpected argument %q\n", sub, fs.Arg(0))
		return caUsage
	}
	if sub == "rotate" {
		return caRotate(*stateDir, stdout, stderr, now())
	}
	if output != "table" && output != "json" {
		fmt.Fprintf(stderr, "controller ca status: -o %q: want table or json\n", output)
		return caUsage
	}
	return caStatus(*stateDir, output, stdout, stderr, now())
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
	fmt.Fprintf(tw, "active CA:\t%s\texpires %s\tsha256 %s\n", st.ActiveCA.Subject, at(st.ActiveCA.NotAfter), shortFP(st.ActiveCA.Fingerprint))
	if st.Successor != nil {
		fmt.Fprintf(tw, "successor CA:\t%s\texpires %s\tsha256 %s\n", st.Successor.Subject, at(st.Successor.NotAfter), shortFP(st.Successor.Fingerprint))
	}
	fmt.Fprintf(tw, "retiring CAs:\t%d\n", st.Retiring)
	fmt.Fprintf(tw, "automatic rollover:\t%s\n", at(st.RotateAt))
	if st.RequestPending {
		fmt.Fprintf(tw, "request pending:\tyes\n")
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

func shortFP(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}
