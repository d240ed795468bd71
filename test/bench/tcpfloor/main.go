// Command tcpfloor measures the floor under NVMe/TCP latency on this
// machine: a request/response ping-pong over a loopback TCP connection
// between two threads pinned to their own CPUs, with nothing else on the
// path (no PDU parsing, no bdev, no reactor). test/bench/nvmf-tcp.sh
// divides the target's QD1 latency by it.
//
// The client thread writes a request of -req bytes and reads a response
// of -resp bytes; the server thread reads the request and writes the
// response. Both use raw non-Go-runtime sockets (socket, read, write) with
// TCP_NODELAY, on their locked OS threads:
//
//   - -mode spin: non-blocking reads retried at once (what a polling
//     reactor does: the floor for --poll);
//   - -mode block: blocking reads (the thread sleeps in the kernel: the
//     floor for a reactor that sleeps when idle).
//
// Each round trip is timed with the monotonic clock on the client; the
// first -warmup of the run is not counted. It prints one human line and
// one line of key=value pairs (FLOOR ...) for scripts.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "spin", "spin (non-blocking reads, retried) or block (blocking reads)")
	flag.IntVar(&o.reqBytes, "req", 4096, "request size in bytes (client to server)")
	flag.IntVar(&o.respBytes, "resp", 4096, "response size in bytes (server to client)")
	flag.IntVar(&o.clientCPU, "client-cpu", 0, "CPU of the client thread")
	flag.IntVar(&o.serverCPU, "server-cpu", 1, "CPU of the server thread")
	flag.DurationVar(&o.duration, "t", 10*time.Second, "measured time")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "time before measuring")
	flag.Parse()
	if o.mode != "spin" && o.mode != "block" {
		fmt.Fprintf(os.Stderr, "tcpfloor: -mode %q: want spin or block\n", o.mode)
		os.Exit(2)
	}
	if o.reqBytes <= 0 || o.respBytes <= 0 || o.reqBytes > 1<<20 || o.respBytes > 1<<20 {
		fmt.Fprintln(os.Stderr, "tcpfloor: -req and -resp want 1 .. 1048576 bytes")
		os.Exit(2)
	}
	rtts, err := run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tcpfloor: %v\n", err)
		os.Exit(1)
	}
	if len(rtts) == 0 {
		fmt.Fprintln(os.Stderr, "tcpfloor: no round trip completed")
		os.Exit(1)
	}
	s := summarize(rtts)
	fmt.Printf("tcp floor (%s, %d B request / %d B response, client CPU %d, server CPU %d): %d round trips in %v: "+
		"avg %.2f us  min %.2f  p50 %.2f  p99 %.2f  p99.9 %.2f us\n",
		o.mode, o.reqBytes, o.respBytes, o.clientCPU, o.serverCPU, len(rtts), o.duration,
		s.avg, s.min, s.p50, s.p99, s.p999)
	fmt.Printf("FLOOR mode=%s req=%d resp=%d n=%d avg_us=%.3f p50_us=%.3f p99_us=%.3f p999_us=%.3f\n",
		o.mode, o.reqBytes, o.respBytes, len(rtts), s.avg, s.p50, s.p99, s.p999)
}

type options struct {
	mode                 string
	reqBytes, respBytes  int
	clientCPU, serverCPU int
	duration, warmup     time.Duration
}

type summary struct{ avg, min, p50, p99, p999 float64 }

// summarize returns the statistics of the round trips, in microseconds
// (nearest-rank percentiles).
func summarize(rtts []time.Duration) summary {
	slices.Sort(rtts)
	var sum time.Duration
	for _, d := range rtts {
		sum += d
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(rtts))+0.999999) - 1
		return rtts[max(0, min(i, len(rtts)-1))]
	}
	return summary{avg: us(sum) / float64(len(rtts)), min: us(rtts[0]),
		p50: us(rank(0.50)), p99: us(rank(0.99)), p999: us(rank(0.999))}
}
