package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// Options configure an Agent.
type Options struct {
	Config Config
	// CheckpointFile overrides Config.CheckpointFile; one of them is required.
	CheckpointFile string
	// Logger receives progress and warnings; nil discards them.
	Logger *slog.Logger
	// ProgressInterval is how often the progress of every flow is logged; 0 means 30 s.
	ProgressInterval time.Duration
}

// Agent sends the lines of files to streams, as the Kinesis Agent does, one goroutine per
// flow. Stats and WriteMetrics may be called from any goroutine.
type Agent struct {
	c     *client.Client
	log   *slog.Logger
	path  string
	every time.Duration
	flows []*flow

	mu   sync.Mutex // guards ckpt and serialises its saving
	ckpt *checkpoint
}

// New loads the checkpoint and opens the files followed before; it puts nothing yet.
func New(c *client.Client, o Options) (*Agent, error) {
	a := &Agent{c: c, log: o.Logger, path: o.CheckpointFile, every: o.ProgressInterval}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.path == "" {
		a.path = o.Config.CheckpointFile
	}
	if a.path == "" {
		return nil, fmt.Errorf("%w: checkpointFile: required", ErrConfig)
	}
	if a.every <= 0 {
		a.every = 30 * time.Second
	}
	if len(o.Config.Flows) == 0 {
		return nil, fmt.Errorf("%w: flows: at least one flow is needed", ErrConfig)
	}
	ck, err := loadCheckpoint(a.path)
	if err != nil {
		return nil, err
	}
	a.ckpt = ck
	for i := range o.Config.Flows {
		f := &o.Config.Flows[i]
		a.flows = append(a.flows, newFlow(a, f, ck.Flows[f.Stream+" "+f.FilePattern]))
	}
	return a, nil
}

// save records st as the state of the flow key and replaces the checkpoint file.
func (a *Agent) save(key string, st *flowState) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ckpt.Flows[key] = st
	return a.ckpt.save(a.path)
}

// Run follows the files until ctx ends (nil) or a flow fails (a checkpoint that cannot be
// written). Records read but not yet put when ctx ends are read again by the next Run.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(a.flows))
	for _, fl := range a.flows {
		go func() {
			err := fl.run(ctx)
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				err = nil
			}
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	tick := time.NewTicker(a.every)
	defer tick.Stop()
	var first error
	for n := 0; n < len(a.flows); {
		select {
		case err := <-errs:
			n++
			if first == nil {
				first = err
			}
		case <-tick.C:
			a.logProgress()
		}
	}
	a.logProgress()
	return first
}

func (a *Agent) logProgress() {
	for _, s := range a.Stats() {
		a.log.Info("progress", "stream", s.Stream, "files", s.FilePattern, "lines_read", s.LinesRead,
			"records_sent", s.RecordsSent, "records_dropped", s.RecordsDropped, "bytes_behind", s.BytesBehind)
		for _, f := range s.Files {
			a.log.Info("progress", "stream", s.Stream, "path", f.Path, "offset", f.Offset, "bytes_behind", f.BytesBehind)
		}
	}
}

// FlowStats is the progress of one flow since the agent started.
type FlowStats struct {
	Stream, FilePattern string
	LinesRead           int64 // lines consumed from the files, header lines included
	RecordsSent         int64 // records the stream acknowledged, or held already (FoundInStream)
	RecordsDropped      int64 // records a processor dropped (LOGTOJSON without a match)
	FoundInStream       int64 // records of a batch with an unknown outcome found in the stream: not put again
	Batches             int64 // PutRecords calls that completed the delivery of their records
	BytesBehind         int64 // the sum of the files'
	Files               []FileStats
}

// FileStats is the progress of one file, at the flow's last poll.
type FileStats struct {
	Path        string
	Offset      int64 // the byte after the last line taken
	Size        int64
	BytesBehind int64 // Size − the byte after the lines delivered: lines in the batch waiting are behind
}

// Stats returns the progress of every flow.
func (a *Agent) Stats() []FlowStats {
	out := make([]FlowStats, len(a.flows))
	for i, fl := range a.flows {
		fl.mu.Lock()
		out[i] = fl.stats
		out[i].Files = append([]FileStats(nil), fl.stats.Files...)
		fl.mu.Unlock()
	}
	return out
}

// WriteMetrics writes the progress in the Prometheus text format.
func (a *Agent) WriteMetrics(w io.Writer) error {
	stats := a.Stats()
	counters := []struct {
		name, help string
		v          func(*FlowStats) int64
	}{
		{"sluice_agent_lines_read_total", "Lines read from the files of a flow.", func(s *FlowStats) int64 { return s.LinesRead }},
		{"sluice_agent_records_sent_total", "Records of a flow the stream holds.", func(s *FlowStats) int64 { return s.RecordsSent }},
		{"sluice_agent_records_dropped_total", "Records a processor dropped.", func(s *FlowStats) int64 { return s.RecordsDropped }},
		{"sluice_agent_records_found_in_stream_total", "Records of a batch with an unknown outcome that the stream held.", func(s *FlowStats) int64 { return s.FoundInStream }},
	}
	var err error
	pr := func(format string, a ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, a...)
		}
	}
	for _, c := range counters {
		pr("# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
		for i := range stats {
			pr("%s{stream=%q,file_pattern=%q} %d\n", c.name, stats[i].Stream, stats[i].FilePattern, c.v(&stats[i]))
		}
	}
	pr("# HELP sluice_agent_bytes_behind Bytes of a file not yet sent.\n# TYPE sluice_agent_bytes_behind gauge\n")
	for _, s := range stats {
		for _, f := range s.Files {
			pr("sluice_agent_bytes_behind{stream=%q,path=%q} %d\n", s.Stream, f.Path, f.BytesBehind)
		}
	}
	return err
}
