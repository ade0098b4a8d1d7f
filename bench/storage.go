package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/segment"
)

// The storage suite: machine limits and the segment package's paths.
//
//	append_1KiB_none          one appender, batches of 500 × 1 KiB, durability none: data
//	                          bytes/s against write(2) bandwidth (target 0.70)
//	append_100B_none          one appender, batches of 500 × 100 B, durability none:
//	                          records/s against 5,000,000 records/s
//	append_sync_group_commit  8 appenders, batches of 256 × 1 KiB (256 KiB), durability sync:
//	                          data bytes/s against 1 MiB write + fdatasync throughput (0.60)
//	read_zero_copy            Read of up to 1,000 records / 1 MiB of 1 KiB records, copying
//	                          View.Bytes() into a reused buffer: frame bytes/s against
//	                          memmove (0.70)
//
// Every record carries an 8-byte partition key. Segments have the default size (128 MiB), so
// appends include segment rolls (the seal of a full segment runs in the background in none
// mode and on the roll in sync mode).
const (
	recordsPerSecondTarget = 5_000_000
	groupAppenders         = 8
	groupBatch             = 256
	readData               = 96 << 20 // bytes of frames the read path reads over and over
	readMaxRecords         = 1000
	readMaxBytes           = 1 << 20
)

var benchKey = []byte("key-0001")

func storageSuite(ctx context.Context, cfg config) ([]result, error) {
	rd, err := newReadSetup(filepath.Join(cfg.dir, "read"))
	if err != nil {
		return nil, fmt.Errorf("read setup: %w", err)
	}
	defer rd.close()
	scratch := func(name string) string { return filepath.Join(cfg.dir, name) }
	ms := []measurement{
		{"limit_write_1MiB", "B/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
			return inDir(scratch("write"), func(dir string) (float64, string, error) { return measureWrite(ctx, dir, d) })
		}},
		{"limit_memmove_64MiB", "B/s", measureMemmove},
		{"limit_write_fdatasync_1MiB", "B/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
			return inDir(scratch("wsync"), func(dir string) (float64, string, error) { return measureWriteSync(ctx, dir, d) })
		}},
		{"limit_touch_new_pages", "B/s", measureTouch},
		{"append_1KiB_none", "B/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
			a, err := measureAppend(ctx, scratch("a1k"), d, segment.None, 1<<10, 500, 1)
			return a.dataRate, a.note(), err
		}},
		{"append_100B_none", "records/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
			a, err := measureAppend(ctx, scratch("a100"), d, segment.None, 100, 500, 1)
			return a.recordRate, a.note(), err
		}},
		{"append_sync_group_commit", "B/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
			a, err := measureAppend(ctx, scratch("agc"), d, segment.Sync, 1<<10, groupBatch, groupAppenders)
			return a.dataRate, a.note(), err
		}},
		{"read_zero_copy", "B/s", rd.measure},
	}
	s, err := runRounds(ctx, cfg, ms)
	if err != nil {
		return nil, err
	}
	write, _ := s["limit_write_1MiB"].median()
	memmove, _ := s["limit_memmove_64MiB"].median()
	wsync, _ := s["limit_write_fdatasync_1MiB"].median()
	return []result{
		limitResult("limit_write_1MiB", "B/s", s["limit_write_1MiB"]),
		limitResult("limit_memmove_64MiB", "B/s", s["limit_memmove_64MiB"]),
		limitResult("limit_write_fdatasync_1MiB", "B/s", s["limit_write_fdatasync_1MiB"]),
		limitResult("limit_touch_new_pages", "B/s", s["limit_touch_new_pages"]),
		pathResult("append_1KiB_none", "B/s", s["append_1KiB_none"], write, "limit_write_1MiB", 0.70),
		pathResult("append_100B_none", "records/s", s["append_100B_none"], recordsPerSecondTarget, "target", 1),
		pathResult("append_sync_group_commit", "B/s", s["append_sync_group_commit"], wsync, "limit_write_fdatasync_1MiB", 0.60),
		pathResult("read_zero_copy", "B/s", s["read_zero_copy"], memmove, "limit_memmove_64MiB", 0.70),
	}, nil
}

// inDir runs f in a fresh directory and removes it afterwards.
func inDir(dir string, f func(dir string) (float64, string, error)) (float64, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, "", err
	}
	defer os.RemoveAll(dir)
	return f(dir)
}

// appendRun is what one append measurement found.
type appendRun struct {
	dataRate   float64 // record data bytes per second
	recordRate float64
	batches    int64
	syncs      int64         // File.Sync calls (fdatasync) during the run
	syncTime   time.Duration // time in fdatasync and directory fsyncs during the run
	longest    time.Duration // the longest fdatasync
	elapsed    time.Duration
}

