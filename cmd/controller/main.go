package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"
)

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

// dispatch runs a subcommand and returns the process exit code.
func dispatch(args []string) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runController(args)
	case "healthcheck":
		return runHealthcheck(args)
	case "status": // issue 5: operator CLI, statuscmd.go
		return runStatus(args, os.Stdout, os.Stderr, lookupEnv)
	case "ca": // rotation (issue 6): CA rollover CLI, cacmd.go
		return runCA(args, os.Stdout, os.Stderr, lookupEnv, time.Now)
	case "identity": // identity owners CLI, identitycmd.go
		return runIdentity(args, os.Stdout, os.Stderr, lookupEnv)
	case "version":
		fmt.Println(version())
		return 0
	case "help":
		fmt.Println("usage: controller [run] [flags] | healthcheck [listen-addr] | status [flags] | ca rotate|status | identity list|release | version\n\nrun 'controller run -h' or 'controller status -h' for flags") // rotation (issue 6): ca
		return 0
	default:
		fmt.Fprintf(os.Stderr, "controller: unknown command %q (want run, healthcheck, status, ca, identity or version)\n", cmd) // rotation (issue 6): ca
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
