package stream

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
)

// Request bounds of PutRecords, as Kinesis defines them.
const (
	MaxPutRecords      = 500
	MaxPartitionKeyLen = 256      // Unicode characters
	MaxPutRecordsBytes = 10 << 20 // data and partition keys of one PutRecords call
)

// PutEntry is one record to put.
type PutEntry struct {
	PartitionKey    string
	ExplicitHashKey *shardmap.Key // overrides the MD5 of the partition key when set
	Data            []byte
}

// PutResult is the outcome of one record: its shard and sequence number, or an error of
// kind ProvisionedThroughputExceeded (the shard's capacity; retry later) or an internal
// failure. The records of one PutRecords call succeed or fail independently.
type PutResult struct {
	Shard ShardID
	Seq   SeqNum
	Err   error
}

// PutRecords appends records to a stream, each to the shard its hash key falls in. Records of
// one call that go to the same shard are appended as one batch, in call order, so records
// with the same partition key keep their order. A call-level error (unknown stream, invalid
// input) means no record was written.
func (e *Engine) PutRecords(stream string, entries []PutEntry) ([]PutResult, error) {
	s, err := e.stream(stream)
	if err != nil {
		return nil, err
	}
	now := e.opts.Now()
	var t putTally
	results, err := e.putRecords(s, stream, entries, now, &t)
	s.metrics.putDone(false, &t, e.opts.Now().Sub(now))
	return results, err
}

// putRecords is PutRecords once the stream is found; it tallies the records' outcomes in t.
func (e *Engine) putRecords(s *Stream, stream string, entries []PutEntry, now time.Time, t *putTally) ([]PutResult, error) {
	if len(entries) < 1 || len(entries) > MaxPutRecords {
		return nil, invalid(awsmsg.Violation(awsmsg.Int(len(entries)), "records", awsmsg.LengthRange(1, MaxPutRecords)))
	}
	meta := s.meta.Load()
	maxData := meta.MaxRecordKiB << 10
	if meta.Encryption == "KMS" {
		maxData = min(maxData, frame.MaxDataLen-SealOverhead) // the sealed data must fit a frame
	}
	total := 0
	for i, en := range entries {
		total += len(en.PartitionKey) + len(en.Data)
		// A key of at most MaxPartitionKeyLen bytes has at most as many characters: only a
		// longer one is counted.
		if n := len(en.PartitionKey); n < 1 || n > MaxPartitionKeyLen && utf8.RuneCountInString(en.PartitionKey) > MaxPartitionKeyLen {
			return nil, invalid(awsmsg.Violation(awsmsg.Hidden, recordMember(i, "partitionKey"), awsmsg.LengthRange(1, MaxPartitionKeyLen)))
		}
		if len(en.Data) > maxData {
			return nil, invalid(awsmsg.Violation(awsmsg.Hidden, recordMember(i, "data"), awsmsg.LengthAtMost(maxData)))
		}
	}
	if total > MaxPutRecordsBytes {
		return nil, errorf(KindInvalidArgument, "Records size exceeds %d MB limit", MaxPutRecordsBytes>>20)
	}
	var flags uint16
	var sl *sealer
	if meta.Encryption == "KMS" {
		flags = frame.FlagEncrypted | frame.FlagSealed
		var err error
		if sl, err = s.sealerFor(meta); err != nil {
			return nil, err
		}
	}
	results := make([]PutResult, len(entries))
	pending := make([]int, len(entries))
	for i := range pending {
		pending[i] = i
	}
	// A resharding may close a shard between routing and appending: the records routed to
	// it are routed again on the new map, which is published before the shard's gate opens.
	// putOnce returns them shard by shard; sorted back into call order, those of several
	// closed shards that meet in one new shard are appended there in call order.
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == 100 {
			for _, i := range pending {
				results[i].Err = errorf(KindInternalFailure, "the stream kept resharding while the record was put")
			}
			t.failed += len(pending)
			break
		}
		pending = e.putOnce(s, stream, entries, pending, results, flags, sl, now, t)
		slices.Sort(pending)
	}
	return results, nil
}

