package iam

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Condition keys sluice supplies. Key names are matched ignoring case, as AWS matches them;
// any other key is accepted in a policy and is absent from every request.
type keyID uint8

const (
	keyUnknown keyID = iota
	keySourceIP
	keySecureTransport
	keyCurrentTime
	keyEpochTime
	keyPrincipalAccount
	keyPrincipalARN
	keyUserName
	keyUserID
)

var keyIDs = map[string]keyID{
	"aws:sourceip":         keySourceIP,
	"aws:securetransport":  keySecureTransport,
	"aws:currenttime":      keyCurrentTime,
	"aws:epochtime":        keyEpochTime,
	"aws:principalaccount": keyPrincipalAccount,
	"aws:principalarn":     keyPrincipalARN,
	"aws:username":         keyUserName,
	"aws:userid":           keyUserID,
}

// valueType is how an operator reads the values it compares.
type valueType uint8

const (
	tString valueType = iota
	tStringFold
	tLike
	tNumeric
	tDate
	tBool
	tBinary
	tIP
	tARN
	tNull
)

// rel is the comparison of a numeric or date operator.
type rel uint8

const (
	relEq rel = iota
	relLT
	relLE
	relGT
	relGE
)

type operator struct {
	typ    valueType
	rel    rel
	negate bool // the …Not… operators: true when no value matches, and when the key is absent
}

// operators are the condition operators of AWS's reference, by lower-case name.
var operators = map[string]operator{
	"stringequals":              {typ: tString},
	"stringnotequals":           {typ: tString, negate: true},
	"stringequalsignorecase":    {typ: tStringFold},
	"stringnotequalsignorecase": {typ: tStringFold, negate: true},
	"stringlike":                {typ: tLike},
	"stringnotlike":             {typ: tLike, negate: true},
	"numericequals":             {typ: tNumeric},
	"numericnotequals":          {typ: tNumeric, negate: true},
	"numericlessthan":           {typ: tNumeric, rel: relLT},
	"numericlessthanequals":     {typ: tNumeric, rel: relLE},
	"numericgreaterthan":        {typ: tNumeric, rel: relGT},
	"numericgreaterthanequals":  {typ: tNumeric, rel: relGE},
	"dateequals":                {typ: tDate},
	"datenotequals":             {typ: tDate, negate: true},
	"datelessthan":              {typ: tDate, rel: relLT},
	"datelessthanequals":        {typ: tDate, rel: relLE},
	"dategreaterthan":           {typ: tDate, rel: relGT},
	"dategreaterthanequals":     {typ: tDate, rel: relGE},
	"bool":                      {typ: tBool},
	"binaryequals":              {typ: tBinary},
	"ipaddress":                 {typ: tIP},
	"notipaddress":              {typ: tIP, negate: true},
	"arnequals":                 {typ: tARN},
	"arnlike":                   {typ: tARN},
	"arnnotequals":              {typ: tARN, negate: true},
	"arnnotlike":                {typ: tARN, negate: true},
	"null":                      {typ: tNull},
}

// condition is one operator applied to one key with its values (ORed). A statement's
// conditions are ANDed.
type condition struct {
	operator
	ifExists bool // …IfExists: true when the key is absent
	forAll   bool // ForAllValues: true when the key is absent
	key      keyID
	strs     []string    // tString, tStringFold, tLike, tBinary, tARN
	strVars  [][]segment // the policy variables of strs[i]; nil when none has any
	nums     []float64
	times    []time.Time
	bools    []bool // tBool; tNull (true: the key must be absent)
	prefixes []netip.Prefix
}

func parseConditions(raw json.RawMessage, at, version string) ([]condition, error) {
	ops, err := object(raw, at)
	if err != nil {
		return nil, err
	}
	var out []condition
	for _, opName := range slices.Sorted(maps.Keys(ops)) {
		opAt := at + "." + opName
		base, forAll := opName, false
		if p, rest, ok := strings.Cut(base, ":"); ok {
			switch strings.ToLower(p) {
			case "foranyvalue":
			case "forallvalues":
				forAll = true
			default:
				return nil, malformed(opAt, "unknown set operator %q (ForAnyValue and ForAllValues are allowed)", p)
			}
			base = rest
		}
		lname := strings.ToLower(base)
		ifExists := false
		if s, ok := strings.CutSuffix(lname, "ifexists"); ok && s != "null" {
			lname, ifExists = s, true
		}
		op, ok := operators[lname]
		if !ok {
			return nil, malformed(opAt, "unknown condition operator %q", base)
		}
		keys, err := object(ops[opName], opAt)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return nil, malformed(opAt, "names no condition key")
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			c := condition{operator: op, ifExists: ifExists, forAll: forAll, key: keyIDs[strings.ToLower(k)]}
			if err := c.compile(keys[k], opAt+"."+k, version); err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// conditionValues decodes a condition's value: a string, number or boolean, or a non-empty
// array of them, each returned as its text.
func conditionValues(raw json.RawMessage, at string) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, malformed(at, "must be a string, number or boolean, or an array of them")
	}
	scalar := func(v any) (string, bool) {
		switch x := v.(type) {
		case string:
			return x, true
		case json.Number:
			return x.String(), true
		case bool:
			return strconv.FormatBool(x), true
		}
		return "", false
	}
	if l, ok := v.([]any); ok {
		if len(l) == 0 {
			return nil, malformed(at, "must not be an empty array")
		}
		out := make([]string, len(l))
		for i, e := range l {
			if out[i], ok = scalar(e); !ok {
				return nil, malformed(at, "must be a string, number or boolean, or an array of them")
			}
		}
		return out, nil
	}
	s, ok := scalar(v)
	if !ok {
		return nil, malformed(at, "must be a string, number or boolean, or an array of them")
	}
	return []string{s}, nil
}

