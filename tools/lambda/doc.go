// Package lambda runs an unmodified AWS Lambda function against a sluice stream, the way a
// Kinesis event source mapping does (`sluice lambda`).
//
// What it owns: the Lambda runtime API (version 2018-06-01) on loopback, one listener and
// one handler process per execution environment (Runtime); the decoding and checking of a
// CreateEventSourceMapping request (ParseMapping); Lambda's Kinesis event and on-failure
// record; the mapping's semantics (Trigger); its checkpoint file. What it does not own:
// reading the stream, which the shared-mode client.Consumer does (native gets, paced to 5
// a shard a second, following resharding lineage: a child shard starts once its parents are
// read to their end), and the function itself, which is any executable speaking the runtime
// API: a binary built with github.com/aws/aws-lambda-go, or a custom runtime's bootstrap.
//
// # Semantics
//
// A batch is taken from what one read of a shard returns: up to BatchSize records and 6 MB
// of event. With ParallelizationFactor P above 1, a read's records are spread over P lanes
// by a hash of the partition key, and the lanes' batches run at once, each lane in order;
// the read's next batch waits for all of them. An invocation that fails as a whole (an
// error the function returns, a crash of its process, a timeout, an initialisation error,
// or a partial batch response naming no record of the batch) is a function error: with
// BisectBatchOnFunctionError the batch is split in two halves, run one after the other,
// which inherit its attempts (splitting is not a retry); otherwise it is retried after an
// exponential backoff. With ReportBatchItemFailures, the records before the first one
// reported succeeded and the batch is retried from it. Once MaximumRetryAttempts retries
// failed, or when its first records are older than MaximumRecordAgeInSeconds, a batch's
// metadata (shard, first and last sequence numbers, arrival times, size, condition) goes to
// the on-failure destination, and the shard goes on after it. With MaximumRetryAttempts -1
// and no record age limit, a failing batch blocks its shard (its lane) until it succeeds,
// as on Lambda.
//
// Tumbling windows (TumblingWindowInSeconds): a record belongs to the window, aligned on
// multiples of its length since the epoch, in which it arrived; a batch holds the records
// of one window, and its event (a KinesisTimeWindowEvent) carries the window, the state the
// window's previous invocation returned ({} at first), the shard id and
// isFinalInvokeForWindow. When a lane reads its first record of a later window, the
// function first gets the open window's final invocation: no records, the last state,
// isFinalInvokeForWindow true. Unlike Lambda, which closes a window when its time is up,
// an idle lane's window stays open until a record of a later window comes, and no state
// size limit ends a window early (isWindowTerminatedEarly is always false).
//
// # Durability
//
// The checkpoint file holds, for each shard, the position the consumer resumes after and,
// for each lane, the position after its last record done (succeeded, or sent to the
// on-failure destination). It is replaced (temporary file, fsync, rename, fsync of the
// directory) after every batch done and before the next batch of that lane is invoked
// (with the lane's window and state, under tumbling windows), so
// after a crash of the trigger the only records delivered again are those of the
// invocations in flight; no batch that succeeded is delivered again and none is skipped. A
// failure record is written (and synced, for a file) before its batch counts as done, so a
// crash between the two writes it twice, never not at all.
//
// # Concurrency
//
// A Trigger runs one goroutine per shard being read (the consumer's) and, with P above 1,
// one per lane with records. Each invocation takes an idle execution environment of the
// Runtime or starts a new one, so there are at most as many handler processes as lanes in
// flight; a process whose invocation timed out, or whose caller gave up, is killed and
// replaced. On Linux a handler process is killed by the kernel when the trigger dies.
// Stats may be read from any goroutine.
package lambda
