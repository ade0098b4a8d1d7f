package stream

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestMonitoringAndLimits(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 3}); err != nil {
		t.Fatal(err)
	}
	if err := e.CreateStream(CreateStreamInput{Name: "od", Mode: ModeOnDemand}); err != nil {
		t.Fatal(err)
	}
	cur, des, err := e.SetMonitoring("s", []string{"OutgoingBytes", "IncomingBytes"}, true)
	if err != nil || len(cur) != 0 || !slices.Equal(des, []string{"IncomingBytes", "OutgoingBytes"}) {
		t.Fatalf("enable: %v %v %v", cur, des, err)
	}
	cur, des, err = e.SetMonitoring("s", []string{"ALL"}, true)
	if err != nil || len(cur) != 2 || !slices.Equal(des, ShardLevelMetrics) {
		t.Fatalf("enable ALL: %v %v %v", cur, des, err)
	}
	cur, des, err = e.SetMonitoring("s", []string{"IteratorAgeMilliseconds", "IncomingBytes"}, false)
	if err != nil || len(cur) != 7 || len(des) != 5 || slices.Contains(des, "IncomingBytes") {
		t.Fatalf("disable: %v %v %v", cur, des, err)
	}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{second(e.Monitoring("nope")), ErrResourceNotFound},
		{third(e.SetMonitoring("s", nil, true)), ErrValidation},
		{third(e.SetMonitoring("s", []string{"Bogus"}, true)), ErrValidation},
		{third(e.SetMonitoring("s", slices.Repeat([]string{"ALL"}, 8), false)), ErrValidation},
		{third(e.SetMonitoring("nope", []string{"ALL"}, true)), ErrResourceNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Fatalf("%v, want %v", tc.err, tc.want.(*Error).Kind)
		}
	}
	l := e.Limits()
	if l.ShardLimit != 1024 || l.OpenShardCount != 3+defaultShardsOnDemand || l.OnDemandStreamCount != 1 || l.OnDemandStreamCountLimit != 50 {
		t.Fatalf("limits: %+v", l)
	}
	e.Close()
	e = testEngine(t, dir, c, "off")
	defer e.Close()
	if m, err := e.Monitoring("s"); err != nil || len(m) != 5 {
		t.Fatalf("after restart: %v %v", m, err)
	}
}

func TestResourceTagsAndPolicies(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	cons, err := e.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	arn := e.ARN("s")
	if err := e.TagResource(arn, map[string]string{"team": "a"}); err != nil {
		t.Fatal(err)
	}
	if tags, err := e.Tags("s"); err != nil || len(tags) != 1 {
		t.Fatalf("stream tags: %v %v", tags, err)
	}
	if err := e.TagResource(cons.ARN, map[string]string{"role": "reader", "x": "y"}); err != nil {
		t.Fatal(err)
	}
	if err := e.UntagResource(cons.ARN, []string{"x", "absent"}); err != nil {
		t.Fatal(err)
	}
	if err := e.PutPolicy(arn, `{"Version":"2012-10-17","Statement":[]}`); err != nil {
		t.Fatal(err)
	}
	if p, err := e.Policy(cons.ARN); err != nil || p != "{}" {
		t.Fatalf("consumer policy before: %q %v", p, err)
	}
	if err := e.PutPolicy(cons.ARN, `{"Statement":[]}`); err != nil {
		t.Fatal(err)
	}
	many := map[string]string{}
	for i := range MaxTagsPerStream {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{e.TagResource("arn:aws:kinesis:us-east-1:000000000000:stream/nope", map[string]string{"k": "v"}), ErrResourceNotFound},
		{e.TagResource("arn:aws:kinesis:eu-west-1:000000000000:stream/s", map[string]string{"k": "v"}), ErrResourceNotFound},
		{e.TagResource(arn+"/consumer/gone:1", map[string]string{"k": "v"}), ErrResourceNotFound},
		{e.TagResource("arn:aws:kinesis:us-east-1:000000000000:stream/s/shard/1", map[string]string{"k": "v"}), ErrInvalidArgument},
		{e.TagResource("not-an-arn", map[string]string{"k": "v"}), ErrValidation},
		{e.TagResource(cons.ARN, map[string]string{"": "v"}), ErrInvalidArgument},
		{e.TagResource(cons.ARN, many), ErrLimitExceeded},
		{e.PutPolicy(arn, `[1]`), ErrInvalidArgument},
		{e.PutPolicy(arn, `{`), ErrInvalidArgument},
		{e.PutPolicy(arn, `null`), ErrInvalidArgument},
		{e.DeletePolicy(arn + "/consumer/gone:1"), ErrResourceNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Fatalf("%v, want %v", tc.err, tc.want.(*Error).Kind)
		}
	}
	e.Close()
	e = testEngine(t, dir, c, "off")
	defer e.Close()
	if tags, err := e.ResourceTags(cons.ARN); err != nil || len(tags) != 1 || tags[0] != (Tag{"role", "reader"}) {
		t.Fatalf("consumer tags after restart: %v %v", tags, err)
	}
	if p, err := e.Policy(arn); err != nil || p != `{"Version":"2012-10-17","Statement":[]}` {
		t.Fatalf("stream policy after restart: %q %v", p, err)
	}
	if err := e.DeletePolicy(arn); err != nil {
		t.Fatal(err)
	}
	if err := e.DeletePolicy(arn); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// A consumer registered again under the same name is a new resource: no old settings.
	if err := e.DeregisterConsumer("s", "app", ""); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	again, err := e.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	if tags, err := e.ResourceTags(again.ARN); err != nil || len(tags) != 0 {
		t.Fatalf("new consumer's tags: %v %v", tags, err)
	}
	if p, err := e.Policy(again.ARN); err != nil || p != "{}" {
		t.Fatalf("new consumer's policy: %q %v", p, err)
	}
	if err := e.TagResource(again.ARN, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.streams["s"].meta.Load().ConsumerTags); n != 1 {
		t.Fatalf("stale consumer tags kept: %d entries", n)
	}
}

