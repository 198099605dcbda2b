// Command sleeper does nothing until it is told to stop. It is the payload of
// the tiny FROM-scratch image the e2e watcher tests create containers from:
// they need containers, not programs.
package main

import (
	"context"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
}
