package stream

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/vfs"
)

func TestIteratorRoundTripAndKeyPersistence(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadIteratorKey(vfs.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_700_000_000_123)
	it := Iterator{Stream: "orders", StreamGen: 42, Shard: 7, Pos: 1 << 40, Issued: now, Account: "123456789012"}
	tok := k.Encode(it)
	if len(tok) > 512 || strings.ContainsAny(tok, "+/=") {
		t.Fatalf("token %q: length %d or characters unsafe in URLs", tok, len(tok))
	}
	got, err := k.Decode(tok, now.Add(IteratorTTL))
	if err != nil || got != it {
		t.Fatalf("Decode = %+v, %v; want %+v", got, err, it)
	}
	if st, err := os.Stat(filepath.Join(dir, keyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, st.Mode())
	}
	// The key survives a restart: the same token still decodes.
	k2, err := LoadIteratorKey(vfs.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Decode(tok, now); err != nil {
		t.Fatalf("token refused after reloading the key: %v", err)
	}
	// Another data directory's key refuses it.
	k3, err := LoadIteratorKey(vfs.OS, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k3.Decode(tok, now); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("foreign key: %v", err)
	}
	long := Iterator{Stream: strings.Repeat("s", 128), Issued: now, Account: strings.Repeat("1", maxIterAcct)}
	if n := len(k.Encode(long)); n > 512 {
		t.Fatalf("longest token is %d characters", n)
	}
}

// TestIteratorVersion1 decodes a token in the layout before the account was added, as a
// server upgraded within an iterator's lifetime reads it: the same fields, no account.
func TestIteratorVersion1(t *testing.T) {
	k, err := LoadIteratorKey(vfs.OS, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_700_000_000_000)
	want := Iterator{Stream: "orders", StreamGen: 9, Shard: 3, Pos: 77, Issued: now}
	b := []byte{iterVersion1, 0, 0, 0}
	b = binary.LittleEndian.AppendUint32(b, 3)
	b = binary.LittleEndian.AppendUint64(b, 77)
	b = binary.LittleEndian.AppendUint64(b, uint64(now.UnixMilli()))
	b = binary.LittleEndian.AppendUint64(b, 9)
	b = binary.LittleEndian.AppendUint16(b, uint16(len("orders")))
	b = append(b, "orders"...)
	b = append(b, k.mac(b)...)
	got, err := k.Decode(base64.RawURLEncoding.EncodeToString(b), now)
	if err != nil || got != want {
		t.Fatalf("version 1 token: %+v, %v; want %+v", got, err, want)
	}
}

func TestIteratorRejects(t *testing.T) {
	k, err := LoadIteratorKey(vfs.OS, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_700_000_000_000)
	tok := k.Encode(Iterator{Stream: "s", Shard: 1, Pos: 5, Issued: now})
	if _, err := k.Decode(tok, now.Add(IteratorTTL+time.Millisecond)); !errors.Is(err, ErrExpiredIterator) {
		t.Fatalf("expired: %v", err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	for i := range raw {
		for _, bit := range []byte{1, 0x80} {
			b := append([]byte(nil), raw...)
			b[i] ^= bit
			if _, err := k.Decode(base64.RawURLEncoding.EncodeToString(b), now); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("byte %d flipped: %v", i, err)
			}
		}
	}
	for _, bad := range []string{"", "x", "!!!!", tok[:len(tok)-1], tok + "A", strings.Repeat("A", 600)} {
		if _, err := k.Decode(bad, now); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("Decode(%q): %v", bad, err)
		}
	}
}

func TestIteratorKeyFileDamaged(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, keyFile), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIteratorKey(vfs.OS, dir); err == nil {
		t.Fatal("a short key file was accepted")
	}
}

// TestIteratorAccount: an iterator carries the account it was issued to, GetRecords' next
// iterator keeps it, and an iterator asked for without one carries the engine's.
func TestIteratorAccount(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.PutRecords("s", []PutEntry{{PartitionKey: "k", Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	for account, want := range map[string]string{"111122223333": "111122223333", "": e.Account()} {
		tok, err := e.GetShardIterator(IteratorInput{Stream: "s", Type: TrimHorizon, Account: account})
		if err != nil {
			t.Fatal(err)
		}
		it, err := e.Iterator(tok)
		if err != nil || it.Account != want || it.Stream != "s" {
			t.Fatalf("account %q: %+v, %v; want account %s", account, it, err, want)
		}
		r, err := e.ReadIterator(it, 10)
		if err != nil || r.Records.Count != 1 {
			t.Fatalf("read: %d records, %v", r.Records.Count, err)
		}
		r.Release()
		next, err := e.Iterator(r.NextIterator)
		if err != nil || next.Account != want {
			t.Fatalf("next iterator: %+v, %v; want account %s", next, err, want)
		}
	}
}

// TestGivenIteratorKey opens two engines on different data directories with one key given
// in Options.IteratorKey, as a cluster's nodes are: a token one issues is accepted by the
// other, no iterator.key is written, an engine with another key refuses it, and a key of the
// wrong size does not open.
func TestGivenIteratorKey(t *testing.T) {
	key := []byte(strings.Repeat("k", IteratorKeySize))
	open := func(k []byte) (*Engine, string, error) {
		dir := t.TempDir()
		e, err := Open(Options{Dir: dir, IteratorKey: k})
		if err == nil {
			t.Cleanup(func() { e.Close() })
		}
		return e, dir, err
	}
	a, dirA, err := open(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := open(key)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := open([]byte(strings.Repeat("o", IteratorKeySize)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	tok, err := a.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	if it, err := b.Iterator(tok); err != nil || it.Stream != "s" {
		t.Fatalf("the other engine with the same key: %+v, %v", it, err)
	}
	if _, err := other.Iterator(tok); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("an engine with another key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dirA, keyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s with a given key: %v", keyFile, err)
	}
	if _, _, err := open(key[:16]); err == nil {
		t.Fatal("an engine opened with a 16-byte iterator key")
	}
}
