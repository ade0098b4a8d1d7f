package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/stream"
)

// state is the account's settings: account.json's shape (the local store writes each record
// where this struct has it), with each record's revision in its Store.
type state struct {
	Version    int                        `json:"version"`
	Commitment commitmentState            `json:"minimumThroughputBillingCommitment"`
	Streams    map[string]*streamSettings `json:"streams,omitempty"`

	rev  int64            // the store's revision the state was read or last written at
	revs map[string]int64 // each record's revision, by Record.Name; absent: no record
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
	e     *stream.Engine
	cfg   stream.Options // e.Config()
	store Store
	local bool // store is account.json (New, Open): this process is its only writer

	mu sync.Mutex // serialises the operations; guards st
	st *state     // nil until loaded, and after a failed write or another node's change

	// policies are the resource policies of the last durable state, parsed: published
	// (under mu) by every load and by every change written, read without a lock by
	// ResourcePolicy (policycache.go). nil until the settings are first loaded.
	policies atomic.Pointer[policyCache]

	// stopWatch ends the goroutine that follows the store's changes (a shared store only);
	// watchDone is closed when it has returned. Set by OpenStore, nil otherwise.
	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// maxConflicts bounds how often an operation is tried again after another node changed the
// settings it changes at the same time.
const maxConflicts = 5

// New returns the account of e, its settings in account.json in e's data directory. It reads
// nothing yet: the settings are loaded by the first operation that needs them.
func New(e *stream.Engine) *Account {
	cfg := e.Config()
	return &Account{e: e, cfg: cfg, store: newFileStore(cfg.FS, cfg.Dir), local: true}
}

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

// OpenStore returns the account of e with its settings in store, shared with other nodes,
// loaded. It follows the store's changes (Store.Watch) until Close: a change made through
// another node is read again and its resource policies are applied here as soon as it is
// reported. Settings of a stream the store holds are never removed here (another node may
// know a stream this one has not seen yet): a deleted stream's are removed by whoever removes
// the stream from the shared catalog, and an older incarnation's are ignored and replaced.
func OpenStore(e *stream.Engine, store Store) (*Account, error) {
	a := &Account{e: e, cfg: e.Config(), store: store}
	a.mu.Lock()
	st, err := a.loadLocked()
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.stopWatch, a.watchDone = cancel, make(chan struct{})
	go a.follow(ctx, store.Watch(ctx, st.rev))
	return a, nil
}

// Close stops following a shared store's changes; calling it again does nothing. The Account
// must not be used after it.
func (a *Account) Close() error {
	if a.stopWatch != nil {
		a.stopWatch()
		<-a.watchDone
	}
	return nil
}

// follow reads the settings again after each change changes reports past the revision
// already read, until the channel closes. A read that fails (the store did not answer) is
// tried again after a pause: until it succeeds, the policies last read stay in force.
func (a *Account) follow(ctx context.Context, changes <-chan int64) {
	defer close(a.watchDone)
	if changes == nil {
		return // nothing else changes the store
	}
	for rev := range changes {
		for ctx.Err() == nil {
			err := a.reload(rev)
			if err == nil {
				break
			}
			a.cfg.Logger.Warn("account settings: reading another node's change", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// reload reads the settings again unless those held are at revision rev or later.
func (a *Account) reload(rev int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st != nil && a.st.rev >= rev {
		return nil
	}
	a.st = nil
	_, err := a.loadLocked()
	return err
}

// loadLocked returns the state, reading the store and taking over the settings older
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
		keys := make([]string, 0, len(legacy))
		for name, l := range legacy {
			if cur := st.Streams[name]; cur != nil && cur.Gen == l.Gen {
				continue // taken over already; the crash came before stream.json lost them
			}
			st.Streams[name] = &streamSettings{Gen: l.Gen, WarmMiBps: l.WarmMiBps, ConsumerTags: l.ConsumerTags, Policies: l.Policies}
			keys = append(keys, name)
		}
		return a.write(st, keys...)
	})
	if err != nil {
		return nil, err
	}
	a.st = st
	a.publishPoliciesLocked(st)
	return st, nil
}

// read loads the store's records into a state.
func (a *Account) read() (*state, error) {
	recs, rev, err := a.store.Load()
	if err != nil {
		return nil, err
	}
	st := &state{Version: stateVersion, Streams: map[string]*streamSettings{}, rev: rev, revs: make(map[string]int64, len(recs))}
	for _, r := range recs {
		if r.Name == "" {
			err = json.Unmarshal(r.Data, &st.Commitment)
		} else {
			s := &streamSettings{}
			err, st.Streams[r.Name] = json.Unmarshal(r.Data, s), s
		}
		if err != nil {
			return nil, fmt.Errorf("account: the settings of %q: %w", r.Name, err)
		}
		st.revs[r.Name] = r.Rev
	}
	return st, nil
}

// write saves the records keys of st ("" the account's own, else a stream's; a stream with
// no settings left is removed) in one Store.Save. With the local store it first drops the
// settings of streams and consumers that no longer exist, and saves those changes with them.
// A conflict is an error wrapping ErrConflict (retry does the operation again).
func (a *Account) write(st *state, keys ...string) error {
	if a.local {
		keys = append(keys, a.prune(st)...)
	}
	changes := make([]Record, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		c := Record{Name: k, Rev: st.revs[k]}
		var v any = st.Commitment
		if k != "" {
			v = st.Streams[k]
		}
		if s, ok := v.(*streamSettings); !ok || s != nil && !s.empty() {
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			c.Data = b
		} else if c.Rev == 0 {
			continue // nothing to remove
		}
		changes = append(changes, c)
	}
	if len(changes) == 0 {
		return nil
	}
	rev, err := a.store.Save(changes)
	if err != nil {
		return err
	}
	st.rev = rev
	for _, c := range changes {
		if c.Data == nil {
			delete(st.revs, c.Name)
		} else {
			st.revs[c.Name] = rev
		}
	}
	return nil
}

// prune drops the settings of deleted streams (or of an earlier incarnation of a stream) and
// of deregistered consumers from st, and returns the names of the streams whose settings it
// changed.
func (a *Account) prune(st *state) []string {
	var changed []string
	for name, s := range st.Streams {
		cur, err := a.e.State(name)
		if err != nil || cur.Gen != s.Gen {
			delete(st.Streams, name)
			changed = append(changed, name)
			continue
		}
		consumers, err := a.e.ListConsumers(name)
		if err != nil {
			delete(st.Streams, name)
			changed = append(changed, name)
			continue
		}
		live := make(map[string]bool, len(consumers))
		for _, c := range consumers {
			live[consumerKey(c)] = true
		}
		n := len(s.ConsumerTags) + len(s.Policies)
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
		if s.empty() || len(s.ConsumerTags)+len(s.Policies) != n {
			changed = append(changed, name)
		}
	}
	return changed
}

// retryLocked runs op on the settings, and again on the settings read anew when its write
// met another node's change (ErrConflict), up to maxConflicts times; then the error is a
// ResourceInUseException that asks the client to retry. op must check before it changes
// anything, and write its change with a.commitLocked. The caller holds a.mu.
func (a *Account) retryLocked(op func(st *state) error) error {
	for attempt := 1; ; attempt++ {
		st, err := a.loadLocked()
		if err != nil {
			return err
		}
		err = op(st)
		if !errors.Is(err, ErrConflict) {
			return err
		}
		if attempt == maxConflicts {
			return &stream.Error{Kind: stream.KindResourceInUse, Msg: "The account's settings were changed concurrently; retry the request.", Err: err}
		}
	}
}

// commitLocked writes the records keys of st, which op of retryLocked changed, and publishes
// its policies. A failed write forgets the settings held: the next operation reads them
// again. The caller holds a.mu.
func (a *Account) commitLocked(st *state, keys ...string) error {
	if err := a.write(st, keys...); err != nil {
		a.st = nil // not durable, or another node's change came first: read them again
		return err
	}
	a.publishPoliciesLocked(st)
	return nil
}

// update applies change to the settings of gen's incarnation of the named stream (new ones
// if it has none yet) and writes them. change must check before it changes anything: an
// error from it writes nothing. The caller holds a.mu.
func (a *Account) update(name string, gen uint64, change func(*streamSettings) error) error {
	return a.retryLocked(func(st *state) error {
		s := st.Streams[name]
		if s == nil || s.Gen != gen {
			s = &streamSettings{Gen: gen}
		}
		if err := change(s); err != nil {
			return err
		}
		st.Streams[name] = s
		return a.commitLocked(st, name)
	})
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
