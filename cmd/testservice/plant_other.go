//go:build !unix

package main

import (
	"fmt"
	"io"
)

func mkfifo(_ []string, stderr io.Writer) int {
	fmt.Fprintln(stderr, "mkfifo: needs a unix system")
	return 1
}

func link(_ []string, stderr io.Writer) int {
	fmt.Fprintln(stderr, "link: needs a unix system")
	return 1
}
