package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/stream"
)

// The CPU cost of the Kinesis JSON PutRecords path, measured from outside:
//
//	limit_json_decode_append  in this process, e2eConns goroutines decoding PutRecords bodies
//	                          of 500 × 100 B and appending their records (server.DecodeAndPut,
//	                          durability none): records per CPU-second of this process
//	kinesis_put_cpu           `sluice serve --limits off --durability none` in a child process,
//	                          loaded with the same bodies as PutRecords calls over e2eConns
//	                          connections: records per CPU-second (user + system) of the
//	                          child, read from /proc/<pid>/stat; against the bound above
//	                          (target 0.5, PERFORMANCE.md), and its note gives the ratio to
//	                          PERFORMANCE.md's 1.5 M records per server CPU-second
//	kinesis_put_iam_cpu       the same against a second child started with --iam, which
//	                          verifies every signature and authorises every call, measured
//	                          right after kinesis_put_cpu in each round: its ratio is the
//	                          median of the rounds' ratios to kinesis_put_cpu, the share of
//	                          the server's CPU per record left after verification
//
// The child is the sluice binary built from this module (go build) into the suite's
// directory. The client runs in this process: fasthttp with a prebuilt body and the headers
// the AWS SDK for Go v2 sends, the SigV4 Authorization header made by the SDK's signer once
// per run (a signature stays valid for 5 minutes, and a request signed once may be sent
// again, as AWS allows), so that the client's CPU, which shares the machine's cores with
// the server, stays small and the same with and without --iam.
const (
	cpuRecordSize   = 100
	kinesisCPUT     = 1.5e6 // records per server CPU-second (PERFORMANCE.md)
	clockTicksPerS  = 100   // USER_HZ: the unit of /proc/<pid>/stat's utime and stime on Linux
	childStartLimit = 30 * time.Second
	// cpuMinRun is the shortest run of a CPU measurement: /proc counts CPU time in 10 ms
	// ticks, a tenth of a server-core-second at the least.
	cpuMinRun = time.Second
)

// childServer is a sluice server in a child process.
type childServer struct {
	cmd  *exec.Cmd
	addr string
	c    *fasthttp.HostClient
	auth string // a SigV4 Authorization header for the PutRecords body
	date string // its X-Amz-Date
	body []byte // PutRecords of e2eBatch × cpuRecordSize
}

// The credentials the child servers' requests are signed with, and the IAM file that lets
// them do everything (cpuIAM, for the child started with --iam).
const (
	cpuKey    = "AKIDBENCH"
	cpuSecret = "bench"
	cpuIAM    = `{"users": [{"name": "bench", "accessKeyId": "` + cpuKey + `", "secretAccessKey": "` + cpuSecret + `", "policies": [
 {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]}]}`
)

// startChildServer starts the sluice binary bin on a loopback port with a data directory
// under dir and the extra serve flags given, then creates the bench stream through the API.
func startChildServer(bin, dir string, flags ...string) (*childServer, error) {
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"),
		"--limits", "off", "--durability", "none"}, flags...)...)
	cmd.Stderr = io.Discard
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	cs := &childServer{cmd: cmd}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, rest, ok := strings.Cut(sc.Text(), "serving the Kinesis API on http://"); ok {
				a, _, _ := strings.Cut(rest, " ")
				addr <- a
			}
		}
		close(addr)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			cs.close()
			return nil, errors.New("the server exited before it served")
		}
		cs.addr = a
	case <-time.After(childStartLimit):
		cs.close()
		return nil, errors.New("the server did not start within 30 s")
	}
	cs.c = &fasthttp.HostClient{Addr: cs.addr, MaxConns: e2eConns, MaxResponseBodySize: 1 << 20}
	cs.body = kinesisPutBody(cpuRecordSize, e2eBatch)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	create := []byte(`{"StreamName":"` + e2eStream + `","ShardCount":` + strconv.Itoa(e2eShards) + `}`)
	if err := cs.post("CreateStream", create, resp); err != nil {
		cs.close()
		return nil, err
	}
	return cs, nil
}

// buildSluice builds cmd/sluice from this module into dir and returns the binary's path.
func buildSluice(ctx context.Context, dir string) (string, error) {
	bin, err := filepath.Abs(filepath.Join(dir, "sluice"))
	if err != nil {
		return "", err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/sluice-streams/sluice/cmd/sluice")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the server: %v: %s", err, out)
	}
	return bin, nil
}

// sign returns the Authorization and X-Amz-Date headers the SDK would send with a call of
// target with body, now.
func (cs *childServer) sign(target string, body []byte) (auth, date string, err error) {
	req, err := http.NewRequest("POST", "http://"+cs.addr+"/", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+target)
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: cpuKey, SecretAccessKey: cpuSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", time.Now()); err != nil {
		return "", "", err
	}
	return req.Header.Get("Authorization"), req.Header.Get("X-Amz-Date"), nil
}

