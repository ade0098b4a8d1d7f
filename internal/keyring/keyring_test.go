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
	w, v, err := r.Wrap(id, secret, []byte("aad"))
	if err != nil || v != 1 || bytes.Contains(w, secret) {
		t.Fatalf("Wrap: %x version %d %v", w, v, err)
	}
	w2, _, _ := r.Wrap(id, secret, []byte("aad"))
	if bytes.Equal(w, w2) {
		t.Fatal("two wraps of one key are the same bytes: the nonce repeats")
	}
	if got, err := Open(filepath.Join(dir, "ring")).Unwrap(id, 1, w, []byte("aad")); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Unwrap: %x %v", got, err)
	}
	if _, err := r.Unwrap(id, 1, w, []byte("other")); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Unwrap with other additional data: %v", err)
	}
	if _, err := r.Unwrap(id, 1, w[:10], []byte("aad")); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Unwrap of a short key: %v", err)
	}
	// A key file others can read is refused, and the error shows no key material.
	key, _ := os.ReadFile(filepath.Join(dir, "ring", id+".key"))
	os.Chmod(filepath.Join(dir, "ring", id+".key"), 0o644)
	_, err = Open(filepath.Join(dir, "ring")).Unwrap(id, 1, w, []byte("aad"))
	if !errors.Is(err, ErrInsecure) || bytes.Contains([]byte(err.Error()), key) {
		t.Fatalf("group-readable key: %v", err)
	}
	// A key file of the wrong size is refused.
	os.WriteFile(filepath.Join(dir, "ring", id+".key"), key[:16], 0o600)
	os.Chmod(filepath.Join(dir, "ring", id+".key"), 0o600)
	if _, err := Open(filepath.Join(dir, "ring")).Unwrap(id, 1, w, []byte("aad")); err == nil {
		t.Fatal("a 16-byte key file was taken")
	}
}

// TestRotate rotates a key twice: each Wrap after a rotation names the new version, every
// version unwraps what it wrapped (also after a restart), a version does not open what
// another wrapped, and an alias rotates the key it names.
func TestRotate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ring")
	r := Open(dir)
	id, err := r.CreateKey("alias/orders")
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{9}, KeySize)
	aad := []byte("aad")
	wrapped := map[uint32][]byte{}
	for want := uint32(1); want <= 3; want++ {
		if want > 1 {
			got, v, err := r.Rotate("alias/orders")
			if err != nil || got != id || v != want {
				t.Fatalf("Rotate: %s version %d, %v; want %s version %d", got, v, err, id, want)
			}
			fi, err := os.Stat(filepath.Join(dir, keyFile(id, v)))
			if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != KeySize {
				t.Fatalf("version %d's file: %v %v", v, fi, err)
			}
		}
		w, v, err := r.Wrap(id, secret, aad)
		if err != nil || v != want {
			t.Fatalf("Wrap after rotating to %d: version %d, %v", want, v, err)
		}
		wrapped[v] = w
	}
	// A Ring that loaded version 1 before another process rotated sees the new version.
	other := Open(dir)
	if _, v, err := other.Wrap(id, secret, aad); err != nil || v != 3 {
		t.Fatalf("Wrap in a second Ring: version %d, %v", v, err)
	}
	if _, _, err := Open(dir).Rotate(id); err != nil {
		t.Fatal(err)
	}
	if _, v, err := other.Wrap(id, secret, aad); err != nil || v != 4 {
		t.Fatalf("Wrap after another Ring rotated: version %d, %v", v, err)
	}
	restarted := Open(dir)
	for v, w := range wrapped {
		if got, err := restarted.Unwrap(id, v, w, aad); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("Unwrap of version %d after a restart: %x %v", v, got, err)
		}
		if _, err := restarted.Unwrap(id, v%3+1, w, aad); !errors.Is(err, ErrUnwrap) {
			t.Fatalf("version %d opened what version %d wrapped: %v", v%3+1, v, err)
		}
	}
	if _, err := restarted.Unwrap(id, 9, wrapped[1], aad); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Unwrap under a version the keyring lacks: %v", err)
	}
	// Files that are not versions Rotate writes are not taken for the newest version.
	for _, name := range []string{id + ".v9.key.tmp", id + ".v09.key", id + ".vx.key"} {
		if err := os.WriteFile(filepath.Join(dir, name), secret, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, v, err := Open(dir).Wrap(id, secret, aad); err != nil || v != 4 {
		t.Fatalf("Wrap beside stray files: version %d, %v", v, err)
	}
	if _, _, err := r.Rotate("alias/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Rotate of a missing alias: %v", err)
	}
}

// TestRotateConcurrent rotates one key from two Rings at once (two processes): every
// rotation either adds a version of its own or fails with ErrRotating, and no version's
// file is ever replaced.
func TestRotateConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ring")
	id, err := Open(dir).CreateKey("")
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	versions := make(chan uint32, 2*rounds)
	errs := make(chan error, 2*rounds)
	done := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			r := Open(dir)
			for range rounds {
				_, v, err := r.Rotate(id)
				if err != nil {
					errs <- err
					continue
				}
				versions <- v
			}
		}()
	}
	<-done
	<-done
	close(versions)
	close(errs)
	seen := map[uint32]bool{}
	for v := range versions {
		if seen[v] {
			t.Fatalf("version %d was made twice", v)
		}
		seen[v] = true
	}
	for err := range errs {
		if !errors.Is(err, ErrRotating) {
			t.Fatalf("a concurrent rotation failed with %v", err)
		}
	}
	if _, v, err := Open(dir).Wrap(id, make([]byte, KeySize), nil); err != nil || v != uint32(len(seen))+1 {
		t.Fatalf("newest version %d, %v; %d rotations succeeded", v, err, len(seen))
	}
}
