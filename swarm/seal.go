package swarm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
)

// The CA's backup is sealed with AES-256-GCM under a key derived from the
// key-encryption key (a swarm secret mounted into the controller). Swarm
// configs can be read back by anyone with API access to a manager; sealed,
// the backup says nothing without the KEK, and the KEK never leaves the
// tmpfs the engine mounts it on.

// MinKEKSize is the least key-encryption key accepted: 32 random bytes.
const MinKEKSize = 32

// sealContext binds a sealed blob to its purpose, so a sealed value cannot
// be passed off as another kind of blob under the same KEK.
const sealContext = "crank-mtls-controller ca-backup v1"

// ErrUnseal is wrapped when a sealed blob does not open: the wrong KEK, or
// data that was tampered with.
var ErrUnseal = errors.New("sealed CA backup does not open with this key")

type sealed struct {
	V     int    `json:"v"`
	Nonce []byte `json:"nonce"`
	Data  []byte `json:"data"`
}

func aead(kek []byte) (cipher.AEAD, error) {
	if len(kek) < MinKEKSize {
		return nil, fmt.Errorf("key-encryption key is %d bytes, want at least %d", len(kek), MinKEKSize)
	}
	key := sha256.Sum256(append([]byte(sealContext+"\x00"), kek...))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts plaintext under kek.
func Seal(kek, plaintext []byte) ([]byte, error) {
	g, err := aead(kek)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("reading a nonce: %w", err)
	}
	return json.Marshal(sealed{V: 1, Nonce: nonce, Data: g.Seal(nil, nonce, plaintext, []byte(sealContext))})
}

// Unseal decrypts what Seal returned.
func Unseal(kek, blob []byte) ([]byte, error) {
	g, err := aead(kek)
	if err != nil {
		return nil, err
	}
	var s sealed
	if err := json.Unmarshal(blob, &s); err != nil || s.V != 1 || len(s.Nonce) != g.NonceSize() {
		return nil, fmt.Errorf("%w: not a sealed backup", ErrUnseal)
	}
	out, err := g.Open(nil, s.Nonce, s.Data, []byte(sealContext))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnseal, err)
	}
	return out, nil
}
