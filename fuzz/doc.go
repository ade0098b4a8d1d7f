// Package fuzz holds fuzz targets that cross package boundaries. Each package's own decoders
// are fuzzed in that package (fuzz_test.go); the targets here drive whole components through
// random sequences of operations and compare them with a simple model.
package fuzz
