// Package cli is the logic of `sluice put`, `get`, `tail` and `describe`: the session the AWS
// CLI has with put-record, describe-stream, get-shard-iterator and get-records, done against
// a sluice server with the Go client (package client), and the formats those verbs print.
//
//   - PutRecord appends one record with a direct put request; PutLines appends one record per
//     line of a reader through a client.Producer (batched, retried, in order per key).
//   - Describe reads a stream's summary, its shards and its consumers (DescribeStreamSummary,
//     ListShards, ListStreamConsumers).
//   - Get reads a shard once with a native get, from an iterator type.
//   - Tail follows every shard of a stream with a client.Consumer, parents before children,
//     until its context ends or it has printed enough records.
//
// # Output
//
// Text output is one line per record, fields separated by one space, so that grep, cut and
// awk can take it apart:
//
//	shardId-000000000001 10000000000000000000000000000000000018446744073709551616 2024-05-04T20:21:32.123Z user1 hello
//
// The fields are the shard, the 56-digit sequence number (followed by "/" and the
// sub-sequence number for a user record of a KPL aggregated record), the arrival time (UTC, to the
// millisecond), the partition key and the data, which runs to the end of the line. A key is
// printed as it is unless it holds white space or control characters or starts with a
// double quote; it is then quoted as a Go string. Data is printed as text when it is
// non-empty valid UTF-8 without control characters (tabs and newlines included) and does
// not itself start with the marker "base64:"; otherwise it is printed as that marker
// followed by standard base64 ("base64:" alone is empty data). Lines about a read rather
// than a record (the next position, a shard's end) start with "# ".
//
// JSON output takes the shapes of the Kinesis API answers (PutRecord's, GetRecords' records,
// ListShards' shards), with the data in base64 as the API has it and times in RFC 3339.
// Verbs that print a stream of results (put from lines, tail) print one JSON object a line.
// A user record of an aggregated record adds SubSequenceNumber (and ExplicitHashKey if it
// has one).
//
// Get and Tail de-aggregate KPL aggregated records as the KCL does (client.Deaggregator):
// each prints as its user records, which share its sequence number. Raw prints records as
// stored.
//
// What it owns: the meaning of the verbs' inputs (iterator types, times, sequence numbers,
// hash keys, one record per line) and their output formats. What it does not own: flags,
// exit statuses and signals, which belong to cmd/sluice, and the protocol, which is the
// client's. Errors detected before asking the server wrap ErrInput; the others are the
// client's, wrapped.
//
// Concurrency: a call may run concurrently with others on the same Client, each with its own
// writers. Tail writes to its writer from one goroutine at a time, a whole batch of lines at
// once.
//
// Durability: none. Nothing is stored; PutRecord and PutLines report a record once the
// server acknowledged it, as durable as the server's durability mode makes it.
package cli
