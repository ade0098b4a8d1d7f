package server

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/fxamacker/cbor/v2"
	"github.com/valyala/fasthttp"
)

// FuzzCBORToJSON feeds cborToJSON arbitrary bytes: it must not panic, must fail only with a
// SerializationException, and must write valid JSON when it succeeds. The same bytes then
// steer a generator of a structure that fxamacker/cbor encodes (half, single and double
// floats, chunked strings, indefinite-length arrays and maps, tag 1); its JSON must decode to
// the value that was encoded.
func FuzzCBORToJSON(f *testing.F) {
	for _, s := range []string{
		"00", "3b7fffffffffffffff", "5f42010243030405ff", "7f6268696121ff", "9f019fffff",
		"bf6161f56162bfffff", "a1644461746143010203", "a1624b6b4161", "f93e00", "f90001", "fb3ff199999999999a",
		"c11b0000018bcfe5687b", "c120", "d9d9f7a0", "a10102", "5bffffffffffffffff", "f97e00",
		"c24101", "62fffe", strings.Repeat("81", 70) + "00",
	} {
		f.Add(unhex(f, s))
	}
	body, err := cbor.Marshal(cborPutRecordsInput(3, 16))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Fuzz(func(t *testing.T, data []byte) {
		js, err := cborToJSON(nil, data)
		if err != nil {
			var ae apiError
			if !errors.As(err, &ae) || ae.name() != "SerializationException" || ae.status() != 400 {
				t.Fatalf("error %#v is not a SerializationException", err)
			}
		} else if !json.Valid(js) {
			t.Fatalf("invalid JSON %q from % x", js, data)
		}

		g := cborGen{b: data}
		enc, want := g.document(t)
		js, err = cborToJSON(nil, enc)
		if err != nil {
			t.Fatalf("fxamacker/cbor wrote % x, rejected: %v", enc, err)
		}
		var got any
		d := json.NewDecoder(bytes.NewReader(js))
		d.UseNumber()
		if err := d.Decode(&got); err != nil {
			t.Fatalf("JSON %q: %v", js, err)
		}
		if err := sameJSON(want, got); err != nil {
			t.Fatalf("% x became %s: %v", enc, js, err)
		}
	})
}

// FuzzJSONToCBOR feeds jsonToCBOR arbitrary bytes: it must not panic; what it accepts must be
// valid JSON and what it writes must decode with fxamacker/cbor; and CBOR back to JSON must
// give the same value, blobs and timestamps (to the millisecond) included.
func FuzzJSONToCBOR(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `{"a":[1,-2,3.5,1e3,true,false,null,"x\n\u00fc\ud83d\ude00"]}`,
		`{"Records":[{"Data":"AQID","PartitionKey":"k","ApproximateArrivalTimestamp":1700000000.123}]}`,
		`{"StreamCreationTimestamp":-0.001,"StartedAt":1}`, `{"Data":"abc"}`, `18446744073709551616`,
		`"\ud800"`, `[` + strings.Repeat("1,", 30) + `1]`, `{"a":1,"a":2}`, `1e400`, "\"\xff\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := jsonToCBOR(nil, data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		var v any
		if err := cbor.Unmarshal(out, &v); err != nil {
			t.Fatalf("%q became % x, which fxamacker/cbor rejects: %v", data, out, err)
		}
		js, err := cborToJSON(nil, out)
		if err != nil {
			t.Fatalf("%q became % x, which cborToJSON rejects: %v", data, out, err)
		}
		var a, b any
		for _, p := range []struct {
			src []byte
			dst *any
		}{{data, &a}, {js, &b}} {
			d := json.NewDecoder(bytes.NewReader(p.src))
			d.UseNumber()
			if err := d.Decode(p.dst); err != nil {
				t.Fatalf("%q: %v", p.src, err)
			}
		}
		if err := sameAnswer(a, b, jsonPlain); err != nil {
			t.Fatalf("%q came back as %s: %v", data, js, err)
		}
	})
}

