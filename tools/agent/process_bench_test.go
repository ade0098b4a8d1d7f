package agent

import (
	"bytes"
	"regexp"
	"testing"
)

// BenchmarkProcess measures the path of a line from the file's bytes to a keyed record:
// splitting, the processors and the key, per option, over 64 KiB of log lines.
func BenchmarkProcess(b *testing.B) {
	common := []byte(`127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326` + "\n")
	csv := []byte("2024-05-01,web-1,GET,/index.html,200,512\n")
	for _, bc := range []struct {
		name, option  string
		line          []byte
		deterministic bool
	}{
		{"raw", "", common, false},
		{"raw-deterministic", "", common, true},
		{"singleline", `{"optionName":"SINGLELINE"}`, common, false},
		{"csvtojson", `{"optionName":"CSVTOJSON","customFieldNames":["d","h","m","p","s","n"]}`, csv, false},
		{"logtojson-common", `{"optionName":"LOGTOJSON","logFormat":"COMMONAPACHELOG"}`, common, false},
		{"addmetadata", `{"optionName":"ADDMETADATA","metadata":{"env":"prod"}}`, common, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := recordMaker{deterministic: bc.deterministic, terminator: "\n"}
			if bc.option != "" {
				m.procs = []Processor{processor(b, bc.option)}
			}
			buf := bytes.Repeat(bc.line, (64<<10)/len(bc.line))
			var start *regexp.Regexp
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				for rest := buf; len(rest) > 0; {
					n, _ := splitRecord(rest, start, false)
					if _, _, ok := m.make(rest[:n]); !ok {
						b.Fatal("dropped")
					}
					rest = rest[n:]
				}
			}
		})
	}
}
