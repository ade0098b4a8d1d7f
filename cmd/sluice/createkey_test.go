package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/internal/keyring"
)

func TestCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ring")
	var out, errOut bytes.Buffer
	if st := run([]string{"create-key", "--kms-keyring", dir, "--alias", "alias/orders"}, &out, &errOut); st != exitOK {
		t.Fatalf("create-key: %d %s", st, errOut.String())
	}
	id := strings.TrimSpace(out.String())
	if got, err := keyring.Open(dir).Resolve("alias/orders"); err != nil || got != id {
		t.Fatalf("alias/orders resolves to %q, %v; create-key printed %q", got, err, id)
	}
	key, err := os.ReadFile(filepath.Join(dir, id+".key"))
	if err != nil || len(key) != keyring.KeySize || bytes.Contains(out.Bytes(), key) || bytes.Contains(errOut.Bytes(), key) {
		t.Fatalf("key file: %d bytes, %v", len(key), err)
	}
	for _, tc := range []struct {
		args   []string
		status int
		stderr string
	}{
		{[]string{"create-key"}, exitUsage, "--kms-keyring is required"},
		{[]string{"create-key", "--kms-keyring", dir, "--alias", "orders"}, exitError, "invalid key id"},
	} {
		out.Reset()
		errOut.Reset()
		if st := run(tc.args, &out, &errOut); st != tc.status || !strings.Contains(errOut.String(), tc.stderr) {
			t.Fatalf("%q: %d %q", tc.args, st, errOut.String())
		}
	}
}
