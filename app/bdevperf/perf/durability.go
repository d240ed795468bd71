package perf

// Write log and crash check.
//
// A WriteLog records which Verify writes completed, so that a test can
// kill bdevperf at any moment and then check the device against what the
// log says had completed (CheckDurability).
//
// Ownership: each job gets two record buffers of the same fixed capacity,
// allocated on the control plane when the job is built. The job's reactor
// appends to its current buffer in the completion callback (push: no
// allocation, no lock; a full buffer drops the record and counts it).
// Flush, on the control plane, swaps the two buffers on the job's reactor
// (reactor.Call), or directly once the job's done channel is closed, and
// then reads the full one while the reactor fills the other. Flushes are
// serialized by WriteLog.mu, so the reactor never gets back a buffer the
// control plane is still reading.
//
// A record enters the log only after the bdev completed the write with
// success, so every record in a flushed file names a write that had
// completed before the flush wrote it.
//
// File format (text, written by Flush, read by ReadWriteLog):
//
//	hyperpath-bdevperf-write-log 1
//	job <job> <bdev name, Go-quoted> <block size> <seed>
//	<job> <offset blocks> <num blocks> <seq>
//	drop <job> <records dropped so far>
//
// A job line precedes that job's first record. Each record is one write
// whose every block carries the verify pattern (LBA, seed, seq, filler;
// see fillPattern). A drop line says the job's buffer overflowed between
// two flushes: the log is then a subset of the completed writes, which is
// still what the crash check needs. Each Flush appends whole lines with
// one Write; a process killed during that Write leaves a partial last
// line, which ReadWriteLog drops (WriteLogData.Truncated).

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"hyperpath/reactor"
)

// DefaultWriteLogRecords is a job's record buffer capacity when
// NewWriteLog is given 0: at 10 ms flushes, room for 6.5 M writes/s.
const DefaultWriteLogRecords = 1 << 16

// writeLogMagic is the first line of a write log file.
const writeLogMagic = "hyperpath-bdevperf-write-log 1"

// WriteLogJob names the job a write log's records belong to.
type WriteLogJob struct {
	Job       int
	Bdev      string
	BlockSize uint32
	Seed      uint64
}

// WriteRecord is one write that completed successfully: NumBlocks blocks
// from OffsetBlocks, each carrying the verify pattern with sequence
// number Seq.
type WriteRecord struct {
	Job          int
	OffsetBlocks uint64
	NumBlocks    uint64
	Seq          uint64
}

// WriteLog records the writes of a Verify run that completed (see the
// comment at the top of durability.go). Set Config.WriteLog to one from
// NewWriteLog; one WriteLog serves one Run.
type WriteLog struct {
	perJob int

	mu        sync.Mutex // serializes add and Flush
	bufs      []*writeBuf
	announced int  // bufs whose job line is written
	started   bool // the magic line is written
	line      []byte
	dropSeen  []uint64
}

// NewWriteLog returns a WriteLog whose jobs each buffer up to
// recordsPerJob records between flushes (0: DefaultWriteLogRecords).
func NewWriteLog(recordsPerJob int) *WriteLog {
	if recordsPerJob <= 0 {
		recordsPerJob = DefaultWriteLogRecords
	}
	return &WriteLog{perJob: recordsPerJob}
}

// writeRec is a WriteRecord as the reactor keeps it.
type writeRec struct{ off, n, seq uint64 }

// writeBuf is one job's pair of record buffers.
type writeBuf struct {
	job  WriteLogJob
	r    *reactor.Reactor
	done chan struct{} // the job's; closed once it pushes no more

	// Reactor-owned (until done is closed).
	cur     []writeRec
	dropped uint64

	// Control-owned between swaps.
	spare []writeRec
}

// add gives a new job its buffers. Control plane (newJob).
func (l *WriteLog) add(r *reactor.Reactor, done chan struct{}, job WriteLogJob) *writeBuf {
	b := &writeBuf{job: job, r: r, done: done,
		cur: make([]writeRec, 0, l.perJob), spare: make([]writeRec, 0, l.perJob)}
	l.mu.Lock()
	l.bufs = append(l.bufs, b)
	l.mu.Unlock()
	return b
}

// push records a completed write. Runs on the job's reactor; hot path.
func (b *writeBuf) push(off, n, seq uint64) {
	if len(b.cur) == cap(b.cur) {
		b.dropped++
		return
	}
	b.cur = append(b.cur, writeRec{off: off, n: n, seq: seq})
}

