package stream

import (
	"regexp"
	"sort"
	"time"

	"github.com/sluice-streams/sluice/internal/awsmsg"
)

// Tag limits, as Kinesis defines them.
const (
	MaxTagsPerStream = 50
	maxTagKeyLen     = 128
	maxTagValueLen   = 256
)

var tagPattern = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

// updateMeta applies change to a copy of the stream's metadata, saves it and publishes it.
func (e *Engine) updateMeta(name string, change func(*streamMeta) error) error {
	s, err := e.stream(name)
	if err != nil {
		return err
	}
	return s.retryChange(func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.deleted {
			return e.notFound(name)
		}
		next := s.meta.Load().clone()
		if err := change(next); err != nil {
			return err
		}
		if err := s.saveChangeLocked(next); err != nil {
			return err
		}
		s.meta.Store(next)
		return nil
	})
}

// CheckTags returns an InvalidArgument error naming a tag Kinesis refuses, nil if it takes
// them all: keys of 1 to 128 characters, values up to 256, of letters, digits, spaces and
// _ . : / = + - @. Package account checks a consumer's tags with it.
func CheckTags(tags map[string]string) error {
	for k, v := range tags {
		if len(k) < 1 || len(k) > maxTagKeyLen || len(v) > maxTagValueLen || !tagPattern.MatchString(k) || !tagPattern.MatchString(v) {
			return errorf(KindInvalidArgument, "Invalid tag: key %q value %q. Keys are 1 to 128 characters, values up to 256, letters, digits, spaces and _ . : / = + - @",
				awsmsg.Bound(k, awsmsg.MaxEcho), awsmsg.Bound(v, awsmsg.MaxEcho))
		}
	}
	return nil
}

// AddTags adds or replaces tags (AddTagsToStream).
func (e *Engine) AddTags(name string, tags map[string]string) error {
	if err := CheckTags(tags); err != nil {
		return err
	}
	return e.updateMeta(name, func(m *streamMeta) error {
		for k, v := range tags {
			m.Tags[k] = v
		}
		if len(m.Tags) > MaxTagsPerStream {
			return errorf(KindLimitExceeded, "A stream can have at most %d tags; this would make %d.", MaxTagsPerStream, len(m.Tags))
		}
		return nil
	})
}

// RemoveTags removes tags by key (RemoveTagsFromStream); absent keys are ignored.
func (e *Engine) RemoveTags(name string, keys []string) error {
	return e.updateMeta(name, func(m *streamMeta) error {
		for _, k := range keys {
			delete(m.Tags, k)
		}
		return nil
	})
}

// Tag is one stream tag.
type Tag struct{ Key, Value string }

