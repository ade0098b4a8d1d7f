package deliver

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Prefix is a compiled Prefix or ErrorOutputPrefix: literal text and !{namespace:value}
// expressions, evaluated for each object:
//
//   - !{timestamp:PATTERN}: the approximate arrival time of the object's oldest record, in
//     the configuration's time zone, formatted by a Java DateTimeFormatter pattern. The
//     letters y (yy: two digits), M, d, D (day of the year), H, m and s are supported, each
//     repeated to its width (MM, dd, …); text in single quotes is literal, and ” is a
//     quote. Every other letter is refused.
//   - !{firehose:random-string}: 11 lowercase hexadecimal characters, a new string at each
//     use, drawn from the object's seed (see objectSeed): the same object gets the same
//     string again after a restart.
//   - !{firehose:error-output-type}: processing-failed (in ErrorOutputPrefix only).
type Prefix struct {
	src   string
	parts []prefixPart
}

type partKind uint8

const (
	partLiteral partKind = iota
	partTimestamp
	partRandom
	partErrorType
)

type prefixPart struct {
	kind partKind
	lit  string
	ts   []tsElem // of a timestamp
}

// tsElem is a field of a timestamp pattern (letter repeated width times) or, with letter
// 0, literal text.
type tsElem struct {
	letter byte
	width  int
	lit    string
}

// maxPrefixLen is the longest a prefix may be once evaluated, as on Firehose.
const maxPrefixLen = 512

// defaultTimePrefix is what Firehose appends to a prefix without a timestamp expression,
// and the whole prefix when there is none: the hour's folder, YYYY/MM/dd/HH/.
const defaultTimePrefix = "!{timestamp:yyyy/MM/dd/HH/}"

// errorOutputType is the value of !{firehose:error-output-type}: the only failure a
// delivery without a Lambda transform or format conversion has is one of processing.
const errorOutputType = "processing-failed"

// parsePrefixes compiles Prefix and ErrorOutputPrefix (nil: absent) by Firehose's rules:
// a prefix without a timestamp expression gets !{timestamp:yyyy/MM/dd/HH/} appended; the
// error prefix may be absent only if the prefix has no expression, and is then the
// prefix, the error output type and the hour's folder; an error prefix with expressions
// must use !{firehose:error-output-type}, which the prefix may not; neither may be longer
// than 512 characters once evaluated.
func parsePrefixes(prefix, errPrefix *string) (Prefix, Prefix, error) {
	given := ""
	if prefix != nil {
		given = *prefix
	}
	p, err := parsePrefix(given)
	if err != nil {
		return Prefix{}, Prefix{}, fmt.Errorf("Prefix: %v", err)
	}
	hasExpr := len(p.parts) > 1 || len(p.parts) == 1 && p.parts[0].kind != partLiteral
	if p.has(partErrorType) {
		return Prefix{}, Prefix{}, fmt.Errorf("Prefix: !{firehose:error-output-type} may be used in ErrorOutputPrefix only")
	}
	if !p.has(partTimestamp) {
		if p, err = parsePrefix(given + defaultTimePrefix); err != nil {
			return Prefix{}, Prefix{}, fmt.Errorf("Prefix: %v", err)
		}
	}
	var e Prefix
	switch {
	case errPrefix == nil || *errPrefix == "":
		if hasExpr {
			return Prefix{}, Prefix{}, fmt.Errorf("ErrorOutputPrefix is required when Prefix has expressions")
		}
		e, err = parsePrefix(given + "!{firehose:error-output-type}/" + defaultTimePrefix)
	default:
		e, err = parsePrefix(*errPrefix)
		if err == nil && len(e.parts) > 0 && (len(e.parts) > 1 || e.parts[0].kind != partLiteral) && !e.has(partErrorType) {
			err = fmt.Errorf("an ErrorOutputPrefix with expressions must use !{firehose:error-output-type}")
		}
	}
	if err != nil {
		return Prefix{}, Prefix{}, fmt.Errorf("ErrorOutputPrefix: %v", err)
	}
	sample := time.Date(2000, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, x := range []struct {
		name string
		p    *Prefix
	}{{"Prefix", &p}, {"ErrorOutputPrefix", &e}} {
		if n := len(x.p.appendEval(nil, sample, &objectSeed{})); n > maxPrefixLen {
			return Prefix{}, Prefix{}, fmt.Errorf("%s is %d characters once evaluated: at most %d", x.name, n, maxPrefixLen)
		}
	}
	return p, e, nil
}

// parsePrefix compiles one prefix.
func parsePrefix(s string) (Prefix, error) {
	p := Prefix{src: s}
	rest := s
	for rest != "" {
		i := strings.Index(rest, "!{")
		if i < 0 {
			p.parts = append(p.parts, prefixPart{kind: partLiteral, lit: rest})
			break
		}
		if i > 0 {
			p.parts = append(p.parts, prefixPart{kind: partLiteral, lit: rest[:i]})
		}
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return Prefix{}, fmt.Errorf("%q: !{ without its closing }", s)
		}
		expr := rest[i+2 : i+end]
		rest = rest[i+end+1:]
		ns, val, ok := strings.Cut(expr, ":")
		switch {
		case !ok:
			return Prefix{}, fmt.Errorf("!{%s}: want !{namespace:value}", expr)
		case ns == "timestamp":
			ts, err := parseTimestampPattern(val)
			if err != nil {
				return Prefix{}, fmt.Errorf("!{%s}: %v", expr, err)
			}
			p.parts = append(p.parts, prefixPart{kind: partTimestamp, ts: ts})
		case ns == "firehose" && val == "random-string":
			p.parts = append(p.parts, prefixPart{kind: partRandom})
		case ns == "firehose" && val == "error-output-type":
			p.parts = append(p.parts, prefixPart{kind: partErrorType})
		case ns == "firehose":
			return Prefix{}, fmt.Errorf("!{%s}: the firehose namespace has random-string and error-output-type", expr)
		case ns == "partitionKeyFromQuery" || ns == "partitionKeyFromLambda":
			return Prefix{}, fmt.Errorf("!{%s}: dynamic partitioning is not supported", expr)
		default:
			return Prefix{}, fmt.Errorf("!{%s}: unknown namespace %q: want timestamp or firehose", expr, ns)
		}
	}
	return p, nil
}

