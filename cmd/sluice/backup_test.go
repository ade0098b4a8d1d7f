package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// startServeProcess runs `sluice serve` in a child process on a loopback port and returns
// its endpoint and the process, which the test ends with SIGKILL unless it stopped it.
func startServeProcess(t *testing.T, args ...string) (string, *exec.Cmd) {
	t.Helper()
	return startServeLogging(t, new(syncBuffer), args...)
}

// startServeLogging is startServeProcess with the process's stderr (its log) in stderr.
func startServeLogging(t *testing.T, stderr *syncBuffer, args ...string) (string, *exec.Cmd) {
	t.Helper()
	cmd := sluiceCmd(append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if _, after, ok := strings.Cut(lines.Text(), "on http://"); ok {
			go func() {
				for lines.Scan() { // keep its stdout drained
				}
			}()
			return "http://" + strings.Fields(after)[0], cmd
		}
	}
	t.Fatalf("the server never said where it listens:\n%s", stderr.String())
	return "", nil
}

// backupAck is a record the server acknowledged.
type backupAck struct {
	seq  client.SeqNum
	data string
}

// TestBackupUnderLoad backs up the data directory of a `sluice serve` process while a
// writer puts records to an encrypted stream, then serves the copy in a new process and
// reads every shard from the start: every record acknowledged before the backup started is
// there with its data, and of those acknowledged during the backup each shard holds a
// prefix. The copy's files are 0600 and its directories 0700, and no segment of it holds
// the plaintext of a record (the keyring came with it: the reads decrypt).
func TestBackupUnderLoad(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "backup")
	ep, srv := startServeProcess(t, "--data-dir", src, "--segment-size", "64KiB", "--limits", "off")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.New(client.Config{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const name = "backed-up"
	if err := c.CreateStream(ctx, name, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.CallKinesis(ctx, "StartStreamEncryption", map[string]string{"StreamName": name, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream to be active", func() bool {
		s, err := c.DescribeStreamSummary(ctx, name)
		return err == nil && s.Status == "ACTIVE"
	})

	// One writer, one batch in flight at a time: a shard's acknowledged records are in
	// sequence order, and at most one batch is written but not yet acknowledged.
	var (
		mu      sync.Mutex
		ack     []backupAck
		stop    = make(chan struct{})
		written = make(chan error, 1)
	)
	go func() {
		pad := strings.Repeat("p", 400)
		for i := 0; ; i++ {
			select {
			case <-stop:
				written <- nil
				return
			default:
			}
			batch := make([]client.PutEntry, 20)
			for j := range batch {
				batch[j] = client.PutEntry{Key: fmt.Sprint(i*20 + j), Data: fmt.Appendf(nil, "plaintext-marker %d %s", i*20+j, pad)}
			}
			res, err := c.PutRecords(ctx, name, batch)
			if err != nil {
				written <- err
				return
			}
			mu.Lock()
			for j, r := range res {
				if r.Err == nil {
					ack = append(ack, backupAck{r.SeqNum, string(batch[j].Data)})
				}
			}
			mu.Unlock()
		}
	}()
	ackedSoFar := func() []backupAck {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ack)
	}
	waitFor(t, "3,000 acknowledged records", func() bool { return len(ackedSoFar()) >= 3000 })
	before := ackedSoFar()
	out, err := sluiceCmd("backup", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("sluice backup: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	if !strings.Contains(string(out), "while a server was running") {
		t.Errorf("the backup did not see the server: %s", out)
	}
	close(stop)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	all := ackedSoFar()
	srv.Process.Kill()
	srv.Wait()
	c.Close()

	err = filepath.WalkDir(dst, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, info.Mode().Perm(), want)
		}
		if strings.HasSuffix(path, ".seg") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(b, []byte("plaintext-marker")) {
				t.Errorf("%s holds a record's plaintext", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	ep, _ = startServeProcess(t, "--data-dir", dst, "--limits", "off")
	rc, err := client.New(client.Config{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[client.SeqNum]string{}
	var order [2][]client.SeqNum
	for shard := range uint32(2) {
		in := client.GetInput{Shard: shard, Start: client.TrimHorizon}
		for {
			o, err := rc.GetRecords(ctx, name, in)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range o.Records {
				got[r.Seq()] = string(r.Data)
				order[shard] = append(order[shard], r.Seq())
			}
			n := len(o.Records)
			in = client.GetInput{Shard: shard, Start: client.AtSequenceNumber, Value: o.Next}
			o.Release()
			if n == 0 {
				break
			}
		}
	}
	for _, a := range before {
		if d, ok := got[a.seq]; !ok || d != a.data {
			t.Fatalf("record %v acknowledged before the backup: in the copy %v, data %.30q, want %.30q", a.seq, ok, d, a.data)
		}
	}
	// Records acknowledged during the backup: per shard, those in the copy are a prefix of
	// the shard's acknowledged records, and records of the batch in flight when the writer
	// stopped, not acknowledged, can only follow them.
	during := 0
	for shard := range uint32(2) {
		var shardAcked []backupAck
		for _, a := range all {
			if a.seq.Shard == shard {
				shardAcked = append(shardAcked, a)
			}
		}
		k := 0
		for k < len(shardAcked) && k < len(order[shard]) && order[shard][k] == shardAcked[k].seq {
			if got[shardAcked[k].seq] != shardAcked[k].data {
				t.Fatalf("shard %d record %v: data differs", shard, shardAcked[k].seq)
			}
			k++
		}
		for _, s := range order[shard][k:] {
			if k < len(shardAcked) && s.Position <= shardAcked[len(shardAcked)-1].seq.Position {
				t.Fatalf("shard %d: the copy holds %v but lacks the earlier acknowledged %v", shard, s, shardAcked[k].seq)
			}
		}
		during += k
	}
	during -= len(before)
	t.Logf("%d records acknowledged before the backup, %d during it of which %d are in the copy", len(before), len(all)-len(before), during)
}
