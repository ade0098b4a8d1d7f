package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/segment"
)

// TestRotateKeyServe rotates the master key of an encrypted stream under a running `sluice
// serve` process: marker A is put, `sluice rotate-key` adds version 2 and SIGHUP makes the
// server start a new data key, marker B is put, the server restarts and marker C is put.
// All three read back; no file of the data directory holds any marker; and, read from the
// segment files and stream.json, A's data key is wrapped by version 1 of the key and B's
// and C's by version 2.
func TestRotateKeyServe(t *testing.T) {
	dir := t.TempDir()
	ring := filepath.Join(dir, "kms-keyring")
	var log syncBuffer
	ep, srv := startServeLogging(t, &log, "--data-dir", dir, "--limits", "off")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.New(client.Config{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const name = "rotated"
	if err := c.CreateStream(ctx, name, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.CallKinesis(ctx, "StartStreamEncryption", map[string]string{"StreamName": name, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream to be active", func() bool {
		s, err := c.DescribeStreamSummary(ctx, name)
		return err == nil && s.Status == "ACTIVE"
	})
	markers := map[string]string{"A": "rotation-marker-A-before", "B": "rotation-marker-B-after", "C": "rotation-marker-C-restarted"}
	put := func(c *client.Client, which string) {
		t.Helper()
		res, err := c.PutRecords(ctx, name, []client.PutEntry{{Key: "key-" + which, Data: []byte(markers[which])}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("putting marker %s: %v %v", which, err, res)
		}
	}
	put(c, "A")

	out, err := sluiceCmd("rotate-key", "--kms-keyring", ring, "alias/aws/kinesis").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice rotate-key: %v\n%s", err, out)
	}
	master, version, ok := strings.Cut(strings.TrimSpace(string(out)), " version ")
	if !ok || version != "2" {
		t.Fatalf("sluice rotate-key printed %q, want <key id> version 2", out)
	}
	if err := srv.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to renew its data keys", func() bool { return strings.Contains(log.String(), "new data keys") })
	put(c, "B")
	c.Close()
	stopServe(t, srv)

	ep, srv = startServeProcess(t, "--data-dir", dir, "--limits", "off")
	rc, err := client.New(client.Config{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	put(rc, "C")
	o, err := rc.GetRecords(ctx, name, client.GetInput{Shard: 0, Start: client.TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range o.Records {
		got = append(got, string(r.Key)+"="+string(r.Data))
	}
	o.Release()
	if want := []string{"key-A=" + markers["A"], "key-B=" + markers["B"], "key-C=" + markers["C"]}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("read back %q, want %q", got, want)
	}
	rc.Close()
	stopServe(t, srv)

	// No file of the data directory holds a marker.
	var segs []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for which, m := range markers {
			if bytes.Contains(b, []byte(m)) {
				t.Errorf("%s holds marker %s in the clear", path, which)
			}
		}
		if strings.HasSuffix(path, ".seg") {
			segs = append(segs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The data key each marker is sealed under, from its frame, and the master key version
	// that wraps it, from stream.json.
	var meta struct {
		DataKeys []struct {
			ID      uint32 `json:"id"`
			Master  string `json:"master"`
			Version uint32 `json:"version"`
		} `json:"dataKeys"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "streams", name, "stream.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	sealedUnder := map[string]uint32{} // marker → data key id
	for _, path := range segs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for off := segment.DataOffset; off < len(b); {
			r, n, err := frame.Decode(b[off:])
			if err != nil || n == 0 {
				break
			}
			off += n
			which, ok := strings.CutPrefix(string(r.Key), "key-")
			if !ok {
				continue
			}
			if r.Flags&frame.FlagSealed == 0 || len(r.Data) < 4 {
				t.Fatalf("marker %s's frame is not sealed: flags %#x", which, r.Flags)
			}
			sealedUnder[which] = binary.LittleEndian.Uint32(r.Data)
		}
	}
	for which, want := range map[string]uint32{"A": 1, "B": 2, "C": 2} {
		id, ok := sealedUnder[which]
		if !ok {
			t.Fatalf("no segment holds marker %s's frame (found %v)", which, sealedUnder)
		}
		found := false
		for _, dk := range meta.DataKeys {
			if dk.ID != id {
				continue
			}
			found = true
			if dk.Master != master || dk.Version != want {
				t.Errorf("marker %s: data key %d is wrapped by %s version %d, want %s version %d", which, id, dk.Master, dk.Version, master, want)
			}
		}
		if !found {
			t.Errorf("marker %s: data key %d is not in stream.json: %s", which, id, b)
		}
	}
	if sealedUnder["A"] == sealedUnder["B"] || sealedUnder["B"] == sealedUnder["C"] {
		t.Errorf("markers share a data key across the rotation or the restart: %v", sealedUnder)
	}
}

// stopServe stops a `sluice serve` process as an operator does, with SIGTERM, and waits
// for it to exit cleanly.
func stopServe(t *testing.T, srv *exec.Cmd) {
	t.Helper()
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("sluice serve after SIGTERM: %v", err)
	}
}

// TestRotateKeyUsage checks the verb's arguments and its errors: a key the keyring lacks
// is refused and changes nothing.
func TestRotateKeyUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ring")
	var out, errOut bytes.Buffer
	if st := run([]string{"create-key", "--kms-keyring", dir, "--alias", "alias/orders"}, &out, &errOut); st != exitOK {
		t.Fatalf("create-key: %d %s", st, errOut.String())
	}
	id := strings.TrimSpace(out.String())
	for _, tc := range []struct {
		args   []string
		status int
		stdout string
		stderr string
	}{
		{[]string{"rotate-key", "alias/orders"}, exitUsage, "", "--kms-keyring and one KEY-ID"},
		{[]string{"rotate-key", "--kms-keyring", dir}, exitUsage, "", "--kms-keyring and one KEY-ID"},
		{[]string{"rotate-key", "--kms-keyring", dir, "alias/other"}, exitError, "", "key not found"},
		{[]string{"rotate-key", "--kms-keyring", dir, "orders"}, exitError, "", "invalid key id"},
		{[]string{"rotate-key", "--kms-keyring", dir, "alias/orders"}, exitOK, id + " version 2\n", ""},
		{[]string{"rotate-key", "--kms-keyring", dir, "arn:aws:kms:us-east-1:000000000000:key/" + id}, exitOK, id + " version 3\n", ""},
	} {
		out.Reset()
		errOut.Reset()
		if st := run(tc.args, &out, &errOut); st != tc.status || out.String() != tc.stdout || !strings.Contains(errOut.String(), tc.stderr) {
			t.Fatalf("%q: %d %q %q", tc.args, st, out.String(), errOut.String())
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{id + ".key", id + ".v2.key", id + ".v3.key", "aliases.json"}
	slices.Sort(want) // os.ReadDir's order
	if !slices.Equal(names, want) {
		t.Fatalf("keyring holds %q, want %q", names, want)
	}
}
