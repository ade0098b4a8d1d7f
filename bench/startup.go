package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/crc"
	"github.com/sluice-streams/sluice/internal/dirlock"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// The startup suite: what a server's start costs with many sealed segments and much data.
//
//	startup_1000_clean      stream.Open (what `sluice serve` does before it listens) of a
//	startup_1000_crashed    data directory whose one shard holds 1,000 sealed segments of
//	startup_10000_clean     64 KiB, after a clean close and after a crash, and the same with
//	startup_10000_crashed   10,000: µs against the 1 s target (lower is better)
//	rss_anon_100GiB         the process's anonymous resident memory (RssAnon) after opening a
//	                        data directory retaining 100 GiB, against the same after opening
//	                        one retaining 64 MiB (lower is better; target 1.1)
//
// The crashed directories are copies of the files an engine left while it was still open
// with no write in progress: what kill -9 leaves (the page cache outlives the process). The
// sealed segments are the same files in every round (hard links; start-up never writes a
// sealed segment), the rest is copied afresh each round.
//
// The 100 GiB are 100 sealed segments of 102 records of 10 MiB each, written after a real
// log's segments as sparse files: every frame's header and CRC are real (a read returns
// the records; the CRC of the zeros is computed once, see zeroCRC), the data between are
// holes that read as zeros. They take about 50 MB of disk.
const (
	startupSegSize   = segment.MinSegmentSize
	startupData      = 60_000 // one record fills a 64 KiB segment
	startupTarget    = 1e6    // µs
	sparseSegments   = 100
	sparsePerSegment = 102
	sparseData       = frame.MaxDataLen
	rssTarget        = 1.1
)

func startupSuite(ctx context.Context, cfg config) ([]result, error) {
	var ms []measurement
	for _, n := range []int{1000, 10000} {
		dir := filepath.Join(cfg.dir, fmt.Sprintf("segs%d", n))
		crashed, err := buildSealed(dir, n)
		if err != nil {
			return nil, fmt.Errorf("building %d segments: %w", n, err)
		}
		note := fmt.Sprintf("%d sealed segments of 64 KiB in one shard", n)
		ms = append(ms,
			measurement{fmt.Sprintf("startup_%d_clean", n), "µs", func(ctx context.Context, d time.Duration) (float64, string, error) {
				t, err := timeOpen(dir)
				return t, note, err
			}},
			measurement{fmt.Sprintf("startup_%d_crashed", n), "µs", func(ctx context.Context, d time.Duration) (float64, string, error) {
				round := crashed + ".round"
				defer os.RemoveAll(round)
				if err := cloneCrashed(crashed, round); err != nil {
					return 0, "", err
				}
				t, err := timeOpen(round)
				return t, note + ", after a crash", err
			}})
	}
	small, big := filepath.Join(cfg.dir, "segs1000"), filepath.Join(cfg.dir, "sparse")
	if err := buildSparse(big); err != nil {
		return nil, fmt.Errorf("building 100 GiB: %w", err)
	}
	ms = append(ms,
		measurement{"rss_anon_64MiB", "B", func(ctx context.Context, d time.Duration) (float64, string, error) {
			return rssAfterOpen(small)
		}},
		measurement{"rss_anon_100GiB", "B", func(ctx context.Context, d time.Duration) (float64, string, error) {
			return rssAfterOpen(big)
		}})
	s, err := runRounds(ctx, cfg, ms)
	if err != nil {
		return nil, err
	}
	lower := func(r result) result { r.LowerIsBetter = true; return r }
	var out []result
	for _, m := range ms[:4] {
		out = append(out, lower(pathResult(m.name, m.unit, s[m.name], startupTarget, "target 1 s", 1)))
	}
	base, _ := s["rss_anon_64MiB"].median()
	return append(out, limitResult("rss_anon_64MiB", "B", s["rss_anon_64MiB"]),
		lower(pathResult("rss_anon_100GiB", "B", s["rss_anon_100GiB"], base, "rss_anon_64MiB", rssTarget))), nil
}

// startupOptions are the engine's options in this suite.
func startupOptions(dir string) stream.Options {
	return stream.Options{Dir: dir, SegmentSize: startupSegSize, Limits: stream.Limits{Off: true},
		Durability: segment.Durability{Mode: segment.Sync}}
}

