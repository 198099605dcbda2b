package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"
)

func TestWSAcceptMatchesRFC6455Example(t *testing.T) {
	t.Parallel()
	// RFC 6455 section 1.3.
	got := wsAccept("dGhlIHNhbXBsZSBub25jZQ==")
	if want := "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// clientFrame builds a masked client frame, as browsers send them.
func clientFrame(fin bool, op byte, payload []byte, masked bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	maskBit := byte(0)
	if masked {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, maskBit|byte(n))
	case n <= 0xffff:
		out = append(out, maskBit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	mask := []byte{0x37, 0xfa, 0x21, 0x3d}
	out = append(out, mask...)
	for i, b := range payload {
		out = append(out, b^mask[i%4])
	}
	return out
}

func TestWSEchoOne(t *testing.T) {
	t.Parallel()
	long := bytes.Repeat([]byte("x"), 300)
	tests := map[string]struct {
		in []byte
		// want is the exact server reply; wantDone whether the connection ends.
		want     []byte
		wantDone bool
	}{
		"should echo a text frame unmasked": {
			in: clientFrame(true, opText, []byte("Hello"), true), want: []byte{0x81, 5, 'H', 'e', 'l', 'l', 'o'},
		},
		"should echo a frame with a 16-bit length": {
			in: clientFrame(true, opBinary, long, true), want: append([]byte{0x82, 126, 1, 44}, long...),
		},
		"should preserve fragmentation when echoing": {
			in: clientFrame(false, opText, []byte("Hel"), true), want: []byte{0x01, 3, 'H', 'e', 'l'},
		},
		"should answer a ping with a pong carrying the same payload": {
			in: clientFrame(true, opPing, []byte("hi"), true), want: []byte{0x8a, 2, 'h', 'i'},
		},
		"should echo the close code and end the connection": {
			in: clientFrame(true, opClose, []byte{0x03, 0xe8, 'b', 'y', 'e'}, true), want: []byte{0x88, 2, 0x03, 0xe8}, wantDone: true,
		},
		"should fail the connection with 1002 on an unmasked client frame": {
			in: clientFrame(true, opText, []byte("Hello"), false), want: []byte{0x88, 2, 0x03, 0xea}, wantDone: true,
		},
		"should fail the connection with 1002 on a fragmented control frame": {
			in: clientFrame(false, opPing, nil, true), want: []byte{0x88, 2, 0x03, 0xea}, wantDone: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			done, err := wsEchoOne(bufio.NewReader(bytes.NewReader(tc.in)), &out)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if done != tc.wantDone {
				t.Errorf("got done %v, want %v", done, tc.wantDone)
			}
			if !bytes.Equal(out.Bytes(), tc.want) {
				t.Errorf("got reply % x, want % x", out.Bytes(), tc.want)
			}
		})
	}
}
