package agent

import "regexp"

// The patterns of LOGTOJSON's log formats, built as the Kinesis Agent builds them (its
// PatternConstants), in RE2 syntax: a record is converted when the pattern matches it whole.
const (
	reInt       = `(?:[+-]?(?:[0-9]+))`
	rePosInt    = `(?:[1-9][0-9]*)`
	reNonNegInt = `(?:[0-9]+)`
	reWord      = `\w+`
	reNoQuote   = `[^"]+`
	reIP        = `(?:[\d\.]+)`
	reHostname  = `(?:[\w\-]+)(?:\.(?:[\w\-]+))*(?:\.?|\b)`
	reIPOrHost  = `(?:` + reHostname + `|` + reIP + `)`
	reURIHost   = `(?:` + reIPOrHost + `(?::` + rePosInt + `)?)`
	reUser      = `(?:[a-zA-Z0-9._-]+)`
	reMonthDay  = `(?:(?:0[1-9])|(?:[12][0-9])|(?:3[01])|[1-9])`
	reDay       = `(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)`
	reMonth     = `\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|Sep(?:tember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b`
	reYear      = `(?:[1-9]\d*)`
	reTime      = `(?:(?:2[0123]|[01]?[0-9]):(?:[0-5][0-9]):(?:(?:[0-5]?[0-9]|60)(?:[:\.,][0-9]+)?))`
	reHTTPDate  = `(?:` + reMonthDay + `/` + reMonth + `/` + reYear + `:` + reTime + `\s` + reInt + `)`
	reErrorTime = `(?:` + reDay + `\s+` + reMonth + `\s+` + reMonthDay + `\s+` + reTime + `\s+` + reYear + `)`
	reSyslogTS  = `(?:` + reMonth + `\s+` + reMonthDay + `\s+` + reTime + `)`
	reRFC3339   = `(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)(?:Z|(?:[-+]\d{2}:\d{2}))`
	reFacility  = `<` + reNonNegInt + `.` + reNonNegInt + `>`
	reProg      = `([\w\._/%-]+)(?:\[(` + rePosInt + `)\])?`

	reCommon = `(` + reIPOrHost + `) (` + reUser + `) (` + reUser + `) \[(` + reHTTPDate + `)\] "(` + reNoQuote +
		`)" (` + reInt + `|\-) (` + reInt + `|\-)`
	reCombined   = reCommon + ` "(` + reNoQuote + `)" "(` + reNoQuote + `)"`
	reApacheErr  = `\[(` + reErrorTime + `)\] \[(?:(` + reWord + `):)?(` + reWord + `)\] \[pid (` + reNonNegInt + `)(?::tid (` + reNonNegInt + `))?\] \[client (` + reURIHost + `)\] (.*)`
	reSyslogTail = ` (?:` + reFacility + ` )?(` + reUser + `) ` + reProg + `: (.*)`
)

// logFormat is one of LOGTOJSON's formats: its pattern and the names of its groups.
type logFormat struct {
	re         *regexp.Regexp
	fields     []string
	dashIsNull bool
}

var (
	commonFields = []string{"host", "ident", "authuser", "datetime", "request", "response", "bytes"}
	syslogFields = []string{"timestamp", "hostname", "program", "processid", "message"}

	logFormats = map[string]logFormat{
		"COMMONAPACHELOG":   {regexp.MustCompile(`^` + reCommon + `.*$`), commonFields, true},
		"COMBINEDAPACHELOG": {regexp.MustCompile(`^` + reCombined + `.*$`), append(commonFields[:len(commonFields):len(commonFields)], "referer", "agent"), true},
		"APACHEERRORLOG": {regexp.MustCompile(`^` + reApacheErr + `$`),
			[]string{"timestamp", "module", "severity", "processid", "threadid", "client", "message"}, true},
		"SYSLOG":        {regexp.MustCompile(`^(` + reSyslogTS + `)` + reSyslogTail + `$`), syslogFields, false},
		"RFC3339SYSLOG": {regexp.MustCompile(`^(` + reRFC3339 + `)` + reSyslogTail + `$`), syslogFields, false},
	}
)
