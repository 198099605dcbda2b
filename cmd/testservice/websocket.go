package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// A minimal RFC 6455 echo server, standard library only, so the streaming
// service's WebSocket path can be exercised over mTLS. It echoes frame by
// frame (fragmentation is preserved, not reassembled) and does not validate
// UTF-8 in text frames; enough for a stand-in, not a general library.

// wsGUID is the fixed GUID from RFC 6455 section 1.3.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	closeProtocolError = 1002
	closeTooBig        = 1009

	wsMaxPayload = 1 << 20
	wsIdle       = 60 * time.Second
)

var (
	errWSProtocol = errors.New("websocket protocol error")
	errWSTooBig   = errors.New("websocket frame too big")
)

// wsAccept computes Sec-WebSocket-Accept: base64(sha1(key + GUID)).
func wsAccept(key string) string {
	sum := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func (a *app) handleWS(w http.ResponseWriter, r *http.Request) {
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		http.Error(w, "websocket upgrade required", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "unsupported websocket version", http.StatusUpgradeRequired)
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if nonce, err := base64.StdEncoding.DecodeString(key); err != nil || len(nonce) != 16 {
		http.Error(w, "bad Sec-WebSocket-Key", http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "connection cannot be upgraded", http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(key))
	if err := rw.Flush(); err != nil {
		return
	}
	for {
		_ = conn.SetReadDeadline(time.Now().Add(wsIdle))
		done, err := wsEchoOne(rw.Reader, rw.Writer)
		if err == nil {
			err = rw.Flush()
		}
		if done || err != nil {
			return
		}
	}
}

// wsEchoOne reads one client frame and writes the reply. done means the
// connection should close (close handshake finished or protocol failure).
func wsEchoOne(r *bufio.Reader, w io.Writer) (done bool, err error) {
	fin, op, payload, err := readFrame(r)
	switch {
	case errors.Is(err, errWSProtocol):
		return true, writeClose(w, closeProtocolError)
	case errors.Is(err, errWSTooBig):
		return true, writeClose(w, closeTooBig)
	case err != nil:
		return true, err
	}
	switch op {
	case opContinuation, opText, opBinary:
		return false, writeFrame(w, fin, op, payload)
	case opPing:
		return false, writeFrame(w, true, opPong, payload)
	case opPong:
		return false, nil
	case opClose:
		// Echo the status code (not the reason) and finish the handshake.
		if len(payload) >= 2 {
			payload = payload[:2]
		}
		return true, writeFrame(w, true, opClose, payload)
	default:
		return true, writeClose(w, closeProtocolError)
	}
}

// readFrame reads one masked client frame (RFC 6455 section 5.2).
func readFrame(r io.Reader) (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return false, 0, nil, err
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	if h[0]&0x70 != 0 || h[1]&0x80 == 0 { // reserved bits set, or unmasked client frame
		return false, 0, nil, errWSProtocol
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return false, 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return false, 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if op&0x8 != 0 && (!fin || n > 125) { // control frames: unfragmented, short
		return false, 0, nil, errWSProtocol
	}
	if n > wsMaxPayload {
		return false, 0, nil, errWSTooBig
	}
	var mask [4]byte
	if _, err := io.ReadFull(r, mask[:]); err != nil {
		return false, 0, nil, err
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return false, 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return fin, op, payload, nil
}

// writeFrame writes an unmasked server frame.
func writeFrame(w io.Writer, fin bool, op byte, payload []byte) error {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	hdr := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, byte(n))
	case n <= 0xffff:
		hdr = append(hdr, 126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

func writeClose(w io.Writer, code uint16) error {
	return writeFrame(w, true, opClose, binary.BigEndian.AppendUint16(nil, code))
}

// headerHasToken reports whether a comma-separated header contains token,
// case-insensitively ("Connection: keep-alive, Upgrade" is valid).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