// putOnce routes the pending records on the current shard map and appends them, one batch
// per shard, each in call order, sealing their data with sl unless it is nil. It returns the
// records whose shard was closed meanwhile.
func (e *Engine) putOnce(s *Stream, stream string, entries []PutEntry, pending []int, results []PutResult, flags uint16, sl *sealer, now time.Time, t *putTally) (retry []int) {
	set := s.set.Load()
	sc := putScratches.Get().(*putScratch)
	defer sc.release()
	order := groupByShard(set.m, entries, pending, results, sc.intsFor(2*len(pending)))
	batch := sc.recordsFor(len(order))
	var jobs []appendJob // replicated shards' appends, run together at the end
	for start := 0; start < len(order); {
		id := results[order[start]].Shard
		end := start + 1
		for end < len(order) && results[order[end]].Shard == id {
			end++
		}
		idx, recs := order[start:end], batch[start:end]
		start = end
		sh := set.shards[id]
		if ll, ok := sh.log.(LeaderLog); ok {
			if leader, here := ll.Leader(); !here {
				// Another node appends (and charges the limit): the server forwards these.
				for _, i := range idx {
					results[i].Err = notLeader(leader)
				}
				continue // not counted here: the leader counts what it appends
			}
		}
		admitted := idx[:0] // the admitted records, compacted in place
		throttled := 0      // their bytes
		for _, i := range idx {
			if n := len(entries[i].PartitionKey) + len(entries[i].Data); !sh.write.Admit(n, now) {
				throttled += n
				t.throttled++
				sh.metrics.throttledWrite()
				results[i].Err = errorf(KindProvisionedThroughputExceeded, "Rate exceeded for shard %s in stream %s under account %s.",
					id.String(), stream, e.opts.Account)
				continue
			}
			admitted = append(admitted, i)
		}
		if len(admitted) < len(idx) {
			sh.countDemand(throttled, len(idx)-len(admitted))
		}
		idx, recs = admitted, recs[:len(admitted)]
		if len(idx) == 0 {
			continue
		}
		n := 0
		for j, i := range idx {
			recs[j] = segment.Record{Key: bytesOf(entries[i].PartitionKey), Data: entries[i].Data, Flags: flags}
			n += len(entries[i].PartitionKey) + len(entries[i].Data)
		}
		if _, replicated := sh.log.(LeaderLog); replicated && sl == nil {
			// A replicated append waits for a Raft commit (a round trip to the other
			// replicas): the shards of one call append concurrently, once they are all known.
			// (Sealed records share sc's buffer, so an encrypted stream appends in turn.)
			jobs = append(jobs, appendJob{sh: sh, id: id, idx: idx, recs: recs, n: n})
			continue
		}
		retry = e.appendShard(appendJob{sh: sh, id: id, idx: idx, recs: recs, n: n}, sc, sl, results, t, retry)
	}
	switch len(jobs) {
	case 0:
	case 1:
		retry = e.appendShard(jobs[0], sc, nil, results, t, retry)
	default:
		var wg sync.WaitGroup
		var mu sync.Mutex // guards t and retry
		for _, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var jt putTally
				r := e.appendShard(j, nil, nil, results, &jt, nil)
				mu.Lock()
				t.records, t.bytes, t.failed = t.records+jt.records, t.bytes+jt.bytes, t.failed+jt.failed
				retry = append(retry, r...)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	return retry
}

// appendJob is the admitted records of one shard in one putOnce: their indexes in the call,
// the records built for the log, and their bytes.
type appendJob struct {
	sh   *shard
	id   ShardID
	idx  []int
	recs []segment.Record
	n    int
}

// appendShard appends j's records to its shard's log (sealed first when sl is set, in sc's
// buffer) and writes their results, counting them in t. Records of a shard a reshard closed
// meanwhile are added to retry, which it returns. It writes only j's entries of results, so
// the jobs of one call may run concurrently with sc and sl nil.
func (e *Engine) appendShard(j appendJob, sc *putScratch, sl *sealer, results []PutResult, t *putTally, retry []int) []int {
	sh, idx, recs, n := j.sh, j.idx, j.recs, j.n
	sh.gate.RLock()
	if sh.closed {
		sh.gate.RUnlock()
		return append(retry, idx...)
	}
	if sl != nil {
		sc.seal(sl, recs, n)
	}
	err := sh.log.Append(recs)
	sh.gate.RUnlock()
	if errors.Is(err, ErrLogSealed) {
		// A resharding, perhaps on another node, sealed the shard: once the new map is
		// here, the records route again on it; until then they fail, retryably.
		if awaitClosed(sh) {
			return append(retry, idx...)
		}
		err = &Error{Kind: KindInternalFailure, Msg: "the shard is being closed by a resharding; retry", Err: err}
	}
	if err != nil {
		t.failed += len(idx)
	} else {
		t.records += len(idx)
		t.bytes += n
		sh.metrics.appended(len(idx), n)
	}
	if nl := (*NotLeaderError)(nil); errors.As(err, &nl) {
		err = notLeader(nl.Leader) // put again by the server, through the new leader, which counts them
	} else {
		sh.countDemand(n, len(idx))
		if err != nil && KindOf(err) == 0 {
			err = internalError(err)
		}
	}
	for k, i := range idx {
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].Seq = SeqNum{Shard: j.id, Pos: recs[k].Seq}
	}
	return retry
}

