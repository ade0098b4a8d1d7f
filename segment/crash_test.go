package segment

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test runs this test binary again as a child process (selected by crashEnv) that
// appends in Sync mode from several goroutines and prints "seq key" for every record of every
// acknowledged batch. The parent kills it with SIGKILL at a random moment, reopens the log and
// checks that every acknowledged record is there with its number and bytes.
const crashEnv = "SLUICE_SEGMENT_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

// crashData derives a record's data from its key, so the parent can check the bytes.
func crashData(key string) []byte {
	i := strings.LastIndex(key, "n")
	n, _ := strconv.Atoi(key[i+1:])
	h := fnv.New64a()
	h.Write([]byte(key))
	return payload(int(h.Sum64()%1_000_000), n)
}

func crashChild(dir string) int {
	round, _ := strconv.Atoi(os.Getenv(crashEnv + "_ROUND"))
	l, err := Open(dir, Options{Durability: Durability{Mode: Sync}, SegmentSize: MinSegmentSize})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(round), uint64(w)))
			for i := range 20_000 { // bounded: the parent kills the child long before
				b := make([]Record, 1+r.IntN(5))
				for j := range b {
					key := fmt.Sprintf("r%d-w%d-b%d-%d-n%d", round, w, i, j, r.IntN(4000))
					b[j] = Record{Key: []byte(key), Data: crashData(key)}
				}
				if err := l.Append(b); err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					return
				}
				mu.Lock()
				for _, rec := range b {
					fmt.Fprintf(out, "%d %s\n", rec.Seq, rec.Key)
				}
				out.Flush() // acknowledged only once the parent can read it
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return 0
}

func TestCrashKill9(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	var maxSeen uint64
	const rounds = 25
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, fmt.Sprintf("%s_ROUND=%d", crashEnv, round))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill once the child has acknowledged a random number of records.
		target := 1 + rng.IntN(1500)
		acks := map[uint64]string{}
		sc := bufio.NewScanner(stdout)
		killed := false
		for sc.Scan() {
			seq, key, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				continue // a line cut by the kill
			}
			n, err := strconv.ParseUint(seq, 10, 64)
			if err != nil {
				continue
			}
			acks[n] = key
			if !killed && len(acks) >= target {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		cmd.Wait()
		if !killed {
			t.Fatalf("round %d: the child stopped by itself after %d acknowledgements", round, len(acks))
		}

		l := mustOpen(t, dir, Options{Durability: Durability{Mode: Sync}, SegmentSize: MinSegmentSize})
		if err := l.Err(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		got, err := readAll(t, l, 0)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		present := make(map[uint64]Record, len(got))
		for _, r := range got {
			present[r.Seq] = r
		}
		for seq, key := range acks {
			if seq <= maxSeen {
				t.Fatalf("round %d: number %d handed out again (numbers up to %d were seen before)", round, seq, maxSeen)
			}
			r, ok := present[seq]
			if !ok {
				t.Fatalf("round %d: acknowledged record %d (%s) lost", round, seq, key)
			}
			if string(r.Key) != key || string(r.Data) != string(crashData(key)) {
				t.Fatalf("round %d: record %d came back as key %q with other bytes", round, seq, r.Key)
			}
		}
		for _, r := range got {
			maxSeen = max(maxSeen, r.Seq)
		}
		for seq := range acks {
			maxSeen = max(maxSeen, seq)
		}
		if round%2 == 0 {
			abandon(l) // the next child recovers from a crash again
		} else if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d acknowledgements; %d records in the log", round, len(acks), len(got))
	}
	l := mustOpen(t, dir, Options{})
	defer l.Close()
	b := []Record{rec("last", []byte("x"))}
	if err := l.Append(b); err != nil {
		t.Fatal(err)
	}
	if b[0].Seq <= maxSeen {
		t.Fatalf("number %d does not exceed %d", b[0].Seq, maxSeen)
	}
}