func (a appendRun) note() string {
	if a.elapsed == 0 {
		return ""
	}
	s := fmt.Sprintf("%d batches, %d fdatasyncs, fdatasync time %.0f%% of the wall time (background seals overlap appends)", a.batches, a.syncs, a.syncTime.Seconds()/a.elapsed.Seconds()*100)
	if a.syncs > 0 {
		s += fmt.Sprintf(", %.1f batches per fdatasync, longest fdatasync %.0f ms", float64(a.batches)/float64(a.syncs), a.longest.Seconds()*1e3)
	}
	return s
}

// measureAppend appends batches of n records of size data bytes for about d from the given
// number of goroutines into a fresh log in dir, and removes the log afterwards. Opening the
// log and creating its first segment are not timed; everything else, segment rolls
// included, is.
func measureAppend(ctx context.Context, dir string, d time.Duration, mode segment.Mode, size, n, appenders int) (appendRun, error) {
	defer os.RemoveAll(dir)
	fsys := vfs.NewCountingFS(vfs.OS)
	l, err := segment.Open(dir, segment.Options{FS: fsys, Durability: segment.Durability{Mode: mode}})
	if err != nil {
		return appendRun{}, err
	}
	defer l.Close()
	data := make([]byte, size)
	fillPattern(data)
	batches := make([][]segment.Record, appenders)
	for i := range batches {
		batches[i] = make([]segment.Record, n)
		for j := range batches[i] {
			batches[i][j] = segment.Record{Key: benchKey, Data: data}
		}
	}
	if err := l.Append(batches[0]); err != nil {
		return appendRun{}, err
	}
	fsys.Reset()
	var count atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for _, batch := range batches {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := l.Append(batch); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				count.Add(1)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		return appendRun{}, firstErr
	}
	st := fsys.Stats()
	a := appendRun{
		batches:  count.Load(),
		syncs:    st.Syncs,
		syncTime: st.Time,
		longest:  st.Longest,
		elapsed:  el,
	}
	a.recordRate = float64(a.batches) * float64(n) / el.Seconds()
	a.dataRate = a.recordRate * float64(size)
	if err := l.Close(); err != nil {
		return a, err
	}
	return a, ctx.Err()
}

// readSetup is a log holding readData bytes of 1 KiB records, written once and read by every
// run of read_zero_copy.
type readSetup struct {
	dir         string
	l           *segment.Log
	first, last uint64
	buf         []byte
}

func newReadSetup(dir string) (*readSetup, error) {
	l, err := segment.Open(dir, segment.Options{Durability: segment.Durability{Mode: segment.None}})
	if err != nil {
		return nil, err
	}
	rd := &readSetup{dir: dir, l: l, buf: make([]byte, 0, readMaxBytes+frame.MaxSize)}
	data := make([]byte, 1<<10)
	fillPattern(data)
	batch := make([]segment.Record, 500)
	for i := range batch {
		batch[i] = segment.Record{Key: benchKey, Data: data}
	}
	frames := frame.Size(len(benchKey), len(data)) * len(batch)
	for i := range readData / frames {
		if err := l.Append(batch); err != nil {
			rd.close()
			return nil, err
		}
		if i == 0 {
			rd.first = batch[0].Seq
		}
	}
	rd.last = l.Tip()
	// One pass maps every page, as a steady reader would have.
	for from := rd.first; from <= rd.last; {
		v, err := l.Read(from, readMaxRecords, readMaxBytes)
		if err != nil {
			rd.close()
			return nil, err
		}
		if v.Count == 0 {
			break
		}
		from = v.Next
		v.Release()
	}
	return rd, nil
}

func (rd *readSetup) close() {
	rd.l.Close()
	os.RemoveAll(rd.dir)
}

// measure reads the log from start to end over and over, copying each view's bytes into a
// reused buffer as a socket send would: frame bytes per second.
func (rd *readSetup) measure(ctx context.Context, d time.Duration) (float64, string, error) {
	var bytes, records, reads int64
	from := rd.first
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		v, err := rd.l.Read(from, readMaxRecords, readMaxBytes)
		if err != nil {
			return 0, "", err
		}
		if v.Count == 0 {
			return 0, "", fmt.Errorf("empty read at %d (last %d)", from, rd.last)
		}
		rd.buf = append(rd.buf[:0], v.Bytes()...)
		bytes += int64(len(rd.buf))
		records += int64(v.Count)
		reads++
		from = v.Next
		v.Release()
		if from > rd.last {
			from = rd.first
		}
	}
	el := time.Since(start).Seconds()
	note := fmt.Sprintf("%.2f M records/s, %.1f µs per Read of %d records", float64(records)/el/1e6, el*1e6/float64(reads), records/max(reads, 1))
	return float64(bytes) / el, note, ctx.Err()
}
