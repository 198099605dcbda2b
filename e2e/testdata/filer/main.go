// Command filer proves that data in a container's volumes survives a
// recreate. It is the payload of the FROM-scratch image the e2e recreate
// tests build (scratch has no shell to do this with).
//
// At start it looks, in every directory of FILER_DIRS (comma-separated), for
// a file named "marker": if it is missing it writes FILER_TOKEN into it and
// prints "created <dir> <token>", otherwise it prints "found <dir> <content>".
// Then it waits for SIGTERM or SIGINT. `filer health` exits 0, for a
// HEALTHCHECK.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "health" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for _, dir := range strings.Split(os.Getenv("FILER_DIRS"), ",") {
		if dir == "" {
			continue
		}
		if err := mark(dir, os.Getenv("FILER_TOKEN")); err != nil {
			fmt.Fprintf(os.Stderr, "error %s %v\n", dir, err)
			os.Exit(1)
		}
	}
	<-ctx.Done()
}

func mark(dir, token string) error {
	name := filepath.Join(dir, "marker")
	b, err := os.ReadFile(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.WriteFile(name, []byte(token), 0o644); err != nil {
			return err
		}
		fmt.Printf("created %s %s\n", dir, token)
		return nil
	case err != nil:
		return err
	}
	fmt.Printf("found %s %s\n", dir, b)
	return nil
}
