// Package account emulates what Kinesis keeps for an AWS account around its streams, on top
// of the engine (package stream), which it uses and which knows nothing of it:
//
//   - resource policies of streams and consumers (PutResourcePolicy, GetResourcePolicy,
//     DeleteResourcePolicy), by ARN;
//   - resource tags by ARN (TagResource, UntagResource, ListTagsForResource): a stream's are
//     the engine's stream tags, a consumer's are kept here;
//   - the minimum throughput billing commitment (UpdateAccountSettings,
//     DescribeAccountSettings) and the warm throughput of on-demand streams
//     (UpdateStreamWarmThroughput), which it needs;
//   - the account's limits and usage (DescribeLimits);
//   - the Kinesis side of enhanced monitoring (EnableEnhancedMonitoring,
//     DisableEnhancedMonitoring): the list's validation and "ALL". The switch itself, which
//     picks the shard-level figures the engine's metrics show, is the engine's
//     (stream.Engine.SetMonitoring);
//   - parsing ARNs of streams and consumers (ParseARN; ARN.String formats one).
//
// sluice stores and reports these settings, validated as Kinesis validates them. Resource
// policies are parsed when stored (package iam) and kept parsed for the server's
// authorisation (ResourcePolicy, policycache.go); nothing acts on the others: no billing,
// no warm capacity. What it does not own: streams, shards,
// records, consumers, stream tags and every other data-plane setting (package stream), and
// the API's decoding and encoding (package server).
//
// Streams are named by incarnation: settings are kept with the stream's generation
// (stream.StreamState.Gen), so those of a deleted stream are never shown for a stream created
// later under its name. They disappear the moment the engine deletes the stream, and leave
// account.json at its next write; a consumer's leave with the consumer the same way. In etcd
// a stream's settings are deleted by the catalog's transaction that deletes the stream; a
// deregistered consumer's stay in its stream's record, never shown (a consumer is found
// through the engine, and its key holds its creation time), until the stream is deleted.
//
// Concurrency: an Account is safe for concurrent use. One mutex serialises the operations
// that read or change its settings (control-plane calls, rate-limited by the server), and
// the reads a shared store's watch triggers, and guards them; it calls the engine while holding it, and the engine never calls back. Limits
// and SetMonitoring keep nothing here and only call the engine. ResourcePolicy, called for
// every authorised request, takes no lock once the settings are loaded: it reads the parsed
// policies of the last durable state, published atomically under the mutex by each change.
//
// Storage (the Store seam, store.go): the settings are records, the account's own (the
// billing commitment) and one per stream with settings, kept by a Store. New and Open keep
// them in <data dir>/account.json, rewritten whole on every change by temporary file, fsync,
// rename and fsync of the directory (vfs.WriteFileAtomic). OpenStore takes another Store:
// package cluster's keeps them in etcd, shared by every node, changed by compare-and-swap
// transactions (an operation that meets another node's change reads the settings again and
// is done again, up to 5 times, then is a ResourceInUseException to retry), and followed by
// a watch, so that a change made through one node, a resource policy above all, is read
// and enforced by the others as soon as etcd reports it. While etcd is unreachable a node
// goes on enforcing the policies it read last, and changes are refused (InternalFailure).
//
// Durability: a change is acknowledged only once its Store saved it. A failed save is
// reported and forgotten: the next operation reads the settings again. account.json of
// version 1 (the billing commitment alone) is read as it is; settings an older stream.json
// held (warm throughput, consumer tags, policies) are moved here when the settings are first
// loaded (stream.Engine.MigrateLegacySettings: written here first, then removed there).
package account
