package lambda

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The Lambda runtime API, version 2018-06-01, as a custom runtime (or aws-lambda-go) calls
// it at AWS_LAMBDA_RUNTIME_API:
//
//	GET  /2018-06-01/runtime/invocation/next           → 200, the event; headers
//	     Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn, -Trace-Id
//	POST /2018-06-01/runtime/invocation/{id}/response  → 202: the invocation's result
//	POST /2018-06-01/runtime/invocation/{id}/error     → 202: a function error
//	POST /2018-06-01/runtime/init/error                → 202: initialisation failed
const runtimePrefix = "/2018-06-01/runtime/"

// FunctionConfig is the function a Runtime runs.
type FunctionConfig struct {
	// Handler is the executable: a custom runtime's bootstrap, or a Go binary built with
	// github.com/aws/aws-lambda-go.
	Handler string
	// Name is AWS_LAMBDA_FUNCTION_NAME and the name in the function's ARN.
	Name string
	// ARN is the function's ARN (Lambda-Runtime-Invoked-Function-Arn).
	ARN string
	// Region is AWS_REGION.
	Region string
	// Timeout bounds one invocation; 0 means 3 s, Lambda's default. An invocation that
	// runs longer is a function error and its process is killed.
	Timeout time.Duration
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE; 0 means 128.
	MemoryMB int
	// Env is added to the process's environment (KEY=VALUE), after the trigger's own.
	Env []string
	// Output receives the processes' standard output and error, as CloudWatch Logs would;
	// nil discards them.
	Output io.Writer
	// Logger receives the runtime's warnings; nil discards them.
	Logger *slog.Logger
}

// FunctionError is an invocation that failed in the function: an error it reported, a
// crash, an initialisation error, or a timeout.
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
	// Unhandled is true for a crash or a timeout, false for an error the function returned
	// (Lambda's X-Amz-Function-Error: Unhandled or Handled).
	Unhandled bool `json:"-"`
}

func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// Runtime hosts the runtime API for a pool of execution environments, each a process of
// the handler with a loopback listener of its own, started when an invocation finds none
// idle. Invoke is safe for concurrent use: each call takes an environment to itself.
type Runtime struct {
	cfg FunctionConfig
	log *slog.Logger

	mu     sync.Mutex // guards idle and closed
	idle   []*environment
	closed bool
	all    sync.WaitGroup // environments not yet shut down
}

// NewRuntime returns a runtime for cfg; it starts no process until the first Invoke.
func NewRuntime(cfg FunctionConfig) (*Runtime, error) {
	if cfg.Handler == "" {
		return nil, errors.New("lambda: no handler")
	}
	abs, err := filepath.Abs(cfg.Handler)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("lambda: handler: %w", err)
	} else if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("lambda: handler %s is not an executable file", cfg.Handler)
	}
	cfg.Handler = abs
	if cfg.Name == "" {
		cfg.Name = filepath.Base(abs)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.MemoryMB <= 0 {
		cfg.MemoryMB = 128
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runtime{cfg: cfg, log: cfg.Logger}, nil
}

// Invoke runs the function once with payload and returns its response, or the
// *FunctionError it failed with (as err). Any other error is the runtime's own: the
// process could not start, ctx ended, or the runtime is closed.
func (r *Runtime) Invoke(ctx context.Context, payload []byte) (resp []byte, requestID string, err error) {
	env, err := r.acquire()
	if err != nil {
		return nil, "", err
	}
	requestID = newRequestID()
	resp, err = env.invoke(ctx, requestID, payload, r.cfg.Timeout)
	r.release(env)
	return resp, requestID, err
}

func (r *Runtime) acquire() (*environment, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("lambda: runtime closed")
	}
	var dead []*environment
	for len(r.idle) > 0 {
		env := r.idle[len(r.idle)-1]
		r.idle = r.idle[:len(r.idle)-1]
		if !env.isDead() {
			r.mu.Unlock()
			r.bury(dead)
			return env, nil
		}
		dead = append(dead, env)
	}
	r.all.Add(1)
	r.mu.Unlock()
	r.bury(dead)
	env, err := r.start()
	if err != nil {
		r.all.Done()
		return nil, err
	}
	return env, nil
}

// bury shuts down environments whose process exited while idle.
func (r *Runtime) bury(dead []*environment) {
	for _, env := range dead {
		env.shutdown()
		r.all.Done()
	}
}

