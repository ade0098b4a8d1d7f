// Package audit writes and verifies sluice's audit log: one JSON line per API call, with the
// field names of an AWS CloudTrail record (docs/SECURITY.md, "Audit log"), chained by
// SHA-256 so that an edited, removed or reordered line, or a removed file, is found by
// Verify.
//
// What it owns: the files of one audit directory, the line format and the chain. What it
// does not own: HTTP, principals, operations: the server builds each Event from what it
// knows of a request and hands it to a Writer.
//
// Files are named audit-<sequence of their first line, 20 digits>.jsonl, so their names
// sort in writing order. Each line carries "sequence" (1 for the first line ever written,
// one more for each line after it, across files) and "previousLineSha256", the hex SHA-256
// of the previous line's bytes without its newline: the last line of the previous file for
// a file's first line, 64 zeros for the very first line. A file is closed and the next one
// begun before a line would take it past Options.MaxBytes. The file HEAD (anchor.go) records
// the last line's sequence and hash, so that an edit of the last line, or lines cut from the
// end, are found too.
//
// Concurrency: Log may be called from any number of goroutines. One goroutine owns the
// files: it takes encoded lines from a bounded queue, chains them in queue order, writes each
// group with one write(2) and syncs it with one fdatasync. A caller that finds the queue full
// waits for room: no line is dropped.
//
// Durability: Log(ev, true) returns only once the line is written and fdatasync has
// returned, and the anchor rewritten and synced after it (the server uses it for control-plane calls, before it answers). Log(ev, false)
// returns once the line is queued; the writer syncs it with its group, usually within
// milliseconds, and a crash before that loses it. A write or sync error is sticky: every
// later Log returns it and nothing more is written. Open repairs a torn last line (a crash
// in the middle of a write) by cutting it off, and reports the bytes it cut.
package audit
