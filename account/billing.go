package account

import (
	"time"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/stream"
)

// Minimum throughput billing commitment statuses.
const (
	CommitmentEnabled              = "ENABLED"
	CommitmentDisabled             = "DISABLED"
	CommitmentEnabledUntilEarliest = "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
)

const (
	// commitmentMinimum is how long a minimum throughput billing commitment lasts at least.
	commitmentMinimum = 24 * time.Hour
	// MaxWarmMiBps is the most warm throughput a stream may ask for: 10 GiBps, the default
	// ceiling for an on-demand stream.
	MaxWarmMiBps = 10240
)

// Commitment is the account's minimum throughput billing commitment. Zero times are absent.
type Commitment struct {
	Status               string
	StartedAt            time.Time
	EndedAt              time.Time
	EarliestAllowedEndAt time.Time
}

// commitmentState is Commitment as account.json keeps it.
type commitmentState struct {
	Status               string `json:"status"`
	StartedAt            int64  `json:"startedAt,omitempty"` // Unix ms
	EndedAt              int64  `json:"endedAt,omitempty"`
	EarliestAllowedEndAt int64  `json:"earliestAllowedEndAt,omitempty"`
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// at returns the commitment as it stands at now: one disabled until its earliest allowed
// end is disabled once that has passed.
func (c commitmentState) at(now time.Time) Commitment {
	out := Commitment{Status: c.Status, StartedAt: msTime(c.StartedAt), EndedAt: msTime(c.EndedAt),
		EarliestAllowedEndAt: msTime(c.EarliestAllowedEndAt)}
	if out.Status == "" {
		out.Status = CommitmentDisabled
	}
	if out.Status == CommitmentEnabledUntilEarliest && !now.Before(out.EarliestAllowedEndAt) {
		out.Status = CommitmentDisabled // the commitment ran out
	}
	return out
}

// Commitment returns the account's minimum throughput billing commitment
// (DescribeAccountSettings).
func (a *Account) Commitment() (Commitment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.commitmentLocked()
}

func (a *Account) commitmentLocked() (Commitment, error) {
	st, err := a.loadLocked()
	if err != nil {
		return Commitment{}, err
	}
	return st.Commitment.at(a.cfg.Now()), nil
}

// SetCommitment enables or disables the minimum throughput billing commitment
// (UpdateAccountSettings). Enabling starts a commitment of at least 24 hours; disabling it
// before its earliest allowed end leaves it ENABLED_UNTIL_EARLIEST_ALLOWED_END until then.
func (a *Account) SetCommitment(status string) (Commitment, error) {
	if status != CommitmentEnabled && status != CommitmentDisabled {
		return Commitment{}, invalid(awsmsg.Violation(awsmsg.Str(status), "minimumThroughputBillingCommitment.status",
			awsmsg.Enum(CommitmentEnabled, CommitmentDisabled)))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	var out Commitment
	err := a.retryLocked(func(st *state) error {
		cur := st.Commitment.at(now)
		c := st.Commitment
		out = cur
		switch {
		case status == CommitmentEnabled && cur.Status == CommitmentEnabled:
			return nil
		case status == CommitmentEnabled && cur.Status == CommitmentEnabledUntilEarliest:
			c.Status, c.EndedAt = CommitmentEnabled, 0 // the pending end is called off
		case status == CommitmentEnabled:
			c.Status, c.StartedAt, c.EndedAt = CommitmentEnabled, now.UnixMilli(), 0
			c.EarliestAllowedEndAt = now.Add(commitmentMinimum).UnixMilli()
		case cur.Status == CommitmentDisabled:
			if c.Status == CommitmentDisabled || c.Status == "" {
				return nil
			}
			c.Status = CommitmentDisabled // an ENABLED_UNTIL_… that ran out: record it
		case now.Before(cur.EarliestAllowedEndAt):
			c.Status, c.EndedAt = CommitmentEnabledUntilEarliest, c.EarliestAllowedEndAt
		default:
			c.Status, c.EndedAt = CommitmentDisabled, now.UnixMilli()
		}
		st.Commitment = c
		out = c.at(now)
		return a.commitLocked(st, "")
	})
	if err != nil {
		return Commitment{}, err
	}
	return out, nil
}

// SetWarmThroughput records the warm throughput requested for an on-demand stream
// (UpdateStreamWarmThroughput) and returns the value it had (0 if none) and the new one.
// Kinesis allows it only for on-demand streams in accounts with the minimum throughput
// billing commitment enabled, up to 10 GiBps.
func (a *Account) SetWarmThroughput(name string, mibps int) (current, target int, err error) {
	if mibps < 0 {
		return 0, 0, invalid(awsmsg.Violation(awsmsg.Int(mibps), "warmThroughputMiBps", awsmsg.ValueAtLeast(0)))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st, err := a.e.State(name)
	if err != nil {
		return 0, 0, err
	}
	c, err := a.commitmentLocked()
	if err != nil {
		return 0, 0, err
	}
	if c.Status == CommitmentDisabled {
		return 0, 0, errorf(stream.KindInvalidArgument, "Warm throughput needs the account's MinimumThroughputBillingCommitment to be enabled.")
	}
	if mibps > MaxWarmMiBps {
		return 0, 0, errorf(stream.KindLimitExceeded, "Warm throughput of %d MiBps exceeds the limit of %d MiBps for stream %s.", mibps, MaxWarmMiBps, name)
	}
	if st.Mode != stream.ModeOnDemand {
		return 0, 0, errorf(stream.KindInvalidArgument, "Stream %s is in PROVISIONED mode; warm throughput applies to ON_DEMAND streams only.", name)
	}
	if st.Status != stream.StatusActive {
		return 0, 0, errorf(stream.KindResourceInUse, "%s", awsmsg.StreamNotActive(name, a.cfg.Account, st.Status))
	}
	err = a.update(name, st.Gen, func(s *streamSettings) error {
		if s.WarmMiBps != nil {
			current = *s.WarmMiBps
		}
		s.WarmMiBps = &mibps
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return current, mibps, nil
}

// WarmThroughput returns the stream's requested warm throughput; ok is false if none was set.
func (a *Account) WarmThroughput(name string) (mibps int, ok bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st, err := a.e.State(name)
	if err != nil {
		return 0, false, err
	}
	s, err := a.settings(name, st.Gen)
	if err != nil || s == nil || s.WarmMiBps == nil {
		return 0, false, err
	}
	return *s.WarmMiBps, true, nil
}
