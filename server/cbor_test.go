package server

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/fxamacker/cbor/v2"
)

// unhex decodes hex written with optional spaces.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestCBORToJSON(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		// major 0 and 1, every argument width
		{"uint 0", "00", `0`},
		{"uint 23", "17", `23`},
		{"uint 1-byte", "18 18", `24`},
		{"uint 2-byte", "19 0100", `256`},
		{"uint 4-byte", "1a 00010000", `65536`},
		{"uint 8-byte max", "1b ffffffffffffffff", `18446744073709551615`},
		{"uint non-preferred", "18 05", `5`},
		{"negint -1", "20", `-1`},
		{"negint -100", "38 63", `-100`},
		{"negint min int64", "3b 7fffffffffffffff", `-9223372036854775808`},
		{"negint -2^64", "3b ffffffffffffffff", `-18446744073709551616`},
		// major 2: base64 (std, padded), definite and chunked, as the value of Data (a blob)
		{"bytes empty", "a1 64 44617461 40", `{"Data":""}`},
		{"bytes", "a1 64 44617461 44 01020304", `{"Data":"AQIDBA=="}`},
		{"bytes chunked", "a1 64 44617461 5f 42 0102 43 030405 ff", `{"Data":"AQIDBAU="}`},
		{"bytes chunked 1-byte", "a1 64 44617461 5f 41 01 41 02 40 41 03 41 04 ff", `{"Data":"AQIDBA=="}`},
		{"bytes chunked empty", "a1 64 44617461 5f ff", `{"Data":""}`},
		{"bytes under a chunked key", "a1 7f 62 4461 62 7461 ff 41 01", `{"Data":"AQ=="}`},
		{"bytes self-described", "a1 64 44617461 d9 d9f7 41 01", `{"Data":"AQ=="}`},
		// major 3: JSON escaping
		{"text empty", "60", `""`},
		{"text", "65 68656c6c6f", `"hello"`},
		{"text escapes", "66 61225c0a0901", `"a\"\\\n\t\u0001"`},
		{"text utf-8", "62 c3bc", `"ü"`},
		{"text chunked", "7f 62 6869 61 21 ff", `"hi!"`},
		// major 4 and 5
		{"array empty", "80", `[]`},
		{"array", "83 01 02 03", `[1,2,3]`},
		{"array nested", "83 01 82 02 03 82 04 05", `[1,[2,3],[4,5]]`},
		{"array indefinite", "9f 01 9f ff ff", `[1,[]]`},
		{"map empty", "a0", `{}`},
		{"map", "a2 61 61 01 61 62 82 02 03", `{"a":1,"b":[2,3]}`},
		{"map indefinite", "bf 61 61 f5 61 62 bf ff ff", `{"a":true,"b":{}}`},
		{"map chunked key", "a1 7f 61 61 61 62 ff 00", `{"ab":0}`},
		{"map bytes value", "a1 64 44617461 43 010203", `{"Data":"AQID"}`},
		// major 7
		{"false", "f4", `false`},
		{"true", "f5", `true`},
		{"null", "f6", `null`},
		{"undefined", "f7", `null`},
		{"half 0", "f9 0000", `0`},
		{"half -0", "f9 8000", `-0`},
		{"half 1", "f9 3c00", `1`},
		{"half 1.5", "f9 3e00", `1.5`},
		{"half max", "f9 7bff", `65504`},
		{"half subnormal", "f9 0001", `5.960464477539063e-08`},
		{"single not exact in decimal", "fa 3f8ccccd", `1.100000023841858`},
		{"half -4", "f9 c400", `-4`},
		{"single", "fa 47c35000", `100000`},
		{"double", "fb 3ff199999999999a", `1.1`},
		{"double large", "fb 7e37e43c8800759c", `1e+300`},
		// tags: 1 is epoch milliseconds as AWS writes it, 55799 is skipped
		{"epoch ms", "c1 1b 0000018bcfe5687b", `1700000000.123`},
		{"epoch whole seconds", "c1 1a 000f4240", `1000`},
		{"epoch ms small", "c1 18 2a", `0.042`},
		{"epoch zero", "c1 00", `0`},
		{"epoch negative", "c1 20", `-0.001`},
		{"epoch negative whole", "c1 39 03e7", `-1`},
		{"epoch float ms", "c1 fb 3ff8000000000000", `0.0015`},
		{"self-describe", "d9 d9f7 a1 61 61 01", `{"a":1}`},
		{"nested self-describe", "d9 d9f7 d9 d9f7 00", `0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cborToJSON([]byte("prefix:"), unhex(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if want := "prefix:" + tc.want; string(got) != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}

func TestCBORToJSONErrors(t *testing.T) {
	deep := strings.Repeat("81", cborMaxDepth+1) + "00"
	for _, tc := range []struct{ name, in, want string }{
		{"empty input", "", "truncated"},
		{"truncated argument", "18", "truncated"},
		{"truncated 8-byte argument", "1b 0000", "truncated"},
		{"truncated text", "62 61", "runs past the end"},
		{"truncated array item", "82 19 01", "truncated"},
		{"truncated map value", "a1 61 61", "truncated"},
		{"indefinite map without break", "bf 61 61 01", "truncated"},
		{"indefinite bytes without break", "a1 64 44617461 5f 41 00", "truncated"},
		{"bytes at the top", "41 01", "not a blob"},
		{"bytes in an array", "81 41 01", "not a blob"},
		{"bytes as a partition key", "a1 6c 506172746974696f6e4b6579 41 6b", "not a blob"},
		{"bytes in an array under Data", "a1 64 44617461 81 41 01", "not a blob"},
		{"trailing bytes", "00 00", "trailing"},
		{"trailing break", "80 ff", "trailing"},
		{"map key is an integer", "a1 01 02", "not a text string"},
		{"map key is bytes", "a1 41 61 02", "not a text string"},
		{"huge byte string", "a1 64 44617461 5b ffffffffffffffff", "runs past the end"},
		{"huge text string", "7a 7fffffff 61", "runs past the end"},
		{"huge array", "9b 00000000ffffffff 00", "runs past the end"},
		{"huge map", "ba 00010000 61 61 01", "runs past the end"},
		{"too deep", deep, "nested deeper"},
		{"too deep with tags", strings.Repeat("d9d9f7", cborMaxDepth+1) + "00", "nested deeper"},
		{"NaN", "f9 7e00", "NaN"},
		{"infinity", "fa 7f800000", "NaN or infinity"},
		{"-infinity", "fb fff0000000000000", "NaN or infinity"},
		{"unsupported tag", "c2 41 01", "unsupported tag 2"},
		{"tag 0", "c0 60", "unsupported tag 0"},
		{"epoch over text", "c1 60", "does not hold a number"},
		{"epoch NaN", "c1 f9 7e00", "NaN"},
		{"reserved additional information", "1c", "reserved"},
		{"lone break", "ff", "break outside"},
		{"indefinite integer", "1f", "indefinite length"},
		{"indefinite tag", "df 00", "indefinite length"},
		{"invalid utf-8", "62 fffe", "UTF-8"},
		{"invalid utf-8 in a key", "a1 61 ff 00", "UTF-8"},
		{"chunk of wrong type", "7f 41 61 ff", "not a definite text string"},
		{"nested indefinite chunk", "a1 64 44617461 5f 5f ff ff", "not a definite byte string"},
		{"simple value", "f0", "unsupported simple"},
		{"one-byte simple value", "f8 20", "unsupported simple"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := cborToJSON(dst, unhex(t, tc.in))
			if err == nil {
				t.Fatalf("no error; got %s", got)
			}
			var ae apiError
			if !errors.As(err, &ae) || ae.status() != 400 || ae.name() != "SerializationException" {
				t.Fatalf("error %#v is not a SerializationException", err)
			}
			if !strings.Contains(ae.msg, tc.want) {
				t.Fatalf("message %q does not mention %q", ae.msg, tc.want)
			}
			if string(got) != "keep" {
				t.Fatalf("dst on error is %q, want it as passed", got)
			}
		})
	}
}

func TestJSONToCBOR(t *testing.T) {
	items := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('1')
		}
		return "[" + b.String() + "]"
	}
	for _, tc := range []struct{ name, in, want string }{
		{"empty object", `{}`, "a0"},
		{"empty array", `[ ]`, "80"},
		{"object", `{"a":1,"b":[true,false,null]}`, "a2 6161 01 6162 83 f5 f4 f6"},
		{"whitespace", " {\n\t\"a\" : 1 \r} ", "a1 6161 01"},
		{"23 items: definite", items(23), "97" + strings.Repeat("01", 23)},
		{"24 items: indefinite", items(24), "9f" + strings.Repeat("01", 24) + "ff"},
		{"ints", `[0,23,24,255,256,65536,-1,-24,-25]`,
			"89 00 17 1818 18ff 190100 1a00010000 20 37 3818"},
		{"uint64 max", `18446744073709551615`, "1b ffffffffffffffff"},
		{"int64 min", `-9223372036854775808`, "3b 7fffffffffffffff"},
		{"-2^64 is a float", `-18446744073709551616`, "fb c3f0000000000000"},
		{"beyond uint64 is a float", `18446744073709551616`, "fb 43f0000000000000"},
		{"-0", `-0`, "00"},
		{"fraction", `1.5`, "fb 3ff8000000000000"},
		{"exponent", `1e3`, "fb 408f400000000000"},
		{"negative zero float", `-0.0`, "fb 8000000000000000"},
		{"string", `"hello"`, "65 68656c6c6f"},
		{"escapes", `"a\"\\\/\b\f\n\r\t"`, "69 61 22 5c 2f 08 0c 0a 0d 09"},
		{"unicode escape", `"\u00fc"`, "62 c3bc"},
		{"raw utf-8", `"ü"`, "62 c3bc"},
		{"surrogate pair", `"\ud83d\ude00"`, "64 f09f9880"},
		{"lone surrogate", `"\ud800x"`, "64 efbfbd 78"},
		{"high surrogate then escape", `"\ud800\n"`, "64 efbfbd 0a"},
		{"escaped key", `{"D\u0061ta":"AQID"}`, "a1 64 44617461 43 010203"},
		{"long escaped string", `"` + strings.Repeat(`\n`, 30) + `"`, "78 1e" + strings.Repeat("0a", 30)},
		// blobs and timestamps, typed by member name
		{"Data blob", `{"Data":"AQID"}`, "a1 64 44617461 43 010203"},
		{"Data empty", `{"Data":""}`, "a1 64 44617461 40"},
		{"Data one pad", `{"Data":"AQI="}`, "a1 64 44617461 42 0102"},
		{"Data not a string", `{"Data":1}`, "a1 64 44617461 01"},
		{"Data in an array stays text", `["AQID"]`, "81 64 41514944"},
		{"arrival timestamp", `{"ApproximateArrivalTimestamp":1700000000.123}`,
			"a1 78 1b 417070726f78696d6174654172726976616c54696d657374616d70 c1 1b 0000018bcfe5687b"},
		{"creation timestamp whole", `{"StreamCreationTimestamp":1000}`,
			"a1 77 53747265616d4372656174696f6e54696d657374616d70 c1 1a 000f4240"},
		{"StartedAt", `{"StartedAt":0.5}`, "a1 69 537461727465644174 c1 1901f4"},
		{"negative timestamp", `{"EndedAt":-0.001}`, "a1 67 456e6465644174 c1 20"},
		{"timestamp that is a string", `{"StreamCreationTimestamp":"x"}`,
			"a1 77 53747265616d4372656174696f6e54696d657374616d70 61 78"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jsonToCBOR([]byte{0xee}, []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			want := append([]byte{0xee}, unhex(t, tc.want)...)
			if !bytes.Equal(got, want) {
				t.Fatalf("got  % x\nwant % x", got, want)
			}
			// Whatever jsonToCBOR writes, an independent decoder must accept.
			var v any
			if err := cbor.Unmarshal(got[1:], &v); err != nil {
				t.Fatalf("fxamacker/cbor rejects the output: %v", err)
			}
		})
	}
}

func TestJSONToCBORErrors(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"empty", ``},
		{"only space", `  `},
		{"trailing", `{} x`},
		{"two values", `1 2`},
		{"member without value", `{"a"}`},
		{"member name not a string", `{a:1}`},
		{"trailing comma in array", `[1,]`},
		{"trailing comma in object", `{"a":1,}`},
		{"missing comma", `[1 2]`},
		{"unclosed array", `[1`},
		{"unclosed object", `{"a":1`},
		{"unclosed string", `"abc`},
		{"unclosed escaped string", `"a\n`},
		{"backslash at the end", `"\`},
		{"bad escape", `"\x"`},
		{"short unicode escape", `"\u12"`},
		{"bad unicode escape", `"\u12g4"`},
		{"control character", "\"a\x01\""},
		{"invalid utf-8", "\"\xff\""},
		{"invalid utf-8 with escapes", "\"\\n\xff\""},
		{"leading zero", `01`},
		{"lone minus", `-`},
		{"bare fraction", `1.`},
		{"bare exponent", `1e`},
		{"plus sign", `+1`},
		{"truncated literal", `tru`},
		{"NaN", `NaN`},
		{"number out of range", `1e400`},
		{"timestamp out of range", `{"StreamCreationTimestamp":1e300}`},
		{"Data with a bad length", `{"Data":"abc"}`},
		{"Data with escapes", `{"Data":"\u0041QID"}`},
		{"Data not base64", `{"Data":"!!!!"}`},
		{"Data with misplaced padding", `{"Data":"A=BC"}`},
		{"too deep", strings.Repeat("[", cborMaxDepth+2) + strings.Repeat("]", cborMaxDepth+2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jsonToCBOR([]byte("keep"), []byte(tc.in))
			if err == nil {
				t.Fatalf("no error; got % x", got)
			}
			if string(got) != "keep" {
				t.Fatalf("dst on error is % x, want it as passed", got)
			}
		})
	}
}

// TestCBORMemberKinds pins the naming rule jsonToCBOR types answers by against the Kinesis
// model (2013-12-02): every member of every output and error shape, with its type.
func TestCBORMemberKinds(t *testing.T) {
	want := map[string]jsonKind{
		"Data":                        jsonBlob,
		"ApproximateArrivalTimestamp": jsonTimestamp,
		"ConsumerCreationTimestamp":   jsonTimestamp,
		"StreamCreationTimestamp":     jsonTimestamp,
		"StartedAt":                   jsonTimestamp,
		"EndedAt":                     jsonTimestamp,
		"EarliestAllowedEndAt":        jsonTimestamp,
	}
	plain := strings.Fields(`AdjacentParentShardId ChildShards Consumer ConsumerARN ConsumerCount
		ConsumerDescription ConsumerName ConsumerStatus Consumers ContinuationSequenceNumber
		CurrentMiBps CurrentShardCount CurrentShardLevelMetrics DesiredShardLevelMetrics
		EncryptionType EndingHashKey EndingSequenceNumber EnhancedMonitoring ErrorCode
		ErrorMessage EventStream FailedRecordCount HasMoreShards HasMoreStreams HasMoreTags
		HashKeyRange InternalFailureException KMSAccessDeniedException KMSDisabledException
		KMSInvalidStateException KMSNotFoundException KMSOptInRequired KMSThrottlingException Key
		KeyId MaxRecordSizeInKiB MillisBehindLatest MinimumThroughputBillingCommitment
		NextShardIterator NextToken OnDemandStreamCount OnDemandStreamCountLimit OpenShardCount
		ParentShardId ParentShards PartitionKey Policy Records ResourceInUseException
		ResourceNotFoundException RetentionPeriodHours SequenceNumber SequenceNumberRange ShardId
		ShardIterator ShardLevelMetrics ShardLimit Shards StartingHashKey StartingSequenceNumber
		Status StreamARN StreamDescription StreamDescriptionSummary StreamId StreamMode
		StreamModeDetails StreamName StreamNames StreamStatus StreamSummaries
		SubscribeToShardEvent Tags TargetMiBps TargetShardCount Value WarmThroughput message
		__type`)
	for _, name := range plain {
		want[name] = jsonPlain
	}
	if len(want) != 86 { // 85 members in the model, and __type
		t.Fatalf("%d names; the list above is incomplete", len(want))
	}
	for name, kind := range want {
		if got := memberKind([]byte(name)); got != kind {
			t.Errorf("%s: kind %d, want %d", name, got, kind)
		}
	}
}

func TestAppendCBORError(t *testing.T) {
	for _, tc := range []struct {
		name, typ, msg string
		want           map[string]string
	}{
		{"with message", "ResourceNotFoundException", "Stream s under account 1 not found.",
			map[string]string{"__type": "ResourceNotFoundException", "message": "Stream s under account 1 not found."}},
		{"without message", "UnknownOperationException", "", map[string]string{"__type": "UnknownOperationException"}},
		{"invalid utf-8 replaced", "X", "a\xffb", map[string]string{"__type": "X", "message": "a\uFFFDb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got map[string]string
			if err := cbor.Unmarshal(appendCBORError(nil, tc.typ, tc.msg), &got); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestCBORRoundTrip sends values through both transcoders: CBOR → JSON → CBOR gives back the
// same value, typed blobs and timestamps included.
func TestCBORRoundTrip(t *testing.T) {
	in := map[string]any{
		"Records": []any{
			map[string]any{"Data": []byte{0, 1, 2, 0xff}, "PartitionKey": "k\"\n", "ApproximateArrivalTimestamp": cbor.Tag{Number: 1, Content: uint64(1700000000123)}},
			map[string]any{"Data": []byte{}, "PartitionKey": "ü", "ApproximateArrivalTimestamp": cbor.Tag{Number: 1, Content: uint64(1700000000000)}},
		},
		"MillisBehindLatest": uint64(7),
		"Negative":           int64(-3),
		"Ok":                 true,
		"Nothing":            nil,
	}
	src, err := cbor.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	js, err := cborToJSON(nil, src)
	if err != nil {
		t.Fatal(err)
	}
	back, err := jsonToCBOR(nil, js)
	if err != nil {
		t.Fatal(err)
	}
	dm, _ := cbor.DecOptions{DefaultMapType: mapStringAny}.DecMode()
	var want, got any
	if err := dm.Unmarshal(src, &want); err != nil {
		t.Fatal(err)
	}
	if err := dm.Unmarshal(back, &got); err != nil {
		t.Fatal(err)
	}
	if !cborValuesEqual(want, got) {
		t.Fatalf("round trip changed the value:\n in  %#v\n out %#v\n via %s", want, got, js)
	}
}

var mapStringAny = reflect.TypeOf(map[string]any(nil))

// cborValuesEqual compares values fxamacker/cbor decoded into any: maps, slices, byte
// strings, times (tag 1) and scalars.
func cborValuesEqual(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !cborValuesEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !cborValuesEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case []byte:
		b, ok := b.([]byte)
		return ok && bytes.Equal(a, b)
	case time.Time:
		b, ok := b.(time.Time)
		return ok && a.Equal(b)
	}
	return reflect.DeepEqual(a, b)
}

// cborAPI calls the Kinesis API over the CBOR protocol, as the AWS SDK for Java does, with
// fxamacker/cbor as an encoder and decoder independent of the server's.
type cborAPI struct {
	t    *testing.T
	url  string
	http *http.Client
}

// call posts body (CBOR) to operation op and returns the answer.
func (c cborAPI) call(op string, body []byte) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.url+"/", bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", cborContentType)
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, b
}

// ok calls op with in encoded by fxamacker/cbor, expects 200 and a CBOR answer, and decodes
// it into out (when not nil).
func (c cborAPI) ok(op string, in, out any) {
	c.t.Helper()
	body, err := cbor.Marshal(in)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, b := c.call(op, body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != cborContentType {
		c.t.Fatalf("%s: status %d, Content-Type %q, body % x", op, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if out != nil {
		if err := cbor.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s: answer % x: %v", op, b, err)
		}
	}
}

// cborError checks an error answer in CBOR.
func (c cborAPI) error(resp *http.Response, body []byte, status int, name string) {
	c.t.Helper()
	if resp.StatusCode != status || resp.Header.Get("X-Amzn-ErrorType") != name || resp.Header.Get("Content-Type") != cborContentType {
		c.t.Fatalf("status %d, X-Amzn-ErrorType %q, Content-Type %q; want %d %s in CBOR",
			resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), resp.Header.Get("Content-Type"), status, name)
	}
	var e map[string]string
	if err := cbor.Unmarshal(body, &e); err != nil {
		c.t.Fatalf("error body % x: %v", body, err)
	}
	if e["__type"] != name || e["message"] == "" {
		c.t.Fatalf("error body %v, want __type %s and a message", e, name)
	}
}

// millisTag checks that v is tag 1 over integer milliseconds within [lo, hi] and returns them.
func millisTag(t *testing.T, what string, v cbor.Tag, lo, hi time.Time) uint64 {
	t.Helper()
	ms, ok := v.Content.(uint64)
	if v.Number != 1 || !ok {
		t.Fatalf("%s: %#v, want tag 1 over an unsigned integer", what, v)
	}
	if ms < uint64(lo.UnixMilli()) || ms > uint64(hi.UnixMilli()) {
		t.Fatalf("%s: %d ms, want within [%d, %d]", what, ms, lo.UnixMilli(), hi.UnixMilli())
	}
	return ms
}

// byteString checks that raw is a CBOR byte string and returns its content.
func byteString(t *testing.T, what string, raw cbor.RawMessage) []byte {
	t.Helper()
	if len(raw) == 0 || raw[0]>>5 != cborMajorBytes {
		t.Fatalf("%s: % x is not a byte string", what, raw)
	}
	var b []byte
	if err := cbor.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// cborRecord is a record of GetRecords or SubscribeToShardEvent, with its typed members kept
// raw so their CBOR types can be checked.
type cborRecord struct {
	SequenceNumber              string          `cbor:"SequenceNumber"`
	ApproximateArrivalTimestamp cbor.Tag        `cbor:"ApproximateArrivalTimestamp"`
	Data                        cbor.RawMessage `cbor:"Data"`
	PartitionKey                string          `cbor:"PartitionKey"`
}

// TestCBORAPI drives the API over CBOR against a real listener: a stream is created with an
// indefinite-length map (as Jackson writes), binary records go in as byte strings, an
// AT_TIMESTAMP iterator is asked for with tag 1 over milliseconds (as the AWS SDK for Java
// writes it), records come back with byte strings and tag 1, and errors come in CBOR.
func TestCBORAPI(t *testing.T) {
	kc, stop := startServer(t, t.TempDir())
	defer stop()
	api := cborAPI{t: t, url: aws.ToString(kc.Options().BaseEndpoint), http: &http.Client{Timeout: 30 * time.Second}}
	start := time.Now().Add(-time.Second)

	var create bytes.Buffer
	enc := cbor.NewEncoder(&create)
	for _, err := range []error{enc.StartIndefiniteMap(), enc.Encode("StreamName"), enc.Encode("cbor"),
		enc.Encode("ShardCount"), enc.Encode(1), enc.EndIndefinite()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, body := api.call("CreateStream", create.Bytes())
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != cborContentType || !bytes.Equal(body, cborEmptyMap) {
		t.Fatalf("CreateStream: %d %q % x", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	var sum struct {
		StreamDescriptionSummary struct {
			StreamARN               string   `cbor:"StreamARN"`
			StreamStatus            string   `cbor:"StreamStatus"`
			StreamCreationTimestamp cbor.Tag `cbor:"StreamCreationTimestamp"`
			OpenShardCount          int      `cbor:"OpenShardCount"`
		} `cbor:"StreamDescriptionSummary"`
	}
	api.ok("DescribeStreamSummary", map[string]any{"StreamName": "cbor"}, &sum)
	d := sum.StreamDescriptionSummary
	if d.StreamStatus != "ACTIVE" || d.OpenShardCount != 1 || d.StreamARN == "" {
		t.Fatalf("summary %+v", d)
	}
	millisTag(t, "StreamCreationTimestamp", d.StreamCreationTimestamp, start, time.Now().Add(time.Second))

	payloads := [][]byte{{0x00, 0xff, 0x80, '"', '\\'}, bytes.Repeat([]byte{0xa5, 0x5a, 0x00}, 400), {}}
	var entries []any
	for i, p := range payloads {
		entries = append(entries, map[string]any{"Data": p, "PartitionKey": "key-" + strconv.Itoa(i)})
	}
	var put struct {
		FailedRecordCount int `cbor:"FailedRecordCount"`
		Records           []struct {
			SequenceNumber string `cbor:"SequenceNumber"`
			ShardId        string `cbor:"ShardId"`
		} `cbor:"Records"`
	}
	api.ok("PutRecords", map[string]any{"StreamName": "cbor", "Records": entries}, &put)
	if put.FailedRecordCount != 0 || len(put.Records) != len(payloads) || put.Records[0].ShardId != "shardId-000000000000" {
		t.Fatalf("PutRecords: %+v", put)
	}
	end := time.Now().Add(time.Second)

	var it struct {
		ShardIterator string `cbor:"ShardIterator"`
	}
	api.ok("GetShardIterator", map[string]any{"StreamName": "cbor", "ShardId": "shardId-000000000000",
		"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": cbor.Tag{Number: 1, Content: start.Add(-time.Minute).UnixMilli()}}, &it)
	var got struct {
		Records            []cborRecord `cbor:"Records"`
		NextShardIterator  string       `cbor:"NextShardIterator"`
		MillisBehindLatest cbor.RawMessage
	}
	api.ok("GetRecords", map[string]any{"ShardIterator": it.ShardIterator}, &got)
	if len(got.Records) != len(payloads) || got.NextShardIterator == "" {
		t.Fatalf("GetRecords from AT_TIMESTAMP: %d records, iterator %q", len(got.Records), got.NextShardIterator)
	}
	if len(got.MillisBehindLatest) == 0 || got.MillisBehindLatest[0]>>5 != cborMajorUint {
		t.Fatalf("MillisBehindLatest % x is not an unsigned integer", got.MillisBehindLatest)
	}
	for i, r := range got.Records {
		if data := byteString(t, "Data", r.Data); !bytes.Equal(data, payloads[i]) || r.PartitionKey != "key-"+strconv.Itoa(i) ||
			r.SequenceNumber != put.Records[i].SequenceNumber {
			t.Fatalf("record %d: %q %q %s, want %q key-%d %s", i, data, r.PartitionKey, r.SequenceNumber, payloads[i], i, put.Records[i].SequenceNumber)
		}
		millisTag(t, "ApproximateArrivalTimestamp", r.ApproximateArrivalTimestamp, start, end)
	}
	// Had tag 1 been read as seconds, the iterator above would lie in the year 55000, which
	// Kinesis refuses as it refuses this one, an hour ahead.
	future, _ := cbor.Marshal(map[string]any{"StreamName": "cbor", "ShardId": "shardId-000000000000",
		"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": cbor.Tag{Number: 1, Content: time.Now().Add(time.Hour).UnixMilli()}})
	resp, body = api.call("GetShardIterator", future)
	api.error(resp, body, 400, "InvalidArgumentException")

	// Errors: from the engine, from a body that is not CBOR, from an unknown operation.
	missing, _ := cbor.Marshal(map[string]any{"StreamName": "missing"})
	resp, body = api.call("DescribeStream", missing)
	api.error(resp, body, 400, "ResourceNotFoundException")
	resp, body = api.call("DescribeStream", []byte{0xa1, 0x01, 0x02})
	api.error(resp, body, 400, "SerializationException")
	resp, body = api.call("DescribeStream", []byte{0xa1, 0x61})
	api.error(resp, body, 400, "SerializationException")
	resp, body = api.call("NoSuchOperation", missing)
	if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-ErrorType") != "UnknownOperationException" || resp.Header.Get("Content-Type") != cborContentType {
		t.Fatalf("unknown operation: %d %q %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), resp.Header.Get("Content-Type"))
	}
	var unknown map[string]string
	if err := cbor.Unmarshal(body, &unknown); err != nil || unknown["__type"] != "UnknownOperationException" {
		t.Fatalf("unknown operation body % x: %v", body, err)
	}
}

// TestCBORSubscribeToShard subscribes over CBOR: the input is decoded from CBOR and the events
// come with CBOR payloads and content type.
func TestCBORSubscribeToShard(t *testing.T) {
	kc, stop := startServer(t, t.TempDir())
	defer stop()
	api := cborAPI{t: t, url: aws.ToString(kc.Options().BaseEndpoint), http: &http.Client{Timeout: 30 * time.Second}}
	start := time.Now().Add(-time.Second)
	api.ok("CreateStream", map[string]any{"StreamName": "s", "ShardCount": 1}, nil)
	var sum struct {
		StreamDescriptionSummary struct {
			StreamARN string `cbor:"StreamARN"`
		} `cbor:"StreamDescriptionSummary"`
	}
	api.ok("DescribeStreamSummary", map[string]any{"StreamName": "s"}, &sum)
	var reg struct {
		Consumer struct {
			ConsumerARN               string   `cbor:"ConsumerARN"`
			ConsumerCreationTimestamp cbor.Tag `cbor:"ConsumerCreationTimestamp"`
		} `cbor:"Consumer"`
	}
	api.ok("RegisterStreamConsumer", map[string]any{"StreamARN": sum.StreamDescriptionSummary.StreamARN, "ConsumerName": "app"}, &reg)
	millisTag(t, "ConsumerCreationTimestamp", reg.Consumer.ConsumerCreationTimestamp, start, time.Now().Add(time.Second))
	data := []byte{0xde, 0xad, 0x00, 0xbe, 0xef}
	api.ok("PutRecord", map[string]any{"StreamName": "s", "PartitionKey": "k", "Data": data}, nil)
	end := time.Now().Add(time.Second)

	in, _ := cbor.Marshal(map[string]any{"ConsumerARN": reg.Consumer.ConsumerARN, "ShardId": "shardId-000000000000",
		"StartingPosition": map[string]any{"Type": "TRIM_HORIZON"}})
	req, _ := http.NewRequest(http.MethodPost, api.url+"/", bytes.NewReader(in))
	req.Header.Set("Content-Type", cborContentType)
	req.Header.Set("X-Amz-Target", targetPrefix+"SubscribeToShard")
	resp, err := api.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("SubscribeToShard: %d % x", resp.StatusCode, b)
	}
	dec := eventstream.NewDecoder()
	next := func(eventType string) []byte {
		t.Helper()
		m, err := dec.Decode(resp.Body, nil)
		if err != nil {
			t.Fatal(err)
		}
		if h := m.Headers.Get(":event-type"); h == nil || h.String() != eventType {
			t.Fatalf("event type %v, want %s", h, eventType)
		}
		if h := m.Headers.Get(":content-type"); h == nil || h.String() != cborContentType {
			t.Fatalf("content type %v, want %s", h, cborContentType)
		}
		return m.Payload
	}
	if p := next("initial-response"); !bytes.Equal(p, cborEmptyMap) {
		t.Fatalf("initial-response payload % x", p)
	}
	var ev struct {
		Records                    []cborRecord `cbor:"Records"`
		ContinuationSequenceNumber string       `cbor:"ContinuationSequenceNumber"`
	}
	if err := cbor.Unmarshal(next("SubscribeToShardEvent"), &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Records) != 1 || ev.ContinuationSequenceNumber == "" {
		t.Fatalf("event %+v", ev)
	}
	if got := byteString(t, "Data", ev.Records[0].Data); !bytes.Equal(got, data) {
		t.Fatalf("Data % x, want % x", got, data)
	}
	millisTag(t, "ApproximateArrivalTimestamp", ev.Records[0].ApproximateArrivalTimestamp, start, end)
}
