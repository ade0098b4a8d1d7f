package iam

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
)

// Principal is who sends a request: an IAM user of an account, or the account's root user.
type Principal struct {
	Account  string // 12 digits
	ARN      string // arn:aws:iam::<account>:user/<path><name>, or arn:aws:iam::<account>:root
	UserName string // aws:username; "" for the root user
	UserID   string // aws:userid, the user's unique id ("AIDA…"), or the account id for root
}

// IsRoot reports whether p is its account's root user, whom identity policies do not bind.
func (p *Principal) IsRoot() bool {
	return p.Account != "" && strings.HasPrefix(p.ARN, "arn:") && strings.HasSuffix(p.ARN, ":root") &&
		arnAccount(p.ARN) == p.Account && strings.Count(p.ARN, ":") == 5
}

// principals is a compiled Principal or NotPrincipal element.
type principals struct {
	any      bool     // "*" or {"AWS": "*"}
	accounts []string // account ids, from "123456789012" or "arn:aws:iam::123456789012:root"
	arns     []string // IAM user, role and STS ARNs, compared exactly
	// Service, Federated and CanonicalUser principals are accepted and never match: sluice
	// has no such callers.
}

// match reports whether the statement's principal list names p, and whether it names p only
// through p's account (see Decide for what that changes within one account).
func (ps *principals) match(p *Principal) (ok, byAccount bool) {
	if ps.any {
		return true, false
	}
	if slices.Contains(ps.arns, p.ARN) {
		return true, false
	}
	if slices.Contains(ps.accounts, p.Account) {
		return true, true
	}
	return false, false
}

func parsePrincipal(raw json.RawMessage, at string) (*principals, error) {
	ps := &principals{}
	if firstByte(raw) == '"' {
		s, err := str(raw, at)
		if err != nil {
			return nil, err
		}
		if s != "*" {
			return nil, malformed(at, "must be \"*\" or an object such as {\"AWS\": \"arn:aws:iam::123456789012:root\"}, got %q", s)
		}
		ps.any = true
		return ps, nil
	}
	m, err := object(raw, at)
	if err != nil {
		return nil, malformed(at, "must be \"*\" or an object such as {\"AWS\": \"arn:aws:iam::123456789012:root\"}")
	}
	if len(m) == 0 {
		return nil, malformed(at, "names no principal")
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		l, err := strList(m[k], at+"."+k)
		if err != nil {
			return nil, err
		}
		switch k {
		case "AWS":
			for _, s := range l {
				if err := ps.addAWS(s, at+".AWS"); err != nil {
					return nil, err
				}
			}
		case "Service", "Federated", "CanonicalUser":
			for _, s := range l {
				if s == "" || strings.ContainsAny(s, "*?") && s != "*" {
					return nil, malformed(at+"."+k, "invalid principal %q", s)
				}
			}
		default:
			return nil, malformed(at, "unknown principal type %q (AWS, Service, Federated and CanonicalUser are allowed)", k)
		}
	}
	return ps, nil
}

// addAWS adds one value of an "AWS" principal: "*", an account id, or an IAM/STS ARN.
// Wildcards other than a lone "*" are refused, as AWS refuses them.
func (ps *principals) addAWS(s, at string) error {
	switch {
	case s == "*":
		ps.any = true
		return nil
	case isAccountID(s):
		ps.accounts = append(ps.accounts, s)
		return nil
	case strings.ContainsAny(s, "*?"):
		return malformed(at, "invalid principal %q: a principal cannot be matched with wildcards, only \"*\" stands for everyone", s)
	}
	f := strings.SplitN(s, ":", 6)
	if len(f) != 6 || f[0] != "arn" || f[1] == "" || (f[2] != "iam" && f[2] != "sts") || f[3] != "" || !isAccountID(f[4]) || f[5] == "" {
		return malformed(at, "invalid principal %q: want \"*\", an account id or an ARN such as arn:aws:iam::123456789012:user/alice", s)
	}
	if f[2] == "iam" && f[5] == "root" {
		ps.accounts = append(ps.accounts, f[4])
		return nil
	}
	ps.arns = append(ps.arns, s)
	return nil
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
