// Package segment is one shard's log: an ordered set of append-only segment files in one
// directory, each preallocated, framed with CRC32C and read through a read-only memory
// mapping.
//
// What it owns: segment files (docs/FORMAT.md), the frames in them, sequence numbers within the
// log, the durability modes, group commit, recovery after a crash, the retention primitive
// (hide and delete by arrival time) and reference-counted mappings. What it does not own:
// streams, shards, hash ranges, HTTP. The sparse index of a segment lives in package index;
// the frame layout and codec in package frame, which the native protocol's client shares.
//
// Writing. Log.Append encodes a batch of frames into a buffer and writes it with one pwrite
// into the active segment, which was preallocated with fallocate, so a full disk fails the
// roll to a new segment (ErrNoSpace, nothing changed) and can never raise SIGBUS. Reads go
// through a shared read-only mapping of the same file, which sees the page cache the writes
// fill. (write(2) into the page cache measured faster than stores into a freshly mapped file on
// the reference machine; see PERFORMANCE.md and BenchmarkWriteMethod.)
//
// Sequence numbers are uint64, strictly increasing within the log and never reused: every
// open reserves a span of numbers in log.meta (temporary file, fsync, rename, fsync of the
// directory) before acknowledging anything, and starts numbering past the previous
// reservation, so numbers that a torn tail took away are skipped, not handed out again.
// Arrival times come from the injected clock and are made monotonic within the log, so the
// same sparse index answers lookups by sequence number and by time.
//
// Durability contract (Options.Durability):
//   - Sync (default): Append returns after fdatasync of the batch. Concurrent appenders share
//     one fdatasync (group commit). Nothing acknowledged is lost.
//   - Interval: Append returns once the batch is in the page cache; a goroutine syncs every
//     period. A power loss loses at most the last period of acknowledged records, a suffix.
//   - None: no fdatasync on the append path (segments are synced when sealed, in the
//     background, and at Close). A power loss loses a suffix.
//
// In every mode a failed write or fdatasync is sticky (ErrFailed): the log acknowledges
// nothing more until it is reopened. A full disk (ErrNoSpace) is not: nothing was acknowledged,
// and appends work again once space returns. Records become readable only once they are as
// durable as the acknowledgement promises (after the fdatasync in Sync mode).
//
// Recovery. Each segment's header page holds two checkpoint slots; each fdatasync also writes
// the offset that the previous fdatasync made durable. On open after a crash the newest
// segment is scanned: damage past that checkpoint is a torn tail, zeroed and logged; damage
// before it, a missing segment in the middle, or unreadable metadata is corruption: Open
// succeeds so that the intact records stay readable, but Append and Err report ErrCorrupt with
// the file and offset. After a crash, Open first fdatasyncs the segments whose last writes may
// still be only in the page cache (the newest, and those whose seal may not have been synced),
// so that what recovery reads is durable before it is served. A clean close stores the active
// segment's index and a clean marker, so the next open reads no frames at all. Sealed segments
// are not read at open (only the newest one before the active segment, for its checkpoint):
// the read horizon of the stored retention cutoff and the oldest record are found when first
// needed, and Hide records a cutoff without reading anything, so start-up cost does not grow
// with their number. Read checks the CRC of every frame this process has not
// written or scanned itself.
//
// Sealing. A full segment is sealed (synced, a sealed checkpoint written, its preallocated
// tail cut off, its index stored). In Sync mode this happens on the roll; in Interval and None
// modes it happens in the background so that appends never wait for the fdatasync of a whole
// segment, and recovery finishes seals a crash interrupted: if such a segment lost its tail,
// the later segments are dropped with it, so what these modes lose is always a suffix.
//
// Mappings. The active segment is mapped once, at its full preallocated size, and read
// without a lock. A sealed segment is mapped when first read and can be unmapped again by
// UnmapIdle once no View holds it and no read touched it for a pass, so that a year of
// segments does not keep a year of mappings.
//
// Concurrency. Append may be called from many goroutines (they are serialised by the writer
// lock and share syncs); Read, SeqAtTime, Oldest, Tip and Changed take no lock on the hot path
// and may run concurrently with appends, retention and Close. A View holds a reference to its
// segment: the mapping, and the file, outlive retention and Close until the View is released.
//
// Inside a Log the locks are taken in one order: the writer lock (mu: appends, rolls, seals,
// retention, Close), then the sync token (one holder at a time does fdatasyncs, checkpoint
// writes and seals; it is given back in one place, which also acknowledges and, in Sync
// mode, publishes), then the commit lock (cmu: the token, the last batch written, pending
// seals, the durable point, the sticky failure); a segment's own lock is a leaf. What becomes
// readable is published by one goroutine at a time: the writer after each write in Interval
// and None modes, the holder of the sync token after a sync in Sync mode. The Log type's
// comment has the details.
package segment
