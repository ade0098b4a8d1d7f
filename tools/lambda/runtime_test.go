//go:build linux

package lambda

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runtimeMode, set in a child's environment, makes this test binary a custom runtime
// speaking the runtime API with net/http alone (rawRuntime), instead of running the tests.
const runtimeMode = "LAMBDA_TEST_RAW_RUNTIME"

// rawRuntime is a custom runtime. For each event it checks the invocation's headers and
// answers by the event: "echo" posts the event back as the response, "error" posts a
// function error, "init" posts an initialisation error and exits, "bad id" posts a response
// for another request id and then the true one. A header missing or wrong ends the process
// with status 7 and the reason on stderr.
func rawRuntime() {
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/"
	post := func(path, body string) int {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			os.Exit(8)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for {
		resp, err := http.Get(base + "invocation/next")
		if err != nil {
			os.Exit(8)
		}
		event, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := resp.Header
		id := h.Get("Lambda-Runtime-Aws-Request-Id")
		deadline, err := strconv.ParseInt(h.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
		switch {
		case resp.StatusCode != http.StatusOK || id == "":
			fmt.Fprintln(os.Stderr, "status", resp.StatusCode, "request id", id)
			os.Exit(7)
		case err != nil || deadline < time.Now().UnixMilli() || deadline > time.Now().Add(time.Minute).UnixMilli():
			fmt.Fprintln(os.Stderr, "deadline", h.Get("Lambda-Runtime-Deadline-Ms"))
			os.Exit(7)
		case h.Get("Lambda-Runtime-Invoked-Function-Arn") != "arn:aws:lambda:eu-west-1:123456789012:function:raw":
			fmt.Fprintln(os.Stderr, "function arn", h.Get("Lambda-Runtime-Invoked-Function-Arn"))
			os.Exit(7)
		case !strings.HasPrefix(h.Get("Lambda-Runtime-Trace-Id"), "Root=1-"):
			fmt.Fprintln(os.Stderr, "trace id", h.Get("Lambda-Runtime-Trace-Id"))
			os.Exit(7)
		case os.Getenv("AWS_LAMBDA_FUNCTION_NAME") != "raw" || os.Getenv("AWS_REGION") != "eu-west-1" || os.Getenv("_HANDLER") == "":
			fmt.Fprintln(os.Stderr, "environment")
			os.Exit(7)
		}
		switch string(event) {
		case "echo":
			post("invocation/"+id+"/response", "echo")
		case "error":
			post("invocation/"+id+"/error", `{"errorMessage":"it broke","errorType":"Broken"}`)
		case "init":
			post("init/error", `{"errorMessage":"no config","errorType":"Config"}`)
			os.Exit(1)
		case "bad id":
			if post("invocation/not-"+id+"/response", "wrong") != http.StatusBadRequest {
				os.Exit(7)
			}
			post("invocation/"+id+"/response", "right")
		}
	}
}

func init() {
	if os.Getenv(runtimeMode) == "1" {
		rawRuntime()
		os.Exit(0)
	}
}

// TestRuntimeAPI runs a custom runtime written against the runtime API's documentation
// (no aws-lambda-go) and checks each way an invocation ends.
func TestRuntimeAPI(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rt, err := NewRuntime(FunctionConfig{Handler: self, Name: "raw", Region: "eu-west-1",
		ARN: "arn:aws:lambda:eu-west-1:123456789012:function:raw", Env: []string{runtimeMode + "=1"},
		Timeout: 5 * time.Second, Output: t.Output()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		event, resp, errType string
	}{
		{event: "echo", resp: "echo"},
		{event: "error", errType: "Broken"},
		{event: "bad id", resp: "right"},
		{event: "echo", resp: "echo"},
		{event: "init", errType: "Runtime.InitError: Config"},
		{event: "echo", resp: "echo"}, // a new process
	} {
		resp, id, err := rt.Invoke(ctx, []byte(tc.event))
		var fe *FunctionError
		switch {
		case tc.errType == "" && (err != nil || string(resp) != tc.resp):
			t.Errorf("%s: response %q, %v; want %q", tc.event, resp, err, tc.resp)
		case tc.errType != "" && (!errors.As(err, &fe) || fe.Type != tc.errType):
			t.Errorf("%s: %v, want a function error %s", tc.event, err, tc.errType)
		case len(id) != 36:
			t.Errorf("%s: request id %q", tc.event, id)
		}
	}
}
