package main

import (
	"bytes"
	"regexp"
	"testing"
)

func TestHelpListsEveryCommand(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if got := dispatch([]string{"help"}, &out, &out); got != 0 {
		t.Errorf("got exit code %d, want 0", got)
	}
	for _, cmd := range []string{"run", "healthcheck", "status", "ca", "identity", "version", "help"} {
		if !regexp.MustCompile(`(?m)^  ` + cmd + ` `).Match(out.Bytes()) {
			t.Errorf("got usage without a line for %q, want one:\n%s", cmd, out.String())
		}
	}
}

func TestDispatchRejectsAnUnknownCommand(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if got := dispatch([]string{"no-such-command"}, &stdout, &stderr); got != 2 {
		t.Errorf("got exit code %d, want 2", got)
	}
	if !bytes.Contains(stderr.Bytes(), []byte(`unknown command "no-such-command"`)) || !bytes.Contains(stderr.Bytes(), []byte("  identity ")) {
		t.Errorf("got stderr %q, want the unknown command named and the usage", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("got stdout %q, want nothing", stdout.String())
	}
}

func TestRunHelpListsCommandsAndFlags(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	_, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &stderr)
	if err != flagHelp {
		t.Fatalf("got error %v, want flagHelp", err)
	}
	for _, want := range []string{"  ca ", "  identity ", "-certs-root"} {
		if !bytes.Contains(stderr.Bytes(), []byte(want)) {
			t.Errorf("got help without %q, want the commands and run's flags:\n%s", want, stderr.String())
		}
	}
}
