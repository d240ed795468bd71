package reactor

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// waker is an epoll instance holding the reactor's eventfd plus the fds it
// watches for its pollers.
type waker struct {
	epfd int
	evfd int
}

func newWaker() (*waker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	w := &waker{epfd: epfd, evfd: evfd}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		w.close()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return w, nil
}

var one = [8]byte{1}

func (w *waker) wake() {
	// EAGAIN means the counter is saturated: the reactor is awake anyway.
	unix.Write(w.evfd, one[:])
}

// wait sleeps for at most timeoutMs (-1: forever) and drains the eventfd.
func (w *waker) wait(timeoutMs int) {
	var evs [8]unix.EpollEvent
	n, err := unix.EpollWait(w.epfd, evs[:], timeoutMs)
	if err != nil && !errors.Is(err, unix.EINTR) {
		return
	}
	for i := 0; i < n; i++ {
		if int(evs[i].Fd) == w.evfd {
			var buf [8]byte
			unix.Read(w.evfd, buf[:])
		}
	}
}

func (w *waker) watch(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("reactor: watch fd %d: %w", fd, err)
	}
	return nil
}

func (w *waker) unwatch(fd int) error {
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		return fmt.Errorf("reactor: unwatch fd %d: %w", fd, err)
	}
	return nil
}

func (w *waker) close() error {
	err := unix.Close(w.evfd)
	if e := unix.Close(w.epfd); err == nil {
		err = e
	}
	return err
}

// pinToCore binds the calling thread to core.
func pinToCore(core int) error {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return fmt.Errorf("sched_getaffinity: %w", err)
	}
	if !allowed.IsSet(core) {
		return fmt.Errorf("%w: core %d is not in this process's CPU set (%s); choose cores from it with -m",
			ErrCoreUnavailable, core, cpuSetString(&allowed))
	}
	var set unix.CPUSet
	set.Set(core)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sched_setaffinity core %d: %w", core, err)
	}
	return nil
}

func cpuSetString(s *unix.CPUSet) string {
	var cores []int
	for c := 0; c < MaxCores; c++ {
		if s.IsSet(c) {
			cores = append(cores, c)
		}
	}
	return "0x" + FormatCoreMask(cores)
}

// AvailableCores returns the cores this process may run on.
func AvailableCores() ([]int, error) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cores []int
	for c := 0; c < MaxCores; c++ {
		if allowed.IsSet(c) {
			cores = append(cores, c)
		}
	}
	return cores, nil
}
