package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/internal/sigv4"
)

// Credentials sign a client's requests with AWS Signature Version 4, as the AWS SDKs sign
// theirs: a server started with --iam verifies them; one without accepts them unverified.
type Credentials struct {
	AccessKeyID, SecretAccessKey string
	// SessionToken, of temporary credentials, is sent (and signed) as X-Amz-Security-Token.
	// sluice issues no temporary credentials: a server with --iam refuses any token with
	// UnrecognizedClientException, as AWS refuses a token it did not issue.
	SessionToken string
}

// defaultRegion is the credential scope's region when the environment names none; it is
// `sluice serve`'s default --region.
const defaultRegion = "us-east-1"

// LoadCredentials finds credentials where the AWS SDKs and CLI look: the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), else the shared credentials
// file (AWS_SHARED_CREDENTIALS_FILE, by default ~/.aws/credentials) under the profile
// AWS_PROFILE (by default "default"). It returns false, and no error, when there are none; a
// profile named by AWS_PROFILE that the file lacks, or a file that cannot be read, is an
// error. getenv is os.Getenv outside tests.
func LoadCredentials(getenv func(string) string) (Credentials, bool, error) {
	if id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		return Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: getenv("AWS_SESSION_TOKEN")}, true, nil
	}
	path := getenv("AWS_SHARED_CREDENTIALS_FILE")
	if path == "" {
		home := getenv("HOME")
		if home == "" {
			return Credentials{}, false, nil
		}
		path = filepath.Join(home, ".aws", "credentials")
	}
	profile, named := getenv("AWS_PROFILE"), true
	if profile == "" {
		profile, named = "default", false
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !named {
		return Credentials{}, false, nil
	}
	if err != nil {
		return Credentials{}, false, fmt.Errorf("sluice: shared credentials file: %w", err)
	}
	c, found := parseCredentialsFile(data, profile)
	switch {
	case !found && named:
		return Credentials{}, false, fmt.Errorf("sluice: shared credentials file %s has no profile %q (AWS_PROFILE)", path, profile)
	case !found:
		return Credentials{}, false, nil
	case c.AccessKeyID == "" || c.SecretAccessKey == "":
		return Credentials{}, false, fmt.Errorf("sluice: shared credentials file %s: profile %q lacks aws_access_key_id or aws_secret_access_key", path, profile)
	}
	return c, true, nil
}

// parseCredentialsFile reads the profile of an INI credentials file: [profile] sections of
// key = value lines, '#' and ';' starting comments.
func parseCredentialsFile(data []byte, profile string) (Credentials, bool) {
	var c Credentials
	found, in := false, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			in = strings.TrimSpace(line[1:len(line)-1]) == profile
			found = found || in
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !in || !ok {
			continue
		}
		switch v = strings.TrimSpace(v); strings.ToLower(strings.TrimSpace(k)) {
		case "aws_access_key_id":
			c.AccessKeyID = v
		case "aws_secret_access_key":
			c.SecretAccessKey = v
		case "aws_session_token":
			c.SessionToken = v
		}
	}
	return c, found
}

// regionFromEnv is the region of AWS_REGION or AWS_DEFAULT_REGION, else defaultRegion.
func regionFromEnv(getenv func(string) string) string {
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if r := getenv(k); r != "" {
			return r
		}
	}
	return defaultRegion
}

// sign signs req, whose method, path, host, content type, X-Amz-Target (target, "" for
// none) and body are set, with the client's credentials; it does nothing without any.
func (c *Client) sign(req *fasthttp.Request, path, contentType, target string) {
	if c.signer == nil {
		return
	}
	now := time.Now().UTC()
	amzDate := now.Format(sigv4.TimeFormat)
	req.Header.Set("X-Amz-Date", amzDate)
	hl := sigv4.HeaderList{{Name: "content-type", Value: contentType}, {Name: "host", Value: c.host}, {Name: "x-amz-date", Value: amzDate}}
	if target != "" {
		hl = append(hl, sigv4.Header{Name: "x-amz-target", Value: target})
	}
	if tok := c.signer.Credentials().SessionToken; tok != "" {
		req.Header.Set("X-Amz-Security-Token", tok)
		hl = append(hl, sigv4.Header{Name: "x-amz-security-token", Value: tok})
	}
	hash := sigv4.PayloadHash(req.Body())
	r := sigv4.Request{Method: []byte(fasthttp.MethodPost), Path: []byte(path), Headers: hl, SignedHeaders: hl.Names(), PayloadHash: hash[:]}
	req.Header.Set("Authorization", c.signer.Authorization(&r, now))
}
