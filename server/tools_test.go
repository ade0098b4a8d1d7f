package server

import (
	"os"
	"os/exec"
	"testing"
)

// lookTool returns the path of an external command a test drives (the AWS CLI, node). When
// it is missing the test fails if the environment variable required is set — .ci/run sets
// it after installing the command, so CI never passes without running the test — and is
// skipped otherwise (a developer's machine without the command), saying why.
func lookTool(t *testing.T, name, required, missing string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil && missing == "" {
		return path
	}
	msg := missing
	if err != nil {
		msg = "the " + name + " command is not on PATH"
	}
	if os.Getenv(required) != "" {
		t.Fatalf("%s is set and %s", required, msg)
	}
	t.Skip(msg + " (set " + required + " to make this a failure)")
	return ""
}
