package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"unicode/utf8"
)

// Processor is one of dataProcessingOptions: it converts a record as the Kinesis Agent's
// converter of the same name does, newline at the end included.
type Processor interface {
	// Process appends the converted rec to dst and returns it; false drops the record (a
	// LOGTOJSON record its pattern does not match, as the Kinesis Agent drops it). rec is
	// not kept.
	Process(dst, rec []byte) ([]byte, bool)
}

func parseProcessor(raw map[string]json.RawMessage, at string, warnings *[]string) (Processor, error) {
	var name string
	if err := decodeKey(raw, at, "optionName", &name); err != nil {
		return nil, err
	}
	bad := func(key, format string, a ...any) (Processor, error) {
		return nil, fmt.Errorf("%w: %s%s: %s", ErrConfig, at, key, fmt.Sprintf(format, a...))
	}
	known := map[string][]string{
		"SINGLELINE":  {"optionName"},
		"CSVTOJSON":   {"optionName", "customFieldNames", "delimiter", "jsonFormat"},
		"LOGTOJSON":   {"optionName", "logFormat", "matchPattern", "customFieldNames", "jsonFormat"},
		"ADDMETADATA": {"optionName", "metadata", "metadataFields", "jsonFormat"},
	}[name]
	if known == nil {
		return bad("optionName", "%q: want SINGLELINE, CSVTOJSON, LOGTOJSON or ADDMETADATA", name)
	}
	if err := checkKeys(raw, at, known, nil, warnings); err != nil {
		return nil, err
	}
	var format string
	if err := decodeKey(raw, at, "jsonFormat", &format); err != nil {
		return nil, err
	}
	if format != "" && format != "COMPACT" {
		return bad("jsonFormat", "%q: only COMPACT is implemented", format)
	}
	var fields []string
	if err := decodeKey(raw, at, "customFieldNames", &fields); err != nil {
		return nil, err
	}
	switch name {
	case "SINGLELINE":
		return singleLine{}, nil
	case "CSVTOJSON":
		delim := ","
		if err := decodeKey(raw, at, "delimiter", &delim); err != nil {
			return nil, err
		}
		if len(fields) == 0 {
			return bad("customFieldNames", "required")
		}
		// The Kinesis Agent splits with Java's String.split: the delimiter is a regular
		// expression.
		re, err := regexp.Compile(delim)
		if err != nil || delim == "" {
			return bad("delimiter", "%q is not a regular expression: %v", delim, err)
		}
		c := &csvToJSON{names: quoteNames(fields), delim: re}
		if regexp.QuoteMeta(delim) == delim {
			c.literal = []byte(delim)
		}
		return c, nil
	case "LOGTOJSON":
		var logFormat, pattern string
		for _, d := range []struct {
			key string
			dst *string
		}{{"logFormat", &logFormat}, {"matchPattern", &pattern}} {
			if err := decodeKey(raw, at, d.key, d.dst); err != nil {
				return nil, err
			}
		}
		lf, ok := logFormats[logFormat]
		if !ok {
			return bad("logFormat", "%q: want COMMONAPACHELOG, COMBINEDAPACHELOG, APACHEERRORLOG, SYSLOG or RFC3339SYSLOG", logFormat)
		}
		p := &logToJSON{re: lf.re, names: quoteNames(lf.fields), dashIsNull: lf.dashIsNull}
		switch {
		case pattern != "" && len(fields) == 0:
			return bad("customFieldNames", "required with matchPattern")
		case pattern != "":
			re, err := regexp.Compile(pattern)
			if err != nil {
				return bad("matchPattern", "%v", err)
			}
			p.re = anchored(re)
			p.names = quoteNames(fields)
		case len(fields) > 0 && len(fields) != len(lf.fields):
			return bad("customFieldNames", "%d names for the %d fields of %s; give matchPattern to change them", len(fields), len(lf.fields), logFormat)
		case len(fields) > 0:
			p.names = quoteNames(fields)
		}
		if p.re.NumSubexp() != len(p.names) {
			return bad("customFieldNames", "%d names for the %d groups of the pattern", len(p.names), p.re.NumSubexp())
		}
		return p, nil
	default: // ADDMETADATA
		m, ok := raw["metadata"]
		if !ok {
			m, ok = raw["metadataFields"]
		}
		if !ok {
			return bad("metadata", "required")
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, m); err != nil {
			return bad("metadata", "%v", err)
		}
		return &addMetadata{prefix: append(append([]byte(`{"metadata":`), compact.Bytes()...), `,"data":`...)}, nil
	}
}

// anchored returns re made to match a whole record, as Java's Matcher.matches does.
func anchored(re *regexp.Regexp) *regexp.Regexp {
	return regexp.MustCompile(`^(?:` + re.String() + `)$`)
}

