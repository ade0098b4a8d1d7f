// Package load is the load generator behind `sluice load`: producers put records into a
// stream at a rate (or as fast as they are acknowledged), consumer groups read the stream
// back, and the run reports throughput, errors, latency percentiles, and whether every
// acknowledged record was read exactly once by every group.
//
// # Protocols
//
// Native runs a client.Producer per producer and a client.Consumer per consumer group:
// sluice's own binary protocol, shared reads with native gets or enhanced fan-out with
// native subscriptions. Kinesis speaks the Kinesis API (AWS JSON 1.1 over HTTP/1.1, unsigned),
// so that any server speaking it can be loaded: each producer sends one PutRecords at a
// time (up to 500 records, 4 MiB of data), retrying throttled records with backoff; each
// group reads each shard with GetShardIterator and GetRecords, or with SubscribeToShard
// (the AWS event stream over a chunked HTTP/1.1 answer) for enhanced fan-out. The data path
// is encoded and decoded by hand (kinesis_codec.go over internal/jsonscan, eventstream.go): the body
// of a PutRecords is appended straight from a shared filler buffer, and a consumer decodes
// only the first 24 base64 characters of each record (its header), never the whole data.
//
// # Records
//
// Sizes follow a Size distribution (fixed, uniform or truncated normal; ParseSize). Keys
// are drawn uniformly from Config.Keys distinct partition keys. A record of 16 bytes or more
// starts with a header, its send time and the run's id (record.go); shorter records are all
// filler and are verified but not timed. Sizes, keys and filler come from Config.Seed.
//
// # Verification
//
// Every acknowledged record is identified by its shard and its position (a sluice sequence
// number decodes to it; another server's is hashed, see recID). Each group's reads are
// compared with the acknowledgements: missing (acknowledged, never read), duplicated (read
// more than once) and unexpected (read, never acknowledged: an earlier run's record, or a
// put whose answer was lost and which was sent again). Groups start reading at
// AT_TIMESTAMP five seconds before the run (a server whose clock is further behind makes
// records look missing). After putting stops, a run waits for the producers' last outcomes
// and then for every group to have read everything acknowledged, each for at most
// Config.DrainTimeout; Report.Problems then lists missing or duplicated records, failed
// groups and producers, or a run that had nothing acknowledged. For missing records,
// GroupReport.MissingShards names each shard they are on, how many of the shard's records
// are missing and how many were read, and the first and last position missing (a whole
// shard missing from its first record points at where its reading started).
//
// # Latency
//
// Put latency runs from handing a record to the producer to its acknowledgement: batching,
// linger, waiting behind earlier records, retries and the request itself. An unpaced run
// (Rate 0) keeps each producer's queue full, so its put latency is mostly that wait; the
// queue is bounded to about one batch (4 MiB for a native producer, one PutRecords for a
// Kinesis one) so that it stays a measure of the server. End-to-end latency runs from the
// same moment to a consumer reading the record, by this machine's clock; shared groups add
// their polling interval to it (5 reads a second by default). Both are HDR histograms
// (microseconds, three significant digits), reported as p50, p99, p99.9 and max.
//
// What it owns: the workload, the Kinesis-protocol data path of its own, verification and
// the report. What it does not own: flags and output, which belong to cmd/sluice; the
// native protocol, which is the client package's; the server.
//
// Concurrency: Run is safe to call concurrently (runs share nothing but a pool of data
// buffers); a run's producers, groups and shard readers are goroutines of its own, joined
// before Run returns. Config.Progress is called from one goroutine, never concurrently.
//
// Durability: none; the package stores nothing. An acknowledgement is as durable as the
// server's durability mode makes it.
package load