// swap hands the filled buffer to the control plane and gives the
// reactor the empty one. Runs on the job's reactor (or anywhere once the
// job is done).
func (b *writeBuf) swap() ([]writeRec, uint64) {
	full := b.cur
	b.cur = b.spare[:0]
	b.spare = full
	return full, b.dropped
}

// Flush collects the records completed since the previous Flush and
// appends them to w in the write log format, with one Write call. It
// returns the number of records written. Control plane: it waits for each
// running job's reactor to swap its buffers.
func (l *WriteLog) Flush(w io.Writer) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := l.line[:0]
	if !l.started {
		line = append(line, writeLogMagic...)
		line = append(line, '\n')
	}
	records := 0
	for i, b := range l.bufs {
		if i >= l.announced {
			line = append(line, "job "...)
			line = strconv.AppendInt(line, int64(b.job.Job), 10)
			line = append(line, ' ')
			line = strconv.AppendQuote(line, b.job.Bdev)
			line = append(line, ' ')
			line = strconv.AppendUint(line, uint64(b.job.BlockSize), 10)
			line = append(line, ' ')
			line = strconv.AppendUint(line, b.job.Seed, 10)
			line = append(line, '\n')
		}
		var full []writeRec
		var dropped uint64
		if isClosed(b.done) {
			full, dropped = b.swap()
		} else if err := reactor.Call(b.r, func() { full, dropped = b.swap() }); err != nil {
			return 0, fmt.Errorf("write log of job %d (%s): %w", b.job.Job, b.job.Bdev, err)
		}
		for _, r := range full {
			line = strconv.AppendInt(line, int64(b.job.Job), 10)
			line = append(line, ' ')
			line = strconv.AppendUint(line, r.off, 10)
			line = append(line, ' ')
			line = strconv.AppendUint(line, r.n, 10)
			line = append(line, ' ')
			line = strconv.AppendUint(line, r.seq, 10)
			line = append(line, '\n')
		}
		records += len(full)
		if i >= len(l.dropSeen) {
			l.dropSeen = append(l.dropSeen, 0)
		}
		if dropped != l.dropSeen[i] {
			l.dropSeen[i] = dropped
			line = append(line, "drop "...)
			line = strconv.AppendInt(line, int64(b.job.Job), 10)
			line = append(line, ' ')
			line = strconv.AppendUint(line, dropped, 10)
			line = append(line, '\n')
		}
	}
	l.line = line
	if len(line) == 0 {
		return 0, nil
	}
	if _, err := w.Write(line); err != nil {
		return 0, err
	}
	// Count the header and job lines as written only once they are.
	l.started = true
	l.announced = len(l.bufs)
	return records, nil
}

// WriteLogData is a parsed write log.
type WriteLogData struct {
	Jobs    []WriteLogJob
	Records []WriteRecord
	// Dropped is the records the jobs could not buffer, all jobs together.
	Dropped uint64
	// Truncated says the last line had no newline (its writer died during
	// a flush) and was ignored.
	Truncated bool
}

// ErrWriteLog marks a malformed write log.
var ErrWriteLog = errors.New("bad write log")

// maxWriteLogLine bounds one line of a write log (a job line with a long
// bdev name is the longest).
const maxWriteLogLine = 4096

// ReadWriteLog parses a write log (see the format above).
func ReadWriteLog(r io.Reader) (*WriteLogData, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	d := &WriteLogData{}
	jobs := map[int]bool{}
	drops := map[int]uint64{}
	for n := 1; ; n++ {
		text, err := br.ReadString('\n')
		if err == io.EOF {
			if text != "" {
				d.Truncated = true
			}
			break
		}
		if err != nil {
			return nil, err
		}
		if len(text) > maxWriteLogLine {
			return nil, fmt.Errorf("%w: line %d: longer than %d bytes", ErrWriteLog, n, maxWriteLogLine)
		}
		text = text[:len(text)-1]
		if n == 1 {
			if text != writeLogMagic {
				return nil, fmt.Errorf("%w: line 1: %.40q is not %q", ErrWriteLog, text, writeLogMagic)
			}
			continue
		}
		switch {
		case strings.HasPrefix(text, "job "):
			j, err := parseJobLine(text[len("job "):])
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrWriteLog, n, err)
			}
			if jobs[j.Job] {
				return nil, fmt.Errorf("%w: line %d: job %d declared twice", ErrWriteLog, n, j.Job)
			}
			jobs[j.Job] = true
			d.Jobs = append(d.Jobs, j)
		case strings.HasPrefix(text, "drop "):
			f := strings.Fields(text[len("drop "):])
			if len(f) != 2 {
				return nil, fmt.Errorf("%w: line %d: drop line wants <job> <count>", ErrWriteLog, n)
			}
			job, err1 := strconv.Atoi(f[0])
			cnt, err2 := strconv.ParseUint(f[1], 10, 64)
			if err1 != nil || err2 != nil || !jobs[job] || cnt < drops[job] {
				return nil, fmt.Errorf("%w: line %d: bad drop line %.60q", ErrWriteLog, n, text)
			}
			d.Dropped += cnt - drops[job]
			drops[job] = cnt
		default:
			rec, err := parseRecord(text)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrWriteLog, n, err)
			}
			if !jobs[rec.Job] {
				return nil, fmt.Errorf("%w: line %d: record of undeclared job %d", ErrWriteLog, n, rec.Job)
			}
			d.Records = append(d.Records, rec)
		}
	}
	// An empty file is a log whose writer never flushed; one with only
	// the first line, a run that completed no write. Both are valid.
	return d, nil
}

