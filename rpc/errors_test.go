package rpc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestErrnoTexts(t *testing.T) {
	for _, tc := range []struct {
		e    syscall.Errno
		code int
		msg  string
	}{
		{syscall.ENODEV, -19, "No such device"},
		{syscall.EEXIST, -17, "File exists"},
		{syscall.EINVAL, -22, "Invalid argument"},
		{syscall.ENOENT, -2, "No such file or directory"},
		{syscall.ENOMEM, -12, "Cannot allocate memory"},
		{syscall.EBUSY, -16, "Device or resource busy"},
		{syscall.EFAULT, -14, "Bad address"},
		{syscall.EAGAIN, -11, "Resource temporarily unavailable"},
		{syscall.EALREADY, -114, "Operation already in progress"},
		{syscall.EOPNOTSUPP, -95, "Operation not supported"},
		{syscall.EPERM, -1, "Operation not permitted"},
		{syscall.Errno(41), -41, "Unknown error 41"},
	} {
		e := Errno(tc.e)
		if e.Code != tc.code || e.Message != tc.msg {
			t.Errorf("Errno(%d) = %d %q, want %d %q", int(tc.e), e.Code, e.Message, tc.code, tc.msg)
		}
	}
}

// TestStrerrorMatchesGlibc compares every errno with the C library's
// strerror, through Python's os.strerror.
func TestStrerrorMatchesGlibc(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: cannot compare with the C library's strerror")
	}
	out, err := exec.Command(py, "-c", "import os\nfor i in range(0, 140): print(os.strerror(i))").Output()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if got := Strerror(syscall.Errno(i)); got != want {
			t.Errorf("Strerror(%d) = %q, C library says %q", i, got, want)
		}
	}
}

func TestToError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{errors.New("boom"), -32603, "boom"},
		{fmt.Errorf("bdev %q: %w", "x", syscall.ENODEV), -19, "No such device"},
		{&os.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, -2, "No such file or directory"},
		{fmt.Errorf("ctx: %w", InvalidParams("Invalid parameters")), -32602, "Invalid parameters"},
		{Internal("Internal error"), -32603, "Internal error"},
		{ParseError("spdk_json_decode_object failed"), -32700, "spdk_json_decode_object failed"},
		{DecodeFailed(errors.New("detail")), -32603, "spdk_json_decode_object failed"},
		{Errorf(-114, "Controller %s exists", "Nvme0"), -114, "Controller Nvme0 exists"},
	} {
		e := toError(tc.err)
		if e.Code != tc.code || e.Message != tc.msg {
			t.Errorf("%v: got %d %q", tc.err, e.Code, e.Message)
		}
	}
	d := DecodeFailed(errors.New("detail"))
	if errors.Unwrap(d) == nil || !strings.Contains(d.Error(), "-32603") {
		t.Fatalf("DecodeFailed: %v", d)
	}
	e := InvalidParams("x")
	w := e.WithCause(errors.New("c"))
	if e.cause != nil || w.cause == nil || w.Message != "x" {
		t.Fatal("WithCause must copy")
	}
}
