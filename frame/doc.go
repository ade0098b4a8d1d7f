// Package frame is the record frame codec: the layout of one record as segment files store it
// and as the native protocol sends it (docs/FORMAT.md, "Frames"; docs/PROTOCOL.md).
//
// What it owns: the frame layout and its limits (HeaderSize, MaxKeyLen, MaxDataLen, MaxSize,
// the record flags), the Record a frame holds, encoding one frame (Append), decoding and
// checking one frame (Decode, DecodeHeader, CheckCRC) and the errors a damaged frame yields.
// What it does not own: where frames live. Segment files, their header and checkpoints,
// recovery and durability belong to package segment; the protocol's requests and answers to
// package server/wire.
//
// The package imports only the standard library and internal/crc, so that the Go client and
// the tools built on it compile for every GOOS and GOARCH without linking the storage engine
// (make depcheck and make cross hold it to that).
//
// Concurrency: the package has no state; every function may be called from any goroutine.
// A decoded Record aliases the bytes it was decoded from: its Key and Data stay valid as long
// as those bytes do (for a read from a segment, until its View is released).
//
// Durability: none; callers decide where the bytes go.
package frame
