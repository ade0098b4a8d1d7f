package segment

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// envRounds is the count in the environment variable name, or def when it is unset.
func envRounds(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a count of 1 or more", name, s)
	}
	return n
}

// bitFlipRounds is how many random bit flips TestRandomBitFlips tries: SLUICE_BITFLIP_ROUNDS
// (make nightly runs 1,000), default 10.
func bitFlipRounds(t *testing.T) int { return envRounds(t, "SLUICE_BITFLIP_ROUNDS", 10) }

// TestRandomBitFlips flips one random bit of one random file of a crashed log (a segment, an
// index, log.meta) and opens it again. Whatever the bit, opening and reading never panic, a
// read never returns a record that differs from the one appended under its sequence number
// (damage is reported as an error, never served), and a log that takes appends again never
// hands out a sequence number it handed out before.
func TestRandomBitFlips(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rounds := bitFlipRounds(t)
	var opened, refused, served int
	for round := range rounds {
		rng := rand.New(rand.NewPCG(seed, uint64(round)))
		fx := newFixture(t)
		files, err := filepath.Glob(filepath.Join(fx.dir, "*"))
		if err != nil {
			t.Fatal(err)
		}
		var regular []string
		for _, f := range files {
			if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
				regular = append(regular, f)
			}
		}
		victim := regular[rng.IntN(len(regular))]
		b, err := os.ReadFile(victim)
		if err != nil {
			t.Fatal(err)
		}
		off := rng.IntN(len(b))
		b[off] ^= 1 << rng.IntN(8)
		if err := os.WriteFile(victim, b, 0o600); err != nil {
			t.Fatal(err)
		}
		where := filepath.Base(victim) + " byte " + strconv.Itoa(off)

		l, err := Open(fx.dir, testOpts(newClock(), Sync))
		if err != nil {
			refused++ // refusing to open a damaged log is allowed; serving damage is not
			continue
		}
		opened++
		want := map[uint64]Record{}
		var top uint64
		for _, r := range fx.recs {
			want[r.Seq] = r
			top = max(top, r.Seq)
		}
		from := uint64(0)
		for range 10_000 {
			v, err := l.Read(from, 100, 64<<10)
			if err != nil {
				break // damage reported
			}
			if v.Count == 0 {
				v.Release()
				break
			}
			it := v.Records()
			for it.Next() {
				r := it.Record()
				w, ok := want[r.Seq]
				if !ok || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Data, w.Data) {
					t.Fatalf("round %d (%s): read a record at %d that was not appended there", round, where, r.Seq)
				}
				served++
			}
			from = v.Next
			v.Release()
		}
		if l.Err() == nil {
			next := []Record{rec("after", []byte("x"))}
			if err := l.Append(next); err == nil && next[0].Seq <= top {
				t.Fatalf("round %d (%s): a new record got %d, at or below %d handed out before", round, where, next[0].Seq, top)
			}
		}
		l.Close()
	}
	t.Logf("%d rounds: %d opened (%d records served, each checked), %d refused to open", rounds, opened, served, refused)
}
