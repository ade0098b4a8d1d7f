package server

import (
	"strings"

	"github.com/sluice-streams/sluice/server/wire"
)

// Authentication. AWS clients sign every request with Signature Version 4:
//
//	Authorization: AWS4-HMAC-SHA256 Credential=<access key>/<yyyymmdd>/<region>/kinesis/aws4_request,
//	               SignedHeaders=<names;…>, Signature=<64 hex digits>
//
// sluice parses the header, checks its shape, and maps the access key to an account. It does
// not verify the signature yet: Authenticator is the hook where that goes, with the request
// and the secret the access key names.

// Principal is who sent a request.
type Principal struct {
	AccessKey string // "" for an unsigned request
	Account   string
	Region    string // the credential scope's region
}

// Credential is the parsed credential of a SigV4 Authorization header.
type Credential struct {
	AccessKey, Date, Region, Service string
	SignedHeaders                    []string
	Signature                        string
}

// authError is an authentication failure, shaped as AWS reports it.
func authError(code wire.Code, msg string) apiError { return apiError{code: code, msg: msg} }

// parseAuthorization parses a SigV4 Authorization header value.
func parseAuthorization(h string) (Credential, error) {
	algo, rest, ok := strings.Cut(h, " ")
	if !ok || algo != "AWS4-HMAC-SHA256" {
		return Credential{}, authError(wire.IncompleteSignature, "Authorization header requires the AWS4-HMAC-SHA256 algorithm")
	}
	var c Credential
	var seen int
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Credential{}, authError(wire.IncompleteSignature, "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters of the form key=value")
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[0] == "" || len(f[1]) != 8 || f[2] == "" || f[4] != "aws4_request" {
				return Credential{}, authError(wire.IncompleteSignature, "Credential must have the form <access key>/<date>/<region>/<service>/aws4_request, got "+v)
			}
			c.AccessKey, c.Date, c.Region, c.Service = f[0], f[1], f[2], f[3]
			seen |= 1
		case "SignedHeaders":
			c.SignedHeaders = strings.Split(v, ";")
			seen |= 2
		case "Signature":
			if len(v) != 64 || strings.Trim(v, "0123456789abcdef") != "" {
				return Credential{}, authError(wire.IncompleteSignature, "Signature must be 64 lower-case hex digits")
			}
			c.Signature = v
			seen |= 4
		}
	}
	if seen != 7 {
		return Credential{}, authError(wire.IncompleteSignature, "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters")
	}
	if c.Service != "kinesis" {
		return Credential{}, authError(wire.InvalidSignature, "Credential should be scoped to correct service: 'kinesis', not '"+c.Service+"'")
	}
	return c, nil
}

// Authenticator decides who a request comes from. The default, SigV4Parser, parses the
// signature without verifying it.
type Authenticator interface {
	// Authenticate returns the principal of a request from its Authorization header ("" when
	// unsigned), or an apiError to answer with.
	Authenticate(authorization string) (Principal, error)
}

// SigV4Parser accepts unsigned requests and well-formed SigV4 headers, mapping access keys to
// accounts: through Accounts when the key is listed there, else to Default. A request whose
// account is not Default is refused: one server holds one account's streams.
type SigV4Parser struct {
	Default  string            // the server's account
	Accounts map[string]string // access key → account
}

// Authenticate implements Authenticator.
func (p SigV4Parser) Authenticate(authorization string) (Principal, error) {
	if authorization == "" {
		return Principal{Account: p.Default}, nil
	}
	c, err := parseAuthorization(authorization)
	if err != nil {
		return Principal{}, err
	}
	pr := Principal{AccessKey: c.AccessKey, Account: p.Default, Region: c.Region}
	if a, ok := p.Accounts[c.AccessKey]; ok {
		pr.Account = a
	}
	if pr.Account != p.Default {
		return Principal{}, authError(wire.AccessDenied, "User with access key "+c.AccessKey+" (account "+pr.Account+") is not authorized to access streams of account "+p.Default)
	}
	return pr, nil
}
