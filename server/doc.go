// Package server is sluice's front door: it serves the Amazon Kinesis Data Streams API
// (version 2013-12-02, AWS JSON 1.1) over HTTP on fasthttp, decoding each request, calling
// the engine (package stream) and encoding the answer or the error exactly as AWS shapes it:
// a JSON body {"__type": "<Name>", "message": "…"}, the X-Amzn-ErrorType header, status 400
// for client errors and 500 for internal ones, and an x-amzn-RequestId on every answer.
//
// What it owns: protocols, request hygiene (body and header limits, timeouts, a connection
// cap), request ids. What it does not own: anything on disk, which is the engine's.
//
// So far: the control-plane and data-plane operations over JSON 1.1 and HTTP/1.1, and GET
// /healthz. Still to come: CBOR, HTTP/2, SubscribeToShard's event stream, authentication,
// metrics, the native binary protocol.
//
// Concurrency: a Server is safe for concurrent use; every request runs on its own
// goroutine (fasthttp's worker pool) and the engine is safe for concurrent use.
package server