// release returns env to the pool, or shuts it down if its process is gone or the
// runtime closed meanwhile.
func (r *Runtime) release(env *environment) {
	r.mu.Lock()
	if !r.closed && !env.isDead() {
		r.idle = append(r.idle, env)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	env.shutdown()
	r.all.Done()
}

// Close stops every idle environment's process and refuses new invocations; environments
// in use stop when their invocation returns.
func (r *Runtime) Close() error {
	r.mu.Lock()
	r.closed = true
	idle := r.idle
	r.idle = nil
	r.mu.Unlock()
	r.bury(idle)
	r.all.Wait()
	return nil
}

// invocation is one event handed to an environment, and where its outcome goes.
type invocation struct {
	id      string
	payload []byte
	timeout time.Duration
	done    chan result // buffered: the first outcome wins
	// written is closed by the GET …/next that took the invocation once it wrote the
	// payload: the caller may reuse the payload's memory only after.
	written chan struct{}
}

type result struct {
	resp []byte
	err  error
}

// environment is one process of the handler and its runtime API listener.
type environment struct {
	r      *Runtime
	ln     net.Listener
	srv    *http.Server
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	// killed is set when the invoker kills the process (a timeout, a caller gone), before
	// exited may be closed: the environment must not go back to the pool meanwhile.
	killed atomic.Bool
	// next carries the invocation to the process's pending GET …/next.
	next chan *invocation

	mu      sync.Mutex // guards current and initErr
	current *invocation
	initErr *FunctionError
}

// start starts a new environment: its listener, then its process.
func (r *Runtime) start() (*environment, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("lambda: runtime API listener: %w", err)
	}
	env := &environment{r: r, ln: ln, exited: make(chan struct{}), next: make(chan *invocation)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+runtimePrefix+"invocation/next", env.handleNext)
	mux.HandleFunc("POST "+runtimePrefix+"invocation/{id}/response", env.handleResponse)
	mux.HandleFunc("POST "+runtimePrefix+"invocation/{id}/error", env.handleError)
	mux.HandleFunc("POST "+runtimePrefix+"init/error", env.handleInitError)
	env.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go env.srv.Serve(ln)

	cfg := &r.cfg
	cmd := exec.Command(cfg.Handler)
	cmd.Dir = filepath.Dir(cfg.Handler)
	cmd.Env = append(os.Environ(),
		"AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(),
		"AWS_LAMBDA_FUNCTION_NAME="+cfg.Name,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(cfg.MemoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+cfg.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME=sluice/"+newRequestID(),
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023",
		"AWS_REGION="+cfg.Region,
		"AWS_DEFAULT_REGION="+cfg.Region,
		"_HANDLER="+filepath.Base(cfg.Handler),
		"LAMBDA_TASK_ROOT="+cmd.Dir,
		"TZ=:UTC",
	)
	cmd.Env = append(cmd.Env, cfg.Env...)
	cmd.Stdout, cmd.Stderr = cfg.Output, cfg.Output
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		env.srv.Close()
		return nil, fmt.Errorf("lambda: starting the handler: %w", err)
	}
	env.cmd = cmd
	go func() {
		err := cmd.Wait()
		close(env.exited)
		r.log.Debug("lambda: handler process exited", "pid", cmd.Process.Pid, "err", err)
	}()
	return env, nil
}

func (env *environment) isDead() bool {
	if env.killed.Load() {
		return true
	}
	select {
	case <-env.exited:
		return true
	default:
		return false
	}
}

// kill kills the process and marks the environment dead at once.
func (env *environment) kill() {
	env.killed.Store(true)
	env.cmd.Process.Kill()
}

// shutdown kills the process and closes the listener.
func (env *environment) shutdown() {
	env.cmd.Process.Kill()
	<-env.exited
	env.srv.Close()
}

// invoke hands the event to the process and waits for its outcome, the process's exit,
// the timeout or ctx.
func (env *environment) invoke(ctx context.Context, id string, payload []byte, timeout time.Duration) ([]byte, error) {
	inv := &invocation{id: id, payload: payload, timeout: timeout, done: make(chan result, 1), written: make(chan struct{})}
	env.mu.Lock()
	env.current = inv
	env.mu.Unlock()
	defer func() {
		env.mu.Lock()
		env.current = nil
		env.mu.Unlock()
	}()
	timedOut := func(what string) error {
		env.kill()
		return &FunctionError{Type: "Sandbox.Timedout", Message: fmt.Sprintf("Task timed out after %.2f seconds%s", timeout.Seconds(), what), Unhandled: true}
	}
	// A new process has initTimeout to initialise and ask for its first event.
	handover := time.NewTimer(initTimeout)
	defer handover.Stop()
	select {
	case env.next <- inv:
	case <-env.exited:
		return nil, env.exitError()
	case <-handover.C:
		return nil, timedOut(" waiting for the runtime to ask for the event")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Whatever ends the invocation, the payload is being written until written closes; a
	// process that exited or was killed makes the write fail at once.
	defer func() { <-inv.written }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case res := <-inv.done:
		return res.resp, res.err
	case <-env.exited:
		// The outcome may have come just before the exit.
		select {
		case res := <-inv.done:
			return res.resp, res.err
		default:
		}
		return nil, env.exitError()
	case <-timer.C:
		return nil, timedOut("")
	case <-ctx.Done():
		// The process is busy with an event nobody waits for: it cannot be reused.
		env.kill()
		return nil, ctx.Err()
	}
}

