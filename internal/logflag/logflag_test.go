package logflag

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func TestSet(t *testing.T) {
	var s Set
	nvmf := s.MustRegister("nvmf")
	tcp := s.MustRegister("nvmf_TCP")
	bdev := s.MustRegister("Bdev")
	if again := s.MustRegister("NVMF"); again != nvmf {
		t.Fatal("re-registering returned a new flag")
	}
	for _, bad := range []string{"", "all", "ALL", "a*", "a?b", "[x]"} {
		if _, err := s.Register(bad); err == nil {
			t.Errorf("Register(%q) accepted", bad)
		}
	}
	names := func() string {
		var b []string
		for _, f := range s.Flags() {
			n := f.Name
			if f.Enabled {
				n += "+"
			}
			b = append(b, n)
		}
		return strings.Join(b, ",")
	}
	if got := names(); got != "Bdev,nvmf,nvmf_TCP" {
		t.Fatal(got)
	}
	if err := s.Enable("NVMF*"); err != nil {
		t.Fatal(err)
	}
	if !nvmf.Enabled() || !tcp.Enabled() || bdev.Enabled() {
		t.Fatal(names())
	}
	if err := s.Disable("nvmf_tcp"); err != nil || tcp.Enabled() {
		t.Fatal(err, names())
	}
	if err := s.Enable("All"); err != nil || names() != "Bdev+,nvmf+,nvmf_TCP+" {
		t.Fatal(err, names())
	}
	if err := s.Disable("all"); err != nil || names() != "Bdev,nvmf,nvmf_TCP" {
		t.Fatal(err, names())
	}
	for _, p := range []string{"nope", "x*", "[", ""} {
		if err := s.Enable(p); !errors.Is(err, ErrNoMatch) {
			t.Errorf("Enable(%q) = %v", p, err)
		}
	}
	if s.Lookup("BDEV") != bdev || s.Lookup("zzz") != nil {
		t.Fatal("Lookup")
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var s Set
	f := s.MustRegister("bdev")
	log := f.Logger(base).With("k", 1).WithGroup("g")
	log.Debug("hidden")
	log.Info("shown1")
	f.SetEnabled(true)
	log.Debug("shown2")
	f.SetEnabled(false)
	log.Debug("hidden")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "shown1") || !strings.Contains(out, "shown2") {
		t.Fatal(out)
	}
	if !strings.Contains(out, "flag=bdev") || !strings.Contains(out, "k=1") {
		t.Fatal(out)
	}
}

func TestConcurrent(t *testing.T) {
	var s Set
	f := s.MustRegister("a")
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				s.Enable("all")
				_ = f.Enabled()
				s.MustRegister("b")
				_ = s.Flags()
				s.Disable("a")
			}
		}()
	}
	wg.Wait()
}

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level slog.Level
	}{{"ERROR", slog.LevelError}, {"WARNING", slog.LevelWarn}, {"NOTICE", LevelNotice}, {"INFO", slog.LevelInfo}, {"DEBUG", slog.LevelDebug}} {
		l, ok := ParseLevel(tc.name)
		if !ok || l != tc.level || LevelName(l) != tc.name {
			t.Errorf("%s: %v %v %s", tc.name, l, ok, LevelName(l))
		}
	}
	if _, ok := ParseLevel("debug"); ok {
		t.Error("lower-case level accepted")
	}
	if LevelName(slog.Level(1)) != "INFO" || LevelName(slog.Level(-8)) != "DEBUG" || LevelName(slog.Level(12)) != "ERROR" {
		t.Error("in-between levels")
	}
}
