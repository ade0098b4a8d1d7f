package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Flush sends every record Put before it without waiting for linger, and waits until each
// has its outcome (retries included) or ctx ends. It returns a *FlushError if records Put
// since the previous Flush (or since the producer was made) failed, ctx.Err() if ctx ended
// first.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	e := p.newEpochLocked()
	p.mu.Unlock()
	return p.waitEpoch(ctx, e, true)
}

// newEpochLocked ends the current epoch and returns its number. p.mu must be held.
func (p *Producer) newEpochLocked() uint64 {
	p.epochs = append(p.epochs, epoch{})
	return p.epochBase + uint64(len(p.epochs)-2)
}

// waitEpoch waits until the records of epoch e and those before it are done, then takes e's
// tally. If ctx ends first it returns ctx.Err(), and gives up the tally when release is set.
func (p *Producer) waitEpoch(ctx context.Context, e uint64, release bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushing++
	p.sealLocked()
	p.ring()
	defer func() { p.flushing-- }()
	for {
		if p.epochsDoneLocked(e) {
			t := &p.epochs[e-p.epochBase]
			t.collected = true
			failed, first := t.failed, t.first
			p.trimEpochsLocked()
			if failed > 0 {
				return &FlushError{Failed: failed, First: first}
			}
			return nil
		}
		if p.progress == nil {
			p.progress = make(chan struct{})
		}
		ch := p.progress
		p.mu.Unlock()
		select {
		case <-ch:
			p.mu.Lock()
		case <-ctx.Done():
			p.mu.Lock()
			if release {
				p.epochs[e-p.epochBase].collected = true
				p.trimEpochsLocked()
			}
			return ctx.Err()
		}
	}
}

// epochsDoneLocked reports whether epochs up to e have no pending record. p.mu must be held.
func (p *Producer) epochsDoneLocked(e uint64) bool {
	for i := uint64(0); p.epochBase+i <= e; i++ {
		if p.epochs[i].pending > 0 {
			return false
		}
	}
	return true
}

// Close refuses further Puts, flushes what is queued and waits for every record's outcome,
// then stops the producer's goroutines. If ctx ends first, the records not in flight fail
// with an error wrapping ErrClosed and ctx.Err() (and their last attempt's error), the
// requests in flight finish (within the client's RequestTimeout), and Close returns that
// error. Otherwise it returns what Flush would. A second Close returns ErrClosed.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	if p.space != nil { // Puts waiting for space return ErrClosed
		close(p.space)
		p.space = nil
	}
	e := p.newEpochLocked()
	p.mu.Unlock()
	err := p.waitEpoch(ctx, e, false)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		p.mu.Lock()
		p.abandon = fmt.Errorf("%w: %w", ErrClosed, ctx.Err())
		done := p.failUnsentLocked()
		p.mu.Unlock()
		p.deliver(done)
		if ferr := p.waitEpoch(context.Background(), e, false); ferr != nil {
			err = ferr
		} else {
			err = nil
		}
	}
	p.mu.Lock()
	p.stopping = true
	p.senders.Broadcast()
	p.mu.Unlock()
	p.ring()
	p.wg.Wait()
	return err
}

// failUnsentLocked fails every record not in flight with p.abandon. p.mu must be held.
func (p *Producer) failUnsentLocked() []*rec {
	now := time.Now()
	var done []*rec
	// Records waiting behind their key first, so that finishing the current ones promotes
	// nothing.
	for _, ks := range p.keys {
		for r := ks.head; r != nil; {
			n := r.next
			r.next = nil
			// The record never became its key's current one: finish it without the
			// key bookkeeping of finishLocked.
			p.finishWaitingLocked(r, now, &done)
			r = n
		}
		ks.head, ks.tail = nil, nil
	}
	for _, sh := range p.shards {
		for r := sh.head; r != nil; {
			n := r.next
			p.finishLocked(r, SeqNum{}, p.abandonError(r), now, &done)
			r = n
		}
		if sh.head != nil {
			p.heldShards--
		}
		sh.head, sh.tail = nil, nil
	}
	for _, a := range p.aggs {
		for _, u := range a.recs {
			p.finishLocked(u, SeqNum{}, p.abandonError(u), now, &done)
		}
		p.dropAggregatorLocked(a)
	}
	for _, u := range p.rerouted {
		p.finishLocked(u, SeqNum{}, p.abandonError(u), now, &done)
	}
	p.rerouted = nil
	batches := append(p.ready, p.open...)
	clear(p.open)
	p.open = p.open[:0]
	p.ready = nil
	for _, b := range batches {
		for _, r := range b.recs {
			p.finishLocked(r, SeqNum{}, p.abandonError(r), now, &done)
		}
	}
	return done
}

// finishWaitingLocked finishes a record still waiting behind its key. p.mu must be held.
func (p *Producer) finishWaitingLocked(r *rec, now time.Time, done *[]*rec) {
	saved := p.keys
	p.keys = nil // finishLocked must not touch the key's state
	p.finishLocked(r, SeqNum{}, p.abandonError(r), now, done)
	p.keys = saved
}

// trimEpochsLocked drops the oldest epochs once their Flush took them and their records are
// all done. p.mu must be held.
func (p *Producer) trimEpochsLocked() {
	n := 0
	for n < len(p.epochs)-1 && p.epochs[n].collected && p.epochs[n].pending == 0 {
		n++
	}
	if n > 0 {
		p.epochs = slices.Delete(p.epochs, 0, n)
		p.epochBase += uint64(n)
	}
}
