//go:build linux

package powercut

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/internal/lazyfs"
)

// Environment variables of the long run (make nightly).
const (
	itersEnv = "SLUICE_POWERCUT_ITERATIONS" // cuts per durability mode; default 3
	seedEnv  = "SLUICE_POWERCUT_SEED"       // the seed to replay; default from the clock
	keepEnv  = "SLUICE_POWERCUT_KEEP"       // a directory to copy the disk into when a test fails
)

// epoch is how many restarts one stream lives through: then it is deleted and the next
// epoch writes to a new one, so that resharding does not pile up shards for a long run to
// start and read at every restart.
const epoch = 8

// sluiceBin is the `sluice` binary TestMain builds.
var sluiceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "powercut-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", sluiceBin, "github.com/sluice-streams/sluice/cmd/sluice")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestPowerCutSync: in sync mode a power cut loses no acknowledged record.
func TestPowerCutSync(t *testing.T) { runCuts(t, "sync") }

// TestPowerCutInterval: in interval=T mode a power cut loses, per shard, a suffix of the
// acknowledged records: only records acknowledged in the last T (plus the batch being synced).
func TestPowerCutInterval(t *testing.T) { runCuts(t, "interval=50ms") }

// TestPowerCutNone: in none mode a power cut loses, per shard, a suffix of the acknowledged
// records, never one in the middle.
func TestPowerCutNone(t *testing.T) { runCuts(t, "none") }

// intervalSlack is what the interval check allows on top of T between an acknowledgement
// and the sync that covers it: the syncer's wake-up and its fdatasync on a loaded machine.
// A syncer that never ran would lose records older than the whole load phase (up to
// maxLoad), which is well past it.
const intervalSlack = 800 * time.Millisecond

const maxLoad = 2500 * time.Millisecond

// acked is an acknowledged record.
type acked struct {
	key   string
	data  []byte
	shard uint32
	pos   uint64
	at    time.Time // when the acknowledgement arrived
}

// tally is what one mode's run saw.
type tally struct {
	cuts, kills, checked, lost, unacked, reshards, pagesKept, pagesDropped int
	oldestLost                                                             time.Duration
}

