package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sluice-streams/sluice/client"
)

// TestToolsFindAndSign runs `sluice agent`, `sluice lambda` and `sluice deliver` as child
// processes against a `sluice serve --iam` process. Each finds the server through
// --endpoint, through SLUICE_ENDPOINT (and the agent through kinesis.endpoint in its file),
// and signs with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or with the profile AWS_PROFILE
// names in AWS_SHARED_CREDENTIALS_FILE: a line appended to the agent's file arrives in the
// stream, the lambda's handler is invoked with a record put, the delivery writes it to its
// directory. With a wrong secret the verb logs InvalidSignatureException and nothing is
// put, invoked or delivered.
func TestToolsFindAndSign(t *testing.T) {
	const keyID, secret = "AKIDTOOLS", "right-secret"
	dir := t.TempDir()
	iamFile := filepath.Join(dir, "iam.json")
	if err := os.WriteFile(iamFile, []byte(`{"users": [{"name": "tools", "accessKeyId": "`+keyID+`", "secretAccessKey": "`+secret+`",
	  "policies": [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(dir, "credentials")
	if err := os.WriteFile(credsFile, []byte("[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\n\n[tools]\naws_access_key_id = "+keyID+"\naws_secret_access_key = "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServeProc(t, filepath.Join(dir, "data"), "--iam", iamFile, "--limits", "off")
	ctx := context.Background()
	c, err := client.New(client.Config{Endpoint: srv.base, Region: "us-east-1", Credentials: &client.Credentials{AccessKeyID: keyID, SecretAccessKey: secret}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	handler := filepath.Join(dir, "bootstrap")
	if out, err := exec.Command("go", "build", "-o", handler, "../../tools/lambda/testdata/handler").CombinedOutput(); err != nil {
		t.Fatalf("building the handler: %v\n%s", err, out)
	}

	// A verb's run in dir, on stream (of ARN arn), with the record whose data is token:
	// args and env (besides the endpoint and credentials) start it, feed gives it the
	// record, arrived says whether the record went through, and empty whether nothing did.
	// The agent's file names the server when fileEndpoint is not "".
	type run struct {
		args    []string
		env     []string
		feed    func(t *testing.T)
		arrived func(t *testing.T) bool
		empty   func(t *testing.T) bool
	}
	putToken := func(t *testing.T, stream, token string) {
		t.Helper()
		res, err := c.PutRecords(ctx, stream, []client.PutEntry{{Key: "k", Data: []byte(token)}})
		if err == nil {
			err = res[0].Err
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	verbs := map[string]func(t *testing.T, dir, stream, arn, fileEndpoint, token string) run{
		"agent": func(t *testing.T, dir, stream, _, fileEndpoint, token string) run {
			logPath, cfgPath := filepath.Join(dir, "app.log"), filepath.Join(dir, "agent.json")
			if err := os.WriteFile(logPath, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			ep := ""
			if fileEndpoint != "" {
				ep = fmt.Sprintf(`"kinesis.endpoint": %q, `, fileEndpoint)
			}
			if err := os.WriteFile(cfgPath, fmt.Appendf(nil, `{%s"flows": [{"filePattern": %q, "kinesisStream": %q,
			  "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000, "minTimeBetweenFilePollsMillis": 5}]}`, ep, logPath, stream), 0o644); err != nil {
				t.Fatal(err)
			}
			streamData := func(t *testing.T) []string {
				var all []string
				for _, d := range readAll(t, c, stream) {
					for _, line := range d {
						all = append(all, strings.TrimSuffix(line, "\n"))
					}
				}
				return all
			}
			return run{
				args: []string{"agent", "--config", cfgPath},
				feed: func(t *testing.T) {
					f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					if _, err := f.WriteString(token + "\n"); err != nil {
						t.Fatal(err)
					}
				},
				arrived: func(t *testing.T) bool { return slices.Contains(streamData(t), token) },
				empty:   func(t *testing.T) bool { return len(streamData(t)) == 0 },
			}
		},
		"lambda": func(t *testing.T, dir, stream, arn, _, token string) run {
			mapping, logPath := filepath.Join(dir, "mapping.json"), filepath.Join(dir, "handler.log")
			if err := os.WriteFile(mapping, fmt.Appendf(nil, `{"EventSourceArn": %q, "StartingPosition": "TRIM_HORIZON"}`, arn), 0o644); err != nil {
				t.Fatal(err)
			}
			log := func(t *testing.T) string {
				b, err := os.ReadFile(logPath)
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				return string(b)
			}
			return run{
				args: []string{"lambda", "--handler", handler, "--event-source-mapping", mapping},
				env:  []string{"HANDLER_LOG=" + logPath},
				feed: func(t *testing.T) { putToken(t, stream, token) },
				// The handler logs the event's records; the data is base64 in the JSON.
				arrived: func(t *testing.T) bool {
					return strings.Contains(log(t), base64.StdEncoding.EncodeToString([]byte(token)))
				},
				empty: func(t *testing.T) bool { return log(t) == "" },
			}
		},
		"deliver": func(t *testing.T, dir, stream, arn, _, token string) run {
			out, config := filepath.Join(dir, "out"), filepath.Join(dir, "delivery.json")
			if err := os.WriteFile(config, fmt.Appendf(nil, `{"DeliveryStreamName": "d-%s",
			  "KinesisStreamSourceConfiguration": {"KinesisStreamARN": %q},
			  "ExtendedS3DestinationConfiguration": {"BucketARN": "file://%s", "BufferingHints": {"IntervalInSeconds": 0}}}`,
				stream, arn, out), 0o644); err != nil {
				t.Fatal(err)
			}
			objects := func(t *testing.T) []string {
				var bodies []string
				err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					b, err := os.ReadFile(p)
					bodies = append(bodies, string(b))
					return err
				})
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				return bodies
			}
			return run{
				args: []string{"deliver", "--config", config, "--starting-position", "TRIM_HORIZON"},
				feed: func(t *testing.T) { putToken(t, stream, token) },
				arrived: func(t *testing.T) bool {
					return slices.ContainsFunc(objects(t), func(b string) bool { return strings.Contains(b, token) })
				},
				empty: func(t *testing.T) bool { return len(objects(t)) == 0 },
			}
		},
	}

	// The environment of a child: no credentials or endpoint but those the case gives.
	clean := []string{"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=",
		"AWS_PROFILE=", "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none"), "AWS_CONFIG_FILE=" + filepath.Join(dir, "none"), endpointEnv + "="}
	envKeys := []string{"AWS_ACCESS_KEY_ID=" + keyID, "AWS_SECRET_ACCESS_KEY=" + secret}
	profile := []string{"AWS_SHARED_CREDENTIALS_FILE=" + credsFile, "AWS_PROFILE=tools"}
	wrong := []string{"AWS_ACCESS_KEY_ID=" + keyID, "AWS_SECRET_ACCESS_KEY=not-" + secret}
	for i, tc := range []struct {
		verb     string
		endpoint string // how the verb finds the server: flag, env or file
		creds    []string
		refused  bool
	}{
		{"agent", "flag", envKeys, false},
		{"agent", "env", profile, false},
		{"agent", "file", envKeys, false},
		{"agent", "flag", wrong, true},
		{"lambda", "flag", profile, false},
		{"lambda", "env", envKeys, false},
		{"lambda", "env", wrong, true},
		{"deliver", "flag", envKeys, false},
		{"deliver", "env", profile, false},
		{"deliver", "flag", wrong, true},
	} {
		name := fmt.Sprintf("%s-%s-%d", tc.verb, tc.endpoint, i)
		t.Run(name, func(t *testing.T) {
			stream := fmt.Sprintf("s%d", i)
			if err := c.CreateStream(ctx, stream, 1); err != nil {
				t.Fatal(err)
			}
			sum, err := c.DescribeStreamSummary(ctx, stream)
			if err != nil {
				t.Fatal(err)
			}
			fileEndpoint := ""
			if tc.endpoint == "file" {
				fileEndpoint = srv.base
			}
			token := "record-of-" + name
			r := verbs[tc.verb](t, t.TempDir(), stream, sum.ARN, fileEndpoint, token)
			args := r.args
			env := append(append(slices.Clone(clean), tc.creds...), r.env...)
			switch tc.endpoint {
			case "flag":
				args = append(args, "--endpoint", srv.base)
			case "env":
				env = append(env, endpointEnv+"="+srv.base)
			}
			cmd := sluiceCmd(args...)
			cmd.Env = append(cmd.Env, env...)
			out := &syncBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() {
				cmd.Wait()
				close(exited)
			}()
			defer func() {
				cmd.Process.Signal(syscall.SIGTERM)
				<-exited
				if t.Failed() {
					t.Logf("the output of sluice %s:\n%s", tc.verb, out.String())
				}
			}()
			r.feed(t)
			if tc.refused {
				waitFor(t, "InvalidSignatureException in the output", func() bool {
					if strings.Contains(out.String(), "InvalidSignatureException") {
						return true
					}
					select {
					case <-exited:
						t.Fatalf("sluice %s stopped without naming InvalidSignatureException", tc.verb)
					default:
					}
					return false
				})
				cmd.Process.Signal(syscall.SIGTERM)
				<-exited
				if !r.empty(t) {
					t.Fatal("something went through with a wrong secret")
				}
				return
			}
			waitFor(t, "the record", func() bool {
				select {
				case <-exited:
					t.Fatalf("sluice %s stopped", tc.verb)
				default:
				}
				return r.arrived(t)
			})
			if strings.Contains(out.String(), "InvalidSignatureException") {
				t.Fatalf("the output names InvalidSignatureException:\n%s", out.String())
			}
		})
	}
}
