// Package lazyfs is a FUSE file system for power-cut tests: it passes every operation through
// to a backing directory, remembers what has not been made durable, and on Disk.Cut takes it
// back, as LazyFS does, so that a process above it sees after a restart what a disk would
// hold after a power failure.
//
// What it owns: one backing directory (Disk), its mounts, and the record of everything not
// yet synced. What it does not own: the process under test, or when the cut happens; tests
// decide both. It is test machinery: no package but tests imports it (make depcheck).
//
// The model of durability:
//   - File data. Writes, fallocate (zero range, punch hole, growth) and truncation reach the
//     backing file at once, so that reads, and read-only or shared mappings of the file, see
//     them as they would see the page cache. Before the first change to a 4 KiB page since the
//     file's last fsync or fdatasync, the page's content (its durable content) is saved, with
//     the file's size. fsync and fdatasync forget the saved pages: the file is durable as it
//     is. Stores into a writable shared mapping reach the layer as FUSE writes when the kernel
//     writes the pages back (msync, munmap, memory pressure or unmount), and are tracked the
//     same way, as on a disk, where a store is not durable before that either.
//   - Names. Creating, renaming and removing files and directories happen in the backing
//     directory at once too (a removed entry waits in a trash directory) and are recorded in
//     one journal, oldest first. An fsync or fdatasync of any file, or an fsync of any
//     directory, commits the whole journal, as a journaling file system (ext4, XFS) commits
//     its running transaction: this is more forgiving than POSIX, which makes a directory
//     entry durable only by an fsync of its directory, and a test through this layer does not
//     catch a missing directory fsync that another fsync follows.
//   - The cut (Disk.Cut, which unmounts the Disk first: the processes using it must be gone).
//     The journal is undone, newest first; then every saved page is written back over the
//     unsynced content and each file's size set back to its durable size. With a keep
//     fraction above zero, each unsynced page that is still inside the file survives instead
//     with that probability (the file then reaches at least to its end), as some of the pages
//     a disk had been handed before the power failed do. Truncated pages always come back.
//     Each Disk is one machine's disk: a cluster test gives each node its own and cuts one.
//
// Mounting needs /dev/fuse and the right to mount (root): Mount uses go-fuse's direct mount,
// without fusermount. The mount uses no writeback cache and no direct I/O, so that every
// write reaches the layer when it is made and mappings work.
//
// Concurrency: a mounted Disk serves requests from many goroutines. The journal and the map
// of tracked files are guarded by Disk.mu; each tracked file's saved pages by its own mutex,
// taken after Disk.mu when both are held. Cut, Mount and Unmount are called by one goroutine,
// the test's.
package lazyfs
