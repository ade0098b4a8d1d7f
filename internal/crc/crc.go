// Package crc is the one place sluice computes checksums: CRC32C (Castagnoli) through
// github.com/klauspost/crc32, which ties with hash/crc32 on CPUs without AVX-512 and wins on
// those with it. Every on-disk and wire checksum goes through this helper so that the
// polynomial and the implementation can never diverge between writer and reader.
package crc

import "github.com/klauspost/crc32"

var table = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC32C of b.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, table) }

// Update returns the CRC32C of the bytes summed into c followed by b.
func Update(c uint32, b []byte) uint32 { return crc32.Update(c, table, b) }
