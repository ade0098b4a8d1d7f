// Package client is sluice's Go client: a Producer that batches records into native put
// requests, a Consumer that reads every shard of a stream (native gets, or enhanced fan-out
// through native subscriptions) following resharding lineage, and the few Kinesis API calls
// they need (ListShards, DescribeStreamSummary, CreateStream, RegisterStreamConsumer,
// DescribeStreamConsumer; CallKinesis reaches the others). It speaks HTTP/1.1 through
// fasthttp's client; records travel in the native protocol (docs/PROTOCOL.md, codec in
// server/wire), whose get answers carry the segment's own frames, CRC-checked here.
//
// What it owns: connections to one server (and, for a Producer in cluster mode, to the
// nodes leading its shards), batching, retries, per-key ordering, lineage and
// checkpoints as a consumer sees them, the conversion of sequence numbers between their
// (shard, position) and 56-digit Kinesis forms. What it does not own: anything on the
// server's side (it imports server/wire, whose frames package frame decodes, and shardmap;
// never server, stream or segment, so it builds for every GOOS and GOARCH: make cross), and
// where checkpoints are stored (the Checkpointer interface; MemoryCheckpointer keeps them in
// memory).
//
// # Errors
//
// A refusal by the server is an *Error carrying the protocol's code, the Kinesis error name
// and message; errors.Is matches it against the sentinels by code (ErrThrottled,
// ErrNotFound, ErrInUse, …). Network failures are returned wrapped as they are. ErrClosed is
// the error of a closed Client, Producer or Consumer.
//
// # Producer
//
// Put queues a record and returns a Future; PutFunc takes a callback instead. A batch (one
// put request) goes when it holds MaxBatchRecords records or MaxBatchBytes of keys and data,
// or when Linger has passed since its first record. The producer knows the stream's shards
// (ListShards, refreshed when an answer puts a record on a shard it did not expect, or the
// stream is not found) so that it can back off per shard: records refused with
// ProvisionedThroughputExceeded are held, with their shard's later records, for an
// exponential backoff with jitter, and then sent again; only the refused records of a batch
// are retried. A request that fails as a whole (a network error, a 5xx, a refusal for load)
// pauses all sending and retries all its records. A record is retried until it is appended,
// RecordTimeout or MaxAttempts runs out, or Close gives up; an error of another kind (the
// stream is missing, the input is invalid) ends it at once.
//
// Ordering: by default a record is not sent while an earlier record of the same partition
// key is in flight or held for a retry, so the records of a key are appended in Put order
// even when some are refused and retried (the server keeps the request order of a shard's
// records). The price is one record per key per request; Unordered lifts it. A request
// that failed on the way may still have been appended, so a retry after a network error can
// append a record twice; there is no other source of duplicates.
//
// Memory is bounded: Put blocks while MaxBuffered bytes of keys and data are waiting for
// their outcome, until its context ends. The producer keeps a reference to each record's
// data until its outcome is known; the caller must not modify it before.
//
// Flush sends what is queued without waiting for linger and waits for the outcome of every
// record Put before it; Close does the same and stops the producer. Both return a
// *FlushError counting the records that failed since the previous Flush (errors.Is looks at
// the first failure). When Close's context ends first, the records not in flight fail with
// an error wrapping ErrClosed; requests in flight still complete, so every record gets a
// true outcome before Close returns.
//
// # Cluster
//
// Against a cluster (docs/CLUSTER.md) any node takes any record and forwards those of shards
// it does not lead: a hop. A Producer skips it: it asks its endpoint which node leads each
// shard (Client.ShardLeaders, the native leaders request) and keeps one open batch per
// destination, each shard's records going to its leader through a client of that node made
// on first use (same configuration, scheme and credentials; requests signed for that node's
// host; closed with the Client). A shard with no known leader, or led by the endpoint
// itself, goes to the endpoint. The leaders are asked again with every shard map refresh
// and every 2 s while the producer sends, to follow leader changes. A request to a leader
// that fails on the way (connection refused or reset, a timeout) forgets that leader for 2
// s (ProducerStats.LeaderFailures), asks for the leaders at once, and retries its records
// through the endpoint without pausing the other sends; a stale leader costs a hop, never a
// record, since every node forwards. On a single node the answer is empty and nothing
// changes. ProducerConfig.EndpointOnly keeps every record on the endpoint, for a client that
// can reach no other node.
//
// # Aggregation
//
// With ProducerConfig.Aggregate the producer packs records into KPL aggregated records (package
// kpl), as the KPL does: each record joins the aggregate of the shard its key maps to (by the
// producer's shard map), and an aggregate is sealed when the next record would take it past
// MaxAggregateBytes or when Linger has passed since its first record (at once while a Flush
// waits; in order, while an aggregate of its shard is on its way, it keeps filling past Linger
// until that one is done). It is sent with its first record's key and that key's hash as
// explicit hash key, so that it lands on that shard; an aggregate of one record is sent as the
// record itself. A request of aggregates is sent Linger after the first Put of its oldest
// aggregate at the latest (an aggregate lingers once), and in order carries about one full
// aggregate, so that the shards' aggregates travel in parallel requests. Each record's Outcome
// is the aggregate's: its SeqNum, Aggregated set and SubSeq its index. Batching, retries and
// backoff then apply to aggregates; ordering (unless Unordered) applies to all the
// aggregates of a shard, one at a time, which keeps each key's records in Put order. An aggregate
// appended to another shard than expected (the map was stale) is not reported: its records are
// aggregated again once the map is refreshed (ProducerStats.Rerouted), since a reader drops it
// if any record belongs elsewhere; records of it that did belong there may be read twice, and
// a key's order is not kept across a reroute. A record rerouted three times (its map is not
// being refreshed) fails with ErrMisrouted.
//
// The Consumer de-aggregates unless ConsumerConfig.Raw, with a Deaggregator and the shard's
// hash-key range: an aggregated record becomes its user records (Record.Aggregated, SubSeq),
// an aggregate with a record outside the range is dropped, and a record whose magic matches
// but whose digest or message does not is passed on as it is, as the KCL does. The user records
// of one record come in one batch, so a checkpoint never falls inside an aggregate.
//
// # Consumer
//
// Run lists the stream's shards and reads each shard whose parents (ParentShardId and
// AdjacentParentShardId, when still listed) have all been read to their end: a child starts
// only after its parents ended, so records of a key come in order across a split or a
// merge. In shared mode each shard is read with native gets, paced to ReadsPerSecond per
// shard (5 by default, the Kinesis limit) and to PollInterval when nothing new came; with
// enhanced fan-out (ConsumerName or ConsumerARN) each shard gets a native subscription on a
// connection of its own, renewed from its continuation when it ends (after 5 minutes, or on
// an error). A shard's end (Shard-End, or an end message) starts its children once all
// their parents are done. Records the reader already handled (a subscription's overlap) are
// never handed over twice.
//
// Checkpoints: after a handler accepts a batch (returns nil), the consumer calls
// Checkpointer.Set with the batch's last position; at a shard's end it sets Ended. A later
// Run (or another Consumer with the same Checkpointer) resumes after each checkpoint and
// skips ended shards, so records are handled at least once, and exactly once when Set is
// durable before the crash. A Latest start checkpoints the position it started at, so that a
// restart does not skip what came in between.
//
// # Concurrency
//
// A Client is safe for concurrent use, and so are its Producers (Put, PutFunc, Flush, Close
// and Stats from any goroutine). A Producer runs MaxInFlight sender goroutines and one timer
// goroutine until Close; futures are completed and callbacks called on the senders, after
// the producer's lock is released, so a callback must be quick and must not call Put,
// Flush or Close. A Consumer runs one goroutine per shard being read, and calls its handler
// concurrently for different shards and serially within a shard; records passed to the
// handler alias the answer's buffer and are valid only until it returns. Run waits for every
// reader to stop before it returns.
//
// Durability: the client stores nothing. A record's outcome is the server's
// acknowledgement, as durable as the server's durability mode makes it.
//
// Contexts: a request already sent is not interrupted by its context (fasthttp has no
// cancellation); Config.RequestTimeout bounds it. Subscriptions are interrupted at once:
// their connection is closed.
package client
