//go:build !linux

package main

import (
	"errors"
	"time"
)

func run(options) ([]time.Duration, error) {
	return nil, errors.New("needs Linux (sched_setaffinity, raw sockets)")
}