// post sends a call of target with body, signed: a PutRecords of cs.body with the headers
// putCPU made at the start of its run, anything else just now.
func (cs *childServer) post(target string, body []byte, resp *fasthttp.Response) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://" + cs.addr + "/")
	req.Header.SetMethod("POST")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+target)
	req.Header.SetContentType("application/x-amz-json-1.1")
	req.Header.Set("User-Agent", "aws-sdk-go-v2/1.48.0 os/linux lang/go api/kinesis")
	req.Header.Set("Amz-Sdk-Request", "attempt=1; max=3")
	req.Header.Set("Accept-Encoding", "identity")
	auth, date := cs.auth, cs.date
	if target != "PutRecords" {
		var err error
		if auth, date, err = cs.sign(target, body); err != nil {
			return err
		}
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("X-Amz-Date", date)
	req.SetBodyRaw(body)
	if err := cs.c.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != 200 {
		return fmt.Errorf("%s: status %d: %.300s", target, resp.StatusCode(), resp.Body())
	}
	return nil
}

func (cs *childServer) close() {
	cs.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cs.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cs.cmd.Process.Kill()
		<-done
	}
}

// cpuTime is the CPU time (user + system) process pid has used, from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The fields after the command name (in parentheses, which may hold spaces): state is
	// field 3, utime 14 and stime 15 (proc(5)).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clockTicksPerS, nil
}

// selfCPUTime is the CPU time (user + system) this process has used.
func selfCPUTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// putCPU loads the child with PutRecords over e2eConns connections for d (cpuMinRun at the
// least) and returns records per second of the child's CPU time.
func (cs *childServer) putCPU(ctx context.Context, d time.Duration) (float64, string, error) {
	d = max(d, cpuMinRun)
	var err error
	if cs.auth, cs.date, err = cs.sign("PutRecords", cs.body); err != nil {
		return 0, "", err
	}
	pid := cs.cmd.Process.Pid
	before, err := cpuTime(pid)
	if err != nil {
		return 0, "", err
	}
	start := time.Now()
	reqs, err := parallel(ctx, d, e2eConns, func(int) (int64, error) {
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		if err := cs.post("PutRecords", cs.body, resp); err != nil {
			return 0, err
		}
		if !bytes.HasPrefix(resp.Body(), []byte(`{"FailedRecordCount":0,`)) {
			return 0, fmt.Errorf("PutRecords failed records: %.200s", resp.Body())
		}
		return 1, nil
	})
	wall := time.Since(start)
	if err != nil {
		return 0, "", err
	}
	after, err := cpuTime(pid)
	if err != nil {
		return 0, "", err
	}
	cpu := after - before
	if cpu <= 0 {
		return 0, "", errors.New("the server used no measurable CPU time")
	}
	records := reqs * wall.Seconds() * e2eBatch
	v := records / cpu.Seconds()
	return v, fmt.Sprintf("%.0f records/s, server CPU %.2f cores (±%d ms resolution), %.2f of the %.1f M target (PERFORMANCE.md)",
		records/wall.Seconds(), cpu.Seconds()/wall.Seconds(), 1000/clockTicksPerS, v/kinesisCPUT, kinesisCPUT/1e6), nil
}

// decodeAppendBound is an engine in this process that PutRecords bodies are decoded and
// appended into, without HTTP.
type decodeAppendBound struct {
	eng  *stream.Engine
	body []byte
}

func openDecodeAppendBound(dir string) (*decodeAppendBound, error) {
	eng, err := stream.Open(stream.Options{Dir: dir, Durability: segment.Durability{Mode: segment.None}, Limits: stream.Limits{Off: true, Factor: 1}})
	if err != nil {
		return nil, err
	}
	if err := eng.CreateStream(stream.CreateStreamInput{Name: e2eStream, ShardCount: e2eShards}); err != nil {
		eng.Close()
		return nil, err
	}
	return &decodeAppendBound{eng: eng, body: kinesisPutBody(cpuRecordSize, e2eBatch)}, nil
}

// measure decodes and appends the body in e2eConns goroutines for d and returns records per
// second of this process's CPU time, which nothing else uses meanwhile.
func (b *decodeAppendBound) measure(ctx context.Context, d time.Duration) (float64, string, error) {
	before, err := selfCPUTime()
	if err != nil {
		return 0, "", err
	}
	start := time.Now()
	calls, err := parallel(ctx, d, e2eConns, func(int) (int64, error) {
		failed, err := server.DecodeAndPut(b.eng, b.body)
		if err == nil && failed > 0 {
			err = fmt.Errorf("%d records of a put failed", failed)
		}
		return 1, err
	})
	wall := time.Since(start)
	if err != nil {
		return 0, "", err
	}
	after, err := selfCPUTime()
	if err != nil {
		return 0, "", err
	}
	records := calls * wall.Seconds() * e2eBatch
	cpu := (after - before).Seconds()
	return records / cpu, fmt.Sprintf("%.0f records/s, %.2f cores, %d goroutines, batches of %d × %d B",
		records/wall.Seconds(), cpu/wall.Seconds(), e2eConns, e2eBatch, cpuRecordSize), nil
}
