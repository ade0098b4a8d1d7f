package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// readAll returns the data of every record of every shard of stream, per shard in order.
func readAll(t *testing.T, c *client.Client, stream string) map[uint32][]string {
	t.Helper()
	ctx := context.Background()
	shards, err := c.ListShards(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32][]string{}
	for _, s := range shards {
		in := client.GetInput{Shard: uint32(s.ID), Start: client.TrimHorizon}
		for {
			o, err := c.GetRecords(ctx, stream, in)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range o.Records {
				out[uint32(s.ID)] = append(out[uint32(s.ID)], string(r.Data))
			}
			n := len(o.Records)
			in.Start, in.Value = client.AtSequenceNumber, o.Next
			o.Release()
			if n == 0 {
				break
			}
		}
	}
	return out
}

// logWriter appends numbered lines to dir/app.log and rotates it, by rename or by
// copy-truncate, as logrotate does. A line is "g<generation> <n>": n counts every line
// written, the generation every rotation.
type logWriter struct {
	dir      string
	rng      *rand.Rand
	f        *os.File
	gen, n   int
	rotation int
}

func (w *logWriter) path() string { return filepath.Join(w.dir, "app.log") }

func (w *logWriter) open(t *testing.T) {
	f, err := os.OpenFile(w.path(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	w.f = f
}

func (w *logWriter) write(t *testing.T, lines int) {
	var b strings.Builder
	for range lines {
		w.n++
		fmt.Fprintf(&b, "g%d %d %s\n", w.gen, w.n, strings.Repeat("x", w.rng.IntN(60)))
	}
	if _, err := w.f.WriteString(b.String()); err != nil {
		t.Error(err)
	}
}

// rotate moves app.log to app.log.<k>: renamed (the writer reopens a new app.log), or
// copied and truncated (the writer keeps its file, in append mode).
func (w *logWriter) rotate(t *testing.T) {
	w.rotation++
	dst := fmt.Sprintf("%s.%d", w.path(), w.rotation)
	if w.rotation%2 == 1 {
		w.f.Close()
		if err := os.Rename(w.path(), dst); err != nil {
			t.Error(err)
		}
		w.open(t)
	} else {
		b, err := os.ReadFile(w.path())
		if err == nil {
			err = os.WriteFile(dst, b, 0o644)
		}
		if err == nil {
			err = w.f.Truncate(0)
		}
		if err != nil {
			t.Error(err)
		}
	}
	w.gen++
}

// TestAgentSurvivesKill runs `sluice agent` as a child process over a log that a writer
// appends to and rotates (by rename and by copy-truncate), kills the agent with SIGKILL at
// random moments several times, and starts it again each time. At the end every line
// written is in the stream exactly once, and the lines of one file (one generation) are in
// the order written on each shard.
func TestAgentSurvivesKill(t *testing.T) { agentKillTest(t, nil) }

// TestAgentSurvivesKillAcrossReshard is TestAgentSurvivesKill with the stream resharded
// while the agent runs, shortly before some of the kills: a shard split (SplitShard), then
// UpdateShardCount up and down (splits and merges). Batches in flight land in shards
// created after their marks were saved; every line is still in the stream once.
func TestAgentSurvivesKillAcrossReshard(t *testing.T) {
	agentKillTest(t, func(t *testing.T, c *client.Client, run int) bool {
		ctx := context.Background()
		var err error
		switch run {
		case 1:
			err = splitFirstShard(ctx, c, "logs")
		case 3:
			err = c.CallKinesis(ctx, "UpdateShardCount", map[string]any{"StreamName": "logs", "TargetShardCount": 5, "ScalingType": "UNIFORM_SCALING"}, nil)
		case 4:
			err = c.CallKinesis(ctx, "UpdateShardCount", map[string]any{"StreamName": "logs", "TargetShardCount": 3, "ScalingType": "UNIFORM_SCALING"}, nil)
		default:
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	})
}

// splitFirstShard splits the stream's first open shard in the middle of its hash range.
func splitFirstShard(ctx context.Context, c *client.Client, stream string) error {
	shards, err := c.ListShards(ctx, stream)
	if err != nil {
		return err
	}
	for _, s := range shards {
		if !s.Open {
			continue
		}
		lo, _ := new(big.Int).SetString(s.Range.Start.String(), 10)
		hi, _ := new(big.Int).SetString(s.Range.End.String(), 10)
		mid := lo.Add(lo, hi).Rsh(lo, 1).Add(lo, big.NewInt(1))
		return c.CallKinesis(ctx, "SplitShard", map[string]any{"StreamName": stream, "ShardToSplit": s.Name(), "NewStartingHashKey": mid.String()}, nil)
	}
	return fmt.Errorf("%s has no open shard", stream)
}

// agentKillTest runs the kill test; reshard, when not nil, is called in each run of the
// agent after a random moment and reports whether it changed the stream (the agent is then
// killed soon after).
func agentKillTest(t *testing.T, reshard func(t *testing.T, c *client.Client, run int) bool) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	ep := startServeLimits(t, "off")
	ctx := context.Background()
	c, err := client.New(client.Config{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateStream(ctx, "logs", 2); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "agent.json")
	cfg := fmt.Sprintf(`{"checkpointFile": %q, "kinesis.endpoint": %q, "flows": [{"filePattern": %q,
		"kinesisStream": "logs", "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000,
		"maxBufferSizeRecords": 40, "minTimeBetweenFilePollsMillis": 5}]}`,
		filepath.Join(dir, "agent.checkpoint"), ep, filepath.Join(logs, "app.log*"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	w := &logWriter{dir: logs, rng: rand.New(rand.NewPCG(uint64(seed), 8))}
	w.open(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			w.write(t, 1+w.rng.IntN(8))
			if i%150 == 0 {
				w.rotate(t)
			}
		}
	})

	start := func() (*bufferedCmd, error) {
		cmd := sluiceCmd("agent", "--config", cfgPath, "--progress-interval", "1s")
		bc := &bufferedCmd{}
		cmd.Stdout, cmd.Stderr = &bc.out, &bc.out
		bc.cmd = cmd
		return bc, cmd.Start()
	}
	for i := range 6 {
		bc, err := start()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(150+rng.IntN(700)) * time.Millisecond) // a random moment to kill at, not a synchronisation
		if reshard != nil && reshard(t, c, i) {
			time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond) // a random moment after the reshard
		}
		bc.cmd.Process.Signal(syscall.SIGKILL)
		bc.cmd.Wait()
		t.Logf("kill %d after: %s", i, lastLine(bc.out.String()))
	}
	close(stop)
	wg.Wait()
	w.f.Close()
	total := w.n

	bc, err := start()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	var got map[uint32][]string
	for {
		got = readAll(t, c, "logs")
		n := 0
		for _, recs := range got {
			n += len(recs)
		}
		if n >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the stream for the agent to catch up
	}
	bc.cmd.Process.Signal(syscall.SIGTERM)
	if err := bc.cmd.Wait(); err != nil {
		t.Errorf("agent: %v\n%s", err, bc.out.String())
	}

	seen := make(map[int]int, total)
	for shard, recs := range got {
		last := map[string]int{} // generation → the last n on this shard
		for _, r := range recs {
			f := strings.Fields(r)
			if len(f) < 2 || !strings.HasSuffix(r, "\n") {
				t.Fatalf("shard %d: record %q is not a line written", shard, r)
			}
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("record %q: %v", r, err)
			}
			seen[n]++
			if n <= last[f[0]] {
				t.Errorf("shard %d: line %d of %s after line %d", shard, n, f[0], last[f[0]])
			}
			last[f[0]] = n
		}
	}
	var missing, twice []int
	for n := 1; n <= total; n++ {
		switch seen[n] {
		case 0:
			missing = append(missing, n)
		case 1:
		default:
			twice = append(twice, n)
		}
	}
	if len(missing) > 0 || len(twice) > 0 || len(seen) != total {
		t.Fatalf("%d lines written, %d distinct in the stream; missing %d %v; more than once %d %v\nlast agent output:\n%s",
			total, len(seen), len(missing), head(missing), len(twice), head(twice), bc.out.String())
	}
	t.Logf("%d lines over %d rotations, each in the stream once", total, w.rotation)
}

