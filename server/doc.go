// Package server is sluice's front door: it serves the Amazon Kinesis Data Streams API
// (version 2013-12-02, AWS JSON 1.1) over HTTP on fasthttp, decoding each request, calling
// the engine (package stream), or for the AWS account's settings package account
// (ops_aws.go: resource policies and tags by ARN, account settings, warm throughput, limits,
// enhanced monitoring), and encoding the answer or the error exactly as AWS shapes it:
// a JSON body {"__type": "<Name>", "message": "…"}, the X-Amzn-ErrorType header, status 400
// for client errors and 500 for internal ones, and an x-amzn-RequestId on every answer.
//
// What it owns: protocols, request hygiene (body and header limits, timeouts, connection
// caps in total and per client address, a budget of in-flight request bytes), request ids. What it does not own: anything on disk, which is the engine's and the
// account's. The messages of validation and not-found errors come from internal/awsmsg, as
// the engine's do.
//
// Every operation of the model is served, in AWS JSON 1.1 and in CBOR (cbor.go: the body is
// transcoded to JSON and the answer back), over HTTP/1.1 and HTTP/2, with SubscribeToShard as
// an AWS event stream (subscribe.go, eventstream.go), and GET /healthz. The data path
// (PutRecords, PutRecord, GetRecords, SubscribeToShard events) is decoded by a scanner and
// encoded by appending (datapath.go), never through encoding/json. Requests are attributed to
// an account by an Authenticator (auth.go): SigV4Verifier (sigv4.go) verifies SigV4
// signatures against the users of an IAM file (iamfile.go); the default, SigV4Parser, parses
// them without verifying. Control-plane operations are held to Kinesis's per-second quotas
// (ratelimit.go), and bodies to a limit per operation checked before they are read
// (hygiene.go); bodies are read as their bytes arrive, within the server's budget of
// in-flight bytes, and connections are capped per client address (limits.go). The details,
// with every decision, are in docs/API.md; the limits and the threat model in
// docs/SECURITY.md.
//
// GET /metrics (metrics.go) serves the engine's CloudWatch-named metrics to Prometheus,
// read from a snapshot at scrape time, with the process and Go runtime metrics.
//
// The native protocol (native.go; docs/PROTOCOL.md, codec in package wire) is sluice's own
// data path on the same port: POST /sluice/v1/put, /sluice/v1/get and /sluice/v1/subscribe
// with binary bodies, answered by the same engine calls as PutRecords, GetRecords and
// SubscribeToShard, so limits, metrics and errors are theirs (errors as the X-Sluice-Error
// and X-Sluice-Error-Code headers). A put decodes straight into engine entries that alias
// the request body, allocating nothing per record. A get answers with the frames of a
// segment view, written to the socket from the mapping; the view's reference is held by
// the response body and dropped when fasthttp closes it, after the write, when the write
// fails, or when the response is discarded unwritten. A subscription is a chunked body
// written by the connection's goroutine, which takes the next event from the engine only
// once the previous message is on the socket: TCP is the flow control, and a consumer that
// stops reading holds one event and delays no writer.
//
// HTTP/2 (h2.go) shares the listener with HTTP/1.1: each accepted connection is sorted on a
// goroutine of its own, within Options.HandshakeTimeout, so a silent client holds up nothing
// but itself. With Options.TLSConfig the TLS handshake decides: ALPN "h2" goes to HTTP/2,
// anything else to fasthttp. Without it the first bytes decide: the HTTP/2 client preface
// means HTTP/2 with prior knowledge (h2c upgrades from HTTP/1.1 are not supported), anything
// else is replayed to fasthttp. HTTP/2 is the standard library's server (fasthttp has none),
// whose handler copies each request into a fasthttp.RequestCtx and runs the same handler as
// HTTP/1.1, so both protocols answer alike; a streamed answer (SubscribeToShard) is flushed
// event by event, and its stream writer ends when the client resets the stream. Shutdown
// sends HTTP/2 connections a GOAWAY and waits for their streams, closing them after the
// write timeout. Options.MaxConns counts the connections of both protocols together.
//
// Concurrency: a Server is safe for concurrent use; every request runs on its own
// goroutine (fasthttp's worker pool) and the engine is safe for concurrent use.
package server
