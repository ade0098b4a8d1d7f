package iam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Kind is the type of a policy, by what it is attached to. It decides which elements a
// statement must and must not have, and names the policy type in an AccessDenied message.
type Kind uint8

const (
	// Identity policies are attached to a user; their statements name no Principal.
	Identity Kind = iota + 1
	// Resource policies are attached to a stream or a consumer (PutResourcePolicy); every
	// statement names its Principal or NotPrincipal.
	Resource
)

// String is the policy type as AWS's AccessDenied messages name it.
func (k Kind) String() string {
	switch k {
	case Identity:
		return "identity-based"
	case Resource:
		return "resource-based"
	}
	return "unknown"
}

// Effect is what a statement does to the requests it applies to.
type Effect uint8

const (
	Allow Effect = iota + 1
	Deny
)

func (e Effect) String() string {
	switch e {
	case Allow:
		return "Allow"
	case Deny:
		return "Deny"
	}
	return "unknown"
}

// Policy versions. A document without Version is read as 2008-10-17, as AWS reads it.
const (
	Version2012 = "2012-10-17"
	Version2008 = "2008-10-17"
)

// MaxDocumentSize bounds the documents Parse reads, so that a hostile document cannot make
// it allocate without bound. AWS's own limits (6,144 characters for a managed policy,
// 20 KiB for a Kinesis resource policy) are lower; callers enforce them.
const MaxDocumentSize = 64 << 10

// Policy is a parsed policy document. It is immutable once Parse returns it and safe for
// concurrent use; evaluating it allocates nothing.
type Policy struct {
	name    string
	kind    Kind
	version string
	id      string
	stmts   []statement
}

// Name is the name the policy was parsed with: what decisions and messages call it.
func (p *Policy) Name() string { return p.name }

// Kind is whether the policy is identity-based or resource-based.
func (p *Policy) Kind() Kind { return p.kind }

// Version is the document's Version, Version2008 when it had none.
func (p *Policy) Version() string { return p.version }

// Statements is the number of statements in the document.
func (p *Policy) Statements() int { return len(p.stmts) }

// statement is one compiled statement. Patterns are kept as written: actions are matched
// ignoring ASCII case, resources exactly, both with * and ? wildcards (match.go).
type statement struct {
	sid          string
	effect       Effect
	notAction    bool
	actions      []string
	notResource  bool
	resources    []string
	resourceVars [][]segment // the policy variables of resources[i]; nil when none has any
	notPrincipal bool
	principal    *principals // nil in identity policies
	conds        []condition
}

// Parse reads a policy document of the given kind. name identifies it in decisions and
// messages (an identity policy's ARN or name, a resource's ARN). Every error wraps
// ErrMalformed and names the element at fault.
func Parse(kind Kind, name string, doc []byte) (*Policy, error) {
	if kind != Identity && kind != Resource {
		panic(fmt.Sprintf("BUG: iam.Parse with kind %d", kind))
	}
	if len(doc) > MaxDocumentSize {
		return nil, malformed("", "the document is %d bytes, more than the %d allowed", len(doc), MaxDocumentSize)
	}
	top, err := object(doc, "the document")
	if err != nil {
		return nil, err
	}
	p := &Policy{name: name, kind: kind, version: Version2008}
	var stmtRaw json.RawMessage
	for _, k := range slices.Sorted(maps.Keys(top)) {
		v := top[k]
		switch k {
		case "Version":
			s, err := str(v, "Version")
			if err != nil {
				return nil, err
			}
			if s != Version2012 && s != Version2008 {
				return nil, malformed("Version", "must be %q or %q, got %q", Version2012, Version2008, s)
			}
			p.version = s
		case "Id":
			if p.id, err = str(v, "Id"); err != nil {
				return nil, err
			}
		case "Statement":
			stmtRaw = v
		default:
			return nil, malformed("", "unknown element %q at the top level (Version, Id and Statement are allowed)", k)
		}
	}
	if stmtRaw == nil {
		return nil, malformed("", "the document has no Statement")
	}
	var raws []json.RawMessage
	switch firstByte(stmtRaw) {
	case '{':
		raws = []json.RawMessage{stmtRaw}
	case '[':
		if err := json.Unmarshal(stmtRaw, &raws); err != nil {
			return nil, malformed("Statement", "must be an object or an array of objects")
		}
		if len(raws) == 0 {
			return nil, malformed("Statement", "must not be empty")
		}
	default:
		return nil, malformed("Statement", "must be an object or an array of objects")
	}
	p.stmts = make([]statement, len(raws))
	for i, raw := range raws {
		at := "Statement"
		if firstByte(stmtRaw) == '[' {
			at = fmt.Sprintf("Statement[%d]", i)
		}
		if err := p.parseStatement(&p.stmts[i], raw, at); err != nil {
			return nil, err
		}
		if sid := p.stmts[i].sid; sid != "" && slices.ContainsFunc(p.stmts[:i], func(s statement) bool { return s.sid == sid }) {
			return nil, malformed(at+".Sid", "%q is used by another statement; Sids must be unique in a policy", sid)
		}
	}
	return p, nil
}