func head(v []int) []int { return v[:min(len(v), 20)] }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// bufferedCmd is a child process whose output is collected.
type bufferedCmd struct {
	cmd *exec.Cmd
	out syncBuffer
}

// TestAgentMetrics runs `sluice agent --metrics-addr` over a file of whole lines and a
// last line not yet ended, and reads /metrics: the Prometheus text counts the lines read
// and the records sent, and the file's bytes behind are those of the unended line.
func TestAgentMetrics(t *testing.T) {
	ep := startServeLimits(t, "off")
	c, err := client.New(client.Config{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateStream(context.Background(), "m", 1); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "app.log")
	var text strings.Builder
	for i := range 25 {
		fmt.Fprintf(&text, "line %d\n", i)
	}
	const partial = "not ended yet"
	if err := os.WriteFile(logPath, []byte(text.String()+partial), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "agent.json")
	cfg := fmt.Sprintf(`{"kinesis.endpoint": %q, "flows": [{"filePattern": %q, "kinesisStream": "m",
		"initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000}]}`, ep, logPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := sluiceCmd("agent", "--config", cfgPath, "--metrics-addr", "127.0.0.1:0")
	bc := &bufferedCmd{cmd: cmd}
	cmd.Stdout, cmd.Stderr = &bc.out, &bc.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var url string
	var metrics map[string]float64
	pattern := `{stream="m",file_pattern="` + logPath + `"}`
	behind := `sluice_agent_bytes_behind{stream="m",path="` + logPath + `"}`
	deadline := time.Now().Add(time.Minute)
	for metrics["sluice_agent_records_sent_total"+pattern] < 25 || metrics[behind] != float64(len(partial)) {
		if time.Now().After(deadline) {
			t.Fatalf("the metrics never showed 25 records sent and %d bytes behind: %v\n%s", len(partial), metrics, bc.out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the agent, not a synchronisation
		if url == "" {
			if _, after, ok := strings.Cut(bc.out.String(), "metrics on "); ok {
				url = strings.Fields(after)[0]
			}
			continue
		}
		metrics = scrape(t, url)
	}
	for name, want := range map[string]float64{
		"sluice_agent_lines_read_total" + pattern:              25,
		"sluice_agent_records_sent_total" + pattern:            25,
		"sluice_agent_records_dropped_total" + pattern:         0,
		"sluice_agent_records_found_in_stream_total" + pattern: 0,
		behind: float64(len(partial)),
	} {
		if got, ok := metrics[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if len(metrics) != 5 {
		t.Errorf("%d samples, want 5: %v", len(metrics), metrics)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent: %v\n%s", err, bc.out.String())
	}
	if !strings.Contains(bc.out.String(), "25 lines read, 25 records sent") {
		t.Errorf("the agent's last words:\n%s", bc.out.String())
	}
}

// scrape reads a Prometheus text page: every sample by its name and labels. A line that is
// neither a comment nor a sample fails the test, and so does a sample whose metric has no
// TYPE line before it.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	out := map[string]float64{}
	typed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			typed[f[2]] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		name, _, _ := strings.Cut(line[:max(i, 0)], "{")
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil || !typed[name] {
			t.Fatalf("not a sample of a typed metric: %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestAgentUnknownKey runs `sluice agent` with a configuration holding a key no Kinesis
// Agent knows, at the top and in a flow: it exits with status 2, naming the key, before it
// reads any file or checkpoint.
func TestAgentUnknownKey(t *testing.T) {
	for _, tc := range []struct{ conf, key string }{
		{`{"flows": [{"filePattern": "/x/*.log", "kinesisStream": "s", "maxBufferSizeRecord": 10}]}`, "flows[0].maxBufferSizeRecord"},
		{`{"checkpointFiles": "/x/ck", "flows": [{"filePattern": "/x/*.log", "kinesisStream": "s"}]}`, "checkpointFiles"},
	} {
		dir := t.TempDir()
		cfgPath := filepath.Join(dir, "agent.json")
		if err := os.WriteFile(cfgPath, []byte(tc.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := sluiceCmd("agent", "--config", cfgPath).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
			t.Fatalf("%s: %v, want exit status %d\n%s", tc.key, err, exitUsage, out)
		}
		if !strings.Contains(string(out), "unknown keys "+tc.key) {
			t.Errorf("the output does not name %s:\n%s", tc.key, out)
		}
		if _, err := os.Stat(cfgPath + ".checkpoint"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a checkpoint file is there: %v", err)
		}
	}
}