func runCuts(t *testing.T, mode string) {
	iters := 3
	if v := os.Getenv(itersEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive count", itersEnv, v)
		}
		iters = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(seedEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, v, err)
		}
		seed = n
	}
	t.Logf("mode %s, %d iterations, seed %d (%s=%d replays it)", mode, iters, seed, seedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	interval := time.Duration(0)
	if d, ok := cutPrefix(mode, "interval="); ok {
		var err error
		if interval, err = time.ParseDuration(d); err != nil {
			t.Fatal(err)
		}
	}
	disk, mnt, srv := setup(t, mode)
	ctx := context.Background()
	var tl tally
	survivors := map[string]acked{} // checked after an earlier restart: durable since
	var (
		pending []acked // acknowledged after the last check, before the next load
		deleted string  // the stream the last epoch deleted
	)
	for it := range iters {
		load := time.Duration(200+rng.IntN(int(maxLoad/time.Millisecond)-200)) * time.Millisecond
		if interval == 0 {
			load = load / 3 / time.Millisecond * time.Millisecond // no time in the promise: more cuts a minute
		}
		acks, reshards, killedAt := runLoad(t, srv, rng.Uint64(), load)
		acks = append(pending, acks...)
		tl.reshards += reshards
		power := rng.IntN(4) != 0 // one restart in four is a kill -9 alone
		if power {
			keep := 0.0
			if rng.IntN(2) == 0 {
				keep = rng.Float64() / 2
			}
			st, err := disk.Cut(rng, keep)
			if err != nil {
				t.Fatalf("iteration %d: cut: %v", it, err)
			}
			t.Logf("iteration %d: power cut after %v of load, %d acknowledged records; keep %.2f: %+v", it, load, len(acks), keep, st)
			tl.cuts++
			tl.pagesKept += st.Kept
			tl.pagesDropped += st.Dropped
			if err := disk.Mount(mnt); err != nil {
				t.Fatal(err)
			}
		} else {
			t.Logf("iteration %d: kill -9 after %v of load, %d acknowledged records", it, load, len(acks))
			tl.kills++
		}
		name := srv.stream
		srv = startServer(t, mnt, mode)
		srv.stream = name
		got := readAll(t, srv)
		tl.checked += len(survivors) + len(acks)
		old := slices.Collect(maps.Values(survivors))
		lost := check(t.Errorf, it, mode, !power, interval, killedAt, old, true, got, &tl)
		lost += check(t.Errorf, it, mode, !power, interval, killedAt, acks, false, got, &tl)
		tl.lost += lost
		tl.unacked += len(got) - (len(survivors) + len(acks) - lost)
		// Everything read now, acknowledged or not, is on the disk: recovery syncs what it
		// trusts, so no later cut may take any of it.
		maps.Copy(survivors, got)
		if deleted != "" {
			if _, err := srv.c.DescribeStreamSummary(ctx, deleted); !errors.Is(err, client.ErrNotFound) {
				t.Errorf("iteration %d: stream %s, deleted before the restart, answers %v", it, deleted, err)
			}
			deleted = ""
		}
		if t.Failed() {
			t.Fatalf("iteration %d: the restarted server lost what mode %s promises to keep (seed %d)", it, mode, seed)
		}
		if (it+1)%epoch == 0 {
			if err := srv.c.DeleteStream(ctx, name); err != nil {
				t.Fatalf("iteration %d: deleting %s: %v", it, name, err)
			}
			deleted = name
			srv.newStream(t, fmt.Sprintf("powercut-%d", (it+1)/epoch))
			clear(survivors)
		}
		// The restarted server takes writes again; the next check covers this one too.
		var err error
		if pending, err = putBatch(ctx, srv, rng, 1); err != nil || len(pending) != 1 {
			t.Fatalf("iteration %d: a put after the restart: %v", it, err)
		}
	}
	srv.kill(t)
	if tl.reshards == 0 {
		t.Errorf("no resharding succeeded during the load")
	}
	t.Logf("mode %s: %d power cuts (%d unsynced pages dropped, %d kept), %d kills; %d acknowledged records checked, %d lost (oldest acknowledged %v before the kill), %d unacknowledged records found; %d reshards",
		mode, tl.cuts, tl.pagesDropped, tl.pagesKept, tl.kills, tl.checked, tl.lost, tl.oldestLost.Round(time.Millisecond), tl.unacked, tl.reshards)
}

// setup mounts a Disk for t and starts a server in mode on it, with a stream of two shards.
func setup(t *testing.T, mode string) (*lazyfs.Disk, string, *server) {
	t.Helper()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	disk := lazyfs.MountT(t, filepath.Join(dir, "disk"), mnt)
	t.Cleanup(func() {
		if keep := os.Getenv(keepEnv); keep != "" && t.Failed() {
			// Runs after the server's kill and the unmount: the disk as the last restart saw it.
			dst := filepath.Join(keep, t.Name())
			if out, err := exec.Command("cp", "-a", disk.Root(), dst).CombinedOutput(); err != nil {
				t.Errorf("keeping the disk: %v: %s", err, out)
			} else {
				t.Logf("the disk is kept in %s", dst)
			}
		}
	})
	srv := startServer(t, mnt, mode)
	srv.newStream(t, "powercut-0")
	return disk, mnt, srv
}