// cborPutRecordsInput is a PutRecords input of n records of size bytes each.
func cborPutRecordsInput(n, size int) map[string]any {
	recs := make([]any, n)
	for i := range recs {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i*31 + j)
		}
		recs[i] = map[string]any{"Data": data, "PartitionKey": "partition-" + strconv.Itoa(i)}
	}
	return map[string]any{"StreamName": "bench", "Records": recs}
}

// cborGen turns fuzz bytes into a CBOR document written by fxamacker/cbor and the value its
// JSON form must decode to (with json.Number for numbers).
type cborGen struct{ b []byte }

// millis is the JSON value expected for tag 1 over a count of milliseconds.
type millis int64

var genEncMode, _ = cbor.EncOptions{ShortestFloat: cbor.ShortestFloat16}.EncMode()

func (g *cborGen) byte() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

func (g *cborGen) uint64() uint64 {
	var p [8]byte
	n := copy(p[:], g.b)
	g.b = g.b[n:]
	return binary.LittleEndian.Uint64(p[:])
}

func (g *cborGen) bytes() []byte {
	n := min(int(g.byte()%24), len(g.b))
	p := g.b[:n]
	g.b = g.b[n:]
	return append([]byte{}, p...)
}

func (g *cborGen) text() string { return strings.ToValidUTF8(string(g.bytes()), "\uFFFD") }

// value returns a Go value for fxamacker/cbor to encode and the JSON value expected of it.
func (g *cborGen) value(depth int) (v, want any) {
	kind := g.byte() % 11
	if depth >= 4 && kind >= 8 {
		kind %= 8
	}
	switch kind {
	case 0:
		u := g.uint64() >> (g.byte() % 64)
		return u, json.Number(strconv.FormatUint(u, 10))
	case 1:
		n := -int64(g.uint64()>>(1+g.byte()%63)) - 1
		return n, json.Number(strconv.FormatInt(n, 10))
	case 2:
		x := math.Float64frombits(g.uint64())
		if g.byte()%2 == 0 { // a value a half or a single may hold exactly
			x = float64(float32(x))
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			x = 0.25
		}
		return x, x
	case 3:
		s := g.text()
		return s, s
	case 4: // a byte string is taken only as a blob member's value
		p := g.bytes()
		return map[string]any{"Data": p}, map[string]any{"Data": base64.StdEncoding.EncodeToString(p)}
	case 5:
		b := g.byte()%2 == 0
		return b, b
	case 6:
		return nil, nil
	case 7:
		ms := int64(g.uint64()>>20) - 1<<43
		return cbor.Tag{Number: 1, Content: ms}, millis(ms)
	case 8, 9:
		n := int(g.byte() % 5)
		arr, wantArr := make([]any, n), make([]any, n)
		for i := range arr {
			arr[i], wantArr[i] = g.value(depth + 1)
		}
		return arr, wantArr
	}
	n := int(g.byte() % 5)
	m, wantMap := map[string]any{}, map[string]any{}
	for range n {
		k := g.text()
		m[k], wantMap[k] = g.value(depth + 1)
	}
	return m, wantMap
}

