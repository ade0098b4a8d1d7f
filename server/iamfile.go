package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-streams/sluice/iam"
)

// The IAM file (`sluice serve --iam FILE`) lists who may sign requests:
//
//	{"users": [{"name": "app", "accessKeyId": "AKID…", "secretAccessKey": "…",
//	            "account": "123456789012", "policies": [{"Version": "2012-10-17", …}]}]}
//
// name, accessKeyId and secretAccessKey are required; account defaults to the server's;
// policies are IAM policy documents (package iam), parsed once per load: a malformed one
// makes the file invalid, and the error names the user. account is 12 digits. A key the
// file does not define is an error naming it, as is a repeated access key.

// User is one user of an IAM file.
type User struct {
	Name            string
	AccessKeyID     string
	SecretAccessKey string
	Account         string // 12 digits
	Policies        []json.RawMessage
	// Parsed are Policies parsed by ParseIAM, in order: what authorisation evaluates. A User
	// built without ParseIAM has none, and is allowed nothing under authorisation.
	Parsed []*iam.Policy

	arn string // ARN(), filled in by SetUsers so that no request formats it
}

// ARN is the user's IAM ARN, arn:aws:iam::<account>:user/<name>.
func (u *User) ARN() string { return "arn:aws:iam::" + u.Account + ":user/" + u.Name }

var (
	iamFileKeys = []string{"users"}
	iamUserKeys = []string{"name", "accessKeyId", "secretAccessKey", "account", "policies"}
)

// ParseIAM parses an IAM file; a user without an account gets defaultAccount.
func ParseIAM(data []byte, defaultAccount string) ([]User, error) {
	var file struct {
		Users []json.RawMessage `json:"users"`
	}
	if err := decodeStrict(data, "the file", iamFileKeys, &file); err != nil {
		return nil, err
	}
	users := make([]User, 0, len(file.Users))
	seen := map[string]string{}
	for i, raw := range file.Users {
		where := fmt.Sprintf("users[%d]", i)
		var u struct {
			Name            string            `json:"name"`
			AccessKeyID     string            `json:"accessKeyId"`
			SecretAccessKey string            `json:"secretAccessKey"`
			Account         string            `json:"account"`
			Policies        []json.RawMessage `json:"policies"`
		}
		if err := decodeStrict(raw, where, iamUserKeys, &u); err != nil {
			return nil, err
		}
		switch {
		case u.Name == "":
			return nil, fmt.Errorf("%s: \"name\" is required", where)
		case u.AccessKeyID == "" || strings.ContainsAny(u.AccessKeyID, "/ ,=;"):
			return nil, fmt.Errorf("%s (%s): \"accessKeyId\" is required and holds no '/', ' ', ',', '=' or ';'", where, u.Name)
		case u.SecretAccessKey == "":
			return nil, fmt.Errorf("%s (%s): \"secretAccessKey\" is required", where, u.Name)
		}
		if other, dup := seen[u.AccessKeyID]; dup {
			return nil, fmt.Errorf("%s (%s): access key %s is also %s's", where, u.Name, u.AccessKeyID, other)
		}
		seen[u.AccessKeyID] = u.Name
		if u.Account == "" {
			u.Account = defaultAccount
		}
		if !isAccountID(u.Account) {
			return nil, fmt.Errorf("%s (%s): \"account\" is 12 digits, not %q", where, u.Name, u.Account)
		}
		parsed := make([]*iam.Policy, 0, len(u.Policies))
		for j, p := range u.Policies {
			if p = bytes.TrimSpace(p); len(p) == 0 || p[0] != '{' {
				return nil, fmt.Errorf("%s (%s): policies[%d] is not a JSON object", where, u.Name, j)
			}
			pol, err := iam.Parse(iam.Identity, fmt.Sprintf("%s policies[%d]", u.Name, j), p)
			if err != nil {
				return nil, fmt.Errorf("%s (%s): policies[%d]: %w", where, u.Name, j, err)
			}
			parsed = append(parsed, pol)
		}
		users = append(users, User{Name: u.Name, AccessKeyID: u.AccessKeyID, SecretAccessKey: u.SecretAccessKey,
			Account: u.Account, Policies: u.Policies, Parsed: parsed})
	}
	return users, nil
}

func isAccountID(s string) bool {
	return len(s) == 12 && strings.Trim(s, "0123456789") == ""
}

// decodeStrict decodes the JSON object data into v, refusing keys outside known (exact
// spelling: encoding/json alone would match them without regard to case).
func decodeStrict(data []byte, where string, known []string, v any) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	if obj == nil {
		return fmt.Errorf("%s: want a JSON object", where)
	}
	var unknown []string
	for k := range obj {
		if !slices.Contains(known, k) {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("%s: unknown key %s (known: %s)", where, strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	return nil
}
