package server

import (
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/audit"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/stream"
)

// The audit log (docs/SECURITY.md, "Audit log"). With Options.Audit set, handle and
// serveNative hand every call to auditCall once it is answered: every control-plane call,
// and the data-plane calls (PutRecord, PutRecords, GetRecords, GetShardIterator,
// SubscribeToShard and the native protocol's put, get and subscribe) only with
// Options.AuditData. Calls refused before they reach an operation are logged too
// (authentication failures, throttling, access denied), with the error the client got.
//
// A control-plane call's line is written and synced before the client is answered; a
// data-plane call's line is queued before the answer and synced with the writer's next
// group. A call whose line cannot be logged (the log's write or sync failed) is answered
// with an InternalFailure instead of its result, and the cause goes to the server's log:
// the call itself took effect, so a client retrying may find it done. With the queue full
// the request waits for room: audit lines are never dropped.
//
// What a line holds of a request: its JSON members, names in lowerCamelCase as CloudTrail
// writes them, without any member named Data (record payloads); never a header, a
// signature or a secret key. Its response elements: for a successful call that changes
// something, the answer's members except per-record results, when they fit in
// maxResponseElements bytes; the stream's ARN for CreateStream.

// dataOperations are the data-plane operations of the Kinesis API.
var dataOperations = map[string]bool{
	"PutRecord": true, "PutRecords": true, "GetRecords": true, "GetShardIterator": true, "SubscribeToShard": true,
}

// maxResponseElements bounds the response elements a line carries; a larger answer is
// logged as null.
const maxResponseElements = 4 << 10

// maxUserAgent bounds the user agent a line carries.
const maxUserAgent = 1 << 10

// Identity type of a request whose authentication failed: its access key is the one it
// claimed.
const identityUnknown = "Unknown"

// auditCall logs a Kinesis API call once handle has answered it. op is the operation, ""
// for a request that named none (it is not logged); p is the caller, zero when
// authentication failed.
func (s *Server) auditCall(ctx *fasthttp.RequestCtx, op string, p Principal) {
	if _, known := operations[op]; !known && op != "SubscribeToShard" {
		return
	}
	data := dataOperations[op]
	if data && !s.auditData {
		return
	}
	// A copy: op views the request's header on the data path, which must not escape.
	ev := s.auditEvent(ctx, strings.Clone(op), p)
	ev.Management, ev.ReadOnly = !data, readOnly(op)
	body := ctx.Request.Body()
	if isCBOR(ctx.Request.Header.ContentType()) && len(body) > 0 {
		body, _ = cborToJSON(nil, body)
	}
	params := requestMembers(body)
	ev.RequestParameters = params.encode()
	ev.Resources = s.auditResources(params)
	if ctx.Response.StatusCode() != fasthttp.StatusOK {
		ev.ErrorCode, ev.ErrorMessage = string(ctx.Response.Header.Peek("X-Amzn-ErrorType")), errorMessage(ctx)
	} else if !ev.ReadOnly {
		ev.ResponseElements = s.responseElements(ctx, op == "CreateStream", params)
	}
	s.auditLog(ctx, &ev, !data, false)
}

// auditNative logs a native protocol call once serveNative has answered it. op is put, get
// or subscribe, "" for a request that named none (not logged).
func (s *Server) auditNative(ctx *fasthttp.RequestCtx, op string, p Principal) {
	if op == "" {
		return
	}
	ev := s.auditEvent(ctx, "Native"+strings.ToUpper(op[:1])+op[1:], p)
	ev.ReadOnly = op != "put"
	params := members{}
	switch op {
	case "put":
		if r, err := wire.ReadPut(ctx.Request.Body()); err == nil {
			params["streamName"], params["recordCount"] = string(r.Stream), r.Count
		}
	case "get":
		if r, err := wire.ReadGetRequest(ctx.Request.Body()); err == nil {
			params["streamName"], params["shardId"] = string(r.Stream), stream.ShardID(r.Shard).String()
			params["shardIteratorType"], params["position"] = iteratorType(r.Start).String(), r.Value
			params["limit"] = r.MaxRecords
		}
	case "subscribe":
		if r, err := wire.ReadSubscribeRequest(ctx.Request.Body()); err == nil {
			params["consumerARN"], params["shardId"] = string(r.ConsumerARN), stream.ShardID(r.Shard).String()
			params["startingPosition"], params["position"] = iteratorType(r.Start).String(), r.Value
		}
	}
	if len(params) > 0 {
		ev.RequestParameters = params.encode()
		ev.Resources = s.auditResources(params)
	}
	if ctx.Response.StatusCode() != fasthttp.StatusOK {
		ev.ErrorCode, ev.ErrorMessage = string(ctx.Response.Header.Peek(wire.HeaderError)), string(ctx.Response.Body())
	}
	s.auditLog(ctx, &ev, false, true)
}