// buildSealed writes n records of 60 KB into a one-shard stream in dir, one 64 KiB segment
// each, copies what the open engine's files are then into dir+".crashed" and closes the
// engine cleanly. It returns the crashed copy's path.
func buildSealed(dir string, n int) (string, error) {
	e, err := stream.Open(startupOptions(dir))
	if err != nil {
		return "", err
	}
	defer e.Close()
	if err := e.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		return "", err
	}
	data := make([]byte, startupData)
	for i := range n + 1 {
		res, err := e.PutRecords("s", []stream.PutEntry{{PartitionKey: strconv.Itoa(i), Data: data}})
		if err == nil {
			err = res[0].Err
		}
		if err != nil {
			return "", err
		}
	}
	crashed := dir + ".crashed"
	if err := copyTree(dir, crashed, false); err != nil {
		return "", err
	}
	return crashed, e.Close()
}

// cloneCrashed makes dst a copy of the crashed directory src in which the sealed segments are
// hard links: every file is copied but the segments below the newest two of a directory.
func cloneCrashed(src, dst string) error { return copyTree(src, dst, true) }

// copyTree copies the directory src to dst, without its lock file. With link, the segment
// files of a directory other than its newest two are hard links instead of copies.
func copyTree(src, dst string, link bool) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	var segs []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".seg") {
			segs = append(segs, e.Name())
		}
	}
	slices.Sort(segs)
	keep := segs[max(0, len(segs)-2):]
	for _, e := range ents {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		switch {
		case e.Name() == dirlock.FileName:
		case e.IsDir():
			if err := copyTree(from, to, link); err != nil {
				return err
			}
		case link && strings.HasSuffix(e.Name(), ".seg") && !slices.Contains(keep, e.Name()):
			if err := os.Link(from, to); err != nil {
				return err
			}
		default:
			b, err := os.ReadFile(from)
			if err != nil {
				return err
			}
			if err := os.WriteFile(to, b, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// timeOpen opens the engine on dir and returns how long it took, in µs; the engine is closed
// untimed.
func timeOpen(dir string) (float64, error) {
	start := time.Now()
	e, err := stream.Open(startupOptions(dir))
	if err != nil {
		return 0, err
	}
	t := time.Since(start)
	if len(e.ListStreams()) != 1 {
		err = errors.New("the stream is missing after the start")
	}
	if cerr := e.Close(); err == nil {
		err = cerr
	}
	return float64(t.Microseconds()), err
}

// rssAfterOpen returns the process's RssAnon after the engine opened dir and read the two
// oldest records of every shard (in the 100 GiB directory, the second is 10 MiB from a
// sparse segment), with the heap collected before and after.
func rssAfterOpen(dir string) (float64, string, error) {
	runtime.GC()
	debug.FreeOSMemory()
	e, err := stream.Open(startupOptions(dir))
	if err != nil {
		return 0, "", err
	}
	defer e.Close()
	d, err := e.Describe("s")
	if err != nil {
		return 0, "", err
	}
	for _, sd := range d.Shards {
		it, err := e.GetShardIterator(stream.IteratorInput{Stream: "s", Shard: sd.ID, Type: stream.TrimHorizon})
		if err != nil {
			return 0, "", err
		}
		r, err := e.GetRecords(it, 2)
		if err != nil {
			return 0, "", err
		}
		r.Release()
	}
	runtime.GC()
	debug.FreeOSMemory()
	v, err := rssAnon()
	return v, "after start-up and a read of the two oldest records", err
}

// rssAnon reads RssAnon from /proc/self/status, in bytes.
func rssAnon() (float64, error) { return procMemory("self", "RssAnon") }

// procMemory reads a memory field (VmRSS, RssAnon, …) from /proc/<pid>/status, in bytes;
// pid is a number or "self".
func procMemory(pid, field string) (float64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%s/status", field, pid)
}

// buildSparse makes dir a data directory whose one shard retains about 100 GiB: a stream
// created and closed before any record, whose shard log then gets sparse sealed segments
// (see the suite's comment) in place of its empty first segment.
func buildSparse(dir string) error {
	e, err := stream.Open(startupOptions(dir))
	if err != nil {
		return err
	}
	err = e.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: 1})
	if cerr := e.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "streams", "s", "shard-*"))
	if len(shards) != 1 {
		return fmt.Errorf("%d shard directories", len(shards))
	}
	// The log holds no record: its segment files (at most an empty first one) go.
	for _, ext := range []string{"*.seg", "*.idx"} {
		old, _ := filepath.Glob(filepath.Join(shards[0], ext))
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	zc, err := newZeroCRC(sparseData)
	if err != nil {
		return err
	}
	last, now := uint64(0), time.Now().UnixNano()
	for id := range uint64(sparseSegments) {
		if err := writeSparseSegment(shards[0], id+1, last, now, zc); err != nil {
			return err
		}
		last += sparsePerSegment
		now += sparsePerSegment
	}
	return nil
}

