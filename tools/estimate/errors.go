package estimate

import "errors"

// Errors returned by the package, wrapped with what was wrong; test with errors.Is.
var (
	// ErrWorkload reports a workload outside what Kinesis accepts or the estimator can
	// compute: a rate or size that is not a positive finite number, a negative consumer
	// count, an unknown fan-out, a retention period outside 24 to 8760 hours.
	ErrWorkload = errors.New("estimate: invalid workload")
	// ErrPrices reports a price table that is not valid JSON of the expected shape, has a
	// missing, unknown or null key, or holds a price that is negative or not finite.
	ErrPrices = errors.New("estimate: invalid price table")
)