// auditEvent returns what every line of a call holds: who, from where, when, which request.
func (s *Server) auditEvent(ctx *fasthttp.RequestCtx, name string, p Principal) audit.Event {
	ev := audit.Event{Time: time.Now(), Name: name, Region: s.region, RecipientAccount: s.engine.Account(),
		SourceIP: ctx.RemoteIP().String(), RequestID: string(ctx.Response.Header.Peek("x-amzn-RequestId"))}
	ua := ctx.Request.Header.UserAgent()
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	ev.UserAgent = string(ua)
	if p.Region != "" {
		ev.Region = p.Region
	}
	id := audit.Identity{AccountID: p.Account, AccessKeyID: p.AccessKey, ARN: p.ARN, UserName: p.User}
	switch {
	case p.User != "":
		id.Type = audit.IAMUser
	case p.AccessKey != "":
		id.Type = audit.AWSAccount
	case p.Account != "":
		id.Type = audit.Anonymous
	default: // authentication failed: the access key is the one the request claims
		id.Type = identityUnknown
		if c, found, err := parseRequestAuth(&ctx.Request); found && err == nil {
			id.AccessKeyID = c.AccessKey
		}
	}
	ev.Identity = id
	return ev
}

// auditLog writes ev, synced before the answer when sync is set. A call whose line cannot
// be written is answered with an InternalFailure, in the native protocol's shape if native
// is set (an open stream of events is left as it is: its answer has begun).
func (s *Server) auditLog(ctx *fasthttp.RequestCtx, ev *audit.Event, sync, native bool) {
	err := s.audit.Log(ev, sync)
	if err == nil {
		return
	}
	s.log.Error("audit log: the call could not be logged", "request_id", ev.RequestID, "event", ev.Name, "err", err)
	if ctx.Response.IsBodyStream() {
		return
	}
	ctx.Response.ResetBody()
	ae := apiError{code: wire.InternalFailure, msg: internalMessage, cause: err}
	if native {
		s.nativeError(ctx, ae)
		return
	}
	ctx.Response.Header.Del(wire.HeaderError)
	s.fail(ctx, ae)
}

// readOnly reports whether an operation changes nothing.
func readOnly(op string) bool {
	for _, p := range [...]string{"Describe", "List", "Get", "SubscribeToShard"} {
		if strings.HasPrefix(op, p) {
			return true
		}
	}
	return false
}

// members are the members of a request or an answer, as a line holds them.
type members map[string]any

// requestMembers decodes a JSON request body into its members, names in lowerCamelCase
// and without record data; nil if body is not a JSON object.
func requestMembers(body []byte) members {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil || m == nil {
		return nil
	}
	return members(camelMembers(m).(map[string]any))
}

// camelMembers rewrites a decoded JSON value: object member names in lowerCamelCase, and
// no member named Data at any depth.
func camelMembers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if k == "Data" {
				continue
			}
			out[lowerFirst(k)] = camelMembers(x)
		}
		return out
	case []any:
		for i := range v {
			v[i] = camelMembers(v[i])
		}
	}
	return v
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || unicode.IsLower(r) {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}

// encode returns the members as a JSON object, nil for none.
func (m members) encode() json.RawMessage {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(map[string]any(m))
	if err != nil {
		return nil
	}
	return b
}

// str returns member k if it is a string.
func (m members) str(k string) string {
	s, _ := m[k].(string)
	return s
}

// auditResources returns the stream or consumer a request names.
func (s *Server) auditResources(m members) []audit.Resource {
	arn := m.str("streamARN")
	if arn == "" && m.str("streamName") != "" {
		arn = s.streamARNPrefix + m.str("streamName")
	}
	var out []audit.Resource
	if arn != "" {
		out = append(out, audit.Resource{AccountID: arnAccount(arn), Type: "AWS::Kinesis::Stream", ARN: arn})
	}
	for _, k := range [...]string{"consumerARN", "resourceARN"} {
		if arn := m.str(k); arn != "" {
			typ := "AWS::Kinesis::Stream"
			if strings.Contains(arn, "/consumer/") {
				typ = "AWS::Kinesis::StreamConsumer"
			}
			out = append(out, audit.Resource{AccountID: arnAccount(arn), Type: typ, ARN: arn})
		}
	}
	return out
}

// arnAccount returns the account field of an ARN, "" if it has none.
func arnAccount(arn string) string {
	f := strings.SplitN(arn, ":", 6)
	if len(f) < 6 {
		return ""
	}
	return f[4]
}

// responseElements returns the members of a successful answer that a line holds (see the
// top of this file). created says the call was a CreateStream.
func (s *Server) responseElements(ctx *fasthttp.RequestCtx, created bool, req members) json.RawMessage {
	if created {
		return members{"streamARN": s.streamARNPrefix + req.str("streamName")}.encode()
	}
	body := ctx.Response.Body()
	if isCBOR(ctx.Response.Header.ContentType()) {
		body, _ = cborToJSON(nil, body)
	}
	m := requestMembers(body)
	delete(m, "records")
	if len(m) == 0 {
		return nil
	}
	b := m.encode()
	if len(b) > maxResponseElements {
		return nil
	}
	return b
}

// errorMessage returns the message of an error answer, JSON or CBOR.
func errorMessage(ctx *fasthttp.RequestCtx) string {
	body := ctx.Response.Body()
	if isCBOR(ctx.Response.Header.ContentType()) {
		body, _ = cborToJSON(nil, body)
	}
	var e struct {
		Message string `json:"message"`
	}
	json.Unmarshal(body, &e)
	return e.Message
}

// arnRegion returns the region field of an ARN.
func arnRegion(arn string) string {
	f := strings.SplitN(arn, ":", 5)
	if len(f) < 5 {
		return ""
	}
	return f[3]
}
