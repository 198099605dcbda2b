package main

// `controller identity list|release`. Like `controller ca`, these run next to
// the daemon that holds the state store's lock (docker exec), so they never
// open bbolt: `release` drops a request file into the state dir and `list`
// reads the owners file the daemon keeps there. No HTTP endpoint mutates
// anything.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// Files shared with the daemon in the state dir.
const (
	// identityReleasePrefix + <name> asks the daemon to forget name's owner.
	identityReleasePrefix = "identity-release-"
	// identitiesFile holds every identity's owner as JSON, for `list`.
	identitiesFile = "identities.json"
)

const identityUsageText = `usage: controller identity list [--state-dir DIR] [-o table|json]
       controller identity release NAME [--state-dir DIR]

list     prints who owns each identity, as the controller last wrote it
release  asks the running controller to forget NAME's owner, so the next
         container that claims NAME becomes its owner (stop the old owner first)`

// runIdentity dispatches `controller identity <sub>`.
func runIdentity(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, identityUsageText)
		if len(args) == 0 {
			return caUsage
		}
		return caOK
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("controller identity "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv("CRANK_STATE_DIR")
	if def == "" {
		def = "/state"
	}
	stateDir := fs.String("state-dir", def, "the controller's state dir (env CRANK_STATE_DIR)")
	output := fs.String("o", "table", "output of list: table or json")
	if sub != "list" && sub != "release" {
		fmt.Fprintf(stderr, "controller identity: unknown command %q\n%s\n", sub, identityUsageText)
		return caUsage
	}
	// The name comes before or after the flags.
	var name string
	if sub == "release" && len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return caOK
		}
		return caUsage
	}
	if sub == "list" {
		return identityList(*stateDir, *output, stdout, stderr, fs.Args())
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 || name == "" {
		fmt.Fprintf(stderr, "controller identity release: want exactly one identity name\n%s\n", identityUsageText)
		return caUsage
	}
	return identityRelease(*stateDir, name, stdout, stderr)
}

func identityRelease(stateDir, name string, stdout, stderr io.Writer) int {
	if err := certs.ValidateServiceName(name); err != nil {
		fmt.Fprintf(stderr, "controller identity release: %v\n", err)
		return caUsage
	}
	root, err := os.OpenRoot(stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "controller identity release: opening state dir: %v\n", err)
		return caUsage
	}
	defer root.Close()
	if err := certs.WriteFileDurable(root, identityReleasePrefix+name, []byte(name+"\n"), 0o600); err != nil {
		fmt.Fprintf(stderr, "controller identity release: %v\n", err)
		return caUsage
	}
	fmt.Fprintf(stdout, "release of identity %s requested; the controller forgets its owner on its next check, and the next container that claims it becomes the owner.\n", name)
	return caOK
}

func identityList(stateDir, output string, stdout, stderr io.Writer, extra []string) int {
	if len(extra) > 0 || (output != "table" && output != "json") {
		fmt.Fprintf(stderr, "controller identity list: want no arguments and -o table or json\n")
		return caUsage
	}
	raw, err := os.ReadFile(filepath.Join(stateDir, identitiesFile))
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "controller identity list: no %s in %s yet: is the controller running with this --state-dir?\n", identitiesFile, stateDir)
		return caUsage
	}
	var owners map[string]state.IdentityOwner
	if err == nil {
		err = json.Unmarshal(raw, &owners)
	}
	if err != nil {
		fmt.Fprintf(stderr, "controller identity list: %v\n", err)
		return caUsage
	}
	if output == "json" {
		_, _ = stdout.Write(raw)
		return caOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IDENTITY\tOWNER\tFIRST CLAIMED BY\tCLAIMED AT")
	for _, n := range slices.Sorted(maps.Keys(owners)) {
		o := owners[n]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n, o.Key, o.Container, o.ClaimedAt.UTC().Format(time.RFC3339))
	}
	_ = tw.Flush()
	return caOK
}