// TestCheckBites runs none mode and holds it to sync mode's promise: a power cut after load
// must make the check report lost acknowledged records, or the checks above could pass
// without a cut ever taking anything away. Each try is one cut; three tries allow for a cut
// that lands just after a segment was sealed (synced).
func TestCheckBites(t *testing.T) {
	disk, mnt, srv := setup(t, "none")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for try := range 3 {
		acks, _, killedAt := runLoad(t, srv, rng.Uint64(), 300*time.Millisecond)
		if _, err := disk.Cut(rng, 0); err != nil {
			t.Fatal(err)
		}
		if err := disk.Mount(mnt); err != nil {
			t.Fatal(err)
		}
		srv = startServer(t, mnt, "none")
		var reports []string
		report := func(format string, args ...any) { reports = append(reports, fmt.Sprintf(format, args...)) }
		srv.stream = "powercut-0"
		lost := check(report, try, "sync", false, 0, killedAt, acks, false, readAll(t, srv), &tally{})
		t.Logf("try %d: %d of %d acknowledged records lost; %d reports", try, lost, len(acks), len(reports))
		if len(reports) > 0 {
			t.Logf("first report: %s", reports[0])
			return
		}
	}
	t.Fatal("three power cuts of a none-mode server never broke the sync promise: the cut or the check does nothing")
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

func same(a, b acked) bool {
	return a.shard == b.shard && a.pos == b.pos && string(a.data) == string(b.data)
}

// check checks records against the promise of mode after a restart, reports every breach to
// errorf and returns how many of them are lost. The records are those acknowledged before
// the kill, or with old, those an earlier restart read: in every mode those must all be
// there, since a restarted server serves only what is on the disk.
func check(errorf func(string, ...any), it int, mode string, killOnly bool, interval time.Duration, killedAt time.Time, acks []acked, old bool, got map[string]acked, tl *tally) int {
	// The highest position read in each shard, acknowledged or not.
	top := map[uint32]uint64{}
	for _, r := range got {
		top[r.shard] = max(top[r.shard], r.pos)
	}
	lost := 0
	for _, a := range acks {
		r, ok := got[a.key]
		if ok {
			if !same(r, a) {
				errorf("iteration %d: record %s reads back as shard %d position %d (%d bytes), acknowledged as shard %d position %d (%d bytes)",
					it, a.key, r.shard, r.pos, len(r.data), a.shard, a.pos, len(a.data))
			}
			continue
		}
		lost++
		age := killedAt.Sub(a.at)
		if !old {
			tl.oldestLost = max(tl.oldestLost, age)
		}
		switch {
		case old:
			errorf("iteration %d: record %s (shard %d, position %d), read after an earlier restart, is gone", it, a.key, a.shard, a.pos)
		case killOnly:
			errorf("iteration %d: kill -9 (no power cut) lost record %s (shard %d, position %d)", it, a.key, a.shard, a.pos)
		case mode == "sync":
			errorf("iteration %d: sync mode lost acknowledged record %s (shard %d, position %d)", it, a.key, a.shard, a.pos)
		case a.pos < top[a.shard]:
			errorf("iteration %d: mode %s lost record %s (shard %d, position %d) in the middle: position %d of that shard is there",
				it, mode, a.key, a.shard, a.pos, top[a.shard])
		case interval > 0 && age > interval+intervalSlack:
			errorf("iteration %d: mode %s lost record %s (shard %d, position %d) acknowledged %v before the kill, more than %v + %v",
				it, mode, a.key, a.shard, a.pos, age, interval, intervalSlack)
		}
	}
	return lost
}

// server is a running `sluice serve`.
type server struct {
	cmd    *exec.Cmd
	c      *client.Client
	done   chan struct{}
	stream string // the stream the test writes to
}

// newStream creates the stream name with two shards and makes it s's.
func (s *server) newStream(t *testing.T, name string) {
	t.Helper()
	if err := s.c.CreateStream(context.Background(), name, 2); err != nil {
		t.Fatal(err)
	}
	s.stream = name
}

var listening = regexp.MustCompile(`on (http://\S+) `)

func startServer(t *testing.T, dataDir, mode string) *server {
	t.Helper()
	cmd := exec.Command(sluiceBin, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir,
		"--durability", mode, "--segment-size", "64KiB", "--limits", "off")
	cmd.Stderr = &logWriter{t: t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	lines := bufio.NewScanner(out)
	endpoint := ""
	for lines.Scan() {
		if m := listening.FindStringSubmatch(lines.Text()); m != nil {
			endpoint = m[1]
			break
		}
	}
	go func() {
		for lines.Scan() { // keep its stdout drained
		}
		cmd.Wait()
		close(s.done)
	}()
	if endpoint == "" {
		cmd.Process.Kill()
		<-s.done
		t.Fatal("the server never said where it listens")
	}
	s.c, err = client.New(client.Config{Endpoint: endpoint, Unsigned: true, RequestTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.kill(t) })
	return s
}

// kill ends the server with SIGKILL, if it still runs, and waits for it.
func (s *server) kill(t *testing.T) {
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Error(err)
	}
	<-s.done
	s.c.Close()
}

// logWriter passes the server's log to the test log, which shows it on failure.
type logWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("server: %s", b)
	return len(b), nil
}

