// Package deliver delivers a sluice stream to S3, or to a local directory, the way an
// Amazon Data Firehose delivery stream with a Kinesis stream source and an extended S3
// destination does (`sluice deliver`).
//
// What it owns: the decoding and checking of a CreateDeliveryStream request (ParseConfig),
// the evaluation of Prefix and ErrorOutputPrefix, buffering, compression (UNCOMPRESSED,
// GZIP, ZIP, Snappy, HADOOP_SNAPPY), object names, the error records, the stores (Store: a
// bucket through github.com/aws/aws-sdk-go-v2/service/s3 against AWS or any S3-compatible
// endpoint, or a directory), and its checkpoint file. What it does not own: reading the
// stream, which the shared-mode client.Consumer does (native gets, following resharding
// lineage: a child shard starts once its parents are stored to their end, and KPL
// aggregated records de-aggregated as the KCL and Firehose do).
//
// # Semantics
//
// Each shard has an open object: the data of its records, in order, each followed by the
// AppendDelimiterToRecord processor's delimiter when that processor is on (Firehose
// concatenates records without one otherwise). The object is stored when it reaches
// BufferingHints.SizeInMBs of uncompressed data, checked between two records of different
// sequence numbers (the user records of one aggregated record never straddle two objects),
// or when its first record has waited IntervalInSeconds, whichever comes first; with
// IntervalInSeconds 0, after every read. Unlike Firehose, whose objects mix the records of
// all shards, an object holds the records of one shard.
//
// An object's key is <evaluated prefix><DeliveryStreamName>-<version>-yyyy-MM-dd-HH-mm-ss-
// <uuid><extension>. The time, in the prefix and the name, is the approximate arrival time
// of the object's oldest record in CustomTimeZone (UTC by default), as on Firehose. The
// version is 1. The uuid, and the 11 characters of each !{firehose:random-string}, are not
// random: they are derived (SHA-256) from the delivery stream's name, the shard and the
// sequence number of the object's first record, so that a restart which reads the same
// records again writes the same key and overwrites the object. The extension is .gz, .zip
// or .snappy (for Snappy and HADOOP_SNAPPY), or FileExtension. A ZIP object is an archive
// of one deflated file named as the object without its extension.
//
// A record that cannot be processed, here a record that starts with the KPL aggregation
// magic but whose digest or message does not check, goes to the shard's error object under
// ErrorOutputPrefix, with !{firehose:error-output-type} as processing-failed: one JSON line
// per record (attemptsMade, arrivalTimestamp, errorCode, errorMessage,
// attemptEndingTimestamp, rawData in base64, shardId, sequenceNumber, partitionKey),
// compressed as data objects are. Its key is made as a data object's, from its own first
// record.
//
// A shard without a checkpoint starts at LATEST, as a new Firehose delivery stream does,
// unless Options.Start says TRIM_HORIZON. A failed Put is retried with exponential backoff
// until it succeeds or Run is stopped.
//
// # Durability
//
// The checkpoint file holds, for each shard, the sequence number of the last record in a
// stored object, and whether the shard is stored to its end. It is replaced (temporary
// file, fsync, rename, fsync of the directory) after each object is stored, and before the
// shard's next object is begun, so after a crash at most one object per shard was stored
// beyond the checkpoint. A restart reads again from the checkpoint; the next object of the
// shard begins with the same record, so it gets the same key and replaces that object,
// whatever its size this time: the objects hold every record exactly once. This needs the
// configuration (name, prefixes, compression, extension) to be the same across the
// restart; a checkpoint of another stream or delivery stream is refused. A shard's end is
// checkpointed only after its last object is stored. A directory store writes each file as
// the checkpoint is written (fsync and rename), so a file's object is durable before the
// checkpoint moves past it.
//
// # Concurrency
//
// A Delivery runs the consumer's goroutine per shard being read and one goroutine storing
// objects that reached their interval. A shard's buffer is locked while a batch is added to
// it and while its object is stored: a slow store holds that shard's reading back. Stats
// may be read from any goroutine.
package deliver
