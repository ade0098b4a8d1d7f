package account

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/stream"
)

// account.json, in the engine's data directory. Version 1 held the billing commitment only;
// version 2 adds the settings of streams and consumers, by stream name.
const (
	stateFile     = "account.json"
	stateVersion  = 2
	maxStateBytes = 64 << 20
)

// state is account.json.
type state struct {
	Version    int                        `json:"version"`
	Commitment commitmentState            `json:"minimumThroughputBillingCommitment"`
	Streams    map[string]*streamSettings `json:"streams,omitempty"`
}

// streamSettings are the settings of one incarnation of a stream and of its consumers.
type streamSettings struct {
	Gen uint64 `json:"gen"` // stream.StreamState.Gen
	// WarmMiBps is the requested warm throughput (UpdateStreamWarmThroughput); nil: never set.
	WarmMiBps *int `json:"warmThroughputMiBps,omitempty"`
	// ConsumerTags are the consumers' tags, by consumerKey.
	ConsumerTags map[string]map[string]string `json:"consumerTags,omitempty"`
	// Policies are the resource policies, by target.policyKey.
	Policies map[string]string `json:"policies,omitempty"`
}

func (s *streamSettings) empty() bool {
	return s.WarmMiBps == nil && len(s.ConsumerTags) == 0 && len(s.Policies) == 0
}

// Account keeps the AWS account's settings for one engine.
type Account struct {
	e   *stream.Engine
	cfg stream.Options // e.Config()

	mu sync.Mutex // serialises the operations; guards st
	st *state     // nil until loaded, and after a failed write

	// policies are the resource policies of the last durable state, parsed: published
	// (under mu) by the first load and by every change written, read without a lock by
	// ResourcePolicy (policycache.go). nil until the settings are first loaded.
	policies atomic.Pointer[policyCache]
}

// New returns the account of e. It reads nothing yet: the settings are loaded by the first
// operation that needs them.
func New(e *stream.Engine) *Account { return &Account{e: e, cfg: e.Config()} }

// Open returns the account of e with its settings loaded, so that an unreadable account.json
// or a failed migration stops a server at start-up rather than at its first call.
func Open(e *stream.Engine) (*Account, error) {
	a := New(e)
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.loadLocked(); err != nil {
		return nil, err
	}
	return a, nil
}

// loadLocked returns the state, reading account.json and taking over the settings older
// stream.json files hold if it was not loaded yet. The caller holds a.mu.
func (a *Account) loadLocked() (*state, error) {
	if a.st != nil {
		return a.st, nil
	}
	st, err := a.read()
	if err != nil {
		return nil, err
	}
	err = a.e.MigrateLegacySettings(func(legacy map[string]stream.LegacySettings) error {
		for name, l := range legacy {
			if cur := st.Streams[name]; cur != nil && cur.Gen == l.Gen {
				continue // taken over already; the crash came before stream.json lost them
			}
			st.Streams[name] = &streamSettings{Gen: l.Gen, WarmMiBps: l.WarmMiBps, ConsumerTags: l.ConsumerTags, Policies: l.Policies}
		}
		return a.write(st)
	})
	if err != nil {
		return nil, err
	}
	a.st = st
	a.publishPoliciesLocked(st)
	return st, nil
}

func (a *Account) read() (*state, error) {
	path := filepath.Join(a.cfg.Dir, stateFile)
	st := &state{Version: stateVersion, Streams: map[string]*streamSettings{}}
	b, err := vfs.ReadFile(a.cfg.FS, path, maxStateBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("account: %s: %w", path, err)
	}
	if st.Version != 1 && st.Version != stateVersion {
		return nil, fmt.Errorf("account: %s: version %d, want 1 or %d", path, st.Version, stateVersion)
	}
	st.Version = stateVersion
	if st.Streams == nil {
		st.Streams = map[string]*streamSettings{}
	}
	for name, s := range st.Streams {
		if s == nil {
			return nil, fmt.Errorf("account: %s: stream %q has no settings", path, name)
		}
	}
	return st, nil
}

// write drops the settings of streams and consumers that no longer exist from st and
// replaces account.json with it, durably.
func (a *Account) write(st *state) error {
	a.prune(st)
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(a.cfg.FS, filepath.Join(a.cfg.Dir, stateFile), append(b, '\n'), 0o600)
}

// prune drops the settings of deleted streams (or of an earlier incarnation of a stream) and
// of deregistered consumers.
func (a *Account) prune(st *state) {
	for name, s := range st.Streams {
		cur, err := a.e.State(name)
		if err != nil || cur.Gen != s.Gen {
			delete(st.Streams, name)
			continue
		}
		consumers, err := a.e.ListConsumers(name)
		if err != nil {
			delete(st.Streams, name)
			continue
		}
		live := make(map[string]bool, len(consumers))
		for _, c := range consumers {
			live[consumerKey(c)] = true
		}
		for k := range s.ConsumerTags {
			if !live[k] {
				delete(s.ConsumerTags, k)
			}
		}
		for k := range s.Policies {
			if ck, ok := consumerOfPolicyKey(k); ok && !live[ck] {
				delete(s.Policies, k)
			}
		}
		if s.empty() {
			delete(st.Streams, name)
		}
	}
}

// update applies change to the settings of gen's incarnation of the named stream (new ones
// if it has none yet) and writes account.json. change must check before it changes anything:
// an error from it writes nothing.
func (a *Account) update(name string, gen uint64, change func(*streamSettings) error) error {
	st, err := a.loadLocked()
	if err != nil {
		return err
	}
	s := st.Streams[name]
	if s == nil || s.Gen != gen {
		s = &streamSettings{Gen: gen}
	}
	if err := change(s); err != nil {
		return err
	}
	st.Streams[name] = s
	if err := a.write(st); err != nil {
		a.st = nil // not durable: forget it, the next operation reads the file again
		return err
	}
	a.publishPoliciesLocked(st)
	return nil
}

// settings returns the settings of gen's incarnation of the named stream, nil if it has
// none. The caller holds a.mu and must not change them.
func (a *Account) settings(name string, gen uint64) (*streamSettings, error) {
	st, err := a.loadLocked()
	if err != nil {
		return nil, err
	}
	if s := st.Streams[name]; s != nil && s.Gen == gen {
		return s, nil
	}
	return nil, nil
}

// consumerKey names a consumer incarnation in streamSettings: the tail of its ARN,
// "<name>:<creation time, Unix s>".
func consumerKey(c stream.Consumer) string {
	return c.Name + ":" + strconv.FormatInt(c.Created.Unix(), 10)
}

// invalid is a ValidationException listing violations (built by package awsmsg).
func invalid(violations ...string) error {
	return &stream.Error{Kind: stream.KindValidation, Msg: awsmsg.Validation(violations...)}
}

func errorf(k stream.Kind, format string, args ...any) error {
	return &stream.Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}
