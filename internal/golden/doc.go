// Package golden pins on-disk bytes in test files: a golden file holds the encoding of fixed
// inputs at one format version, as a hex dump (the format of encoding/hex.Dump) under a
// '#' comment, so that a change to the encoding fails the tests until the version moves.
//
// Files live under the calling test's working directory (its package directory, when run by
// `go test`) at testdata/golden/<name>.v<version>.hex. They are written only by
//
//	go test ./segment ./index -run Golden -update
//
// and -update writes missing files only: it refuses to change the bytes of an existing one,
// because the bytes of a released version are what old files on disk hold. A new version gets
// a new file; delete a file by hand only when the test's fixed inputs, not the format,
// changed.
//
// The package is for tests only: it imports testing and registers the -update flag in every
// binary that imports it. It owns no production code and no format of its own beyond the
// dump. Concurrency: Check and File read and write files without locks; call them for
// different names, or from one goroutine. Durability: none is needed; a golden file is
// written with os.WriteFile and checked into git.
package golden
