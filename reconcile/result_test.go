package reconcile

import (
	"errors"
	"fmt"
	"testing"
)

func TestTerminal(t *testing.T) {
	t.Parallel()
	base := errors.New("bad label")
	tests := map[string]struct {
		err  error
		want bool // IsTerminal(err)
	}{
		"a plain error is not terminal":                        {err: base, want: false},
		"nil is not terminal":                                  {err: nil, want: false},
		"Terminal(nil) is nil, so not terminal":                {err: Terminal(nil), want: false},
		"a terminal error is terminal":                         {err: Terminal(base), want: true},
		"a wrapped terminal error is terminal":                 {err: fmt.Errorf("ctx: %w", Terminal(base)), want: true},
		"a joined error containing a terminal one is terminal": {err: errors.Join(errors.New("x"), Terminal(base)), want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := IsTerminal(tc.err); got != tc.want {
				t.Errorf("got IsTerminal %v, want %v", got, tc.want)
			}
		})
	}
	if !errors.Is(Terminal(base), base) {
		t.Errorf("got errors.Is(Terminal(err), err) false, want true: the cause must stay reachable")
	}
}
