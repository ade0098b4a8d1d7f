package account

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/iam"
	"github.com/sluice-streams/sluice/internal/faultfs"
	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// clock is the injected clock: it moves only when told.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Unix(1_700_000_000, 0).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// env is an engine and its account over one data directory.
type env struct {
	t   *testing.T
	dir string
	c   *clock
	fs  vfs.FS
	e   *stream.Engine
	a   *Account
}

func newEnv(t *testing.T) *env {
	v := &env{t: t, dir: t.TempDir(), c: newClock(), fs: vfs.OS}
	v.open()
	return v
}

func (v *env) open() {
	v.t.Helper()
	e, err := stream.Open(stream.Options{Dir: v.dir, FS: v.fs, Now: v.c.Now, Limits: stream.Limits{Off: true, Factor: 1},
		SegmentSize: segment.MinSegmentSize, Durability: segment.Durability{Mode: segment.None}})
	if err != nil {
		v.t.Fatal(err)
	}
	a, err := Open(e)
	if err != nil {
		e.Close()
		v.t.Fatal(err)
	}
	v.e, v.a = e, a
	v.t.Cleanup(func() { e.Close() })
}

// restart closes the engine and opens the data directory again.
func (v *env) restart() {
	v.t.Helper()
	if err := v.e.Close(); err != nil {
		v.t.Fatal(err)
	}
	v.open()
}

func (v *env) create(name string, shards int, mode string) {
	v.t.Helper()
	if err := v.e.CreateStream(stream.CreateStreamInput{Name: name, ShardCount: shards, Mode: mode}); err != nil {
		v.t.Fatal(err)
	}
}

func wantKind(t *testing.T, err error, k stream.Kind) {
	t.Helper()
	if stream.KindOf(err) != k {
		t.Fatalf("%v, want a %v", err, k)
	}
}

func TestMonitoringAndLimits(t *testing.T) {
	v := newEnv(t)
	v.create("s", 3, "")
	v.create("od", 0, stream.ModeOnDemand)
	cur, des, err := v.a.SetMonitoring("s", []string{"OutgoingBytes", "IncomingBytes"}, true)
	if err != nil || len(cur) != 0 || !slices.Equal(des, []string{"IncomingBytes", "OutgoingBytes"}) {
		t.Fatalf("enable: %v %v %v", cur, des, err)
	}
	cur, des, err = v.a.SetMonitoring("s", []string{"ALL"}, true)
	if err != nil || len(cur) != 2 || !slices.Equal(des, stream.ShardLevelMetrics) {
		t.Fatalf("enable ALL: %v %v %v", cur, des, err)
	}
	cur, des, err = v.a.SetMonitoring("s", []string{"IteratorAgeMilliseconds", "IncomingBytes"}, false)
	if err != nil || len(cur) != 7 || len(des) != 5 || slices.Contains(des, "IncomingBytes") {
		t.Fatalf("disable: %v %v %v", cur, des, err)
	}
	for _, tc := range []struct {
		metrics []string
		name    string
		want    stream.Kind
	}{
		{nil, "s", stream.KindValidation},
		{[]string{"Bogus"}, "s", stream.KindValidation},
		{[]string{"ALL", "Bogus"}, "s", stream.KindValidation},
		{slices.Repeat([]string{"ALL"}, 8), "s", stream.KindValidation},
		{[]string{"ALL"}, "nope", stream.KindResourceNotFound},
	} {
		_, _, err := v.a.SetMonitoring(tc.name, tc.metrics, true)
		wantKind(t, err, tc.want)
	}
	_, _, err = v.a.SetMonitoring("s", []string{"Bogus"}, true)
	want := "1 validation error detected: Value '[Bogus]' at 'shardLevelMetrics' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, IteratorAgeMilliseconds, ALL]]"
	if err.(*stream.Error).Msg != want {
		t.Fatalf("message %q", err.(*stream.Error).Msg)
	}
	l := v.a.Limits()
	if l.ShardLimit != 1024 || l.OpenShardCount != 3+4 || l.OnDemandStreamCount != 1 || l.OnDemandStreamCountLimit != 50 {
		t.Fatalf("limits: %+v", l)
	}
	v.restart()
	if m, err := v.e.Monitoring("s"); err != nil || len(m) != 5 {
		t.Fatalf("after restart: %v %v", m, err)
	}
}