// quoteNames returns each name as a JSON string followed by a colon.
func quoteNames(names []string) [][]byte {
	out := make([][]byte, len(names))
	for i, n := range names {
		out[i] = append(appendJSONString(nil, []byte(n)), ':')
	}
	return out
}

// trimNewline returns rec without one trailing "\n", as the Kinesis Agent's converters
// take it off before and put it back after.
func trimNewline(rec []byte) []byte {
	if n := len(rec); n > 0 && rec[n-1] == '\n' {
		return rec[:n-1]
	}
	return rec
}

// singleLine is SINGLELINE: the record's lines, each trimmed of leading and trailing
// whitespace and control characters (Java's trim), joined, with one newline at the end.
type singleLine struct{}

func (singleLine) Process(dst, rec []byte) ([]byte, bool) {
	for len(rec) > 0 {
		line := rec
		if i := bytes.IndexByte(rec, '\n'); i >= 0 {
			line, rec = rec[:i], rec[i+1:]
		} else {
			rec = nil
		}
		dst = append(dst, javaTrim(line)...)
	}
	return append(dst, '\n'), true
}

// javaTrim strips the bytes at or below ' ' from both ends.
func javaTrim(b []byte) []byte {
	for len(b) > 0 && b[0] <= ' ' {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] <= ' ' {
		b = b[:len(b)-1]
	}
	return b
}

// csvToJSON is CSVTOJSON: {"name":"column",…} with null for a missing column.
type csvToJSON struct {
	names   [][]byte // JSON-quoted, with the colon
	delim   *regexp.Regexp
	literal []byte // the delimiter when it has no regular expression syntax: split with bytes.Index
	cols    [][2]int
}

// split sets c.cols to the columns of rec as Java's String.split finds them: the empty
// columns at the end are dropped, except the one column of an empty record.
func (c *csvToJSON) split(rec []byte) {
	c.cols = c.cols[:0]
	start := 0
	for start <= len(rec) {
		s, e := -1, -1
		if c.literal != nil {
			if i := bytes.Index(rec[start:], c.literal); i >= 0 {
				s, e = start+i, start+i+len(c.literal)
			}
		} else if m := c.delim.FindIndex(rec[start:]); m != nil && m[1] > 0 {
			s, e = start+m[0], start+m[1]
		}
		if s < 0 {
			c.cols = append(c.cols, [2]int{start, len(rec)})
			break
		}
		c.cols = append(c.cols, [2]int{start, s})
		start = e
	}
	if len(rec) == 0 {
		return
	}
	for len(c.cols) > 0 && c.cols[len(c.cols)-1][0] == c.cols[len(c.cols)-1][1] {
		c.cols = c.cols[:len(c.cols)-1]
	}
}

func (c *csvToJSON) Process(dst, rec []byte) ([]byte, bool) {
	rec = trimNewline(rec)
	c.split(rec)
	dst = append(dst, '{')
	for i, name := range c.names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, name...)
		if i < len(c.cols) {
			dst = appendJSONString(dst, rec[c.cols[i][0]:c.cols[i][1]])
		} else {
			dst = append(dst, "null"...)
		}
	}
	return append(dst, "}\n"...), true
}

// logToJSON is LOGTOJSON: the groups of the format's pattern, named by its fields.
type logToJSON struct {
	re         *regexp.Regexp
	names      [][]byte
	dashIsNull bool // the Apache formats write "-" for a field they lack: null
}

func (l *logToJSON) Process(dst, rec []byte) ([]byte, bool) {
	rec = trimNewline(rec)
	m := l.re.FindSubmatchIndex(rec)
	if m == nil {
		return dst, false
	}
	dst = append(dst, '{')
	for i, name := range l.names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, name...)
		s, e := m[2*i+2], m[2*i+3]
		if s < 0 || l.dashIsNull && e-s == 1 && rec[s] == '-' {
			dst = append(dst, "null"...)
			continue
		}
		dst = appendJSONString(dst, rec[s:e])
	}
	return append(dst, "}\n"...), true
}

// addMetadata is ADDMETADATA: {"metadata":…,"data":"the record"}.
type addMetadata struct {
	prefix []byte // {"metadata":<the configured value>,"data":
}

func (a *addMetadata) Process(dst, rec []byte) ([]byte, bool) {
	dst = append(dst, a.prefix...)
	dst = appendJSONString(dst, trimNewline(rec))
	return append(dst, "}\n"...), true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way Jackson writes it: '"' and '\\'
// escaped, control characters as \n \t \r \b \f or \u00XX, everything else as it is (no
// HTML escaping); invalid UTF-8 becomes U+FFFD, as Java's decoding makes it.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune(s[i:])
			if r != utf8.RuneError || n != 1 {
				i += n
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
