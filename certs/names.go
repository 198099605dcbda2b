package certs

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidServiceName is wrapped by every error from ValidateServiceName,
// so callers can classify a bad name (a permanent, configuration problem)
// with errors.Is instead of retrying it.
var ErrInvalidServiceName = errors.New("invalid service name")

const (
	// maxServiceNameLen is the DNS label limit (RFC 1123).
	maxServiceNameLen = 63
	// maxQuotedNameLen is how much of a rejected name an error quotes.
	maxQuotedNameLen = 128
)

// ValidateServiceName reports whether name can be used as a directory in the
// certs volume. Names come from compose labels, which are arbitrary strings,
// and each one becomes a path component, so we accept only RFC 1123 DNS
// labels: 1-63 characters of [a-z0-9-], not starting or ending with '-'.
// That rules out "", ".", "..", path separators, NUL and anything a shell or
// filesystem could treat specially. Uppercase is rejected rather than folded
// so that two services can never share a directory by differing in case.
//
// The error wraps ErrInvalidServiceName and quotes the input with %q (its
// first 128 bytes if longer), so a hostile name cannot forge log lines.
func ValidateServiceName(name string) error {
	if why := serviceNameProblem(name); why != "" {
		if len(name) > maxQuotedNameLen {
			// Labels have no size limit; keep a huge one out of the logs.
			return fmt.Errorf("%w %q... (%d bytes): %s", ErrInvalidServiceName, name[:maxQuotedNameLen], len(name), why)
		}
		return fmt.Errorf("%w %q: %s", ErrInvalidServiceName, name, why)
	}
	return nil
}

// serviceNameProblem returns a human explanation of why name is not a valid
// service name, or "" if it is valid. The special cases come first so the
// message names the actual mistake instead of a generic character error.
func serviceNameProblem(name string) string {
	switch {
	case name == "":
		return "must not be empty"
	case name == "." || name == "..":
		return "must not be a relative path element"
	case strings.ContainsAny(name, `/\`):
		return "must not contain a path separator"
	case strings.ContainsRune(name, 0):
		return "must not contain a NUL byte"
	case len(name) > maxServiceNameLen:
		return fmt.Sprintf("must be at most %d characters long, got %d", maxServiceNameLen, len(name))
	case name[0] == '-' || name[len(name)-1] == '-':
		return "must not start or end with '-'"
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
		case r >= 'A' && r <= 'Z':
			return "must be lowercase"
		default:
			return fmt.Sprintf("invalid character %q (allowed: a-z, 0-9 and '-')", r)
		}
	}
	return ""
}