func (p *Policy) parseStatement(st *statement, raw json.RawMessage, at string) error {
	fields, err := object(raw, at)
	if err != nil {
		return err
	}
	var haveAction, haveResource, havePrincipal bool
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		el := at + "." + k
		switch k {
		case "Sid":
			if st.sid, err = str(v, el); err != nil {
				return err
			}
		case "Effect":
			s, err := str(v, el)
			if err != nil {
				return err
			}
			switch s {
			case "Allow":
				st.effect = Allow
			case "Deny":
				st.effect = Deny
			default:
				return malformed(el, "must be Allow or Deny, got %q", s)
			}
		case "Action", "NotAction":
			if haveAction {
				return malformed(at, "has both Action and NotAction; a statement takes one")
			}
			haveAction, st.notAction = true, k == "NotAction"
			if st.actions, err = strList(v, el); err != nil {
				return err
			}
			for _, a := range st.actions {
				if err := checkAction(a, el); err != nil {
					return err
				}
			}
		case "Resource", "NotResource":
			if haveResource {
				return malformed(at, "has both Resource and NotResource; a statement takes one")
			}
			haveResource, st.notResource = true, k == "NotResource"
			if st.resources, err = strList(v, el); err != nil {
				return err
			}
			for _, r := range st.resources {
				if err := checkResource(r, el); err != nil {
					return err
				}
			}
			if st.resourceVars, err = compileAllVars(st.resources, p.version, el); err != nil {
				return err
			}
		case "Principal", "NotPrincipal":
			if p.kind == Identity {
				return malformed(el, "an identity-based policy must not name a principal")
			}
			if havePrincipal {
				return malformed(at, "has both Principal and NotPrincipal; a statement takes one")
			}
			havePrincipal, st.notPrincipal = true, k == "NotPrincipal"
			if st.principal, err = parsePrincipal(v, el); err != nil {
				return err
			}
		case "Condition":
			if st.conds, err = parseConditions(v, el, p.version); err != nil {
				return err
			}
		default:
			return malformed(at, "unknown element %q", k)
		}
	}
	switch {
	case st.effect == 0:
		return malformed(at, "has no Effect")
	case !haveAction:
		return malformed(at, "has no Action or NotAction")
	case !haveResource:
		return malformed(at, "has no Resource or NotResource")
	case p.kind == Resource && !havePrincipal:
		return malformed(at, "has no Principal or NotPrincipal, which a resource-based policy requires")
	}
	return nil
}

// checkAction accepts "*" and "<service>:<pattern>" with a service prefix free of wildcards.
func checkAction(a, at string) error {
	if a == "*" {
		return nil
	}
	svc, rest, ok := strings.Cut(a, ":")
	if !ok || svc == "" || rest == "" || strings.ContainsAny(svc, "*?") || strings.ContainsAny(a, " \t\r\n") {
		return malformed(at, "action %q must be \"*\" or <service>:<action>, as in kinesis:PutRecord or kinesis:Get*", a)
	}
	return nil
}

// checkResource accepts "*" and ARN patterns "arn:<partition>:<service>:<rest>" whose
// service is spelt out (AWS: "Resource vendor must be fully qualified"); wildcards in the
// rest may span colons.
func checkResource(r, at string) error {
	if r == "*" {
		return nil
	}
	f := strings.SplitN(r, ":", 4)
	if len(f) != 4 || f[0] != "arn" || f[1] == "" || f[2] == "" || strings.ContainsAny(f[2], "*?") {
		return malformed(at, "resource %q must be \"*\" or an ARN (arn:partition:service:region:account:resource) naming its service without wildcards", r)
	}
	return nil
}

// object decodes a JSON object into its members, refusing anything else and trailing data.
func object(raw []byte, at string) (map[string]json.RawMessage, error) {
	if firstByte(raw) != '{' {
		return nil, malformed(at, "must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, malformed(at, "is not valid JSON: %v", jsonProblem(err))
	}
	if _, err := dec.Token(); err == nil {
		return nil, malformed(at, "has data after the JSON object")
	}
	return m, nil
}

// jsonProblem is a JSON error without the Go type names encoding/json puts in some of them.
func jsonProblem(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	return "a value of the wrong type"
}

func firstByte(raw []byte) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// str decodes a JSON string.
func str(raw json.RawMessage, at string) (string, error) {
	var s string
	if firstByte(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		return "", malformed(at, "must be a string")
	}
	return s, nil
}

// strList decodes a string or a non-empty array of strings.
func strList(raw json.RawMessage, at string) ([]string, error) {
	switch firstByte(raw) {
	case '"':
		s, err := str(raw, at)
		return []string{s}, err
	case '[':
		var l []string
		if json.Unmarshal(raw, &l) != nil {
			return nil, malformed(at, "must be a string or an array of strings")
		}
		if len(l) == 0 {
			return nil, malformed(at, "must not be an empty array")
		}
		return l, nil
	}
	return nil, malformed(at, "must be a string or an array of strings")
}
