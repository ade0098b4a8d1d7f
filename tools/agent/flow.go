package agent

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// flow follows the files of one Flow and puts their records. Its fields are used by its
// goroutine only, except stats (under mu).
type flow struct {
	a     *Agent
	cfg   *Flow
	key   string
	log   *slog.Logger
	files []*tracked
	marks map[uint32]uint64
	first bool // no state was kept: initialPosition applies to the files found
	dirty bool // the state changed since it was saved

	maker      recordMaker
	batch      []pendingRecord // the records read and not yet delivered: up to groupCalls PutRecords calls
	batchBytes int             // keys and data of batch
	batchStart time.Time
	calls      callCutter // how batch's records make PutRecords calls
	arena      []byte     // the batch's data; never written again once a record points into it

	mu    sync.Mutex
	stats FlowStats
}

func newFlow(a *Agent, cfg *Flow, st *flowState) *flow {
	fl := &flow{a: a, cfg: cfg, key: cfg.Stream + " " + cfg.FilePattern, marks: map[uint32]uint64{},
		maker: recordMaker{procs: cfg.Processors, deterministic: cfg.Deterministic, terminator: cfg.TruncatedRecordTerminator},
		calls: callCutter{maxRecords: cfg.MaxBufferRecords, maxBytes: cfg.MaxBufferBytes}}
	fl.log = a.log.With("stream", cfg.Stream, "files", cfg.FilePattern)
	fl.stats.Stream, fl.stats.FilePattern = cfg.Stream, cfg.FilePattern
	if st == nil {
		fl.first, fl.dirty = true, true
		return fl
	}
	maps.Copy(fl.marks, st.Marks)
	fl.batch = slices.Clone(st.Pending) // the loaded checkpoint keeps st until this flow's next save
	for _, fs := range st.Files {
		t, how := findMoved(cfg.FilePattern, fs)
		if t == nil {
			fl.log.Info("a file followed before the restart is gone", "path", fs.Path, "offset", fs.Off)
			continue
		}
		if how != "at its path" {
			fl.log.Info("file found "+how, "was", fs.Path, "path", t.Path)
		}
		fl.files = append(fl.files, t)
	}
	return fl
}

