package stream

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/keyring"
)

// marker returns a string that appears nowhere by chance.
func marker(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "MARKER-" + hex.EncodeToString(b)
}

// filesHolding returns the files under dir whose bytes contain s.
func filesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func putOne(t *testing.T, e *Engine, key, data string) {
	t.Helper()
	res, err := e.PutRecords("s", []PutEntry{{PartitionKey: key, Data: []byte(data)}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
}

// readAll returns shard 0's records from the start as data strings, with their flags.
func readAll(t *testing.T, e *Engine) ([]string, []uint16, error) {
	t.Helper()
	it, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.GetRecords(it, 100)
	if err != nil {
		return nil, nil, err
	}
	defer r.Release()
	var data []string
	var flags []uint16
	recs := r.Records.Records()
	for recs.Next() {
		data = append(data, string(recs.Record().Data))
		flags = append(flags, recs.Record().Flags)
	}
	// The records handed out are valid frames: their CRCs check.
	for b := r.Records.Bytes(); len(b) > 0; {
		_, n, err := frame.Decode(b)
		if err != nil || n == 0 {
			t.Fatalf("frames handed out: %v", err)
		}
		b = b[n:]
	}
	return data, flags, nil
}

func TestEncryptionAtRest(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	plain, sealed, sealed2 := marker(t), marker(t), marker(t)
	putOne(t, e, "k", plain)
	if err := e.SetEncryption("s", "KMS", "alias/aws/kinesis"); err != nil {
		t.Fatal(err)
	}
	putOne(t, e, "k", sealed)
	if got := filesHolding(t, dir, plain); len(got) == 0 {
		t.Fatalf("the record put without encryption is on disk nowhere: the search is blind")
	}
	if got := filesHolding(t, dir, sealed); len(got) != 0 {
		t.Fatalf("the encrypted record's data is on disk in plaintext: %v", got)
	}
	want := []string{plain, sealed}
	check := func(when string, want []string) {
		t.Helper()
		data, flags, err := readAll(t, e)
		if err != nil || strings.Join(data, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: read %v, %v; want %v", when, data, err, want)
		}
		for i, f := range flags {
			if wantEnc := i > 0; (f&frame.FlagEncrypted != 0) != wantEnc || f&frame.FlagSealed != 0 {
				t.Fatalf("%s: record %d has flags %b", when, i, f)
			}
		}
	}
	check("before restart", want)
	// The keyring holds the managed key, owner-only.
	kdir := filepath.Join(dir, "kms-keyring")
	if fi, err := os.Stat(kdir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("keyring directory: %v %v", fi, err)
	}
	ents, _ := os.ReadDir(kdir)
	for _, ent := range ents {
		if fi, _ := ent.Info(); fi.Mode().Perm() != 0o600 {
			t.Fatalf("keyring file %s has mode %v", ent.Name(), fi.Mode().Perm())
		}
	}
	e.Close()

	// After a restart the records open, and a put makes a new data key.
	e = testEngine(t, dir, c, "off")
	check("after restart", want)
	putOne(t, e, "k2", sealed2)
	want = append(want, sealed2)
	check("after a put under a new data key", want)
	if n := len(e.streams["s"].meta.Load().DataKeys); n != 2 {
		t.Fatalf("%d data keys, want one per process that put", n)
	}
	// A subscription sees the plaintext too.
	cons, err := e.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.Subscribe(SubscribeInput{ConsumerARN: cons.ARN, Shard: 0, Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := next(t, sub)
	if err != nil || strings.Join(eventData(ev), ",") != strings.Join(want, ",") {
		t.Fatalf("subscription: %v %v", eventData(ev), err)
	}
	ev.Release()

	// Stopping encryption leaves the sealed records readable; new ones are plaintext.
	if err := e.SetEncryption("s", "NONE", ""); err != nil {
		t.Fatal(err)
	}
	after := marker(t)
	putOne(t, e, "k", after)
	if got := filesHolding(t, dir, after); len(got) == 0 {
		t.Fatalf("a record put after StopStreamEncryption is not plaintext on disk")
	}
	data, _, err := readAll(t, e)
	if err != nil || len(data) != 4 || data[3] != after || data[1] != sealed {
		t.Fatalf("after stop: %v %v", data, err)
	}
	e.Close()
}

func TestEncryptionKeyring(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	ring := keyring.Open(filepath.Join(dir, "kms-keyring"))
	id, err := ring.CreateKey("alias/orders")
	if err != nil {
		t.Fatal(err)
	}
	for _, keyID := range []string{"alias/nope", "0f0f0f0f-0000-4000-8000-000000000000", "arn:aws:kms:us-east-1:000000000000:alias/nope", "not a key"} {
		if err := e.SetEncryption("s", "KMS", keyID); !errors.Is(err, ErrKMSNotFound) {
			t.Fatalf("SetEncryption %q: %v, want KMSNotFound", keyID, err)
		}
	}
	if err := e.SetEncryption("nope", "KMS", "alias/orders"); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("unknown stream: %v", err)
	}
	if d, _ := e.Describe("s"); d.Encryption != "NONE" {
		t.Fatalf("a refused key changed the stream: %s", d.Encryption)
	}
	for _, keyID := range []string{id, "alias/orders", "arn:aws:kms:us-east-1:000000000000:key/" + id, "arn:aws:kms:eu-west-1:123456789012:alias/orders"} {
		if err := e.SetEncryption("s", "KMS", keyID); err != nil {
			t.Fatalf("SetEncryption %q: %v", keyID, err)
		}
	}
	secret := marker(t)
	putOne(t, e, "k", secret)
	e.Close()

	// Another (empty) keyring: the record is refused, never served as ciphertext.
	l, _ := ParseLimits("off")
	open := func(keyringDir string) *Engine {
		t.Helper()
		e, err := Open(Options{Dir: dir, Now: c.Now, Limits: l, KeyringDir: keyringDir})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e = open(t.TempDir())
	if _, _, err := readAll(t, e); !errors.Is(err, ErrKMSNotFound) || strings.Contains(err.Error(), dir) {
		t.Fatalf("read with another keyring: %v", err)
	}
	e.Close()

	// The same key id with other material: KMSAccessDenied, and the message names no secret.
	other := t.TempDir()
	kdir := filepath.Join(other, "k")
	if err := os.Mkdir(kdir, 0o700); err != nil {
		t.Fatal(err)
	}
	wrong := make([]byte, keyring.KeySize)
	rand.Read(wrong)
	if err := os.WriteFile(filepath.Join(kdir, id+".key"), wrong, 0o600); err != nil {
		t.Fatal(err)
	}
	e = open(kdir)
	var se *Error
	if _, _, err := readAll(t, e); !errors.Is(err, ErrKMSAccessDenied) || !errors.As(err, &se) || strings.Contains(se.Msg, hex.EncodeToString(wrong)) {
		t.Fatalf("read with a wrong key: %v", err)
	}
	e.Close()

	// A keyring readable by others is refused.
	if err := os.Chmod(filepath.Join(kdir, id+".key"), 0o644); err != nil {
		t.Fatal(err)
	}
	e = open(kdir)
	if _, _, err := readAll(t, e); !errors.Is(err, keyring.ErrInsecure) {
		t.Fatalf("read with a group-readable key: %v", err)
	}
	e.Close()

	// Sealed data altered on disk does not authenticate: an internal failure, no garbage.
	e = open("")
	if _, _, err := readAll(t, e); err != nil {
		t.Fatal(err)
	}
	e.Close()
	flipped := 0
	filepath.WalkDir(filepath.Join(dir, streamsDir), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".seg") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// The record's frame: key "k", then the sealed data (12 bytes of nonce first).
		for off := 0; off+frame.HeaderSize < len(b); off += 8 {
			h, err := frame.DecodeHeader(b[off:])
			if err != nil || h.Len == 0 || h.Flags&frame.FlagSealed == 0 {
				continue
			}
			f := b[off : off+h.Len]
			f[frame.HeaderSize+h.KeyLen+sealNonceSize] ^= 1
			binary := frame.Append(nil, &frame.Record{Seq: h.Seq, Time: h.Time, Flags: h.Flags,
				Key: f[frame.HeaderSize : frame.HeaderSize+h.KeyLen], Data: f[frame.HeaderSize+h.KeyLen:]})
			copy(b[off:], binary) // a valid CRC: only the cipher can tell
			flipped++
			break
		}
		return os.WriteFile(path, b, 0o644)
	})
	if flipped != 1 {
		t.Fatalf("flipped %d sealed records, want 1", flipped)
	}
	e = open("")
	defer e.Close()
	if data, _, err := readAll(t, e); !errors.Is(err, ErrSealed) || KindOf(err) != KindInternalFailure {
		t.Fatalf("read of an altered record: %q %v", data, err)
	}
}

func TestEncryptedRecordSize(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetMaxRecordSize("s", MaxMaxRecordKiB); err != nil {
		t.Fatal(err)
	}
	if err := e.SetEncryption("s", "KMS", "alias/aws/kinesis"); err != nil {
		t.Fatal(err)
	}
	// The largest record that still fits a frame once sealed is taken, one byte more refused.
	n := frame.MaxDataLen - SealOverhead
	if res, err := e.PutRecords("s", []PutEntry{{PartitionKey: "k", Data: make([]byte, n)}}); err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	if _, err := e.PutRecords("s", []PutEntry{{PartitionKey: "k", Data: make([]byte, n+1)}}); !errors.Is(err, ErrValidation) {
		t.Fatalf("a record too large to seal: %v", err)
	}
	data, _, err := readAll(t, e)
	if err != nil || len(data) != 1 || len(data[0]) != n {
		t.Fatalf("read: %d records, %v", len(data), err)
	}
}

// TestEncryptionRotation rotates the stream's master key: until RenewDataKeys the engine
// seals under the data key it has, wrapped by version 1; after it, under a new data key
// wrapped by version 2. Every record reads back, also after a restart, and a keyring
// without version 2 cannot open what it sealed.
func TestEncryptionRotation(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	ringDir := filepath.Join(dir, "kms-keyring")
	id, err := keyring.Open(ringDir).CreateKey("alias/orders")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetEncryption("s", "KMS", "alias/orders"); err != nil {
		t.Fatal(err)
	}
	versions := func(e *Engine) []uint32 {
		s, err := e.stream("s")
		if err != nil {
			t.Fatal(err)
		}
		var out []uint32
		for _, dk := range s.meta.Load().DataKeys {
			if dk.Master != id {
				t.Fatalf("data key %d wrapped by %s, not %s", dk.ID, dk.Master, id)
			}
			out = append(out, dk.Version)
		}
		return out
	}
	putOne(t, e, "k", "before")
	if _, v, err := keyring.Open(ringDir).Rotate("alias/orders"); err != nil || v != 2 {
		t.Fatalf("Rotate: version %d, %v", v, err)
	}
	putOne(t, e, "k", "rotated, not renewed")
	if got := versions(e); !slices.Equal(got, []uint32{1}) {
		t.Fatalf("data key versions before RenewDataKeys: %v", got)
	}
	e.RenewDataKeys()
	putOne(t, e, "k", "renewed")
	if got := versions(e); !slices.Equal(got, []uint32{1, 2}) {
		t.Fatalf("data key versions after RenewDataKeys: %v", got)
	}
	e.Close()

	l, _ := ParseLimits("off")
	e, err = Open(Options{Dir: dir, Now: c.Now, Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := readAll(t, e)
	if want := []string{"before", "rotated, not renewed", "renewed"}; err != nil || !slices.Equal(data, want) {
		t.Fatalf("after a restart: %q %v, want %q", data, err, want)
	}
	e.Close()

	// Without version 2 the records it sealed do not open: KMSNotFound, never ciphertext.
	if err := os.Remove(filepath.Join(ringDir, id+".v2.key")); err != nil {
		t.Fatal(err)
	}
	e, err = Open(Options{Dir: dir, Now: c.Now, Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, _, err := readAll(t, e); !errors.Is(err, ErrKMSNotFound) {
		t.Fatalf("read without version 2: %v", err)
	}
}
