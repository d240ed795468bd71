package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"hyperpath/app/bdevperf/perf"
)

// writeLogInterval is how often --write-log's file is appended to. Each
// flush asks every job's reactor for one buffer swap (perf.WriteLog), so
// the reactors see one message per job per interval, never work per IO.
const writeLogInterval = 10 * time.Millisecond

// checkWriteLog validates --write-log against the other flags.
func (o *options) checkWriteLog() error {
	if o.writeLog == "" {
		return nil
	}
	if o.wait {
		return errors.New("--write-log records one run and does not combine with -z")
	}
	if o.cfg.Workload != perf.Verify {
		return fmt.Errorf("--write-log needs -w verify (its writes carry the pattern), not -w %s", o.cfg.Workload)
	}
	return nil
}

// writeLogFile is --write-log: a goroutine that appends the completed
// writes to the file every writeLogInterval while the run goes on.
type writeLogFile struct {
	log  *perf.WriteLog
	f    *os.File
	stop chan struct{}
	done chan error
}

// startWriteLog creates --write-log's file, sets o.cfg.WriteLog and
// starts the flushing goroutine. It returns nil when the flag is not set.
func startWriteLog(o *options) (*writeLogFile, error) {
	if o.writeLog == "" {
		return nil, nil
	}
	f, err := os.Create(o.writeLog)
	if err != nil {
		return nil, fmt.Errorf("--write-log: %w", err)
	}
	w := &writeLogFile{log: perf.NewWriteLog(0), f: f, stop: make(chan struct{}), done: make(chan error, 1)}
	o.cfg.WriteLog = w.log
	go w.loop()
	return w, nil
}

func (w *writeLogFile) loop() {
	t := time.NewTicker(writeLogInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			w.done <- nil
			return
		case <-t.C:
			if _, err := w.log.Flush(w.f); err != nil {
				w.done <- err
				return
			}
		}
	}
}

// Close stops the goroutine, appends what completed since its last flush
// and closes the file. Call it after perf.Run has returned and before the
// reactors stop.
func (w *writeLogFile) Close() error {
	if w == nil {
		return nil
	}
	close(w.stop)
	err := <-w.done
	if err == nil {
		_, err = w.log.Flush(w.f)
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--write-log %s: %w", w.f.Name(), err)
	}
	return nil
}
