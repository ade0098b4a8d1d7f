package main

import (
	"fmt"
	"io"

	"github.com/pkg/profile"
)

// profileUsage is the help of a verb's --profile flag.
const profileUsage = "write a `cpu`, mem or trace profile (github.com/pkg/profile) into the current directory until the verb stops"

// startProfile starts the profile kind names ("" for none) and returns what stops it; false
// after telling stderr that kind is not a profile. The profile installs no signal handler
// of its own (NoShutdownHook): the verb's SIGINT handling runs, and its deferred stop
// writes the profile.
func startProfile(verb, kind string, stderr io.Writer) (stop func(), ok bool) {
	var mode func(*profile.Profile)
	switch kind {
	case "":
		return func() {}, true
	case "cpu":
		mode = profile.CPUProfile
	case "mem":
		mode = profile.MemProfile
	case "trace":
		mode = profile.TraceProfile
	default:
		fmt.Fprintf(stderr, "sluice %s: --profile %q: want cpu, mem or trace\n", verb, kind)
		return nil, false
	}
	return profile.Start(mode, profile.ProfilePath("."), profile.Quiet, profile.NoShutdownHook).Stop, true
}