// Tags returns a stream's tags sorted by key.
func (e *Engine) Tags(name string) ([]Tag, error) {
	s, err := e.stream(name)
	if err != nil {
		return nil, err
	}
	m := s.meta.Load()
	out := make([]Tag, 0, len(m.Tags))
	for k, v := range m.Tags {
		out = append(out, Tag{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// SetEncryption sets server-side encryption (StartStreamEncryption with "KMS" and a key id,
// StopStreamEncryption with "NONE"). While it is on, the data of every record put is sealed
// with AES-256-GCM under a data key wrapped by the key id's master key in the server's
// keyring (encrypt.go), and the records are marked (frame.FlagEncrypted, reported as
// EncryptionType KMS); reads return the plaintext. Stopping leaves the sealed records
// readable. A key id the keyring does not hold is a KMSNotFound error.
func (e *Engine) SetEncryption(name, encType, keyID string) error {
	if _, err := e.stream(name); err != nil {
		return err
	}
	switch encType {
	case "KMS":
		if len(keyID) < 1 || len(keyID) > 2048 {
			return invalid(awsmsg.Violation(awsmsg.Hidden, "keyId", awsmsg.LengthRange(1, 2048)))
		}
		if err := e.resolveKey(keyID); err != nil {
			return err
		}
	case "NONE":
	default:
		return invalid(awsmsg.Violation(awsmsg.Str(encType), "encryptionType", awsmsg.Enum("KMS", "NONE")))
	}
	return e.updateMeta(name, func(m *streamMeta) error {
		if encType == "NONE" && m.Encryption == "KMS" && keyID != "" && keyID != m.KeyID {
			return errorf(KindInvalidArgument, "Key %s is not the key the stream is encrypted with.", keyID)
		}
		m.Encryption, m.KeyID = encType, keyID
		if encType == "NONE" {
			m.KeyID = ""
		}
		return nil
	})
}

// EncryptionType returns the stream's EncryptionType (NONE or KMS), which PutRecord(s)
// report; "NONE" for an unknown stream. It reads the published metadata, without describing
// the shards, since it is on the put path.
func (e *Engine) EncryptionType(name string) string {
	s, err := e.stream(name)
	if err != nil {
		return "NONE"
	}
	return s.meta.Load().Encryption
}

// SetMode switches a stream between PROVISIONED and ON_DEMAND (UpdateStreamMode).
func (e *Engine) SetMode(name, mode string) error {
	if mode != ModeProvisioned && mode != ModeOnDemand {
		return invalid(awsmsg.Violation(awsmsg.Str(mode), "streamModeDetails.streamMode", awsmsg.Enum(ModeProvisioned, ModeOnDemand)))
	}
	if mode == ModeOnDemand {
		// Counted before the change, outside the stream's lock: two streams switched at
		// once may both pass.
		s, err := e.stream(name)
		if err != nil {
			return err
		}
		if s.meta.Load().Mode != ModeOnDemand && e.OnDemandStreamCount() >= OnDemandStreamsMax {
			return errorf(KindLimitExceeded, "This request would exceed the limit of %d on-demand streams for the account %s in %s.", OnDemandStreamsMax, e.opts.Account, e.opts.Region)
		}
	}
	return e.updateMeta(name, func(m *streamMeta) error {
		m.Mode = mode
		return nil
	})
}

// SetMaxRecordSize sets the largest record the stream accepts, in KiB (1024 … 10240).
func (e *Engine) SetMaxRecordSize(name string, kib int) error {
	if kib < DefaultMaxRecordKiB || kib > MaxMaxRecordKiB {
		return invalid(awsmsg.Violation(awsmsg.Int(kib), "maxRecordSizeInKiB", awsmsg.ValueBetween(DefaultMaxRecordKiB, MaxMaxRecordKiB)))
	}
	return e.updateMeta(name, func(m *streamMeta) error {
		m.MaxRecordKiB = kib
		return nil
	})
}

// pruneClosed drops the closed shards whose records retention has deleted entirely and whose
// children exist: they disappear from listings, as expired shards do in Kinesis. Called by
// Maintain.
func (s *Stream) pruneClosed(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	meta, set := s.meta.Load(), s.set.Load()
	cutoff := now.Add(-s.engine.opts.retention(meta.RetentionHours))
	var drop []ShardID
	for _, sh := range set.m.All() {
		if sh.Open {
			continue
		}
		if time.UnixMilli(meta.ClosedAt[sh.ID]).After(cutoff) {
			continue // closed within the retention period: still listed
		}
		if _, any, err := set.shards[sh.ID].log.Oldest(); err != nil || any {
			continue
		}
		drop = append(drop, sh.ID)
	}
	if len(drop) == 0 {
		return nil
	}
	nm := set.m.Prune(drop...)
	next := meta.clone()
	next.ShardMap = nm.Encode()
	for _, id := range drop {
		delete(next.Ending, id)
		delete(next.ClosedAt, id)
		delete(next.CreatedAt, id)
	}
	if err := s.saveChangeLocked(next); err != nil {
		return err
	}
	ns := &shardSet{m: nm, shards: make(map[ShardID]*shard, len(set.shards))}
	for id, rt := range set.shards {
		if _, ok := nm.Lookup(id); ok {
			ns.shards[id] = rt
		}
	}
	s.meta.Store(next)
	s.set.Store(ns)
	for _, id := range drop {
		if err := set.shards[id].log.Remove(); err != nil {
			s.engine.opts.Logger.Warn("could not remove a pruned shard's log", "stream", next.Name, "shard", id.String(), "err", err)
		}
	}
	return nil
}
