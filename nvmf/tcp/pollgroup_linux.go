//go:build linux

package tcp

import (
	"golang.org/x/sys/unix"

	"hyperpath/nvmf"
	"hyperpath/reactor"
)

// maxEvents is the epoll batch of one poll.
const maxEvents = 64

// PollGroup is the TCP transport's per-reactor state: an epoll instance
// over its connections' sockets (edge-triggered; the reactor watches the
// epoll fd itself, so an adaptive reactor sleeps until a socket is ready)
// and the connections, in slots whose index is the epoll user data.
//
// Everything here runs on the group's reactor.
type PollGroup struct {
	t    *Transport
	r    *reactor.Reactor
	epfd int
	evs  [maxEvents]unix.EpollEvent

	conns     []*conn // by slot; nil for a free slot
	freeSlots []int
	// more is set when epoll returned a full batch: events may be left.
	more   bool
	closed bool
}

var _ nvmf.PollGroup = (*PollGroup)(nil)

func newPollGroup(t *Transport, r *reactor.Reactor) (*PollGroup, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := r.WatchFd(epfd); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	return &PollGroup{t: t, r: r, epfd: epfd}, nil
}

// addConnMsg runs on the group's reactor: it adopts an accepted socket.
func addConnMsg(arg any) {
	c := arg.(*conn)
	g := c.g
	if g.closed {
		unix.Close(c.fd)
		return
	}
	slot := len(g.conns)
	if n := len(g.freeSlots); n > 0 {
		slot = g.freeSlots[n-1]
		g.freeSlots = g.freeSlots[:n-1]
	} else {
		g.conns = append(g.conns, nil)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(slot)}
	if err := unix.EpollCtl(g.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		g.freeSlots = append(g.freeSlots, slot)
		unix.Close(c.fd)
		return
	}
	c.slot = slot
	g.conns[slot] = c
}

// Poll implements nvmf.PollGroup.
func (g *PollGroup) Poll(reactor.Ticks) reactor.Status {
	if g.closed {
		return reactor.Idle
	}
	busy := false
	n := epollWaitNow(g.epfd, g.evs[:])
	g.more = n == len(g.evs)
	for i := 0; i < n; i++ {
		ev := &g.evs[i]
		slot := int(ev.Fd)
		if slot < 0 || slot >= len(g.conns) || g.conns[slot] == nil {
			continue
		}
		c := g.conns[slot]
		if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.rxReady = true
		}
		if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			// The end of the stream raises no further edge: read until
			// readv reports it.
			c.rxEOF = true
		}
		if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.txReady = true
		}
		busy = true
	}
	for i := 0; i < len(g.conns); i++ {
		if c := g.conns[i]; c != nil && c.poll() {
			busy = true
		}
	}
	if busy {
		return reactor.Busy
	}
	return reactor.Idle
}

// Arm implements nvmf.PollGroup: it vetoes sleep while a connection has
// work the reactor would not be woken for.
func (g *PollGroup) Arm() bool {
	if g.closed {
		return false
	}
	if g.more {
		return true
	}
	for _, c := range g.conns {
		if c != nil && c.pending() {
			return true
		}
	}
	return false
}

// Close implements nvmf.PollGroup: every connection is closed at once.
// Requests the target still holds are recycled as it completes them.
func (g *PollGroup) Close() {
	if g.closed {
		return
	}
	for _, c := range g.conns {
		if c != nil {
			c.abort()
			if c.notify {
				c.notify = false
				g.t.h.QPairDisconnected(c)
			}
		}
	}
	g.closed = true
	g.r.UnwatchFd(g.epfd)
	unix.Close(g.epfd)
	g.t.removeGroup(g)
}

// NumQPairs is the number of live connections of the group.
func (g *PollGroup) NumQPairs() int {
	n := 0
	for _, c := range g.conns {
		if c != nil {
			n++
		}
	}
	return n
}

func (g *PollGroup) release(c *conn) {
	if c.slot >= 0 && c.slot < len(g.conns) && g.conns[c.slot] == c {
		g.conns[c.slot] = nil
		g.freeSlots = append(g.freeSlots, c.slot)
	}
	c.slot = -1
}