// writeSparseSegment writes sealed segment id after the record last: sparsePerSegment
// records of sparseData zero bytes, arriving from t on, in the layout of docs/FORMAT.md
// (header, sealed checkpoint in slot 0 as generation 2, frames from 4096, the file cut at
// the frames' end rounded up to 4096).
func writeSparseSegment(dir string, id, last uint64, t int64, zc *zeroCRC) error {
	base := last + 1
	name := filepath.Join(dir, fmt.Sprintf("%020d-%010d.seg", base, id))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	le := binary.LittleEndian
	off := int64(segment.DataOffset)
	var fh [frame.HeaderSize + 1]byte
	for i := range uint64(sparsePerSegment) {
		n := len(fh) + sparseData
		le.PutUint32(fh[0:], uint32(n))
		le.PutUint64(fh[8:], base+i)
		le.PutUint64(fh[16:], uint64(t+int64(i)))
		le.PutUint16(fh[24:], 1)
		le.PutUint16(fh[26:], 0)
		le.PutUint32(fh[28:], sparseData)
		fh[32] = 'k'
		c := crc.Update(crc.Checksum(fh[0:4]), fh[8:])
		le.PutUint32(fh[4:], zc.extend(c))
		if _, err := f.WriteAt(fh[:], off); err != nil {
			return err
		}
		off += int64(frame.Align(n))
	}
	page := make([]byte, segment.DataOffset)
	copy(page, "SLUICSEG")
	le.PutUint16(page[8:], segment.SegmentVersion)
	le.PutUint32(page[12:], segment.DataOffset)
	le.PutUint64(page[16:], 0)
	le.PutUint64(page[24:], id)
	le.PutUint64(page[32:], base)
	le.PutUint64(page[40:], uint64(t))
	le.PutUint64(page[48:], last)
	le.PutUint32(page[60:], crc.Checksum(page[:60]))
	cp := page[512 : 512+64]
	le.PutUint64(cp[0:], 2)
	le.PutUint64(cp[8:], uint64(off))
	le.PutUint64(cp[16:], base)
	le.PutUint64(cp[24:], base+sparsePerSegment-1)
	le.PutUint64(cp[32:], uint64(t+sparsePerSegment-1))
	le.PutUint64(cp[40:], sparsePerSegment)
	le.PutUint32(cp[48:], 1) // sealed
	le.PutUint32(cp[60:], crc.Checksum(cp[:60]))
	if _, err := f.WriteAt(page, 0); err != nil {
		return err
	}
	return f.Truncate((off + 4095) &^ 4095)
}

// zeroCRC extends a CRC32C over n zero bytes without reading them. Continuing a CRC over
// fixed bytes is an affine map of the 32-bit state: extend(c) = z0 ⊕ XOR of m[k] for every
// bit k set in c, where z0 extends 0 and m[k] = extend(1<<k) ⊕ z0. The 33 values are computed
// once over real zeros; a frame then costs 32 XORs instead of CRCing 10 MiB.
type zeroCRC struct {
	z0 uint32
	m  [32]uint32
}

func newZeroCRC(n int) (*zeroCRC, error) {
	zeros := make([]byte, n)
	z := &zeroCRC{z0: crc.Update(0, zeros)}
	for k := range 32 {
		z.m[k] = crc.Update(1<<k, zeros) ^ z.z0
	}
	// Check the map against the direct computation once.
	probe := []byte("probe")
	if got, want := z.extend(crc.Checksum(probe)), crc.Update(crc.Checksum(probe), zeros); got != want {
		return nil, fmt.Errorf("BUG: zero extension %08x, direct %08x", got, want)
	}
	return z, nil
}

func (z *zeroCRC) extend(c uint32) uint32 {
	out := z.z0
	for k := range 32 {
		if c&(1<<k) != 0 {
			out ^= z.m[k]
		}
	}
	return out
}
