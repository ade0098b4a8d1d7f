// Package index holds the sparse index of one segment: a table of (sequence, arrival time,
// byte offset) entries, one every few KiB of frames, searched by binary search.
//
// One table serves both lookups the log needs: by sequence number (the entry with the largest
// sequence at or below a target) and by time (the last entry strictly before a time). Both
// columns are non-decreasing because the segment writer makes arrival times monotonic within
// a shard, so the time index is the same table read by another column.
//
// What it owns: the in-memory Builder the writer appends to while a segment is active, the
// encoding of the table, and the index file written when a segment is sealed (see
// docs/FORMAT.md, "Index file"). What it does not own: frames and segments. Entries are given
// to it by package segment, which also rebuilds a table by scanning the segment whenever an
// index file is missing, short, garbled or stale. The index is derived data: losing it costs a
// scan, never a record.
//
// Concurrency: a Builder has one writer (the shard's appender, under the log's lock) and any
// number of readers. The writer fills entries past the published count and then publishes
// the new count with an atomic store; readers load the count and read only entries below it,
// which never change again. A Table is immutable and safe for concurrent use.
//
// Durability: an index file is written to a temporary name, synced, renamed and its directory
// synced. Nothing depends on it surviving: Open validates it against the segment it
// describes and a caller that gets an error rebuilds it.
package index
