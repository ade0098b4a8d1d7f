package iam

import (
	"strings"
)

// Policy variables. In a 2012-10-17 document, ${key} in a Resource or NotResource pattern or
// in a string or ARN condition value stands for the request's value of the condition key
// (${aws:username}, ${aws:userid}, ${aws:PrincipalAccount}, …), and ${key, 'default'} for
// that value or the default when the request has none. ${$} is a literal $. A variable
// without a value and without a default makes the pattern match nothing, as in AWS. In a
// 2008-10-17 document the text is literal.

// segment is one piece of a pattern with variables: literal text, or a key's value.
type segment struct {
	lit    string
	key    keyID
	isVar  bool
	def    string
	hasDef bool
}

// compileVars splits a pattern into segments; nil when it holds no variable (or the document
// is 2008-10-17).
func compileVars(pattern, version, at string) ([]segment, error) {
	if version != Version2012 || !strings.Contains(pattern, "${") {
		return nil, nil
	}
	var segs []segment
	for {
		i := strings.Index(pattern, "${")
		j := strings.IndexByte(pattern[max(i, 0):], '}')
		if i < 0 || j < 0 {
			if pattern != "" {
				segs = append(segs, segment{lit: pattern})
			}
			return segs, nil
		}
		if i > 0 {
			segs = append(segs, segment{lit: pattern[:i]})
		}
		body := pattern[i+2 : i+j]
		pattern = pattern[i+j+1:]
		name, def, hasDef := strings.Cut(body, ",")
		name = strings.TrimSpace(name)
		switch name {
		case "$":
			segs = append(segs, segment{lit: "$"})
			continue
		case "*", "?":
			return nil, malformed(at, "the policy variable ${%s} (a literal wildcard character) is not supported", name)
		}
		seg := segment{isVar: true, key: keyIDs[strings.ToLower(name)], hasDef: hasDef}
		if hasDef {
			d := strings.TrimSpace(def)
			if len(d) < 2 || d[0] != '\'' || d[len(d)-1] != '\'' {
				return nil, malformed(at, "the default of ${%s} must be quoted, as in ${%s, 'default'}", name, name)
			}
			seg.def = d[1 : len(d)-1]
		}
		segs = append(segs, seg)
	}
}

// expand appends the pattern the segments make for req to dst; ok is false when a variable
// has neither a value nor a default.
func expand(dst []byte, segs []segment, req *Request) (_ []byte, ok bool) {
	for i := range segs {
		s := &segs[i]
		switch {
		case !s.isVar:
			dst = append(dst, s.lit...)
		case req.has(s.key):
			dst = append(dst, req.text(s.key)...)
		case s.hasDef:
			dst = append(dst, s.def...)
		default:
			return dst, false
		}
	}
	return dst, true
}

// matchPatterns reports whether s matches one of patterns, expanding the variables of those
// that have any (vars[i] for patterns[i]; vars is nil when none has). Expansion uses a stack
// buffer, so that a typical ARN costs no allocation.
func matchPatterns(patterns []string, vars [][]segment, s string, req *Request, fold bool) bool {
	for i, p := range patterns {
		if vars == nil || vars[i] == nil {
			if glob(p, s, fold) {
				return true
			}
			continue
		}
		var buf [256]byte
		if e, ok := expand(buf[:0], vars[i], req); ok && glob(e, s, fold) {
			return true
		}
	}
	return false
}

// compileAllVars compiles the variables of every pattern; nil when none has any.
func compileAllVars(patterns []string, version, at string) ([][]segment, error) {
	var out [][]segment
	for i, p := range patterns {
		segs, err := compileVars(p, version, at)
		if err != nil {
			return nil, err
		}
		if segs != nil && out == nil {
			out = make([][]segment, len(patterns))
		}
		if segs != nil {
			out[i] = segs
		}
	}
	return out, nil
}