func parseJobLine(s string) (WriteLogJob, error) {
	var j WriteLogJob
	sp := strings.IndexByte(s, ' ')
	if sp < 0 {
		return j, errors.New("job line wants <job> <name> <block size> <seed>")
	}
	id, err := strconv.Atoi(s[:sp])
	if err != nil || id < 0 {
		return j, fmt.Errorf("job id %.20q", s[:sp])
	}
	rest := s[sp+1:]
	q, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return j, fmt.Errorf("bdev name: %v", err)
	}
	name, _ := strconv.Unquote(q) // QuotedPrefix validated it
	f := strings.Fields(rest[len(q):])
	if len(f) != 2 {
		return j, errors.New("job line wants <job> <name> <block size> <seed>")
	}
	bs, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil || bs < 8*patternHeaderWords || bs&(bs-1) != 0 {
		return j, fmt.Errorf("block size %.20q: want a power of two of at least %d", f[0], 8*patternHeaderWords)
	}
	seed, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return j, fmt.Errorf("seed %.30q", f[1])
	}
	return WriteLogJob{Job: id, Bdev: name, BlockSize: uint32(bs), Seed: seed}, nil
}

func parseRecord(s string) (WriteRecord, error) {
	var r WriteRecord
	f := strings.Fields(s)
	if len(f) != 4 {
		return r, fmt.Errorf("record %.60q wants <job> <offset blocks> <num blocks> <seq>", s)
	}
	job, err := strconv.Atoi(f[0])
	if err != nil || job < 0 {
		return r, fmt.Errorf("record job %.20q", f[0])
	}
	var v [3]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return r, fmt.Errorf("record field %d: %.30q", i+2, f[i+1])
		}
	}
	if v[1] == 0 || v[0]+v[1] < v[0] {
		return r, fmt.Errorf("record range %d+%d", v[0], v[1])
	}
	return WriteRecord{Job: job, OffsetBlocks: v[0], NumBlocks: v[1], Seq: v[2]}, nil
}

// DurabilityReport is what CheckDurability found.
type DurabilityReport struct {
	// Blocks of the device; each is zero, a whole pattern block, or bad.
	Blocks, ZeroBlocks, PatternBlocks, BadBlocks uint64
	// Records is the log records checked and LoggedBlocks the blocks they
	// cover; Missing counts logged blocks found zero, bad, or holding an
	// older sequence number than the log says completed.
	Records, LoggedBlocks, Missing uint64
	// Problems describes the first few bad and missing blocks.
	Problems []string
}

// maxProblems bounds DurabilityReport.Problems.
const maxProblems = 16

func (r *DurabilityReport) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Failure returns an error naming the bad and missing blocks, or nil.
func (r *DurabilityReport) Failure() error {
	if r.BadBlocks == 0 && r.Missing == 0 {
		return nil
	}
	return fmt.Errorf("durability: %d of %d blocks neither zero nor a whole pattern block, %d of %d logged blocks missing or stale:\n  %s",
		r.BadBlocks, r.Blocks, r.Missing, r.LoggedBlocks, strings.Join(r.Problems, "\n  "))
}