func TestResourceTagsAndPolicies(t *testing.T) {
	v := newEnv(t)
	v.create("s", 1, "")
	cons, err := v.e.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	arn := v.e.ARN("s")
	if err := v.a.TagResource(arn, map[string]string{"team": "a"}); err != nil {
		t.Fatal(err)
	}
	if tags, err := v.e.Tags("s"); err != nil || len(tags) != 1 {
		t.Fatalf("stream tags: %v %v", tags, err)
	}
	if err := v.a.TagResource(cons.ARN, map[string]string{"role": "reader", "x": "y"}); err != nil {
		t.Fatal(err)
	}
	if err := v.a.UntagResource(cons.ARN, []string{"x", "absent"}); err != nil {
		t.Fatal(err)
	}
	if err := v.a.PutPolicy(arn, streamPolicy); err != nil {
		t.Fatal(err)
	}
	if p, err := v.a.Policy(cons.ARN); err != nil || p != "{}" {
		t.Fatalf("consumer policy before: %q %v", p, err)
	}
	if err := v.a.PutPolicy(cons.ARN, policyDoc("c")); err != nil {
		t.Fatal(err)
	}
	many := map[string]string{}
	for i := range stream.MaxTagsPerStream {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	for _, tc := range []struct {
		err  error
		want stream.Kind
	}{
		{v.a.TagResource("arn:aws:kinesis:us-east-1:000000000000:stream/nope", map[string]string{"k": "v"}), stream.KindResourceNotFound},
		{v.a.TagResource("arn:aws:kinesis:eu-west-1:000000000000:stream/s", map[string]string{"k": "v"}), stream.KindResourceNotFound},
		{v.a.TagResource(arn+"/consumer/gone:1", map[string]string{"k": "v"}), stream.KindResourceNotFound},
		{v.a.TagResource("arn:aws:kinesis:us-east-1:000000000000:stream/s/shard/1", map[string]string{"k": "v"}), stream.KindInvalidArgument},
		{v.a.TagResource("not-an-arn", map[string]string{"k": "v"}), stream.KindValidation},
		{v.a.TagResource(cons.ARN, map[string]string{"": "v"}), stream.KindInvalidArgument},
		{v.a.TagResource(cons.ARN, many), stream.KindLimitExceeded},
		{v.a.PutPolicy(arn, `[1]`), stream.KindInvalidArgument},
		{v.a.PutPolicy(arn, `{`), stream.KindInvalidArgument},
		{v.a.PutPolicy(arn, `null`), stream.KindInvalidArgument},
		{v.a.PutPolicy(arn, `{"Statement":[]}`), stream.KindInvalidArgument},
		{v.a.PutPolicy(arn, `{"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}}`), stream.KindInvalidArgument}, // no Principal
		{v.a.PutPolicy(arn, `{"a":"`+strings.Repeat("x", MaxPolicyBytes)+`"}`), stream.KindInvalidArgument},
		{v.a.DeletePolicy(arn + "/consumer/gone:1"), stream.KindResourceNotFound},
	} {
		wantKind(t, tc.err, tc.want)
	}
	v.restart()
	if tags, err := v.a.ResourceTags(cons.ARN); err != nil || len(tags) != 1 || tags[0] != (stream.Tag{Key: "role", Value: "reader"}) {
		t.Fatalf("consumer tags after restart: %v %v", tags, err)
	}
	if p, err := v.a.Policy(arn); err != nil || p != streamPolicy {
		t.Fatalf("stream policy after restart: %q %v", p, err)
	}
	if err := v.a.DeletePolicy(arn); err != nil {
		t.Fatal(err)
	}
	err = v.a.DeletePolicy(arn)
	wantKind(t, err, stream.KindResourceNotFound)
	// A consumer registered again under the same name is a new resource: no old settings.
	if err := v.e.DeregisterConsumer("s", "app", ""); err != nil {
		t.Fatal(err)
	}
	v.c.Advance(time.Second)
	again, err := v.e.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	if tags, err := v.a.ResourceTags(again.ARN); err != nil || len(tags) != 0 {
		t.Fatalf("new consumer's tags: %v %v", tags, err)
	}
	if p, err := v.a.Policy(again.ARN); err != nil || p != "{}" {
		t.Fatalf("new consumer's policy: %q %v", p, err)
	}
	if err := v.a.TagResource(again.ARN, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if s := readState(t, v.dir).Streams["s"]; len(s.ConsumerTags) != 1 || len(s.Policies) != 0 {
		t.Fatalf("the old consumer's settings were kept: %+v", s)
	}
}

func TestCommitmentAndWarmThroughput(t *testing.T) {
	v := newEnv(t)
	v.create("od", 0, stream.ModeOnDemand)
	v.create("p", 1, "")
	if cm, err := v.a.Commitment(); err != nil || cm.Status != CommitmentDisabled || !cm.StartedAt.IsZero() {
		t.Fatalf("default: %+v %v", cm, err)
	}
	_, _, err := v.a.SetWarmThroughput("od", 100)
	wantKind(t, err, stream.KindInvalidArgument) // no commitment
	_, err = v.a.SetCommitment("MAYBE")
	wantKind(t, err, stream.KindValidation)
	start := v.c.Now()
	cm, err := v.a.SetCommitment(CommitmentEnabled)
	if err != nil || cm.Status != CommitmentEnabled || !cm.StartedAt.Equal(start) || !cm.EarliestAllowedEndAt.Equal(start.Add(24*time.Hour)) {
		t.Fatalf("enable: %+v %v", cm, err)
	}
	cur, target, err := v.a.SetWarmThroughput("od", 100)
	if err != nil || cur != 0 || target != 100 {
		t.Fatalf("warm: %d %d %v", cur, target, err)
	}
	if cur, target, err = v.a.SetWarmThroughput("od", 200); err != nil || cur != 100 || target != 200 {
		t.Fatalf("warm again: %d %d %v", cur, target, err)
	}
	for _, tc := range []struct {
		name  string
		mibps int
		want  stream.Kind
	}{
		{"p", 10, stream.KindInvalidArgument},
		{"od", -1, stream.KindValidation},
		{"od", MaxWarmMiBps + 1, stream.KindLimitExceeded},
		{"nope", 1, stream.KindResourceNotFound},
	} {
		_, _, err := v.a.SetWarmThroughput(tc.name, tc.mibps)
		wantKind(t, err, tc.want)
	}
	v.c.Advance(time.Hour)
	cm, err = v.a.SetCommitment(CommitmentDisabled)
	if err != nil || cm.Status != CommitmentEnabledUntilEarliest || !cm.EndedAt.Equal(start.Add(24*time.Hour)) {
		t.Fatalf("disable early: %+v %v", cm, err)
	}
	v.restart()
	if cm, err := v.a.Commitment(); err != nil || cm.Status != CommitmentEnabledUntilEarliest {
		t.Fatalf("after restart: %+v %v", cm, err)
	}
	if w, ok, err := v.a.WarmThroughput("od"); err != nil || !ok || w != 200 {
		t.Fatalf("warm after restart: %d %v %v", w, ok, err)
	}
	v.c.Advance(24 * time.Hour)
	if cm, err := v.a.Commitment(); err != nil || cm.Status != CommitmentDisabled {
		t.Fatalf("after the earliest end: %+v %v", cm, err)
	}
	if cm, err := v.a.SetCommitment(CommitmentEnabled); err != nil || cm.Status != CommitmentEnabled || !cm.StartedAt.Equal(v.c.Now()) || !cm.EndedAt.IsZero() {
		t.Fatalf("enable again: %+v %v", cm, err)
	}
}

// TestDeletedStreamLosesSettings: a stream deleted and created again under its name, at the
// same instant of the clock, starts with no policy, consumer tags or warm throughput, and
// account.json forgets the old ones at its next write.
func TestDeletedStreamLosesSettings(t *testing.T) {
	v := newEnv(t)
	v.create("od", 0, stream.ModeOnDemand)
	cons, err := v.e.RegisterConsumer("od", "app")
	if err != nil {
		t.Fatal(err)
	}
	arn := v.e.ARN("od")
	if _, err := v.a.SetCommitment(CommitmentEnabled); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.a.SetWarmThroughput("od", 100); err != nil {
		t.Fatal(err)
	}
	if err := v.a.PutPolicy(arn, streamPolicy); err != nil {
		t.Fatal(err)
	}
	if err := v.a.TagResource(cons.ARN, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if err := v.e.DeleteStream("od", true); err != nil {
		t.Fatal(err)
	}
	v.create("od", 0, stream.ModeOnDemand)
	again, err := v.e.RegisterConsumer("od", "app")
	if err != nil || again.ARN != cons.ARN {
		t.Fatalf("consumer %v %v: want the same ARN as before", again.ARN, err)
	}
	if _, ok, err := v.a.WarmThroughput("od"); err != nil || ok {
		t.Fatalf("warm throughput of the new stream: %v %v", ok, err)
	}
	if p, err := v.a.Policy(arn); err != nil || p != "{}" {
		t.Fatalf("policy of the new stream: %q %v", p, err)
	}
	if tags, err := v.a.ResourceTags(cons.ARN); err != nil || len(tags) != 0 {
		t.Fatalf("tags of the new consumer: %v %v", tags, err)
	}
	if err := v.e.DeleteStream("od", true); err != nil {
		t.Fatal(err)
	}
	if _, err := v.a.SetCommitment(CommitmentDisabled); err != nil { // a write
		t.Fatal(err)
	}
	if st := readState(t, v.dir); len(st.Streams) != 0 {
		t.Fatalf("account.json still holds deleted streams: %+v", st.Streams)
	}
}

// TestLegacySettings: the settings an older stream.json and a version-1 account.json hold
// are read, moved out of stream.json, and kept across restarts.
func TestLegacySettings(t *testing.T) {
	v := newEnv(t)
	v.create("od", 0, stream.ModeOnDemand)
	cons, err := v.e.RegisterConsumer("od", "app")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.e.Close(); err != nil {
		t.Fatal(err)
	}
	// What the engine wrote when it kept these settings itself.
	key := strings.TrimPrefix(cons.ARN, v.e.ARN("od")+"/consumer/")
	meta := filepath.Join(v.dir, "streams", "od", "stream.json")
	m := map[string]any{}
	b, err := os.ReadFile(meta)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		t.Fatal(err)
	}
	m["warmThroughputMiBps"] = 300
	m["consumerTags"] = map[string]map[string]string{key: {"role": "reader"}}
	m["policies"] = map[string]string{"stream": `{"Statement":[]}`, "consumer/" + key: `{"Id":"c"}`}
	writeJSON(t, meta, m)
	writeJSON(t, filepath.Join(v.dir, "account.json"), map[string]any{"version": 1,
		"minimumThroughputBillingCommitment": map[string]any{"status": "ENABLED", "startedAt": v.c.Now().UnixMilli(),
			"earliestAllowedEndAt": v.c.Now().Add(24 * time.Hour).UnixMilli()}})
	for range 2 {
		v.open()
		if cm, err := v.a.Commitment(); err != nil || cm.Status != CommitmentEnabled {
			t.Fatalf("commitment: %+v %v", cm, err)
		}
		if w, ok, err := v.a.WarmThroughput("od"); err != nil || !ok || w != 300 {
			t.Fatalf("warm throughput: %d %v %v", w, ok, err)
		}
		if p, err := v.a.Policy(v.e.ARN("od")); err != nil || p != `{"Statement":[]}` {
			t.Fatalf("stream policy: %q %v", p, err)
		}
		if p, err := v.a.Policy(cons.ARN); err != nil || p != `{"Id":"c"}` {
			t.Fatalf("consumer policy: %q %v", p, err)
		}
		if tags, err := v.a.ResourceTags(cons.ARN); err != nil || len(tags) != 1 || tags[0].Value != "reader" {
			t.Fatalf("consumer tags: %v %v", tags, err)
		}
		b, err := os.ReadFile(meta)
		if err != nil {
			t.Fatal(err)
		}
		for _, field := range []string{"warmThroughputMiBps", "consumerTags", "policies"} {
			if strings.Contains(string(b), field) {
				t.Fatalf("stream.json still holds %s:\n%s", field, b)
			}
		}
		if err := v.e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// policyDoc is a resource policy whose statement's Sid is sid.
func policyDoc(sid string) string {
	return `{"Version":"2012-10-17","Statement":[{"Sid":"` + sid + `","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kinesis:GetRecords","Resource":"*"}]}`
}

var streamPolicy = policyDoc("s")

// TestFailedWriteChangesNothing: a change account.json could not take is refused, and the
// settings stay as they were, in memory and on disk.
func TestFailedWriteChangesNothing(t *testing.T) {
	v := &env{t: t, dir: t.TempDir(), c: newClock()}
	ffs := faultfs.New()
	v.fs = ffs
	v.open()
	v.create("s", 1, "")
	arn := v.e.ARN("s")
	if err := v.a.PutPolicy(arn, policyDoc("1")); err != nil {
		t.Fatal(err)
	}
	ffs.FailSyncs(errors.New("injected EIO"))
	if err := v.a.PutPolicy(arn, policyDoc("2")); err == nil {
		t.Fatal("a policy was accepted though account.json could not be written")
	}
	if _, err := v.a.SetCommitment(CommitmentEnabled); err == nil {
		t.Fatal("a commitment was accepted though account.json could not be written")
	}
	ffs.FailSyncs(nil)
	if p, err := v.a.Policy(arn); err != nil || p != policyDoc("1") {
		t.Fatalf("policy after a failed write: %q %v", p, err)
	}
	if cm, err := v.a.Commitment(); err != nil || cm.Status != CommitmentDisabled {
		t.Fatalf("commitment after a failed write: %+v %v", cm, err)
	}
}

func TestParseARN(t *testing.T) {
	for _, s := range []string{
		"arn:aws:kinesis:us-east-1:000000000000:stream/s",
		"arn:aws:kinesis:eu-west-1:123456789012:stream/a.b-c_d/consumer/app:1700000000",
		"arn:aws-cn:kinesis:cn-north-1:123456789012:stream/s",
	} {
		a, err := ParseARN(s)
		if err != nil || a.String() != s {
			t.Errorf("ParseARN(%q) = %+v, %v; formats back as %q", s, a, err, a.String())
		}
	}
	a, _ := ParseARN("arn:aws:kinesis:eu-west-1:123456789012:stream/s/consumer/app:17")
	if a != (ARN{Partition: "aws", Region: "eu-west-1", Account: "123456789012", Stream: "s", Consumer: "app", Created: 17}) {
		t.Errorf("fields %+v", a)
	}
	for _, tc := range []struct {
		arn  string
		want stream.Kind
	}{
		{"", stream.KindValidation},
		{"not-an-arn", stream.KindValidation},
		{"arn:aws:kinesis:r:12345:stream/s", stream.KindValidation},
		{"arn:aws:kinesis:r:123456789012:stream/" + strings.Repeat("s", 2048), stream.KindValidation},
		{"arn:aws:kinesis:r:123456789012:stream/s/shard/1", stream.KindInvalidArgument},
		{"arn:aws:kinesis:r:123456789012:stream/bad#name", stream.KindInvalidArgument},
		{"arn:aws:kinesis:r:123456789012:stream/s/consumer/app", stream.KindInvalidArgument},
		{"arn:aws:kinesis:r:123456789012:stream/s/consumer/app:x1", stream.KindInvalidArgument},
		{"arn:aws:kinesis:r:123456789012:stream/s/consumer/app:99999999999999999999", stream.KindInvalidArgument},
		{"arn:aws:kinesis:r:123456789012:xstream/s", stream.KindInvalidArgument},
	} {
		_, err := ParseARN(tc.arn)
		if stream.KindOf(err) != tc.want {
			t.Errorf("ParseARN(%.60q): %v, want a %v", tc.arn, err, tc.want)
		}
	}
	// The engine's ARNs are ARNs of this syntax.
	v := newEnv(t)
	v.create("s", 1, "")
	c, err := v.e.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{v.e.ARN("s"), c.ARN} {
		if a, err := ParseARN(s); err != nil || a.String() != s {
			t.Errorf("engine ARN %q parses as %+v, %v", s, a, err)
		}
	}
}

func readState(t *testing.T, dir string) state {
	t.Helper()
	var st state
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestResourcePolicyParsed: ResourcePolicy returns what PutPolicy kept, parsed and named by
// the resource's ARN, after a restart too; nothing once it is deleted, and nothing for a
// stream created again under the name of one that had a policy.
func TestResourcePolicyParsed(t *testing.T) {
	v := &env{t: t, dir: t.TempDir(), c: newClock()}
	v.open()
	v.create("s", 1, "")
	arn := v.e.ARN("s")
	if p, err := v.a.ResourcePolicy(arn); err != nil || p != nil {
		t.Fatalf("before any policy: %v %v", p, err)
	}
	if err := v.a.PutPolicy(arn, streamPolicy); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		p, err := v.a.ResourcePolicy(arn)
		if err != nil || p == nil || p.Name() != arn || p.Kind() != iam.Resource || p.Statements() != 1 {
			t.Fatalf("%s: %+v %v", when, p, err)
		}
	}
	check("after PutPolicy")
	v.restart()
	check("after a restart")
	if err := v.a.DeletePolicy(arn); err != nil {
		t.Fatal(err)
	}
	if p, err := v.a.ResourcePolicy(arn); err != nil || p != nil {
		t.Fatalf("after DeletePolicy: %v %v", p, err)
	}
	if err := v.a.PutPolicy(arn, streamPolicy); err != nil {
		t.Fatal(err)
	}
	if err := v.e.DeleteStream("s", true); err != nil {
		t.Fatal(err)
	}
	v.c.Advance(time.Second)
	v.create("s", 1, "")
	if p, err := v.a.ResourcePolicy(arn); err != nil || p != nil {
		t.Fatalf("stream created again: %v %v", p, err)
	}
}
