package reactor

// rdtsc reads the time-stamp counter (not serialising: good enough for
// accounting and latency at iteration granularity).
func rdtsc() uint64

// cpuidLeaf executes CPUID with the given leaf and subleaf 0.
func cpuidLeaf(leaf uint32) (eax, ebx, ecx, edx uint32)

// invariantTSC reports whether CPUID leaf 0x80000007 EDX bit 8 (invariant
// TSC: constant rate in every P-, C- and T-state) is set.
func invariantTSC() bool {
	maxExt, _, _, _ := cpuidLeaf(0x80000000)
	if maxExt < 0x80000007 {
		return false
	}
	_, _, _, edx := cpuidLeaf(0x80000007)
	return edx&(1<<8) != 0
}
