package reactor

import (
	"sync"
	"testing"
)

func TestRingFIFOAndFull(t *testing.T) {
	q := newMsgRing(4)
	fn := func(any) {}
	for i := 0; i < 4; i++ {
		if !q.push(fn, i) {
			t.Fatalf("push %d failed on a ring of 4", i)
		}
	}
	if q.push(fn, 99) {
		t.Fatal("push into a full ring succeeded")
	}
	for lap := 0; lap < 1000; lap++ { // wraps the 64-bit positions many laps
		_, arg, ok := q.pop()
		if !ok || arg.(int) != lap {
			t.Fatalf("pop %d: got %v ok=%v", lap, arg, ok)
		}
		if !q.push(fn, lap+4) {
			t.Fatalf("push after pop %d failed", lap)
		}
	}
	for i := 0; i < 4; i++ {
		if _, _, ok := q.pop(); !ok {
			t.Fatal("lost a message")
		}
	}
	if !q.empty() {
		t.Fatal("ring not empty after draining")
	}
	if _, _, ok := q.pop(); ok {
		t.Fatal("pop from an empty ring succeeded")
	}
}

// TestRingConcurrentProducers checks, against a simple reference (per
// producer sequence numbers must arrive in order, none lost, none doubled),
// that concurrent producers and one consumer agree.
func TestRingConcurrentProducers(t *testing.T) {
	const producers, perProducer = 4, 20000
	q := newMsgRing(64)
	type msg struct{ p, seq int }
	msgs := make([][]msg, producers)
	for p := range msgs {
		msgs[p] = make([]msg, perProducer)
		for i := range msgs[p] {
			msgs[p][i] = msg{p, i}
		}
	}
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < perProducer; i++ {
				for !q.push(nil, &msgs[p][i]) {
				}
			}
		}(p)
	}
	next := make([]int, producers)
	for got := 0; got < producers*perProducer; {
		_, arg, ok := q.pop()
		if !ok {
			continue
		}
		m := arg.(*msg)
		if m.seq != next[m.p] {
			t.Fatalf("producer %d: got seq %d, want %d", m.p, m.seq, next[m.p])
		}
		next[m.p]++
		got++
	}
	wg.Wait()
	if !q.empty() {
		t.Fatal("extra messages")
	}
}