func (c *condition) compile(raw json.RawMessage, at, version string) error {
	vals, err := conditionValues(raw, at)
	if err != nil {
		return err
	}
	for _, v := range vals {
		switch c.typ {
		case tString, tStringFold, tLike, tBinary, tARN:
			c.strs = append(c.strs, v)
		case tNumeric:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return malformed(at, "%q is not a number", v)
			}
			c.nums = append(c.nums, f)
		case tDate:
			t, ok := parseDate(v)
			if !ok {
				return malformed(at, "%q is not a date (ISO 8601, as 2026-01-31T12:00:00Z or 2026-01-31, or epoch seconds)", v)
			}
			c.times = append(c.times, t)
		case tBool, tNull:
			b, ok := parseBool(v)
			if !ok {
				return malformed(at, "%q is not true or false", v)
			}
			c.bools = append(c.bools, b)
		case tIP:
			p, err := parseIPRange(v)
			if err != nil {
				return malformed(at, "%q is not an IP address or CIDR range", v)
			}
			c.prefixes = append(c.prefixes, p)
		default:
			panic(fmt.Sprintf("BUG: condition type %d", c.typ))
		}
	}
	if c.typ != tBinary {
		c.strVars, err = compileAllVars(c.strs, version, at)
	}
	return err
}

// parseBool reads true or false in any case, as AWS reads Bool and Null values.
func parseBool(s string) (b, ok bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

func parseIPRange(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// dateLayouts are the ISO 8601 forms accepted in Date conditions.
var dateLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z07:00", "2006-01-02"}

func parseDate(s string) (time.Time, bool) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(n, 0).UTC(), true
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// eval reports whether the condition holds for r.
func (c *condition) eval(r *Request) bool {
	if c.typ == tNull {
		absent := !r.has(c.key)
		return slices.Contains(c.bools, absent)
	}
	if !r.has(c.key) {
		return c.ifExists || c.forAll || c.negate
	}
	return c.matchAny(r) != c.negate
}

// matchAny reports whether the request's value of c.key matches one of c's values.
func (c *condition) matchAny(r *Request) bool {
	switch c.typ {
	case tString, tBinary, tStringFold, tLike, tARN:
		s := r.text(c.key)
		for i, v := range c.strs {
			if c.strVars != nil && c.strVars[i] != nil {
				var buf [256]byte
				e, ok := expand(buf[:0], c.strVars[i], r)
				if !ok {
					continue
				}
				v = string(e)
			}
			if c.matchString(v, s) {
				return true
			}
		}
		return false
	case tNumeric:
		x, ok := r.number(c.key)
		return ok && slices.ContainsFunc(c.nums, func(v float64) bool { return holds(c.rel, compareFloat(x, v)) })
	case tDate:
		t, ok := r.time(c.key)
		return ok && slices.ContainsFunc(c.times, func(v time.Time) bool { return holds(c.rel, t.Compare(v)) })
	case tBool:
		b, ok := r.boolean(c.key)
		return ok && slices.Contains(c.bools, b)
	case tIP:
		a, ok := r.addr(c.key)
		return ok && slices.ContainsFunc(c.prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	panic(fmt.Sprintf("BUG: condition type %d", c.typ))
}

// matchString compares a policy value v with the request's value s.
func (c *condition) matchString(v, s string) bool {
	switch c.typ {
	case tStringFold:
		return strings.EqualFold(v, s)
	case tLike:
		return glob(v, s, false)
	case tARN:
		return arnLike(v, s)
	}
	return v == s
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// holds reports whether a comparison result cmp (request value against policy value)
// satisfies rel.
func holds(r rel, cmp int) bool {
	switch r {
	case relLT:
		return cmp < 0
	case relLE:
		return cmp <= 0
	case relGT:
		return cmp > 0
	case relGE:
		return cmp >= 0
	}
	return cmp == 0
}
