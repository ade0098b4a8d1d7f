package stream

import (
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/shardmap"
)

// With the local catalog (catalogseam.go) a stream's metadata lives in
// <dir>/streams/<name>/stream.json, replaced crash-safely (vfs.WriteFileAtomic) on every
// change; its shards' logs live beside it in shard-<index>/.
// JSON keeps the catalog readable by an operator; it is off every data path.
const (
	catalogVersion = 1
	streamsDir     = "streams"
	trashDir       = "trash"
	metaFile       = "stream.json"
)

// Stream statuses and capacity modes, as Kinesis names them.
const (
	StatusCreating = "CREATING"
	StatusActive   = "ACTIVE"
	StatusUpdating = "UPDATING"
	StatusDeleting = "DELETING"

	ModeProvisioned = "PROVISIONED"
	ModeOnDemand    = "ON_DEMAND"
)

// Retention bounds in hours: a day to a year.
const (
	MinRetentionHours     = 24
	MaxRetentionHours     = 8760
	DefaultMaxRecordKiB   = 1024
	MaxMaxRecordKiB       = 10240
	maxStreamNameLen      = 128
	defaultShardsOnDemand = 4
)

var streamNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)

// streamMeta is the persisted description of one stream. A value is immutable once
// published: changes copy it, save the copy, then publish it.
type streamMeta struct {
	Version        int               `json:"version"`
	Name           string            `json:"name"`
	Gen            uint64            `json:"gen"`     // creation time, Unix ns, unique within the engine: this incarnation
	Created        int64             `json:"created"` // Unix ms
	Status         string            `json:"status"`
	Mode           string            `json:"mode"`
	RetentionHours int               `json:"retentionHours"`
	Encryption     string            `json:"encryption"` // NONE or KMS
	KeyID          string            `json:"keyId,omitempty"`
	MaxRecordKiB   int               `json:"maxRecordKiB"`
	Tags           map[string]string `json:"tags,omitempty"`
	ShardMap       []byte            `json:"shardMap"` // shardmap encoding
	// Ending log positions of closed shards (the last record's position; 0: closed empty).
	Ending map[ShardID]uint64 `json:"ending,omitempty"`
	// ClosedAt holds when each closed shard closed, Unix ms: retention removes it from
	// listings once that is older than the retention period and its records are gone.
	ClosedAt map[ShardID]int64 `json:"closedAt,omitempty"`
	// CreatedAt holds when each shard a resharding made was created, Unix ms. A shard
	// missing from it (the stream's first shards, or a catalog written before the field
	// existed) was created with the stream (Created). ListShards' filters read both maps.
	CreatedAt map[ShardID]int64 `json:"createdAt,omitempty"`
	// Consumers are the registered enhanced fan-out consumers.
	Consumers []consumerMeta `json:"consumers,omitempty"`
	// Metrics are the enabled shard-level metrics (EnableEnhancedMonitoring), in the
	// model's order.
	Metrics []string `json:"shardLevelMetrics,omitempty"`
	// DataKeys are the wrapped data keys the stream's sealed records name (encrypt.go), in
	// the order they were made; kept while any record may need them.
	DataKeys []dataKeyMeta `json:"dataKeys,omitempty"`
	// WarmMiBps, ConsumerTags and Policies are AWS account settings an older catalog kept
	// here (LegacySettings): read, carried unchanged, and removed once package account has
	// taken them (MigrateLegacySettings). Nothing else writes them.
	WarmMiBps    *int                         `json:"warmThroughputMiBps,omitempty"`
	ConsumerTags map[string]map[string]string `json:"consumerTags,omitempty"`
	Policies     map[string]string            `json:"policies,omitempty"`
}

func (m *streamMeta) clone() *streamMeta {
	c := *m
	c.Tags = make(map[string]string, len(m.Tags))
	for k, v := range m.Tags {
		c.Tags[k] = v
	}
	c.Ending = make(map[ShardID]uint64, len(m.Ending))
	for k, v := range m.Ending {
		c.Ending[k] = v
	}
	c.ClosedAt = make(map[ShardID]int64, len(m.ClosedAt))
	for k, v := range m.ClosedAt {
		c.ClosedAt[k] = v
	}
	c.CreatedAt = make(map[ShardID]int64, len(m.CreatedAt))
	for k, v := range m.CreatedAt {
		c.CreatedAt[k] = v
	}
	c.ShardMap = append([]byte(nil), m.ShardMap...)
	c.Consumers = append([]consumerMeta(nil), m.Consumers...)
	c.Metrics = append([]string(nil), m.Metrics...)
	c.DataKeys = append([]dataKeyMeta(nil), m.DataKeys...)
	// The legacy settings are never changed in place: the copy shares them.
	return &c
}

func validStreamName(name string) error {
	if len(name) < 1 || len(name) > maxStreamNameLen || !streamNamePattern.MatchString(name) {
		return invalid(awsmsg.Violation(awsmsg.Str(name), "streamName", awsmsg.PatternLength("[a-zA-Z0-9_.-]+", 1, maxStreamNameLen)))
	}
	return nil
}

// encodeMeta returns the catalog's bytes of m: stream.json's content.
func encodeMeta(m *streamMeta) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeMeta parses the catalog's bytes of the stream name; where names the source in
// errors (a file, a catalog key).
func decodeMeta(b []byte, name, where string) (*streamMeta, *shardmap.Map, error) {
	var m streamMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, fmt.Errorf("stream: %s: %w", where, err)
	}
	if m.Version != catalogVersion {
		return nil, nil, fmt.Errorf("stream: %s: catalog version %d, want %d", where, m.Version, catalogVersion)
	}
	if err := validStreamName(m.Name); err != nil || name != m.Name {
		return nil, nil, fmt.Errorf("stream: %s: names stream %q", where, m.Name)
	}
	sm, err := shardmap.Decode(m.ShardMap)
	if err != nil {
		return nil, nil, fmt.Errorf("stream: %s: %w", where, err)
	}
	return &m, sm, nil
}

// CatalogShardMap returns the shard map held in a catalog entry's bytes (CatalogEntry.Data):
// what a Catalog needs to place a stream's shards, without the rest of the metadata.
func CatalogShardMap(data []byte) (*shardmap.Map, error) {
	var m struct {
		ShardMap []byte `json:"shardMap"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("stream: catalog entry: %w", err)
	}
	return shardmap.Decode(m.ShardMap)
}