// initTimeout bounds a process's initialisation, as Lambda's 10 s init phase does.
const initTimeout = 10 * time.Second

// exitError is the function error of an invocation whose process exited.
func (env *environment) exitError() error {
	env.mu.Lock()
	ie := env.initErr
	env.mu.Unlock()
	if ie != nil {
		return ie
	}
	msg := "Runtime exited without providing a reason"
	if st := env.cmd.ProcessState; st != nil {
		msg = "Runtime exited with error: " + st.String()
	}
	return &FunctionError{Type: "Runtime.ExitError", Message: msg, Unhandled: true}
}

// finish delivers the outcome of invocation id, and reports whether id is the invocation
// in progress.
func (env *environment) finish(id string, res result) bool {
	env.mu.Lock()
	inv := env.current
	env.mu.Unlock()
	if inv == nil || inv.id != id {
		return false
	}
	select {
	case inv.done <- res:
	default: // already answered
	}
	return true
}

func (env *environment) handleNext(w http.ResponseWriter, req *http.Request) {
	select {
	case inv := <-env.next:
		defer close(inv.written)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(inv.timeout).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", env.r.cfg.ARN)
		h.Set("Lambda-Runtime-Trace-Id", traceID())
		w.WriteHeader(http.StatusOK)
		w.Write(inv.payload)
	case <-req.Context().Done():
	}
}

// maxResponse is the largest response body of an invocation: Lambda's 6 MB.
const maxResponse = 6 << 20

func (env *environment) handleResponse(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxResponse+1))
	id := req.PathValue("id")
	switch {
	case err != nil:
		return
	case len(body) > maxResponse:
		env.finish(id, result{err: &FunctionError{Type: "Function.ResponseSizeTooLarge", Message: "Response payload size exceeded maximum allowed payload size (6291556 bytes).", Unhandled: true}})
		runtimeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "response over 6 MB")
	case !env.finish(id, result{resp: body}):
		runtimeError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation "+id+" in progress")
	default:
		accepted(w)
	}
}

func (env *environment) handleError(w http.ResponseWriter, req *http.Request) {
	fe := readFunctionError(req)
	if !env.finish(req.PathValue("id"), result{err: fe}) {
		runtimeError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation "+req.PathValue("id")+" in progress")
		return
	}
	accepted(w)
}

func (env *environment) handleInitError(w http.ResponseWriter, req *http.Request) {
	fe := readFunctionError(req)
	fe.Unhandled = true
	if !strings.HasPrefix(fe.Type, "Runtime.") {
		fe.Type = "Runtime.InitError: " + fe.Type
	}
	env.mu.Lock()
	env.initErr = fe
	env.mu.Unlock()
	env.r.log.Warn("lambda: the function failed to initialise", "err", fe)
	accepted(w)
}

// readFunctionError reads the error document a runtime posts: {"errorMessage", "errorType"}.
func readFunctionError(req *http.Request) *FunctionError {
	fe := &FunctionError{}
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if json.Unmarshal(body, fe) != nil || fe.Type == "" && fe.Message == "" {
		fe.Message = string(body)
	}
	if fe.Type == "" {
		fe.Type = req.Header.Get("Lambda-Runtime-Function-Error-Type")
	}
	if fe.Type == "" {
		fe.Type = "Unhandled"
	}
	return fe
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"OK"}`)
}

func runtimeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(FunctionError{Type: typ, Message: msg})
	w.Write(b)
}

// newRequestID returns a random UUID (version 4).
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// traceID returns an X-Ray trace header for a new, unsampled trace.
func traceID() string {
	var b [12]byte
	rand.Read(b[:])
	var p [8]byte
	rand.Read(p[:])
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", time.Now().Unix(), hex.EncodeToString(b[:]), hex.EncodeToString(p[:]))
}