// parseTimestampPattern compiles the supported subset of a Java DateTimeFormatter pattern.
func parseTimestampPattern(pat string) ([]tsElem, error) {
	if pat == "" {
		return nil, fmt.Errorf("an empty pattern")
	}
	var out []tsElem
	lit := func(s string) {
		if n := len(out); n > 0 && out[n-1].letter == 0 {
			out[n-1].lit += s
			return
		}
		out = append(out, tsElem{lit: s})
	}
	for i := 0; i < len(pat); {
		ch := pat[i]
		switch {
		case ch == '\'':
			if i+1 < len(pat) && pat[i+1] == '\'' {
				lit("'")
				i += 2
				continue
			}
			end := strings.IndexByte(pat[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("pattern %q: a quote without its closing quote", pat)
			}
			lit(pat[i+1 : i+1+end])
			i += end + 2
		case ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z':
			n := 1
			for i+n < len(pat) && pat[i+n] == ch {
				n++
			}
			max := map[byte]int{'y': 9, 'M': 2, 'd': 2, 'D': 3, 'H': 2, 'm': 2, 's': 2}[ch]
			if n > max {
				return nil, fmt.Errorf("pattern %q: %s is not supported: want y, yy, yyyy, M, MM, d, dd, D, DDD, H, HH, m, mm, s or ss (text in single quotes)", pat, pat[i:i+n])
			}
			out = append(out, tsElem{letter: ch, width: n})
			i += n
		case ch == '[' || ch == ']' || ch == '{' || ch == '}' || ch == '#':
			return nil, fmt.Errorf("pattern %q: %q is reserved", pat, ch)
		default:
			lit(string(ch))
			i++
		}
	}
	return out, nil
}

// has reports whether the prefix uses an expression of kind k.
func (p *Prefix) has(k partKind) bool {
	for _, x := range p.parts {
		if x.kind == k {
			return true
		}
	}
	return false
}

// String returns the prefix's text, with the default timestamp appended when it was.
func (p *Prefix) String() string { return p.src }

// appendEval appends the prefix evaluated at t (already in the configured zone) for the
// object whose seed is seed.
func (p *Prefix) appendEval(dst []byte, t time.Time, seed *objectSeed) []byte {
	for _, x := range p.parts {
		switch x.kind {
		case partLiteral:
			dst = append(dst, x.lit...)
		case partErrorType:
			dst = append(dst, errorOutputType...)
		case partRandom:
			dst = append(dst, seed.next(11)...)
		case partTimestamp:
			for _, e := range x.ts {
				dst = appendTimeField(dst, t, e)
			}
		}
	}
	return dst
}

// appendTimeField appends one field of a timestamp pattern.
func appendTimeField(dst []byte, t time.Time, e tsElem) []byte {
	var v int
	switch e.letter {
	case 0:
		return append(dst, e.lit...)
	case 'y':
		v = t.Year()
		if e.width == 2 {
			v %= 100
		}
	case 'M':
		v = int(t.Month())
	case 'd':
		v = t.Day()
	case 'D':
		v = t.YearDay()
	case 'H':
		v = t.Hour()
	case 'm':
		v = t.Minute()
	case 's':
		v = t.Second()
	}
	s := strconv.Itoa(v)
	for n := len(s); n < e.width; n++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// objectSeed makes the "random" parts of an object's name from what identifies the object:
// the delivery stream, the shard and the position of the object's first record. Firehose
// draws them at random; here a retry of the same records after a restart makes the same
// name and overwrites the object instead of adding a second copy.
type objectSeed struct {
	sum [sha256.Size]byte
	n   uint32 // strings drawn so far
}

// newObjectSeed returns the seed of the object of kind ("data" or "error") of deliveryStream
// whose first record is at position pos of shard.
func newObjectSeed(deliveryStream, kind string, shard uint32, pos uint64) objectSeed {
	h := sha256.New()
	h.Write([]byte(deliveryStream))
	h.Write([]byte{0})
	h.Write([]byte(kind))
	var b [12]byte
	binary.BigEndian.PutUint32(b[:4], shard)
	binary.BigEndian.PutUint64(b[4:], pos)
	h.Write(b[:])
	var s objectSeed
	h.Sum(s.sum[:0])
	return s
}

// next returns the next n hexadecimal characters (n ≤ 64) of the seed's stream.
func (s *objectSeed) next(n int) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], s.n)
	s.n++
	h := sha256.New()
	h.Write(s.sum[:])
	h.Write(b[:])
	var sum [sha256.Size]byte
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], h.Sum(sum[:0]))
	return out[:n]
}

// uuid returns the seed's UUID: the seed's first 16 bytes as an RFC 9562 version 8 UUID.
func (s *objectSeed) uuid() string {
	var u [16]byte
	copy(u[:], s.sum[:16])
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:])
	return string(out[:])
}
