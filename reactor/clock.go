package reactor

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/cpuid/v2"
)

// Ticks is a point in time or a duration in the reactor clock's units. See
// TickRate.
type Ticks uint64

// clockSource describes the clock every reactor of the process uses.
type clockSource struct {
	useTSC bool
	rate   uint64 // ticks per second
	origin time.Time
}

var (
	clockOnce sync.Once
	clock     clockSource
	// tscReady is set once clock is set up and uses the TSC: Now's fast
	// path is then one atomic load and RDTSC.
	tscReady atomic.Bool
)

func theClock() *clockSource {
	clockOnce.Do(func() {
		clock.origin = time.Now()
		if invariantTSC() {
			clock.useTSC = true
			clock.rate = calibrateTSC()
		} else {
			clock.rate = 1e9
		}
		tscReady.Store(clock.useTSC)
	})
	return &clock
}

// calibrateTSC measures the TSC against the monotonic clock. cpuid's nominal
// frequency is used only as a sanity bound: under virtualisation the leaves
// that give it are often missing or wrong.
func calibrateTSC() uint64 {
	const window = 20 * time.Millisecond
	t0, c0 := time.Now(), rdtsc()
	for time.Since(t0) < window {
	}
	t1, c1 := time.Now(), rdtsc()
	rate := uint64(float64(c1-c0) / t1.Sub(t0).Seconds())
	if hz := cpuid.CPU.Hz; hz > 0 && (rate < uint64(hz)/2 || rate > uint64(hz)*2) {
		// A wildly different measurement means the spin was descheduled;
		// cpuid's figure is the better guess then.
		rate = uint64(hz)
	}
	return rate
}

// Now reads the reactor clock. Reactors read it once per iteration and hand
// the value to pollers; data-path code must use that value instead.
func Now() Ticks {
	if tscReady.Load() {
		return Ticks(rdtsc())
	}
	c := theClock()
	if c.useTSC {
		return Ticks(rdtsc())
	}
	return Ticks(time.Since(c.origin))
}

// TickRate returns the number of Ticks per second.
func TickRate() uint64 { return theClock().rate }

// ClockIsTSC reports whether Ticks come from an invariant TSC (true) or the
// monotonic clock in nanoseconds (false).
func ClockIsTSC() bool { return theClock().useTSC }

// TicksFromDuration converts a duration to Ticks.
func TicksFromDuration(d time.Duration) Ticks {
	return Ticks(float64(d) * float64(TickRate()) / 1e9)
}

// Duration converts Ticks to a time.Duration.
func (t Ticks) Duration() time.Duration {
	return time.Duration(float64(t) * 1e9 / float64(TickRate()))
}