func TestAccountAndWarmThroughput(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "od", Mode: ModeOnDemand}); err != nil {
		t.Fatal(err)
	}
	if err := e.CreateStream(CreateStreamInput{Name: "p", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if cm, err := e.AccountCommitment(); err != nil || cm.Status != CommitmentDisabled || !cm.StartedAt.IsZero() {
		t.Fatalf("default: %+v %v", cm, err)
	}
	if _, _, err := e.SetWarmThroughput("od", 100); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("warm throughput without a commitment: %v", err)
	}
	if _, err := e.SetAccountCommitment("MAYBE"); !errors.Is(err, ErrValidation) {
		t.Fatalf("bad status: %v", err)
	}
	start := c.Now()
	cm, err := e.SetAccountCommitment(CommitmentEnabled)
	if err != nil || cm.Status != CommitmentEnabled || !cm.StartedAt.Equal(start) || !cm.EarliestAllowedEndAt.Equal(start.Add(24*time.Hour)) {
		t.Fatalf("enable: %+v %v", cm, err)
	}
	cur, target, err := e.SetWarmThroughput("od", 100)
	if err != nil || cur != 0 || target != 100 {
		t.Fatalf("warm: %d %d %v", cur, target, err)
	}
	if cur, target, err = e.SetWarmThroughput("od", 200); err != nil || cur != 100 || target != 200 {
		t.Fatalf("warm again: %d %d %v", cur, target, err)
	}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{third(e.SetWarmThroughput("p", 10)), ErrInvalidArgument},
		{third(e.SetWarmThroughput("od", -1)), ErrValidation},
		{third(e.SetWarmThroughput("od", MaxWarmMiBps+1)), ErrLimitExceeded},
		{third(e.SetWarmThroughput("nope", 1)), ErrResourceNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Fatalf("%v, want %v", tc.err, tc.want.(*Error).Kind)
		}
	}
	c.Advance(time.Hour)
	cm, err = e.SetAccountCommitment(CommitmentDisabled)
	if err != nil || cm.Status != CommitmentEnabledUntilEarliest || !cm.EndedAt.Equal(start.Add(24*time.Hour)) {
		t.Fatalf("disable early: %+v %v", cm, err)
	}
	e.Close()
	e = testEngine(t, dir, c, "off")
	defer e.Close()
	if cm, err := e.AccountCommitment(); err != nil || cm.Status != CommitmentEnabledUntilEarliest {
		t.Fatalf("after restart: %+v %v", cm, err)
	}
	if w, ok, err := e.WarmThroughput("od"); err != nil || !ok || w != 200 {
		t.Fatalf("warm after restart: %d %v %v", w, ok, err)
	}
	c.Advance(24 * time.Hour)
	if cm, err := e.AccountCommitment(); err != nil || cm.Status != CommitmentDisabled {
		t.Fatalf("after the earliest end: %+v %v", cm, err)
	}
	if cm, err := e.SetAccountCommitment(CommitmentEnabled); err != nil || cm.Status != CommitmentEnabled || !cm.StartedAt.Equal(c.Now()) || !cm.EndedAt.IsZero() {
		t.Fatalf("enable again: %+v %v", cm, err)
	}
}

func third[T, U any](_ T, _ U, err error) error { return err }
