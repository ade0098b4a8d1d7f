package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "credentials")
	if err := os.WriteFile(file, []byte("# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key=s1\n\n[work]\n; another\naws_access_key_id=AKIDWORK\naws_secret_access_key = s2\naws_session_token = t2\n[broken]\naws_access_key_id=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		want  Credentials
		found bool
		err   string
	}{
		{"environment first", map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "se", "AWS_SESSION_TOKEN": "te", "AWS_SHARED_CREDENTIALS_FILE": file},
			Credentials{"AKIDENV", "se", "te"}, true, ""},
		{"default profile", map[string]string{"AWS_SHARED_CREDENTIALS_FILE": file}, Credentials{"AKIDDEFAULT", "s1", ""}, true, ""},
		{"named profile", map[string]string{"AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "work"}, Credentials{"AKIDWORK", "s2", "t2"}, true, ""},
		{"home directory", map[string]string{"HOME": dir + "/home"}, Credentials{}, false, ""},
		{"missing named profile", map[string]string{"AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "nope"}, Credentials{}, false, `no profile "nope"`},
		{"incomplete profile", map[string]string{"AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "broken"}, Credentials{}, false, "lacks aws_access_key_id or aws_secret_access_key"},
		{"no file, no profile", map[string]string{"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none")}, Credentials{}, false, ""},
		{"only a key id", map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SHARED_CREDENTIALS_FILE": file}, Credentials{"AKIDDEFAULT", "s1", ""}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, found, err := LoadCredentials(func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want …%s…", err, tc.err)
				}
				return
			}
			if err != nil || found != tc.found || got != tc.want {
				t.Fatalf("%+v %v %v, want %+v %v", got, found, err, tc.want, tc.found)
			}
		})
	}
	if got := regionFromEnv(func(k string) string { return map[string]string{"AWS_DEFAULT_REGION": "eu-west-1"}[k] }); got != "eu-west-1" {
		t.Fatalf("region %q", got)
	}
}