// CheckDurability reads a device of sizeBytes through dev (block LBA at
// byte LBA*job.BlockSize, as a file bdev maps it) after a run that was
// killed, and checks that:
//
//   - every block is either all zero (never written) or one whole verify
//     pattern block of job.Seed for its own LBA: no torn, mixed, misplaced
//     or foreign block;
//   - every block of every record of job in recs holds the pattern with a
//     sequence number at least the record's (a later write of the same
//     block may have overwritten it, never an earlier one).
//
// It returns an error only when dev cannot be read; what it found is in
// the report (see DurabilityReport.Failure).
func CheckDurability(dev io.ReaderAt, sizeBytes int64, job WriteLogJob, recs []WriteRecord) (*DurabilityReport, error) {
	bs := int64(job.BlockSize)
	if bs < 8*patternHeaderWords || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("%w: block size %d", ErrWriteLog, bs)
	}
	rep := &DurabilityReport{Blocks: uint64(sizeBytes / bs)}
	// found[lba] is 0 for a zero block, seq+1 for a pattern block and
	// ^0 for a bad one.
	const bad = ^uint64(0)
	found := make([]uint64, rep.Blocks)
	chunk := max(1<<20/bs, 1) * bs
	buf := make([]byte, chunk)
	for off := int64(0); off < int64(rep.Blocks)*bs; off += chunk {
		n := min(chunk, int64(rep.Blocks)*bs-off)
		if _, err := dev.ReadAt(buf[:n], off); err != nil {
			return nil, fmt.Errorf("read %d bytes at %d: %w", n, off, err)
		}
		for b := int64(0); b < n; b += bs {
			lba := uint64((off + b) / bs)
			blk := buf[b : b+bs]
			if allZero(blk) {
				rep.ZeroBlocks++
				continue
			}
			gotLBA := binary.LittleEndian.Uint64(blk[0:])
			gotSeed := binary.LittleEndian.Uint64(blk[8:])
			seq := binary.LittleEndian.Uint64(blk[16:])
			at := checkBlock(blk, lba, job.Seed)
			if at < 0 && seq != bad {
				rep.PatternBlocks++
				found[lba] = seq + 1
				continue
			}
			rep.BadBlocks++
			found[lba] = bad
			switch {
			case gotLBA != lba || gotSeed != job.Seed:
				rep.problem("block %d: header says LBA %d seed %d seq %d: misplaced or foreign data", lba, gotLBA, gotSeed, seq)
			default:
				rep.problem("block %d: header LBA, seed and seq %d good, byte %d differs: torn or mixed block", lba, seq, at)
			}
		}
	}
	for _, r := range recs {
		if r.Job != job.Job {
			continue
		}
		rep.Records++
		for lba := r.OffsetBlocks; lba < r.OffsetBlocks+r.NumBlocks; lba++ {
			rep.LoggedBlocks++
			switch {
			case lba >= rep.Blocks:
				rep.Missing++
				rep.problem("logged write at block %d (seq %d) lies beyond the %d-block device", lba, r.Seq, rep.Blocks)
			case found[lba] == 0:
				rep.Missing++
				rep.problem("block %d: logged write seq %d completed, block is zero", lba, r.Seq)
			case found[lba] == bad:
				rep.Missing++ // already described as bad
			case found[lba]-1 < r.Seq:
				rep.Missing++
				rep.problem("block %d: logged write seq %d completed, block holds older seq %d", lba, r.Seq, found[lba]-1)
			}
		}
	}
	return rep, nil
}

// checkBlock is checkPattern for one block, with the sequence number the
// block's header carries: the byte offset of the first word that differs
// from that pattern, or -1.
//
// It and allZero run without race instrumentation: they read a buffer
// only their goroutine touches, and the detector's per-byte checks make a
// scan of a device some 40 times slower (10 s instead of 0.25 s for 256
// MiB), which the crash tests would pay under go test -race.
// TestCheckBlockMatchesCheckPattern holds it to checkPattern.
//
//go:norace
func checkBlock(blk []byte, lba, seed uint64) int {
	if len(blk) < 8*patternHeaderWords {
		return 0
	}
	if binary.LittleEndian.Uint64(blk[0:]) != lba {
		return 0
	}
	if binary.LittleEndian.Uint64(blk[8:]) != seed {
		return 8
	}
	seq := binary.LittleEndian.Uint64(blk[16:])
	k := blockKey(lba, seed, seq)
	for w := patternHeaderWords * 8; w+8 <= len(blk); w += 8 {
		k += 0x9e3779b97f4a7c15
		if binary.LittleEndian.Uint64(blk[w:]) != splitmix(k) {
			return w
		}
	}
	return -1
}

//go:norace
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
