package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// startMetricsServer runs a server on a loopback port over an engine whose clock stands
// still at a fixed time (so its limits refill never: throttling is exact) and with a
// hundredth of Kinesis's per-shard limits: 10 records/s in, 1 GetRecords call/s.
func startMetricsServer(t *testing.T) (base string, eng *stream.Engine) {
	t.Helper()
	now := time.Unix(1_700_000_000, 0)
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Now: func() time.Time { return now },
		Durability: segment.Durability{Mode: segment.None}, SegmentSize: segment.MinSegmentSize,
		Limits: stream.Limits{Factor: 0.01}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(eng, Options{})
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Shutdown()
		eng.Close()
	})
	return "http://" + ln.Addr().String(), eng
}

// kinesisCall posts one Kinesis JSON 1.1 request and returns the status and decoded answer.
func kinesisCall(t *testing.T, base, op string, in any) (int, map[string]any) {
	t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: undecodable answer: %v", op, err)
	}
	return resp.StatusCode, out
}

func mustCall(t *testing.T, base, op string, in any) map[string]any {
	t.Helper()
	status, out := kinesisCall(t, base, op, in)
	if status != http.StatusOK {
		t.Fatalf("%s: status %d: %v", op, status, out)
	}
	return out
}

// scrape fetches /metrics in the text format and parses it.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: status %d, %s: %.500s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// sample returns the value of the series of a family whose labels are exactly the given
// ones (name=value pairs), and whether it exists. A histogram gives its sample count.
func sample(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := families[name]
	if mf == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		if len(got) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsEndpoint(t *testing.T) {
	base, eng := startMetricsServer(t)
	for _, name := range []string{"orders", "idle"} {
		mustCall(t, base, "CreateStream", map[string]any{"StreamName": name, "ShardCount": 1})
	}
	mustCall(t, base, "PutRecords", map[string]any{"StreamName": "orders", "Records": []map[string]any{
		{"PartitionKey": "a", "Data": []byte("x")},
		{"PartitionKey": "b", "Data": []byte("yy")},
		{"PartitionKey": "c", "Data": []byte("zzz")},
	}})
	mustCall(t, base, "PutRecord", map[string]any{"StreamName": "orders", "PartitionKey": "k", "Data": []byte("hello")})
	// Ten more records: the shard takes 10 a second and already took 4.
	var ten []map[string]any
	for range 10 {
		ten = append(ten, map[string]any{"PartitionKey": "r", "Data": []byte("0")})
	}
	out := mustCall(t, base, "PutRecords", map[string]any{"StreamName": "orders", "Records": ten})
	if out["FailedRecordCount"] != 4.0 {
		t.Fatalf("PutRecords past the limit: %v failed, want 4", out["FailedRecordCount"])
	}
	if status, out := kinesisCall(t, base, "PutRecord", map[string]any{"StreamName": "orders", "PartitionKey": "k", "Data": []byte("late")}); status != 400 || out["__type"] != "ProvisionedThroughputExceededException" {
		t.Fatalf("PutRecord past the limit: %d %v", status, out)
	}
	it := mustCall(t, base, "GetShardIterator", map[string]any{"StreamName": "orders", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"})
	got := mustCall(t, base, "GetRecords", map[string]any{"ShardIterator": it["ShardIterator"], "Limit": 100})
	if recs, _ := got["Records"].([]any); len(recs) != 10 {
		t.Fatalf("GetRecords returned %d records, want 10", len(recs))
	}
	if status, out := kinesisCall(t, base, "GetRecords", map[string]any{"ShardIterator": got["NextShardIterator"]}); status != 400 || out["__type"] != "ProvisionedThroughputExceededException" {
		t.Fatalf("second GetRecords in a second: %d %v", status, out)
	}
	arn := mustCall(t, base, "DescribeStreamSummary", map[string]any{"StreamName": "orders"})["StreamDescriptionSummary"].(map[string]any)["StreamARN"]
	mustCall(t, base, "RegisterStreamConsumer", map[string]any{"StreamARN": arn, "ConsumerName": "app"})

	families := scrape(t, base)
	orders := []string{"stream", "orders"}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		// Keys and data: a:x, b:yy, c:zzz (9 bytes), k:hello (6), then six r:0 (12).
		{"sluice_stream_incoming_records_total", orders, 10},
		{"sluice_stream_incoming_bytes_total", orders, 9 + 6 + 12},
		{"sluice_stream_put_record_success_total", orders, 1},
		{"sluice_stream_put_record_bytes_total", orders, 6},
		{"sluice_stream_put_record_latency_seconds", orders, 2},
		{"sluice_stream_put_records_success_total", orders, 2},
		{"sluice_stream_put_records_bytes_total", orders, 9 + 12},
		{"sluice_stream_put_records_records_total", append(orders, "result", "successful"), 9},
		{"sluice_stream_put_records_records_total", append(orders, "result", "throttled"), 4},
		{"sluice_stream_put_records_records_total", append(orders, "result", "failed"), 0},
		{"sluice_stream_put_records_latency_seconds", orders, 2},
		{"sluice_stream_write_provisioned_throughput_exceeded_total", orders, 5},
		{"sluice_stream_get_records_records_total", orders, 10},
		{"sluice_stream_get_records_bytes_total", orders, 27},
		{"sluice_stream_get_records_success_total", orders, 1},
		{"sluice_stream_get_records_latency_seconds", orders, 2},
		{"sluice_stream_get_records_iterator_age_seconds", orders, 0},
		{"sluice_stream_read_provisioned_throughput_exceeded_total", orders, 1},
		{"sluice_stream_subscribe_to_shard_success_total", append(orders, "consumer", "app"), 0},
		{"sluice_stream_subscribe_to_shard_event_records_total", append(orders, "consumer", "app"), 0},
		{"sluice_stream_incoming_records_total", []string{"stream", "idle"}, 0},
		{"sluice_stream_put_records_latency_seconds", []string{"stream", "idle"}, 0},
		{"sluice_forwarded_records_total", nil, 0}, // a single node forwards nothing
	} {
		v, ok := sample(families, c.name, c.labels...)
		if !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	// On a clock that stands still every call took no time: all in the first bucket.
	h := families["sluice_stream_put_records_latency_seconds"].GetMetric()
	for _, m := range h {
		if m.GetLabel()[0].GetValue() != "orders" {
			continue
		}
		b := m.GetHistogram().GetBucket()
		// The text format lists the +Inf bucket too.
		if len(b) != len(stream.LatencyBounds())+1 || b[0].GetUpperBound() != 10e-6 || b[0].GetCumulativeCount() != 2 || m.GetHistogram().GetSampleSum() != 0 {
			t.Errorf("PutRecords latency histogram: %v", m.GetHistogram())
		}
	}
	// No shard-level series until enhanced monitoring enables them.
	for name := range families {
		if strings.HasPrefix(name, "sluice_shard_") {
			t.Errorf("shard-level %s exported without enhanced monitoring", name)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if families[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	mustCall(t, base, "EnableEnhancedMonitoring", map[string]any{"StreamName": "orders", "ShardLevelMetrics": []string{"IncomingRecords", "ReadProvisionedThroughputExceeded"}})
	families = scrape(t, base)
	shard0 := []string{"stream", "orders", "shard", "shardId-000000000000"}
	for name, want := range map[string]float64{"sluice_shard_incoming_records_total": 10, "sluice_shard_read_provisioned_throughput_exceeded_total": 1} {
		if v, ok := sample(families, name, shard0...); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
		if _, ok := sample(families, name, "stream", "idle", "shard", "shardId-000000000000"); ok {
			t.Errorf("%s exported for a stream without enhanced monitoring", name)
		}
	}
	var shardLevel []string
	for name := range families {
		if strings.HasPrefix(name, "sluice_shard_") {
			shardLevel = append(shardLevel, name)
		}
	}
	sort.Strings(shardLevel)
	if want := []string{"sluice_shard_incoming_records_total", "sluice_shard_read_provisioned_throughput_exceeded_total"}; strings.Join(shardLevel, " ") != strings.Join(want, " ") {
		t.Errorf("shard-level families %v, want %v", shardLevel, want)
	}
	mustCall(t, base, "EnableEnhancedMonitoring", map[string]any{"StreamName": "orders", "ShardLevelMetrics": []string{"ALL"}})
	families = scrape(t, base)
	for name, want := range map[string]float64{"sluice_shard_incoming_bytes_total": 27, "sluice_shard_outgoing_records_total": 10,
		"sluice_shard_outgoing_bytes_total": 27, "sluice_shard_write_provisioned_throughput_exceeded_total": 5, "sluice_shard_iterator_age_seconds": 0} {
		if v, ok := sample(families, name, shard0...); !ok || v != want {
			t.Errorf("with ALL: %s = %v (present %v), want %v", name, v, ok, want)
		}
	}

	// A scraper that asks for OpenMetrics gets it.
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	om, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/openmetrics-text") ||
		!bytes.HasSuffix(om, []byte("# EOF\n")) || !bytes.Contains(om, []byte(`sluice_stream_incoming_records_total{stream="orders"} 10`)) {
		t.Fatalf("OpenMetrics scrape: %v, %s: %.300s", err, resp.Header.Get("Content-Type"), om)
	}

	// The engine's families follow the Prometheus conventions, and what is collected
	// matches what is described.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(engineCollector{eng})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) != 0 {
		t.Fatalf("promlint: %v %v", problems, err)
	}
}
