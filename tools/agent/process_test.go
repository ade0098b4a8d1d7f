package agent

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// processor builds the processor of one dataProcessingOptions entry.
func processor(t testing.TB, option string) Processor {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(option), &raw); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	p, err := parseProcessor(raw, "", &warnings)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProcessors checks each option's output against the Kinesis Agent's: its field names,
// nulls, compact JSON with the newline kept at the end, and the records LOGTOJSON drops.
func TestProcessors(t *testing.T) {
	for _, tc := range []struct {
		name, option, in, want string // want "" means dropped
	}{
		{"singleline", `{"optionName":"SINGLELINE"}`, "  a line\n   continued  \n\tend\n", "a linecontinuedend\n"},
		{"csv", `{"optionName":"CSVTOJSON","customFieldNames":["a","b","c"]}`, "1,2,3\n", `{"a":"1","b":"2","c":"3"}` + "\n"},
		{"csv missing columns are null", `{"optionName":"CSVTOJSON","customFieldNames":["a","b","c"]}`, "1,,\n", `{"a":"1","b":null,"c":null}` + "\n"},
		{"csv tab", `{"optionName":"CSVTOJSON","customFieldNames":["a","b"],"delimiter":"\\t"}`, "x\t\"y\"\n", `{"a":"x","b":"\"y\""}` + "\n"},
		{"csv regex delimiter", `{"optionName":"CSVTOJSON","customFieldNames":["a","b"],"delimiter":"\\s*;\\s*"}`, "x ; y\n", `{"a":"x","b":"y"}` + "\n"},
		{"common apache", `{"optionName":"LOGTOJSON","logFormat":"COMMONAPACHELOG"}`,
			`127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326` + "\n",
			`{"host":"127.0.0.1","ident":null,"authuser":"frank","datetime":"10/Oct/2000:13:55:36 -0700","request":"GET /apache_pb.gif HTTP/1.0","response":"200","bytes":"2326"}` + "\n"},
		{"combined apache", `{"optionName":"LOGTOJSON","logFormat":"COMBINEDAPACHELOG"}`,
			`192.168.1.5 - - [12/Dec/2023:08:01:02 +0000] "POST /api HTTP/1.1" 201 - "http://example.com/" "curl/8.0"` + "\n",
			`{"host":"192.168.1.5","ident":null,"authuser":null,"datetime":"12/Dec/2023:08:01:02 +0000","request":"POST /api HTTP/1.1","response":"201","bytes":null,"referer":"http://example.com/","agent":"curl/8.0"}` + "\n"},
		{"apache error", `{"optionName":"LOGTOJSON","logFormat":"APACHEERRORLOG"}`,
			`[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico` + "\n",
			`{"timestamp":"Fri Sep 09 10:42:29.902022 2011","module":"core","severity":"error","processid":"35708","threadid":"4328636416","client":"72.15.99.187","message":"File does not exist: /usr/local/apache2/htdocs/favicon.ico"}` + "\n"},
		{"apache error without module and thread", `{"optionName":"LOGTOJSON","logFormat":"APACHEERRORLOG"}`,
			`[Mon Jan 02 03:04:05 2017] [notice] [pid 12] [client 10.0.0.1:5050] started` + "\n",
			`{"timestamp":"Mon Jan 02 03:04:05 2017","module":null,"severity":"notice","processid":"12","threadid":null,"client":"10.0.0.1:5050","message":"started"}` + "\n"},
		{"syslog", `{"optionName":"LOGTOJSON","logFormat":"SYSLOG"}`,
			"Mar  7 11:36:01 ip-10-0-0-1 CRON[1234]: (root) CMD (run-parts /etc/cron.hourly)\n",
			`{"timestamp":"Mar  7 11:36:01","hostname":"ip-10-0-0-1","program":"CRON","processid":"1234","message":"(root) CMD (run-parts /etc/cron.hourly)"}` + "\n"},
		{"syslog without pid", `{"optionName":"LOGTOJSON","logFormat":"SYSLOG"}`,
			"Mar 17 11:36:01 host kernel: eth0 up\n",
			`{"timestamp":"Mar 17 11:36:01","hostname":"host","program":"kernel","processid":null,"message":"eth0 up"}` + "\n"},
		{"rfc3339 syslog", `{"optionName":"LOGTOJSON","logFormat":"RFC3339SYSLOG"}`,
			"2024-05-01T10:00:00.123+02:00 web-1 nginx[77]: \"quoted\" \\ back\n",
			`{"timestamp":"2024-05-01T10:00:00.123+02:00","hostname":"web-1","program":"nginx","processid":"77","message":"\"quoted\" \\ back"}` + "\n"},
		{"log not matching is dropped", `{"optionName":"LOGTOJSON","logFormat":"COMMONAPACHELOG"}`, "not a log line\n", ""},
		{"custom fields rename", `{"optionName":"LOGTOJSON","logFormat":"SYSLOG","customFieldNames":["t","h","p","pid","m"]}`,
			"Mar 17 11:36:01 host app[9]: hi\n", `{"t":"Mar 17 11:36:01","h":"host","p":"app","pid":"9","m":"hi"}` + "\n"},
		{"match pattern", `{"optionName":"LOGTOJSON","logFormat":"COMMONAPACHELOG","matchPattern":"(\\w+)=(\\d+)","customFieldNames":["k","v"]}`,
			"size=42\n", `{"k":"size","v":"42"}` + "\n"},
		{"metadata", `{"optionName":"ADDMETADATA","metadata":{"env":"prod","n":{"x":1}}}`, "a \"line\"\ttab\n",
			`{"metadata":{"env":"prod","n":{"x":1}},"data":"a \"line\"\ttab"}` + "\n"},
		{"control characters and bad UTF-8", `{"optionName":"ADDMETADATA","metadata":{}}`, "\x01é\xff<&>\n",
			`{"metadata":{},"data":"\u0001é` + "\ufffd" + `<&>"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := processor(t, tc.option)
			got, ok := p.Process([]byte("prefix:"), []byte(tc.in))
			if tc.want == "" {
				if ok {
					t.Fatalf("kept as %q, want dropped", got)
				}
				return
			}
			if !ok || string(got) != "prefix:"+tc.want {
				t.Fatalf("got %q (kept %v)\nwant %q", got, ok, "prefix:"+tc.want)
			}
			if strings.HasPrefix(tc.want, "{") && !json.Valid([]byte(tc.want)) {
				t.Fatalf("want is not JSON: %s", tc.want)
			}
		})
	}
}

// TestParseConfig reads configuration files: the settings, the keys reported as ignored,
// and the errors naming the key at fault.
func TestParseConfig(t *testing.T) {
	good := `{"checkpointFile":"/var/run/agent.ckpt","kinesis.endpoint":"http://127.0.0.1:4567","cloudwatch.emitMetrics":false,
	 "flows":[{"filePattern":"/var/log/app/*.log","kinesisStream":"s","partitionKeyOption":"DETERMINISTIC",
	  "initialPosition":"START_OF_FILE","multiLineStartPattern":"^\\d{4}-","skipHeaderLines":2,
	  "truncatedRecordTerminator":"...\n","maxBufferAgeMillis":1500,"maxBufferSizeBytes":1024,"maxBufferSizeRecords":10,
	  "dataProcessingOptions":[{"optionName":"SINGLELINE"}],"maxRetries":3}]}`
	c, warnings, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	f := c.Flows[0]
	if c.CheckpointFile != "/var/run/agent.ckpt" || c.Endpoint != "http://127.0.0.1:4567" || !f.Deterministic ||
		f.InitialPosition != StartOfFile || f.MultiLineStart == nil || f.SkipHeaderLines != 2 ||
		f.TruncatedRecordTerminator != "...\n" || f.MaxBufferAge.Milliseconds() != 1500 || f.MaxBufferBytes != 1024 ||
		f.MaxBufferRecords != 10 || len(f.Processors) != 1 {
		t.Fatalf("parsed %+v", c)
	}
	if fmt.Sprint(warnings) != "[cloudwatch.emitMetrics is ignored flows[0].maxRetries is ignored]" {
		t.Fatalf("warnings %q", warnings)
	}
	for _, tc := range []struct{ conf, want string }{
		{`{"flows":[{"filePattern":"/a","kinesisStream":"s","filePatern":"x"}]}`, "unknown keys flows[0].filePatern"},
		{`{"flow":[]}`, "unknown keys flow"},
		{`{"flows":[]}`, "at least one flow"},
		{`{"flows":[{"filePattern":"/a","deliveryStream":"d"}]}`, "deliveryStream"},
		{`{"flows":[{"filePattern":"/a"}]}`, "kinesisStream: required"},
		{`{"flows":[{"filePattern":"/a/*/x","kinesisStream":"s"}]}`, "only the file name"},
		{`{"flows":[{"filePattern":"/a","kinesisStream":"s","partitionKeyOption":"HASH"}]}`, "partitionKeyOption"},
		{`{"flows":[{"filePattern":"/a","kinesisStream":"s","maxBufferSizeRecords":501}]}`, "maxBufferSizeRecords: 501"},
		{`{"flows":[{"filePattern":"/a","kinesisStream":"s","maxBufferSizeBytes":5242881}]}`, "maxBufferSizeBytes: 5242881: want 1 to 5242880"},
		{`{"flows":[{"filePattern":"/a","kinesisStream":"s","maxBufferAgeMillis":999}]}`, "maxBufferAgeMillis: 999: want 1000 to 900000"},
		{`{"flows":[{"filePattern":"/a","kinesisStream":"s","maxBufferAgeMillis":900001}]}`, "maxBufferAgeMillis: 900001"},
		{`{"flows":[{"filePattern":"/a","kinesisStream":"s","multiLineStartPattern":"("}]}`, "multiLineStartPattern"},
		{`{"flows":[{"filePattern":"/a","kinesisStream":"s","dataProcessingOptions":[{"optionName":"GZIP"}]}]}`, "optionName"},
		{`{"flows":[{"filePattern":"/a","kinesisStream":"s","dataProcessingOptions":[{"optionName":"CSVTOJSON"}]}]}`, "customFieldNames: required"},
		{`{"flows":[{"filePattern":"/a","kinesisStream":"s","dataProcessingOptions":[{"optionName":"LOGTOJSON","logFormat":"SYSLOG","customFieldNames":["a"]}]}]}`, "1 names for the 5 fields"},
		{`{"flows":[{"filePattern":"/a","kinesisStream":"s","dataProcessingOptions":[{"optionName":"SINGLELINE","delimiter":","}]}]}`, "dataProcessingOptions[0].delimiter"},
	} {
		_, _, err := ParseConfig([]byte(tc.conf))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an ErrConfig saying %q", tc.conf, err, tc.want)
		}
	}
}

// TestSplitRecord splits lines and multi-line records, and waits for what is not whole.
func TestSplitRecord(t *testing.T) {
	start := regexp.MustCompile(`^\d{4}-`)
	for _, tc := range []struct {
		in       string
		multi    bool
		final    bool
		n, lines int
	}{
		{"a\nb\n", false, false, 2, 1},
		{"partial", false, true, 0, 0},
		{"2024-01 x\n  at y\n  at z\n2024-02 w\n", true, false, 24, 3},
		{"2024-01 x\n  at y\n", true, false, 0, 0},
		{"2024-01 x\n  at y\n", true, true, 17, 2},
		{"2024-01 x\n  at y\n  partial", true, true, 17, 2},
	} {
		var re = start
		if !tc.multi {
			re = nil
		}
		n, lines := splitRecord([]byte(tc.in), re, tc.final)
		if n != tc.n || lines != tc.lines {
			t.Errorf("%q multi=%v final=%v: %d bytes, %d lines; want %d, %d", tc.in, tc.multi, tc.final, n, lines, tc.n, tc.lines)
		}
	}
}

// TestConfigDefaults checks a flow that sets nothing against the Kinesis Agent's defaults
// for Kinesis Data Streams (doc.go, Settings), and the limits it accepts at their bounds.
func TestConfigDefaults(t *testing.T) {
	c, _, err := ParseConfig([]byte(`{"flows":[{"filePattern":"/a","kinesisStream":"s"},
	  {"filePattern":"/b","kinesisStream":"s","maxBufferAgeMillis":1000,"maxBufferSizeBytes":5242880,"maxBufferSizeRecords":500}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range c.Flows {
		if f.MaxBufferBytes != 5<<20 || f.MaxBufferRecords != 500 {
			t.Errorf("%s: %d bytes and %d records, want 5 MiB and 500", f.FilePattern, f.MaxBufferBytes, f.MaxBufferRecords)
		}
	}
	f := c.Flows[0]
	if f.MaxBufferAge != time.Minute || f.PollInterval != 100*time.Millisecond || f.Deterministic ||
		f.InitialPosition != EndOfFile || f.TruncatedRecordTerminator != "\n" || f.SkipHeaderLines != 0 {
		t.Errorf("defaults %+v", f)
	}
	if c.Flows[1].MaxBufferAge != time.Second {
		t.Errorf("maxBufferAgeMillis 1000 is %v", c.Flows[1].MaxBufferAge)
	}
}

// TestDeterministicKey checks DETERMINISTIC keys: the lowercase hex MD5 of the record's data
// after the processors and before a cut to MaxRecordBytes, as the Kinesis Agent's
// KinesisRecord computes it when a processor made the data.
func TestDeterministicKey(t *testing.T) {
	m := recordMaker{deterministic: true, terminator: "\n", procs: []Processor{processor(t, `{"optionName":"SINGLELINE"}`)}}
	key, data, ok := m.make([]byte("  a\n  b\n"))
	if !ok || string(data) != "ab\n" || key != "daa8075d6ac5ff8d0c6d4650adb4ef29" {
		t.Errorf("key %q data %q", key, data)
	}
	long := bytes.Repeat([]byte("x"), MaxRecordBytes+10)
	m = recordMaker{deterministic: true, terminator: "\n"}
	key, data, _ = m.make(long)
	if sum := md5.Sum(long); key != hex.EncodeToString(sum[:]) || len(data) != MaxRecordBytes-len(key) {
		t.Errorf("a cut record: key %q, %d bytes", key, len(data))
	}
}

// TestTruncatedRecordTerminator cuts a record longer than MaxRecordBytes (key and data),
// with and without a processor: the data is its first bytes, then truncatedRecordTerminator,
// the record exactly MaxRecordBytes long.
func TestTruncatedRecordTerminator(t *testing.T) {
	const term = "<cut>\n"
	long := append(bytes.Repeat([]byte("x"), MaxRecordBytes+10), '\n')
	for _, procs := range [][]Processor{nil, {processor(t, `{"optionName":"SINGLELINE"}`)}} {
		m := recordMaker{terminator: term, procs: procs}
		key, data, ok := m.make(long)
		body, found := bytes.CutSuffix(data, []byte(term))
		if !ok || !found || len(key)+len(data) != MaxRecordBytes || len(bytes.Trim(body, "x")) != 0 {
			t.Errorf("%d processors: kept %v, %d bytes of key and data, ends %q", len(procs), ok, len(key)+len(data), data[max(len(data)-12, 0):])
		}
	}
}
