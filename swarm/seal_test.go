package swarm

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealRoundTrip(t *testing.T) {
	t.Parallel()
	kek := bytes.Repeat([]byte{7}, 32)
	blob, err := Seal(kek, []byte("-----BEGIN PRIVATE KEY-----"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, []byte("PRIVATE KEY")) {
		t.Fatalf("got the plaintext in the sealed blob %q", blob)
	}
	got, err := Unseal(kek, blob)
	if err != nil || string(got) != "-----BEGIN PRIVATE KEY-----" {
		t.Errorf("got %q, %v; want the plaintext back", got, err)
	}
}

func TestUnsealRefuses(t *testing.T) {
	t.Parallel()
	kek := bytes.Repeat([]byte{7}, 32)
	blob, _ := Seal(kek, []byte("ca"))
	tampered := bytes.Replace(blob, []byte(`"data":"`), []byte(`"data":"A`), 1)
	tests := map[string]struct {
		kek, blob []byte
		want      error // nil: any error
	}{
		"should refuse another key":     {kek: bytes.Repeat([]byte{8}, 32), blob: blob, want: ErrUnseal},
		"should refuse a tampered blob": {kek: kek, blob: tampered, want: ErrUnseal},
		"should refuse what is no blob": {kek: kek, blob: []byte("{}"), want: ErrUnseal},
		"should refuse a short key":     {kek: []byte("short"), blob: blob},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Unseal(tc.kek, tc.blob)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("got %v, want an error wrapping %v", err, tc.want)
			}
		})
	}
}