// countDemand adds a put's records to the shard's write demand (on-demand scaling): n bytes
// of partition keys and data in recs records. Demand is counted once per record and client
// request, where the record's fate is settled: throttled, appended, or failed for good on
// the node that leads the shard. A record this node routes to another node's leader, or
// hands back to be put again (its shard closed by a resharding meanwhile, or its leader
// lost during the append), is counted where it is finally put. One pair of atomic adds per
// shard and call, not per record.
func (sh *shard) countDemand(n, recs int) {
	sh.demandBytes.Add(int64(n))
	sh.demandRecs.Add(int64(recs))
}

// sealedWait bounds how long an append refused by a sealed log waits for the resharding
// that sealed it to reach this node's shard map (the catalog's watch: usually milliseconds).
const sealedWait = 2 * time.Second

// awaitClosed waits until sh is closed, at most sealedWait, and reports whether it is.
func awaitClosed(sh *shard) bool {
	t := time.NewTimer(sealedWait)
	defer t.Stop()
	select {
	case <-sh.closing:
		return true
	case <-t.C:
		return false
	}
}

// putScratch is the working memory of one putOnce, pooled: the records handed to the logs
// (72 bytes each, 36 KiB for 500: an allocation past the runtime's small sizes, zeroed and
// collected on every call) and groupByShard's indexes.
type putScratch struct {
	recs   []segment.Record
	ints   []int
	sealed []byte // the sealed data of recs on an encrypted stream
}

var putScratches = sync.Pool{New: func() any { return new(putScratch) }}

func (sc *putScratch) recordsFor(n int) []segment.Record {
	if cap(sc.recs) < n {
		sc.recs = make([]segment.Record, n)
	}
	sc.recs = sc.recs[:n]
	return sc.recs
}

func (sc *putScratch) intsFor(n int) []int {
	if cap(sc.ints) < n {
		sc.ints = make([]int, n)
	}
	return sc.ints[:n]
}

// seal replaces the data of recs by its sealed form (encrypt.go), held in sc.sealed; n is
// the records' keys and data.
func (sc *putScratch) seal(sl *sealer, recs []segment.Record, n int) {
	sc.sealed = slices.Grow(sc.sealed[:0], n+len(recs)*SealOverhead)
	for j := range recs {
		start := len(sc.sealed)
		sc.sealed = sl.seal(sc.sealed, recs[j].Key, recs[j].Data)
		recs[j].Data = sc.sealed[start:len(sc.sealed):len(sc.sealed)]
	}
}