// runLoad puts records from four writers while a fifth goroutine reshards and changes the
// retention period, and kills the server with SIGKILL d after the first reshard answered, with
// requests in flight. It returns the acknowledged records, the number of reshards that
// succeeded and the time of the kill.
func runLoad(t *testing.T, s *server, seed uint64, d time.Duration) ([]acked, int, time.Time) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		killed atomic.Bool // set before the SIGKILL: from then on, failures are expected
		mu     sync.Mutex
		acks   []acked
		wg     sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for !killed.Load() {
				got, err := putBatch(ctx, s, rng, 1+rng.IntN(40))
				if err != nil {
					if !killed.Load() {
						t.Errorf("put while the server runs: %v", err)
					}
					return
				}
				mu.Lock()
				acks = append(acks, got...)
				mu.Unlock()
			}
		})
	}
	reshards := 0
	resharded := make(chan struct{}) // closed when the first reshard has answered
	wg.Go(func() {
		shards := 2
		for i := 0; !killed.Load(); i++ {
			var err error
			if i%3 == 2 {
				hours := 24 + 24*(i/3%2)
				in := map[string]any{"StreamName": s.stream, "RetentionPeriodHours": hours}
				op := "IncreaseStreamRetentionPeriod"
				if hours == 24 {
					op = "DecreaseStreamRetentionPeriod"
				}
				err = s.c.CallKinesis(ctx, op, in, nil)
			} else {
				shards = 5 - shards // 2 ⇄ 3
				err = s.c.CallKinesis(ctx, "UpdateShardCount", map[string]any{
					"StreamName": s.stream, "TargetShardCount": shards, "ScalingType": "UNIFORM_SCALING"}, nil)
				if err == nil {
					reshards++
				}
				if i == 0 {
					close(resharded)
				}
			}
			if err != nil && !killed.Load() {
				t.Logf("control call while loading: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	// Every load reshards at least once before the kill; from there, d is the random point
	// of the cut (not a synchronisation).
	<-resharded
	<-time.After(d)
	killed.Store(true)
	killedAt := time.Now()
	s.kill(t)
	cancel()
	wg.Wait()
	return acks, reshards, killedAt
}

// putBatch puts n records with unique keys into s's stream and returns those acknowledged.
func putBatch(ctx context.Context, s *server, rng *rand.Rand, n int) ([]acked, error) {
	entries := make([]client.PutEntry, n)
	for i := range entries {
		key := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		data := make([]byte, 16+rng.IntN(600))
		for j := 0; j+8 <= len(data); j += 8 {
			binary.LittleEndian.PutUint64(data[j:], rng.Uint64())
		}
		entries[i] = client.PutEntry{Key: key, Data: data}
	}
	res, err := s.c.PutRecords(ctx, s.stream, entries)
	if err != nil {
		return nil, err
	}
	at := time.Now()
	var out []acked
	for i, r := range res {
		if r.Err != nil {
			continue
		}
		out = append(out, acked{key: entries[i].Key, data: entries[i].Data, shard: r.Shard, pos: r.Position, at: at})
	}
	return out, nil
}

// readAll reads every record of every shard of s's stream, open and closed, by key.
func readAll(t *testing.T, s *server) map[string]acked {
	t.Helper()
	ctx := context.Background()
	shards, err := s.c.ListShards(ctx, s.stream)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]acked{}
	for _, sh := range shards {
		in := client.GetInput{Shard: uint32(sh.ID), Start: client.TrimHorizon}
		var positions []uint64
		for {
			out, err := s.c.GetRecords(ctx, s.stream, in)
			if err != nil {
				t.Fatalf("reading shard %d: %v", sh.ID, err)
			}
			for _, r := range out.Records {
				k := string(r.Key)
				if _, dup := got[k]; dup {
					t.Errorf("record %s read twice", k)
				}
				got[k] = acked{key: k, data: slices.Clone(r.Data), shard: r.Shard, pos: r.Position}
				positions = append(positions, r.Position)
			}
			n, end, behind := len(out.Records), out.ShardEnd, out.MillisBehind
			in.Start, in.Value = client.AtSequenceNumber, out.Next
			out.Release()
			if end || n == 0 && behind == 0 {
				break
			}
		}
		if !slices.IsSorted(positions) {
			t.Errorf("shard %d reads back out of order", sh.ID)
		}
	}
	return got
}
