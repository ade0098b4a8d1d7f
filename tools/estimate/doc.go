// Package estimate is the arithmetic behind `sluice estimate`: how many shards a Kinesis
// stream needs for a workload, and what that workload would cost a month on AWS in
// provisioned and in on-demand mode, line by line, so that a reader can check every figure.
//
// Shards. A provisioned shard takes 1 MiB/s and 1,000 records/s of writes and gives 2 MiB/s of
// reads. The incoming bandwidth is records/s × record size; the outgoing bandwidth is the
// incoming bandwidth × the number of consumer applications, because each one reads the whole
// stream. AWS's sizing formula, with the records/s limit it leaves out added, is
//
//	shards = max(⌈in KiB/s ÷ 1024⌉, ⌈records/s ÷ 1000⌉, ⌈out KiB/s ÷ 2048⌉)
//
// where the last term counts only for shared (GetRecords) consumers, who split a shard's
// 2 MiB/s between them. Each enhanced fan-out consumer has its own 2 MiB/s per shard, twice
// what a shard can take in, so reads never add shards. Shared consumers also share a shard's 5
// GetRecords calls a second: more than 5 consumers polling each shard once a second are
// throttled however many shards there are, and Compute warns about it. The record size is
// used as given, not rounded up to a whole KiB as AWS's sizing guide rounds it: the shard
// limit is on bytes, partition keys included, so the size given should include the key.
//
// Cost. Every line is quantity × unit price, over a month of Workload.HoursPerMonth hours
// (AWS uses 730). Provisioned mode bills shard-hours; PUT payload units (each record counted
// in 25 KiB units, rounded up: a 30 KiB record is 2 units); extended retention (any retention
// above 24 hours bills every shard-hour again at the extended-retention price, however far
// above 24 hours it is, up to 7 days); long-term retention beyond 7 days per GB-month stored;
// and enhanced fan-out per consumer-shard-hour and per GB retrieved. On-demand mode bills
// stream-hours; GB written, each record rounded up to a whole KiB; GB read, by shared and by
// enhanced fan-out consumers at their own prices; and retention per GB-month, at one price
// from 24 hours to 7 days and another beyond. A GB here is 2³⁰ bytes (AWS: 1 KB = 1,024 bytes);
// on-demand quantities use the rounded record size throughout, provisioned ones the size as
// given. Storage assumes a stream that has run for longer than its retention period, so
// that every retention tier is full. Replays of long-term data (billed per GB retrieved) are
// not estimated.
//
// The rates are averages. Real streams need headroom for peaks and for partition keys that
// do not spread writes evenly; the estimate has none.
//
// What it owns: the shard formula, the billing arithmetic, the price table (Prices, with the
// us-east-1 defaults and its JSON form) and the validation of its inputs. What it does not
// own: flags, files and output, which belong to cmd/sluice; nothing here asks AWS anything.
//
// Concurrency: every function is pure and every type a value; all are safe for concurrent
// use.
//
// Durability: none. The package reads and writes no files; ParsePrices takes the bytes of a
// price file that its caller read.
package estimate
