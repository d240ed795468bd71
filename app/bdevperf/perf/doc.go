// Package perf is the engine of bdevperf, Hyperpath's block device
// benchmark (SPDK's bdevperf): jobs that keep a queue depth of IO
// outstanding on bdevs, measure IOPS, bandwidth and per-IO latency, and
// verify data.
//
// # Jobs and threading
//
// A job drives one bdev (or one slice of it, in EveryCore mode) from one
// reactor. Run builds the jobs and their buffers on the control plane,
// creates each job's bdev channel and poller on its reactor (reactor.Call),
// and starts every job with one message. From then on everything a job
// touches belongs to its reactor: the job submits QueueDepth IOs, and its
// completion callback accounts each IO and submits the slot's next one.
// The control plane sees a job's counters only through a message (the
// progress line) or after the job has closed its done channel.
//
// # Hot path
//
// Each slot of a job owns a buffer carved from one hugepage region
// allocated up front; offsets come from a per-job xorshift generator;
// latency is the reactor clock read at submission and completion,
// recorded in nanoseconds into the job's HdrHistogram. Submitting and
// completing allocate nothing and take no lock (TestHotPathAllocs).
//
// # Lifecycle of a job
//
//  1. newJob (control plane): buffers, slots, histogram.
//  2. setup (its reactor): channel and poller.
//  3. start (message): the first QueueDepth IOs; the window opens.
//  4. the deadline passes, or a stop message arrives: the job drains,
//     counting no more IO into its results.
//  5. finish (its poller, once nothing is outstanding): the channel and
//     poller are released and done is closed.
//
// # Verify
//
// In the Verify workload each slot owns a disjoint region of the job's
// range, writes a self-describing pattern (see fillPattern) at its next
// offset, reads it back into its cleared buffer and compares. Miscompares
// and IO errors are counted and the first few described in the results.
package perf