// run follows the files until ctx ends.
func (fl *flow) run(ctx context.Context) error {
	defer func() {
		for _, t := range fl.files {
			t.close()
		}
	}()
	if len(fl.batch) > 0 {
		fl.log.Info("the batch in flight at the last stop: checking which of its records the stream has", "records", len(fl.batch))
		if err := fl.deliver(ctx, true); err != nil {
			return err
		}
	}
	if err := fl.markShards(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(fl.cfg.PollInterval)
	defer tick.Stop()
	for {
		now := time.Now()
		fl.scan(now)
		fl.first = false
		for {
			full := fl.fillBatch(now)
			if len(fl.batch) == 0 || !full && !fl.calls.oneFull() && now.Sub(fl.batchStart) < fl.cfg.MaxBufferAge {
				break
			}
			if err := fl.deliver(ctx, false); err != nil {
				return err
			}
			fl.publish()
		}
		// The files' offsets are saved only while no record read is waiting in a batch.
		if len(fl.batch) == 0 && fl.dirty {
			if err := fl.save(); err != nil {
				return err
			}
		}
		fl.publish()
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// snapshot is the flow's state with its batch as Pending. Pending is a copy of the batch's
// slice (whose array the flow reuses); the records' data is never written again.
func (fl *flow) snapshot() *flowState {
	st := &flowState{Marks: maps.Clone(fl.marks), Pending: slices.Clone(fl.batch)}
	for _, t := range fl.files {
		if t.copyOf == nil {
			st.Files = append(st.Files, t.fileState)
		}
	}
	return st
}

func (fl *flow) save() error {
	if err := fl.a.save(fl.key, fl.snapshot()); err != nil {
		return err
	}
	fl.dirty = false
	return nil
}

// markShards gives every open shard of the stream without a mark the position of its tip,
// read before the flow puts anything there.
func (fl *flow) markShards(ctx context.Context) error {
	shards, err := retry(ctx, fl, "ListShards", func() ([]uint32, error) { return fl.shardIDs(ctx) })
	if err != nil {
		return err
	}
	for _, s := range shards {
		if _, ok := fl.marks[s]; ok {
			continue
		}
		next, err := retry(ctx, fl, "GetRecords", func() (uint64, error) {
			out, err := fl.a.c.GetRecords(ctx, fl.cfg.Stream, client.GetInput{Shard: s, Start: client.Latest, MaxRecords: 1})
			if err != nil {
				return 0, err
			}
			defer out.Release()
			return out.Next, nil
		})
		if err != nil {
			return err
		}
		fl.marks[s], fl.dirty = next, true
	}
	return nil
}

func (fl *flow) shardIDs(ctx context.Context) ([]uint32, error) {
	shards, err := fl.a.c.ListShards(ctx, fl.cfg.Stream)
	if err != nil {
		return nil, err
	}
	ids := make([]uint32, 0, len(shards))
	for _, s := range shards {
		ids = append(ids, uint32(s.ID))
	}
	return ids, nil
}

// retry calls f until it succeeds or ctx ends, backing off and logging the failures.
func retry[T any](ctx context.Context, fl *flow, what string, f func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := f()
		if err == nil || ctx.Err() != nil {
			return v, err
		}
		fl.log.Warn(what+" failed; retrying", "err", err)
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return v, err
		}
	}
}

func backoff(attempt int) time.Duration {
	return min(50*time.Millisecond<<min(attempt, 10), 5*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// scan matches the pattern, starts following new files, notices truncation and copies,
// and stops following the files that left the pattern once they are read.
func (fl *flow) scan(now time.Time) {
	paths, _ := filepath.Glob(fl.cfg.FilePattern)
	for _, t := range fl.files {
		t.seen = false
	}
	for _, p := range paths {
		if t := fl.byPath(p); t != nil {
			t.seen = true
			continue
		}
		fl.follow(p)
	}
	for _, t := range slices.Clone(fl.files) {
		if t.f == nil {
			continue // closed by truncated
		}
		fi, err := t.f.Stat()
		if err != nil {
			continue
		}
		_, _, t.linked = fileID(fi)
		t.size = fi.Size()
		if t.copyOf != nil {
			continue
		}
		if t.size < t.readEnd() || !t.sameContent(t.f) {
			fl.truncated(t)
		}
		t.refreshFingerprint()
	}
	fl.files = slices.DeleteFunc(fl.files, func(t *tracked) bool {
		done := t.size == t.readEnd() && t.head == len(t.buf)
		gone := t.copyOf != nil && (!t.seen || !slices.Contains(fl.files, t.copyOf)) ||
			t.copyOf == nil && !t.seen && done && (!t.linked || !t.idle.IsZero() && now.Sub(t.idle) >= dropAfter)
		if gone {
			fl.log.Info("no longer following", "path", t.Path, "offset", t.Off)
			t.close()
			fl.dirty = true
		}
		return gone
	})
}

// dropAfter is how long a file that left the pattern (renamed away) is kept open after it
// was read to its end, for the lines its writer may still append before reopening.
const dropAfter = 5 * time.Second

// byPath returns the followed file that path names now, updating its path.
func (fl *flow) byPath(p string) *tracked {
	fi, err := os.Stat(p)
	if err != nil {
		return nil
	}
	dev, ino, _ := fileID(fi)
	for _, t := range fl.files {
		if t.Dev == dev && t.Ino == ino && (dev != 0 || t.Path == p) {
			if t.Path != p {
				fl.dirty = true
			}
			t.Path = p
			return t
		}
	}
	return nil
}

// follow starts following the file at p: from its start, from its end at the flow's first
// start with END_OF_FILE, or, for a copy of a file followed, not until that file is
// truncated.
func (fl *flow) follow(p string) {
	f, err := os.Open(p)
	if err != nil {
		return
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return
	}
	dev, ino, linked := fileID(fi)
	t := &tracked{fileState: fileState{Path: p, Dev: dev, Ino: ino}, f: f, size: fi.Size(), seen: true, linked: linked}
	for _, u := range fl.files {
		if u.copyOf == nil && u.FPLen > 0 && t.size >= u.FPLen64() && u.sameContent(f) {
			t.copyOf, t.FP, t.FPLen = u, u.FP, u.FPLen
			fl.log.Info("a copy of a file followed", "path", p, "of", u.Path)
			break
		}
	}
	if t.copyOf == nil {
		t.refreshFingerprint()
		if fl.first && fl.cfg.InitialPosition == EndOfFile {
			t.Off = t.size
		}
	}
	fl.files = append(fl.files, t)
	fl.dirty = true
}

// truncated handles t found shorter than what was read, or with other content: when a copy
// of it (copy-truncate rotation) holds the lines not yet sent, they are read from the copy;
// then t is read again from its start.
func (fl *flow) truncated(t *tracked) {
	var c *tracked
	for _, u := range fl.files {
		if u.copyOf == t && u.size >= t.Off {
			c = u
		}
	}
	if c == nil {
		if u, how := findMoved(fl.cfg.FilePattern, t.fileState); u != nil && how == "copied" && !fl.followed(u) {
			c = u
			fl.files = append(fl.files, c)
		} else if u != nil {
			u.close()
		}
	}
	if c != nil {
		c.copyOf, c.Off, c.sent, c.Line, c.FP, c.FPLen = nil, t.Off, t.sent, t.Line, t.FP, t.FPLen
		c.buf, c.head = c.buf[:0], 0
		fl.log.Info("truncated after a copy: the rest of it is read from the copy", "path", t.Path, "copy", c.Path, "offset", t.Off)
	} else if t.size < t.readEnd() {
		fl.log.Warn("truncated; what it held after the offset and was not read is lost", "path", t.Path, "offset", t.Off, "size", t.size)
	}
	fl.files = slices.DeleteFunc(fl.files, func(u *tracked) bool {
		if u.copyOf == t && u != c {
			u.close() // a copy that holds nothing more than what was sent
			return true
		}
		return false
	})
	t.Off, t.Line, t.FP, t.FPLen, t.buf, t.head, t.idle = 0, 0, 0, 0, t.buf[:0], 0, time.Time{}
	fl.dirty = true
}

// followed reports whether u is a file already followed.
func (fl *flow) followed(u *tracked) bool {
	for _, t := range fl.files {
		if t.Dev == u.Dev && t.Ino == u.Ino && u.Dev != 0 {
			return true
		}
	}
	return false
}

// Records read ahead: when the files hold more than one PutRecords call's worth, the batch
// takes up to groupCalls calls and groupBytes bytes of keys and data, saved in the
// checkpoint once and put one call after the other. One
// checkpoint save per call bounded a flow by the save's two fsyncs (BenchmarkAgent).
const (
	groupCalls = 32
	groupBytes = 8 << 20
)

// callCutter cuts a run of records into PutRecords calls as the Kinesis Agent fills its
// buffers: a call takes records until the next one would pass maxRecords records or
// maxBytes bytes of keys and data; a call holds at least one record.
type callCutter struct {
	maxRecords, maxBytes int
	n                    int // calls started
	records, bytes       int // of the last call
}

// opens reports whether a record of size bytes (key and data) starts a new call.
func (c *callCutter) opens(size int) bool {
	return c.n == 0 || c.records == c.maxRecords || c.bytes+size > c.maxBytes
}

// add counts a record of size bytes.
func (c *callCutter) add(size int) {
	if c.opens(size) {
		c.n, c.records, c.bytes = c.n+1, 0, 0
	}
	c.records, c.bytes = c.records+1, c.bytes+size
}

// oneFull reports whether at least one call is full: more than one started, or the last
// is at a limit.
func (c *callCutter) oneFull() bool {
	return c.n > 1 || c.n == 1 && (c.records == c.maxRecords || c.bytes >= c.maxBytes)
}

// fillBatch reads records into the batch until it is full or the files have nothing more;
// it reports whether the batch is full: groupCalls calls, or groupBytes. The record that
// would pass them is read again into the next batch.
func (fl *flow) fillBatch(now time.Time) bool {
	for _, t := range fl.files {
		if t.copyOf != nil || t.f == nil {
			continue
		}
		for {
			raw, lines, ok := fl.next(t, now)
			if !ok {
				break
			}
			key, data, ok := fl.maker.make(raw)
			if !ok {
				fl.count(func(s *FlowStats) { s.RecordsDropped++ })
				continue
			}
			size := len(key) + len(data)
			if len(fl.batch) > 0 && (fl.calls.opens(size) && fl.calls.n == groupCalls || fl.batchBytes+size > groupBytes) {
				t.head, t.Off, t.Line = t.head-len(raw), t.Off-int64(len(raw)), t.Line-int64(lines)
				fl.count(func(s *FlowStats) { s.LinesRead -= int64(lines) })
				return true
			}
			if len(fl.batch) == 0 {
				fl.batchStart = now
				fl.arena = make([]byte, 0, min(fl.cfg.MaxBufferBytes, 256<<10))
			}
			if len(fl.arena)+len(data) > cap(fl.arena) {
				// A new array: the records already in the old one keep it, unchanged.
				fl.arena = make([]byte, 0, max(2*cap(fl.arena), len(data)))
			}
			off := len(fl.arena)
			fl.arena = append(fl.arena, data...)
			fl.batch = append(fl.batch, pendingRecord{Key: key, Data: fl.arena[off:len(fl.arena):len(fl.arena)]})
			fl.batchBytes += size
			fl.calls.add(size)
		}
	}
	return false
}

// next returns t's next record, raw, valid until the next call, and the lines it holds;
// false when t has no whole record yet. Header lines are skipped here.
func (fl *flow) next(t *tracked, now time.Time) ([]byte, int, bool) {
	for {
		b := t.buf[t.head:]
		start := fl.cfg.MultiLineStart
		if t.Line < int64(fl.cfg.SkipHeaderLines) {
			start = nil
		}
		final := !t.idle.IsZero() && now.Sub(t.idle) >= fl.cfg.MaxBufferAge
		n, lines := splitRecord(b, start, final)
		if n == 0 && len(b) >= 2*MaxRecordBytes {
			n = len(b) // no line ends within two records' size: it is cut here
		}
		if n == 0 {
			got, err := t.fill()
			if err != nil {
				fl.log.Warn("read failed", "path", t.Path, "err", err)
				return nil, 0, false
			}
			if got {
				t.idle = time.Time{}
				continue
			}
			if t.idle.IsZero() {
				t.idle = now
			}
			return nil, 0, false
		}
		t.head += n
		skip := t.Line < int64(fl.cfg.SkipHeaderLines)
		t.Off += int64(n)
		t.Line += int64(lines)
		fl.dirty = true
		fl.count(func(s *FlowStats) { s.LinesRead += int64(lines) })
		if !skip {
			return b[:n], lines, true
		}
	}
}

// deliver puts the batch until every record of it is in the stream, in PutRecords calls
// cut as callCutter cuts them, one after the other. Before the first put the batch is saved
// as Pending with the files' offsets after it (unless uncertain: it was loaded so). When
// the outcome is unknown (uncertain), the records of the batch the stream holds after the
// marks are looked for first, and only the others are put.
func (fl *flow) deliver(ctx context.Context, uncertain bool) error {
	if !uncertain {
		if err := fl.save(); err != nil {
			return err
		}
	}
	remaining := make([]int, len(fl.batch))
	for i := range remaining {
		remaining[i] = i
	}
	if uncertain {
		var err error
		if remaining, err = fl.reconcile(ctx, remaining); err != nil {
			return err
		}
	}
	entries := make([]client.PutEntry, 0, min(len(fl.batch), fl.cfg.MaxBufferRecords))
	for len(remaining) > 0 {
		cut := callCutter{maxRecords: fl.cfg.MaxBufferRecords, maxBytes: fl.cfg.MaxBufferBytes}
		n := 0
		for ; n < len(remaining); n++ {
			size := len(fl.batch[remaining[n]].Key) + len(fl.batch[remaining[n]].Data)
			if n > 0 && cut.opens(size) {
				break
			}
			cut.add(size)
		}
		if err := fl.put(ctx, remaining[:n], entries); err != nil {
			return err
		}
		remaining = remaining[n:]
	}
	fl.batch, fl.batchBytes, fl.arena = fl.batch[:0], 0, nil
	fl.calls.n = 0
	fl.dirty = true
	return nil
}

// put puts the records remaining (indexes into the batch) in one PutRecords call, and again
// those refused or of an unknown outcome (found in the stream first), until every one of
// them is in the stream. entries is scratch space.
func (fl *flow) put(ctx context.Context, remaining []int, entries []client.PutEntry) error {
	uncertain := false
	for attempt := 0; len(remaining) > 0; attempt++ {
		if uncertain {
			var err error
			if remaining, err = fl.reconcile(ctx, remaining); err != nil {
				return err
			}
			uncertain = false
			if len(remaining) == 0 {
				break
			}
		}
		entries = entries[:0]
		for _, i := range remaining {
			entries = append(entries, client.PutEntry{Key: fl.batch[i].Key, Data: fl.batch[i].Data})
		}
		res, err := fl.a.c.PutRecords(ctx, fl.cfg.Stream, entries)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var refused *client.Error
			uncertain = !errors.As(err, &refused) // a refusal appended nothing; anything else may have
			fl.log.Warn("put failed; retrying", "records", len(entries), "err", err, "outcome_known", !uncertain)
		} else {
			kept := remaining[:0]
			var sent int64
			for j, r := range res {
				if r.Err != nil {
					kept = append(kept, remaining[j])
					continue
				}
				if m, ok := fl.marks[r.Shard]; !ok || r.Position+1 > m {
					fl.marks[r.Shard] = r.Position + 1
				}
				sent++
			}
			fl.count(func(s *FlowStats) { s.RecordsSent += sent })
			if len(kept) > 0 {
				fl.log.Debug("records refused; retrying them", "records", len(kept))
			}
			remaining = kept
		}
		if len(remaining) > 0 {
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return err
			}
		}
	}
	fl.count(func(s *FlowStats) { s.Batches++ })
	return nil
}

// hashSeed seeds the hashes that compare records in reconcile; both sides are hashed by
// this process.
var hashSeed = maphash.MakeSeed()

func recordHash(key string, data []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(hashSeed)
	h.WriteString(key)
	h.WriteByte(0)
	h.Write(data)
	return h.Sum64()
}

// reconcile reads every shard of the stream from its mark (from its start without one) to
// its tip and returns the records of remaining (indexes into the batch) it did not find:
// a record of the batch is taken as appended when a record with the same key and data is
// there, each record of the stream standing for one record of the batch. The marks move to
// the tips read.
func (fl *flow) reconcile(ctx context.Context, remaining []int) ([]int, error) {
	want := map[uint64]int{}
	for _, i := range remaining {
		want[recordHash(fl.batch[i].Key, fl.batch[i].Data)]++
	}
	shards, err := retry(ctx, fl, "ListShards", func() ([]uint32, error) { return fl.shardIDs(ctx) })
	if err != nil {
		return nil, err
	}
	found := map[uint64]int{}
	for _, s := range shards {
		in := client.GetInput{Shard: s, Start: client.TrimHorizon}
		if m, ok := fl.marks[s]; ok {
			in.Start, in.Value = client.AtSequenceNumber, m
		}
		for {
			out, err := retry(ctx, fl, "GetRecords", func() (*client.GetOutput, error) { return fl.a.c.GetRecords(ctx, fl.cfg.Stream, in) })
			if err != nil {
				return nil, err
			}
			for _, r := range out.Records {
				if h := recordHash(string(r.Key), r.Data); found[h] < want[h] {
					found[h]++
				}
			}
			n, end := len(out.Records), out.ShardEnd
			in.Start, in.Value = client.AtSequenceNumber, out.Next
			out.Release()
			if n == 0 || end {
				break
			}
		}
		fl.marks[s] = in.Value
	}
	kept := remaining[:0]
	var present int64
	for _, i := range remaining {
		if h := recordHash(fl.batch[i].Key, fl.batch[i].Data); found[h] > 0 {
			found[h]--
			present++
			continue
		}
		kept = append(kept, i)
	}
	fl.log.Info("records of the batch in flight found in the stream", "found", present, "to_put", len(kept))
	fl.count(func(s *FlowStats) { s.RecordsSent += present; s.FoundInStream += present })
	return kept, nil
}

func (fl *flow) count(f func(*FlowStats)) {
	fl.mu.Lock()
	f(&fl.stats)
	fl.mu.Unlock()
}

// publish copies the files' progress into the stats. With no batch waiting, everything
// read up to the files' offsets was delivered, skipped or dropped.
func (fl *flow) publish() {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.stats.Files = fl.stats.Files[:0]
	fl.stats.BytesBehind = 0
	for _, t := range fl.files {
		if len(fl.batch) == 0 {
			t.sent = t.Off
		}
		if t.copyOf != nil {
			continue
		}
		fl.stats.Files = append(fl.stats.Files, FileStats{Path: t.Path, Offset: t.Off, Size: t.size, BytesBehind: t.behind()})
		fl.stats.BytesBehind += t.behind()
	}
}
