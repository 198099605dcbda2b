package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// commands lists the subcommands in the order usage prints them.
var commands = []struct{ name, args, summary string }{
	{"run", "[flags]", "run the controller (the default when no command is given)"},
	{"healthcheck", "[listen-addr]", "exit 0 if the local controller is ready (/readyz), else 1"},
	{"status", "[flags]", "show each managed container's security level"},
	{"ca", "<command>", "rotate, import or export the CA, or show a rollover (controller ca help)"},
	{"identity", "list|release", "show who owns each identity, or release one"},
	{"swarm", "[flags]", "swarm mode: services, bundle generations, tasks and their nodes"},
	{"version", "", "print the version"},
	{"help", "", "print this list"},
}

// writeUsage prints every subcommand with its arguments and summary.
func writeUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: controller <command> [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %-14s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "run 'controller <command> -h' for a command's flags")
}

// dispatch runs a subcommand and returns the process exit code. run and
// healthcheck write to the process's own stdout and stderr.
func dispatch(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runController(args)
	case "healthcheck":
		return runHealthcheck(args)
	case "status": // statuscmd.go
		return runStatus(args, stdout, stderr, lookupEnv)
	case "ca": // cacmd.go
		return runCA(args, stdout, stderr, lookupEnv, time.Now)
	case "identity": // identitycmd.go
		return runIdentity(args, stdout, stderr, lookupEnv)
	case "swarm": // swarmcmd.go
		return runSwarmStatus(args, stdout, stderr, lookupEnv)
	case "version":
		fmt.Fprintln(stdout, version())
		return 0
	case "help":
		writeUsage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "controller: unknown command %q\n\n", cmd)
		writeUsage(stderr)
		return 2
	}
}

// version comes from the build info: the module version for `go install`
// builds, else the VCS revision stamped by `go build` in a git checkout.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "crank-mtls-controller (unknown version)"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v = fmt.Sprintf("%s (%s%s)", v, rev, dirty)
	}
	return fmt.Sprintf("crank-mtls-controller %s %s", v, bi.GoVersion)
}
