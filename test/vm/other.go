//go:build !linux

package vm

import (
	"errors"
	"syscall"
)

var errNotLinux = errors.New("vm: needs Linux")

func lockFile(string) (func(), error) { return nil, errNotLinux }

func setupHugetlbfs(int) (string, func(), error) { return "", nil, errNotLinux }

func sysProcAttr() *syscall.SysProcAttr { return nil }