// document encodes a generated value: as it is, or inside an indefinite-length array or map,
// with chunked byte and text strings among the items.
func (g *cborGen) document(t *testing.T) ([]byte, any) {
	var buf bytes.Buffer
	enc := genEncMode.NewEncoder(&buf)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	// item encodes one item of an indefinite-length container: a value or a chunked string.
	item := func() any {
		switch g.byte() % 4 {
		case 0: // {"Data": a chunked byte string}: a byte string is taken only as a blob
			must(enc.StartIndefiniteMap())
			must(enc.Encode("Data"))
			must(enc.StartIndefiniteByteString())
			var all []byte
			for range g.byte() % 4 {
				p := g.bytes()
				all = append(all, p...)
				must(enc.Encode(p))
			}
			must(enc.EndIndefinite())
			must(enc.EndIndefinite())
			return map[string]any{"Data": base64.StdEncoding.EncodeToString(all)}
		case 1:
			must(enc.StartIndefiniteTextString())
			var all strings.Builder
			for range g.byte() % 4 {
				s := g.text()
				all.WriteString(s)
				must(enc.Encode(s))
			}
			must(enc.EndIndefinite())
			return all.String()
		}
		v, want := g.value(1)
		must(enc.Encode(v))
		return want
	}
	var want any
	switch g.byte() % 3 {
	case 0:
		v, w := g.value(0)
		must(enc.Encode(v))
		want = w
	case 1:
		must(enc.StartIndefiniteArray())
		arr := []any{}
		for range g.byte() % 5 {
			arr = append(arr, item())
		}
		must(enc.EndIndefinite())
		want = arr
	default:
		must(enc.StartIndefiniteMap())
		m := map[string]any{}
		for range g.byte() % 5 {
			k := g.text()
			if _, dup := m[k]; dup {
				break // a repeated key would leave two members for one
			}
			must(enc.Encode(k))
			m[k] = item()
		}
		must(enc.EndIndefinite())
		want = m
	}
	return buf.Bytes(), want
}

// sameJSON compares a generated value's expected JSON with the decoded JSON.
func sameJSON(want, got any) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%v is not an object of %d members", got, len(w))
		}
		for k, v := range w {
			if err := sameJSON(v, g[k]); err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%v is not an array of %d items", got, len(w))
		}
		for i := range w {
			if err := sameJSON(w[i], g[i]); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	case float64:
		g, ok := got.(json.Number)
		f, err := g.Float64()
		if !ok || err != nil || f != w {
			return fmt.Errorf("%v, want %v", got, w)
		}
		return nil
	case millis:
		g, ok := got.(json.Number)
		ms, okMs := secondsToMillis(string(g))
		if !ok || !okMs || ms != int64(w) {
			return fmt.Errorf("%v, want %d ms", got, w)
		}
		return nil
	}
	if got != want {
		return fmt.Errorf("%#v, want %#v", got, want)
	}
	return nil
}

// secondsToMillis parses a decimal count of seconds with at most three decimals exactly.
func secondsToMillis(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	sec, frac, _ := strings.Cut(s, ".")
	if len(frac) > 3 {
		return 0, false
	}
	frac += strings.Repeat("0", 3-len(frac))
	n, err := strconv.ParseInt(sec+frac, 10, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// sameAnswer compares a JSON value with the same value after jsonToCBOR and cborToJSON:
// numbers by value, blobs by their bytes, timestamps to the millisecond.
func sameAnswer(a, b any, kind jsonKind) error {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return fmt.Errorf("%v became %v", a, b)
		}
		for k, v := range x {
			if err := sameAnswer(v, y[k], memberKind([]byte(k))); err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
		}
		return nil
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return fmt.Errorf("%v became %v", a, b)
		}
		for i := range x {
			if err := sameAnswer(x[i], y[i], jsonPlain); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	case json.Number:
		y, ok := b.(json.Number)
		fx, errX := x.Float64()
		fy, errY := y.Float64()
		if !ok || errX != nil || errY != nil {
			return fmt.Errorf("%v became %v", a, b)
		}
		if kind == jsonTimestamp {
			if math.Abs(fx-fy) > 0.0005+math.Abs(fx)*1e-15 {
				return fmt.Errorf("timestamp %v became %v", a, b)
			}
			return nil
		}
		if fx != fy {
			return fmt.Errorf("%v became %v", a, b)
		}
		return nil
	case string:
		y, ok := b.(string)
		if !ok {
			return fmt.Errorf("%q became %v", x, b)
		}
		if kind == jsonBlob {
			px, errX := base64.StdEncoding.DecodeString(x)
			py, errY := base64.StdEncoding.DecodeString(y)
			if errX != nil || errY != nil || !bytes.Equal(px, py) {
				return fmt.Errorf("blob %q became %q", x, y)
			}
			return nil
		}
		if x != y {
			return fmt.Errorf("%q became %q", x, y)
		}
		return nil
	}
	if a != b {
		return fmt.Errorf("%v became %v", a, b)
	}
	return nil
}

