package certs

import (
	"slices"
	"testing"
	"time"
)

// A Validator runs a validation again exactly when something it reads has
// changed, or a date it looks at has come; otherwise it answers from
// memory. Each step changes one thing and says whether a validation must
// run, and what it must find (checked against Validate itself).
func TestValidatorRemembersOnlyWhatStillHolds(t *testing.T) {
	t.Parallel()
	w := newValidateWorld(t)
	server := mustParseCert(t, w.bundle.ServerCert)
	renewAt := RenewAt(server, 0)
	var m Validator
	steps := []struct {
		name   string
		change func()
		runs   bool
	}{
		{"first look", func() {}, true},
		{"the same, a probe interval later", func() { w.exp.Now = w.exp.Now.Add(30 * time.Second) }, false},
		{"a key made group-readable on disk", func() {
			w.bundle.Generation, w.bundle.ServerKeyMode = "..2026_11_29_12_00_00.0123456789ab", 0o640
			w.exp.KeyMode = 0o600
		}, true},
		{"unchanged again", func() {}, false},
		{"a new network alias expected", func() { w.exp.Identity.DNSNames = append(slices.Clone(w.exp.Identity.DNSNames), "api") }, true},
		{"one byte of ca.crt", func() { w.bundle.CA = append(slices.Clone(w.bundle.CA), '\n') }, true},
		{"a rollover starts: the trust bundle grows", func() { w.auth.successor = fixtureCA(t, withCACommonName("successor")) }, true},
		{"the clock goes back", func() { w.exp.Now = w.exp.Now.Add(-time.Minute) }, true},
		{"just before the renewal point", func() { w.exp.Now = renewAt.Add(-time.Second) }, true}, // past validatorMaxAge
		{"at the renewal point", func() { w.exp.Now = renewAt }, true},
		{"renew-due is never remembered", func() { w.exp.Now = renewAt.Add(time.Second) }, true},
	}
	for _, s := range steps {
		s.change()
		before := m.ran.Load()
		got := m.Validate(w.bundle, w.exp)
		if ran := m.ran.Load() > before; ran != s.runs {
			t.Errorf("%s: validation ran %v, want %v", s.name, ran, s.runs)
		}
		if want := Validate(w.bundle, w.exp); !slices.Equal(got, want) {
			t.Errorf("%s: got\n%swant\n%s", s.name, findingLines(got), findingLines(want))
		}
	}
	if got := Reasons(m.Validate(w.bundle, w.exp)); !slices.Contains(got, ReasonRenewDue) {
		t.Errorf("after the renewal point: got %v, want renew-due among them", got)
	}
}

func TestValidatorForgetsAService(t *testing.T) {
	t.Parallel()
	w := newValidateWorld(t)
	var m Validator
	m.Validate(w.bundle, w.exp)
	m.Forget(w.exp.Identity.Service)
	m.Validate(w.bundle, w.exp)
	if got := m.ran.Load(); got != 2 {
		t.Errorf("validations after Forget: got %d, want 2", got)
	}
}

func TestValidatorMemoryIsBoundedInTime(t *testing.T) {
	t.Parallel()
	w := newValidateWorld(t)
	var m Validator
	m.Validate(w.bundle, w.exp)
	w.exp.Now = w.exp.Now.Add(validatorMaxAge - time.Nanosecond)
	m.Validate(w.bundle, w.exp)
	w.exp.Now = w.exp.Now.Add(time.Nanosecond)
	m.Validate(w.bundle, w.exp)
	if got := m.ran.Load(); got != 2 {
		t.Errorf("validations: got %d, want 2 (again once validatorMaxAge passed)", got)
	}
}
