package stream

import "time"

// IncreaseRetention raises a stream's retention period to hours (at most 8760, a year).
func (e *Engine) IncreaseRetention(name string, hours int) error {
	return e.changeRetention(name, hours, true)
}

// DecreaseRetention lowers a stream's retention period to hours (at least 24). Records older
// than the new period are hidden at once and their segments deleted as whole files.
func (e *Engine) DecreaseRetention(name string, hours int) error {
	return e.changeRetention(name, hours, false)
}

func (e *Engine) changeRetention(name string, hours int, increase bool) error {
	s, err := e.stream(name)
	if err != nil {
		return err
	}
	if hours < MinRetentionHours {
		return errorf(KindInvalidArgument, "Minimum allowed retention period is %d hours. Requested retention period (%d hours) is too short.", MinRetentionHours, hours)
	}
	if hours > MaxRetentionHours {
		return errorf(KindInvalidArgument, "Maximum allowed retention period is %d hours. Requested retention period (%d hours) is too long.", MaxRetentionHours, hours)
	}
	return s.retryChange(func() error { return e.setRetention(s, name, hours, increase) })
}

// setRetention is one attempt of changeRetention.
func (e *Engine) setRetention(s *Stream, name string, hours int, increase bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return e.notFound(name)
	}
	cur := s.meta.Load()
	if increase && hours < cur.RetentionHours {
		return errorf(KindInvalidArgument, "Requested retention period (%d hours) for stream %s can not be shorter than existing retention period (%d hours). Use DecreaseRetentionPeriod API.", hours, name, cur.RetentionHours)
	}
	if !increase && hours > cur.RetentionHours {
		return errorf(KindInvalidArgument, "Requested retention period (%d hours) for stream %s can not be longer than existing retention period (%d hours). Use IncreaseRetentionPeriod API.", hours, name, cur.RetentionHours)
	}
	next := cur.clone()
	next.RetentionHours = hours
	if err := s.saveChangeLocked(next); err != nil {
		return err
	}
	s.meta.Store(next)
	if !increase {
		return s.trim(e.opts.Now())
	}
	return nil
}

// trim applies the stream's retention to every shard.
func (s *Stream) trim(now time.Time) error {
	cutoff := now.Add(-s.engine.opts.retention(s.meta.Load().RetentionHours)).UnixNano()
	var first error
	for _, sh := range s.set.Load().shards {
		if _, err := sh.log.Trim(cutoff); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Maintain runs the periodic work of every stream: retention (hide and delete expired
// records, seal segments that aged, drop closed shards left empty), the release of seals
// whose resharding never saved its change (releaseStaleSeals), on-demand scaling (unless
// Options.SharedDemand) and unmapping segments nobody reads. `sluice serve` calls it on a timer (cmd/sluice/serve.go);
// tests call it with an injected clock.
func (e *Engine) Maintain() error {
	streams := e.streamList()
	now := e.opts.Now()
	var first error
	for _, s := range streams {
		if err := s.trim(now); err != nil && first == nil {
			first = err
		}
		if err := s.pruneClosed(now); err != nil && first == nil {
			first = err
		}
		if _, err := s.releaseStaleSeals(); err != nil && first == nil {
			first = err
		}
		if !e.opts.SharedDemand { // else the cluster's controller decides (ScaleOnDemand)
			if err := s.scaleOnDemand(now); err != nil && first == nil {
				first = err
			}
		}
		for _, sh := range s.set.Load().shards {
			sh.log.UnmapIdle()
		}
	}
	return first
}
