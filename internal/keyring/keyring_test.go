package keyring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolve(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ring")
	r := Open(dir)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open created the directory: %v", err)
	}
	managed, err := r.Resolve(ManagedAlias)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("keyring directory: %v %v", fi, err)
	}
	for _, name := range []string{managed + ".key", aliasesFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, fi, err)
		}
	}
	orders, err := r.CreateKey("alias/orders")
	if err != nil {
		t.Fatal(err)
	}
	// A second Ring on the directory (a restart) resolves the same ids.
	r2 := Open(dir)
	for keyID, want := range map[string]string{
		ManagedAlias:   managed,
		"alias/orders": orders,
		orders:         orders,
		"arn:aws:kms:us-east-1:000000000000:key/" + orders:     orders,
		"arn:aws:kms:eu-west-1:123456789012:alias/orders":      orders,
		"arn:aws:kms:us-east-1:000000000000:alias/aws/kinesis": managed,
	} {
		if got, err := r2.Resolve(keyID); err != nil || got != want {
			t.Fatalf("Resolve(%q) = %q, %v; want %q", keyID, got, err, want)
		}
	}
	for keyID, want := range map[string]error{
		"alias/other":                                         ErrNotFound,
		"00000000-0000-4000-8000-000000000000":                ErrNotFound,
		"arn:aws:kms:us-east-1:000000000000:alias/other":      ErrNotFound,
		"arn:aws:kms:us-east-1:000000000000:key/not-a-key-id": ErrInvalidKey,
		"arn:aws:s3:::bucket":                                 ErrInvalidKey,
		"orders":                                              ErrInvalidKey,
		"":                                                    ErrInvalidKey,
	} {
		if _, err := r2.Resolve(keyID); !errors.Is(err, want) {
			t.Fatalf("Resolve(%q): %v, want %v", keyID, err, want)
		}
	}
}

func TestWrap(t *testing.T) {
	dir := t.TempDir()
	r := Open(filepath.Join(dir, "ring"))
	id, err := r.CreateKey("")
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{7}, KeySize)
	w, err := r.Wrap(id, secret, []byte("aad"))
	if err != nil || bytes.Contains(w, secret) {
		t.Fatalf("Wrap: %x %v", w, err)
	}
	w2, _ := r.Wrap(id, secret, []byte("aad"))
	if bytes.Equal(w, w2) {
		t.Fatal("two wraps of one key are the same bytes: the nonce repeats")
	}
	if got, err := Open(filepath.Join(dir, "ring")).Unwrap(id, w, []byte("aad")); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Unwrap: %x %v", got, err)
	}
	if _, err := r.Unwrap(id, w, []byte("other")); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Unwrap with other additional data: %v", err)
	}
	if _, err := r.Unwrap(id, w[:10], []byte("aad")); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Unwrap of a short key: %v", err)
	}
	// A key file others can read is refused, and the error shows no key material.
	key, _ := os.ReadFile(filepath.Join(dir, "ring", id+".key"))
	os.Chmod(filepath.Join(dir, "ring", id+".key"), 0o644)
	_, err = Open(filepath.Join(dir, "ring")).Unwrap(id, w, []byte("aad"))
	if !errors.Is(err, ErrInsecure) || bytes.Contains([]byte(err.Error()), key) {
		t.Fatalf("group-readable key: %v", err)
	}
	// A key file of the wrong size is refused.
	os.WriteFile(filepath.Join(dir, "ring", id+".key"), key[:16], 0o600)
	os.Chmod(filepath.Join(dir, "ring", id+".key"), 0o600)
	if _, err := Open(filepath.Join(dir, "ring")).Unwrap(id, w, []byte("aad")); err == nil {
		t.Fatal("a 16-byte key file was taken")
	}
}
