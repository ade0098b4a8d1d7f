package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// nodeMetrics is what the cluster-scale suite reads from one node's /metrics: the node's
// unlabelled figures by name, and the per-shard Raft figures (docs/CLUSTER.md, "Raft figures
// on /metrics") by shard.
type nodeMetrics struct {
	plain  map[string]float64
	shards map[scaleShard]*shardFigures
}

// scaleShard names one shard of the cluster-scale suite's streams.
type scaleShard struct {
	stream string
	shard  string // the shard id as the metrics label it: shardId-000000000007
}

// shardFigures are one node's Raft figures of one shard replica.
type shardFigures struct {
	leader, quiesced bool
	leaderNode       float64
	lag              map[string]float64 // leader only: entries behind, by member node id
}

// scrape reads and parses the node's /metrics.
func (e endpoint) scrape() (*nodeMetrics, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + e.addr + "/metrics")
	if err := e.c.Do(req, resp); err != nil {
		return nil, err
	}
	if resp.StatusCode() != 200 {
		return nil, fmt.Errorf("/metrics: status %d", resp.StatusCode())
	}
	return parseMetrics(resp.Body())
}

// parseMetrics parses the Prometheus text format the server writes: `name value` or
// `name{label="value",…} value` lines, comments skipped. Label values hold no '"' or ','
// (stream names, shard ids and node ids).
func parseMetrics(b []byte) (*nodeMetrics, error) {
	m := &nodeMetrics{plain: map[string]float64{}, shards: map[scaleShard]*shardFigures{}}
	lines := bufio.NewScanner(bytes.NewReader(b))
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		l := lines.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		series, val, ok := strings.Cut(l, " ")
		v, err := strconv.ParseFloat(val, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("/metrics: line %q", l)
		}
		name, rest, labelled := strings.Cut(series, "{")
		if !labelled {
			m.plain[name] = v
			continue
		}
		labels := map[string]string{}
		for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		key := scaleShard{labels["stream"], labels["shard"]}
		if key.stream == "" || !strings.HasPrefix(name, "sluice_raft_") {
			continue
		}
		f := m.shards[key]
		if f == nil {
			f = &shardFigures{lag: map[string]float64{}}
			m.shards[key] = f
		}
		switch name {
		case "sluice_raft_is_leader":
			f.leader = v == 1
		case "sluice_raft_quiesced":
			f.quiesced = v == 1
		case "sluice_raft_leader_node":
			f.leaderNode = v
		case "sluice_raft_replica_lag_entries":
			f.lag[labels["peer"]] = v
		}
	}
	return m, lines.Err()
}

// scrapeAll scrapes every running node of nodes; a stopped node's entry is nil.
func scrapeAll(nodes []*childNode) ([]*nodeMetrics, error) {
	out := make([]*nodeMetrics, len(nodes))
	for i, n := range nodes {
		if n.pid() == 0 {
			continue
		}
		m, err := n.scrape()
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i+1, err)
		}
		out[i] = m
	}
	return out, nil
}

// sumPlain is the sum over the scraped nodes of an unlabelled figure.
func sumPlain(ms []*nodeMetrics, name string) float64 {
	var sum float64
	for _, m := range ms {
		if m != nil {
			sum += m.plain[name]
		}
	}
	return sum
}