// FuzzDecodePutRecords checks the data-path decoder against encoding/json: whatever it
// accepts, encoding/json accepts with the same records, and nothing makes it panic.
func FuzzDecodePutRecords(f *testing.F) {
	f.Add([]byte(`{"StreamName":"s","Records":[{"Data":"aGk=","PartitionKey":"k"}]}`))
	f.Add([]byte(`{"Records":[{"Data":"aGk\/","PartitionKey":"\u00e9\ud83d\ude00","ExplicitHashKey":"12"}],"X":[{"y":-1.5e3},true,null]}`))
	f.Add([]byte(`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","Records":[]}`))
	// refused at the edge: an empty hash key, a lone surrogate
	f.Add([]byte(`{"StreamName":"s","Records":[{"Data":"aGk=","PartitionKey":"k","ExplicitHashKey":""}]}`))
	f.Add([]byte(`{"StreamName":"s","Records":[{"Data":"aGk=","PartitionKey":"k\ud800"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p := getPutBatch()
		defer p.release()
		if err := p.decodePutRecords(body); err != nil {
			var ae apiError
			if !errors.As(err, &ae) {
				t.Fatalf("error of no API type: %v", err)
			}
			return
		}
		if foldedNames(body) {
			return // encoding/json matches member names case-insensitively; the API does not
		}
		var ref refPutRecords
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("accepted what encoding/json rejects (%v): %q", err, body)
		}
		if len(ref.Records) != len(p.entries) {
			t.Fatalf("%d records, encoding/json %d", len(p.entries), len(ref.Records))
		}
		for i, r := range ref.Records {
			en := p.entries[i]
			if !bytes.Equal(r.Data, en.Data) || r.PartitionKey != en.PartitionKey {
				t.Fatalf("record %d: %q %q, encoding/json %q %q", i, en.PartitionKey, en.Data, r.PartitionKey, r.Data)
			}
		}
	})
}

// foldedNames reports whether body may name a PutRecords member in another case (or through
// escapes), which encoding/json matches and the API does not.
func foldedNames(body []byte) bool {
	lower := bytes.ToLower(body)
	for _, name := range []string{"Records", "Data", "PartitionKey", "ExplicitHashKey", "StreamName", "StreamARN"} {
		if bytes.Count(lower, []byte(strings.ToLower(name))) != bytes.Count(body, []byte(name)) {
			return true
		}
	}
	// encoding/json also folds the Kelvin sign to k and the long s to s.
	return bytes.ContainsAny(body, "\u212a\u017f") || bytes.Contains(lower, []byte(`\u212a`)) || bytes.Contains(lower, []byte(`\u017f`))
}

// FuzzEventStream encodes event stream messages of arbitrary event types and payloads and
// decodes them with the AWS SDK's own decoder: every message must come back whole, its
// checksums good.
func FuzzEventStream(f *testing.F) {
	f.Add("SubscribeToShardEvent", []byte(`{"Records":[]}`))
	f.Add("initial-response", []byte("{}"))
	f.Fuzz(func(t *testing.T, eventType string, payload []byte) {
		if len(eventType) > 200 || !utf8.ValidString(eventType) {
			return // header values are short strings
		}
		msg, err := eventstream.NewDecoder().Decode(bytes.NewReader(event(eventType, payload)), nil)
		if err != nil {
			t.Fatalf("the SDK cannot decode our message: %v", err)
		}
		if !bytes.Equal(msg.Payload, payload) {
			t.Fatalf("payload %q, want %q", msg.Payload, payload)
		}
		if v := msg.Headers.Get(":event-type"); v == nil || v.String() != eventType {
			t.Fatalf(":event-type %v, want %q", v, eventType)
		}
	})
}

// FuzzOperations sends arbitrary bodies, as JSON or CBOR, to every operation through the
// server's handler: no input may panic it or make it fail with an internal error, every
// error is shaped (a __type the X-Amzn-ErrorType header repeats), and a request refused as
// malformed or invalid changes nothing (the stream's description stays the same).
func FuzzOperations(f *testing.F) {
	names := make([]string, 0, len(operations))
	for name := range operations {
		names = append(names, name)
	}
	slices.Sort(names)
	f.Add(uint8(0), false, []byte(`{"StreamName":"s"}`))
	f.Add(uint8(3), false, []byte(`{"StreamName":"s","ShardCount":-1}`))
	f.Add(uint8(7), true, []byte{0xa1, 0x6a, 'S', 't', 'r', 'e', 'a', 'm', 'N', 'a', 'm', 'e', 0x61, 's'})
	// refused at the edge: timestamps no int64 of milliseconds holds, an empty hash key, a
	// lone surrogate, a byte string as a partition key
	getIterator, putRecord := uint8(slices.Index(names, "GetShardIterator")), uint8(slices.Index(names, "PutRecord"))
	f.Add(getIterator, false, []byte(`{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":1e20}`))
	f.Add(getIterator, true, unhex(f, "a4 6a 53747265616d4e616d65 61 73 67 53686172644964 74 73686172644964 2d303030303030303030303030 71 5368617264497465726174 6f7254797065 6c 41545f54494d455354414d50 69 54696d657374616d70 c1 fb 7fe1ccf385ebc8a0"))
	f.Add(putRecord, false, []byte(`{"StreamName":"s","Data":"aGk=","PartitionKey":"\ud800","ExplicitHashKey":""}`))
	f.Add(putRecord, true, unhex(f, "a3 6a 53747265616d4e616d65 61 73 64 44617461 41 00 6c 506172746974696f6e4b6579 41 6b"))
	eng := openTestEngine(f, 2)
	srv := New(eng, Options{})
	f.Fuzz(func(t *testing.T, op uint8, asCBOR bool, body []byte) {
		name := names[int(op)%len(names)]
		if name == "DeleteStream" || name == "UpdateShardCount" || name == "SplitShard" || name == "MergeShards" {
			name = "DescribeStream" // they would change the state a valid input may change
		}
		before, err := eng.Describe("s")
		if err != nil {
			t.Fatal(err)
		}
		var req fasthttp.Request
		req.Header.SetMethod("POST")
		req.SetRequestURI("/")
		req.Header.Set("X-Amz-Target", targetPrefix+name)
		req.Header.SetContentType(jsonContentType)
		if asCBOR {
			req.Header.SetContentType(cborContentType)
		}
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		srv.handle(&ctx)
		status := ctx.Response.StatusCode()
		if status == 200 {
			return
		}
		if status != 400 {
			t.Fatalf("%s: status %d: %s", name, status, ctx.Response.Body())
		}
		errType := string(ctx.Response.Header.Peek("X-Amzn-ErrorType"))
		if errType == "" {
			t.Fatalf("%s: a 400 without X-Amzn-ErrorType", name)
		}
		if !asCBOR {
			var shaped struct {
				Type string `json:"__type"`
			}
			if err := json.Unmarshal(ctx.Response.Body(), &shaped); err != nil || shaped.Type != errType {
				t.Fatalf("%s: error body %q does not name %s", name, ctx.Response.Body(), errType)
			}
		}
		if errType == "SerializationException" || errType == "ValidationException" || errType == "InvalidArgumentException" {
			after, err := eng.Describe("s")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("%s refused with %s changed the stream:\n%+v\n%+v", name, errType, before, after)
			}
		}
	})
}
