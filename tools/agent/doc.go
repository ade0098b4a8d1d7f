// Package agent sends the lines of log files to sluice streams as the Kinesis Agent does,
// reading the Kinesis Agent's own configuration file (`sluice agent --config agent.json`).
//
// What it owns: ParseConfig (flows[] with filePattern, kinesisStream, partitionKeyOption,
// initialPosition, multiLineStartPattern, skipHeaderLines, truncatedRecordTerminator, the
// buffer limits, minTimeBetweenFilePollsMillis and dataProcessingOptions SINGLELINE,
// CSVTOJSON, LOGTOJSON and ADDMETADATA, whose output matches the Kinesis Agent's converters;
// checkpointFile, kinesis.endpoint; keys the Kinesis Agent knows but this agent does not
// apply are warnings, any other key an error), the following of files, and the checkpoint
// file. What it does not own: the connection to the server (a client.Client).
//
// # Settings
//
// The defaults and bounds are the Kinesis Agent's for a kinesisStream flow, as its source
// has them (github.com/awslabs/amazon-kinesis-agent, in src/com/amazon/kinesis/streaming/agent:
// tailing/KinesisFileFlow.java, tailing/KinesisConstants.java, tailing/FileFlow.java,
// Constants.java): maxBufferAgeMillis 60,000, within 1,000 and 900,000; maxBufferSizeBytes
// 5 MiB (PutRecords' limit), within 1 and 5 MiB; maxBufferSizeRecords 500, within 1 and 500;
// minTimeBetweenFilePollsMillis 100 (the Kinesis Agent takes any value, this agent at least
// 1); initialPosition END_OF_FILE; partitionKeyOption RANDOM. A PutRecords call never
// passes maxBufferSizeRecords records or maxBufferSizeBytes bytes of keys and data. The
// records waiting are put when a call's worth of them is there, or when the oldest is
// maxBufferAgeMillis old.
//
// DETERMINISTIC keys are the lowercase hex MD5 of the record's data after the processors and
// before a cut to MaxRecordBytes, as KinesisRecord.generatePartitionKey computes them when a
// processor made the data. Without a processor the Kinesis Agent hashes the whole array
// behind the record's ByteBuffer (data.array() of a slice of its parse buffer), not the
// record alone; this agent hashes the record's data in both cases, so that records with the
// same data have the same key. RANDOM keys differ on purpose: the Kinesis Agent's is a random
// number below 1,000,000 in decimal (ThreadLocalRandom.nextDouble), this agent's 128 random
// bits in hex (below, What a crash can do).
//
// # Files
//
// Every file matching a flow's pattern is followed, identified by device and inode and by
// a fingerprint, the hash of its first bytes (up to 1 KiB). A file renamed keeps its
// identity: it is read to its end even when it left the pattern, then let go. A file that
// appears later is read from its start; initialPosition applies to the files found at a
// flow's very first start only. A file shorter than what was read, or whose first bytes
// changed, was truncated: when another file of the directory starts with its fingerprint
// (copy-truncate rotation), the lines not yet read are read from that copy; the truncated
// file is then read from its start. A new file whose first bytes are those of a file
// followed is taken as its copy and not read on its own. Bytes read from a file whose first
// bytes changed since it was last looked at are not used: it was truncated and written
// again, and is read from its start. Only whole lines are sent.
//
// # What a crash can do
//
// A flow puts one batch at a time: the records of one PutRecords call or, when the files
// hold more (a backlog), of up to 32 calls and 8 MiB, put one call after the other (one
// checkpoint save for several calls: BenchmarkAgent). Before its first put, the batch's
// records (keys and data) are saved in the checkpoint file with the files' offsets after the
// batch and, for each shard, a mark: a position at or before which nothing of the batch can
// be. A batch is delivered when every record of it was acknowledged; a put whose outcome is unknown (a
// network failure, or a crash: the checkpoint holds a batch) is settled by reading every
// shard from its mark to its tip and counting, for each record of the batch, the records
// there with the same key and data; only the records not found are put again. RANDOM keys
// are 128 random bits, so a record of the batch is told from any other record.
//
// The promise, after any number of crashes at any point (kill -9 included) and restarts
// with the same checkpoint file: every whole line of a file followed, that is still in
// that file or a copy of it when it is read, is in the stream exactly once; and the lines
// of a file are in the order of the file on each shard, as long as the server refused no
// record for throughput (a record refused with ProvisionedThroughputExceeded is put again
// after the records of the batch that were accepted, as the Kinesis Agent does).
//
// What it cannot promise: another writer on the same stream that puts a record with the
// same key and data as a record of the batch in flight (possible with DETERMINISTIC keys
// only) can make that record count as delivered. A put that the server is still working
// on when the restarted agent reads the shards' tips (a put slower than the agent's
// restart) can be appended twice. Lines appended to a file between logrotate's copy and its
// truncation are lost (logrotate's own copytruncate caveat), and so are the lines of a file
// truncated, without a copy, before they were read.
//
// A reshard changes nothing of this: the settling reads every shard the stream lists, open
// or closed, and a shard created after the batch was saved (a child, where some of its
// records may have landed) has no mark and is read from its start.
//
// # Durability
//
// The checkpoint file is replaced as a whole (temporary file, fsync, rename, fsync of the
// directory): once before each batch's first put, and when a flow is idle with progress not
// yet saved. The files' offsets are saved only with the batch they end, so lines read into
// a batch not yet saved are read again after a crash.
//
// # Concurrency
//
// An Agent runs one goroutine per flow; the flows share the checkpoint file, whose writing
// a mutex serialises. Stats and WriteMetrics may be called from any goroutine.
package agent
