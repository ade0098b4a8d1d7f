// Package kpl encodes and decodes the aggregated records of the Kinesis Producer Library
// (KPL): many user records packed into the data of one Kinesis record, as the KPL writes
// them and the Kinesis Client Library (KCL) reads them.
//
// It owns the byte format only (format.go): a Builder appends an aggregated record, a
// Decoder checks one and yields its user records. Choosing which user records go together
// (the KPL groups them by the shard they map to) and filtering user records by a shard's
// hash-key range belong to the caller (client.Producer and client.Consumer). Sluice stores an
// aggregated record as it stores any other: this is a client-side format.
//
// The package imports only the standard library and protowire, so that the client stays
// portable.
//
// Concurrency: a Builder or a Decoder is used by one goroutine at a time; distinct ones are
// independent. Nothing here does I/O, so there is no durability contract.
package kpl