// release drops the records' references to the caller's keys and data and pools sc.
func (sc *putScratch) release() {
	clear(sc.recs)
	sc.recs = sc.recs[:0]
	if cap(sc.sealed) > 1<<20 {
		sc.sealed = nil // a large batch's buffer is not kept
	}
	putScratches.Put(sc)
}

// keyCache remembers the hash keys of recurring partition keys for every engine of the
// process: the MD5 of a partition key is a pure function, so one cache serves all streams.
var keyCache = shardmap.NewKeyCache()

// countingMaxShards is the most open shards groupByShard sorts by counting; a stream with
// more sorts its records with slices.Sort. A variable so that a test can reach both paths.
var countingMaxShards = 1024

// countingStack is the most open shards whose counts groupByShard keeps on the stack.
const countingStack = 64

// groupByShard routes the pending records (indexes into entries), sets each one's
// results[i].Shard, and returns them grouped by shard, each group in call order.
//
// The records are grouped by a counting sort on their shard's index in the map's
// OpenByRange: two passes over the records and one over the open shards. The stable sort
// it replaced compared through results and took ~70 ns per record in a server profile under
// PutRecords of 500 × 100 B; BenchmarkGroupByShard compares the two ways kept here.
// Past countingMaxShards open shards the counts would cost more than the records: the
// records are sorted as (route index, position) pairs instead, which is stable because the
// positions differ.
//
// buf is working memory of 2 × len(pending) ints; the result is its first half.
func groupByShard(m *shardmap.Map, entries []PutEntry, pending []int, results []PutResult, buf []int) []int {
	open := m.OpenByRange()
	order, where := buf[:len(pending)], buf[len(pending):] // where[j]: pending[j]'s route index
	for j, i := range pending {
		en := &entries[i]
		var k shardmap.Key
		if en.ExplicitHashKey != nil {
			k = *en.ExplicitHashKey
		} else {
			k = keyCache.KeyOf(en.PartitionKey)
		}
		r := m.RouteIndex(k)
		where[j] = r
		results[i].Shard = open[r].ID
	}
	if len(pending) == 1 {
		order[0] = pending[0]
		return order
	}
	if len(open) > countingMaxShards {
		keys := make([]uint64, len(pending))
		for j, r := range where {
			keys[j] = uint64(r)<<32 | uint64(j)
		}
		slices.Sort(keys)
		for j, k := range keys {
			order[j] = pending[uint32(k)]
		}
		return order
	}
	var stack [countingStack + 1]int
	starts := stack[:]
	if len(open) > countingStack {
		starts = make([]int, len(open)+1)
	}
	starts = starts[:len(open)+1]
	for _, r := range where {
		starts[r+1]++
	}
	for r := 1; r < len(starts); r++ {
		starts[r] += starts[r-1]
	}
	for j, r := range where {
		order[starts[r]] = pending[j]
		starts[r]++
	}
	return order
}

// bytesOf returns the bytes of s without copying them. segment.Log.Append only reads a
// record's key (it copies it into the frame), so the string's immutable bytes are never
// written through the slice. It saves one allocation per record (BenchmarkPutRecords).
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// PutRecord puts one record (the PutRecord call). A throttled record is a call-level
// ProvisionedThroughputExceeded error, as in Kinesis. (Kinesis's SequenceNumberForOrdering
// needs nothing of the engine: every shard's numbers already follow the order of the
// appends, so the protocol edge only checks that it is a number this server issued.)
func (e *Engine) PutRecord(stream string, en PutEntry) (PutResult, error) {
	s, err := e.stream(stream)
	if err != nil {
		return PutResult{}, err
	}
	now := e.opts.Now()
	var t putTally
	res, err := e.putRecords(s, stream, []PutEntry{en}, now, &t)
	s.metrics.putDone(true, &t, e.opts.Now().Sub(now))
	if err != nil {
		return PutResult{}, err
	}
	return res[0], res[0].Err
}

// recordMember names a member of PutRecords' i-th record (from 0) as a validation message
// does: "records.<i+1>.member.<field>".
func recordMember(i int, field string) string {
	return "records." + strconv.Itoa(i+1) + ".member." + field
}
