package lambda

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/sluice-streams/sluice/client"
)

// destination receives the failure records of batches that failed for good.
type destination interface {
	send(ctx context.Context, f *failureRecord) error
	close() error
}

// newDestination opens where: a stream ARN (arn:aws:kinesis:…:stream/NAME, a stream of
// the same server) or a file, which gets one JSON failure record a line.
func newDestination(c *client.Client, where string) (destination, error) {
	if strings.HasPrefix(where, "arn:") {
		_, name, err := parseStreamARN(where)
		if err != nil {
			return nil, fmt.Errorf("%w: DestinationConfig.OnFailure.Destination: %v", ErrMapping, err)
		}
		return &streamDestination{c: c, stream: name}, nil
	}
	f, err := os.OpenFile(where, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lambda: on-failure destination: %w", err)
	}
	return &fileDestination{f: f}, nil
}

// fileDestination appends failure records to a file, synced after each.
type fileDestination struct {
	mu sync.Mutex // serialises the lines
	f  *os.File
}

func (d *fileDestination) send(_ context.Context, f *failureRecord) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("lambda: on-failure destination: %w", err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("lambda: on-failure destination: %w", err)
	}
	return nil
}

func (d *fileDestination) close() error { return d.f.Close() }

// streamDestination puts failure records into a stream, keyed by the failed shard's id.
type streamDestination struct {
	c      *client.Client
	stream string
}

func (d *streamDestination) send(ctx context.Context, f *failureRecord) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	res, err := d.c.PutRecords(ctx, d.stream, []client.PutEntry{{Key: f.KinesisBatchInfo.ShardID, Data: b}})
	if err == nil && len(res) == 1 {
		err = res[0].Err
	}
	if err != nil {
		return fmt.Errorf("lambda: on-failure destination %s: %w", d.stream, err)
	}
	return nil
}

func (d *streamDestination) close() error { return nil }

// dropDestination is no destination: failed batches are only counted and logged.
type dropDestination struct{}

func (dropDestination) send(context.Context, *failureRecord) error { return nil }
func (dropDestination) close() error                               { return nil }
