package stream

import "maps"

// What a layer built on the engine needs of it: package account keeps the AWS account's
// settings (resource policies, consumer tags, warm throughput, the billing commitment) beside
// the engine's data, in the same directory, and names streams by their incarnation.

// Config returns the engine's options with their defaults filled in: the data directory,
// file system, clock, region and account a layer built on the engine shares with it.
func (e *Engine) Config() Options { return e.opts }

// StreamState is what a stream is now, without its shards.
type StreamState struct {
	// Gen names this incarnation of the stream: a stream deleted and created again under its
	// name has another (CreateStream makes them strictly increasing within an engine).
	Gen        uint64
	Status     string
	Mode       string
	OpenShards int
}

// State returns the stream's state.
func (e *Engine) State(name string) (StreamState, error) {
	s, err := e.stream(name)
	if err != nil {
		return StreamState{}, err
	}
	m := s.meta.Load()
	return StreamState{Gen: m.Gen, Status: m.Status, Mode: m.Mode, OpenShards: len(s.set.Load().m.Open())}, nil
}

// LegacySettings are the AWS account settings an older stream.json holds: the catalog kept
// them before package account did. The engine keeps them, unread, until
// MigrateLegacySettings hands them over.
type LegacySettings struct {
	Gen       uint64 // the incarnation they belong to
	WarmMiBps *int   // nil: never set
	// ConsumerTags are by "<consumer name>:<creation time, Unix s>", the consumer ARN's tail.
	ConsumerTags map[string]map[string]string
	// Policies are by "stream", or by "consumer/" and the consumer ARN's tail.
	Policies map[string]string
}

// MigrateLegacySettings hands save the legacy settings of every stream whose stream.json
// still holds some, by stream name, and once save has returned nil (the settings are durable
// elsewhere), removes them from those stream.json files. A crash in between leaves them in
// both places; the next call hands them over again. It does nothing when no stream has any.
func (e *Engine) MigrateLegacySettings(save func(map[string]LegacySettings) error) error {
	streams := e.streamList()
	legacy := map[string]LegacySettings{}
	for _, s := range streams {
		if m := s.meta.Load(); m.hasLegacy() {
			legacy[m.Name] = LegacySettings{Gen: m.Gen, WarmMiBps: m.WarmMiBps, ConsumerTags: maps.Clone(m.ConsumerTags),
				Policies: maps.Clone(m.Policies)}
		}
	}
	if len(legacy) == 0 {
		return nil
	}
	if err := save(legacy); err != nil {
		return err
	}
	for name, l := range legacy {
		err := e.updateMeta(name, func(m *streamMeta) error {
			if m.Gen == l.Gen {
				m.WarmMiBps, m.ConsumerTags, m.Policies = nil, nil, nil
			}
			return nil
		})
		if err != nil && KindOf(err) != KindResourceNotFound { // deleted meanwhile: nothing to drop
			return err
		}
	}
	return nil
}

func (m *streamMeta) hasLegacy() bool {
	return m.WarmMiBps != nil || len(m.ConsumerTags) != 0 || len(m.Policies) != 0
}
