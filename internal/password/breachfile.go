package password

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

const (
	// smallBreachFile is the size up to which OpenBreachFile reads the
	// whole file to validate it, and holds an unsorted one in memory.
	smallBreachFile = 16 << 20
	// maxBreachLine bounds a line: 40 hex digits, ':', a count, CRLF.
	maxBreachLine = 128
	// breachScanWindow is the span the binary search narrows to before
	// reading it in one piece and scanning it.
	breachScanWindow = 4096
	// breachSamples is how many lines across a large file are checked
	// to be in order when it is opened.
	breachSamples = 256
	// breachHeadBytes is how much of a large file's start is validated
	// line by line when it is opened.
	breachHeadBytes = 64 << 10
)

// BreachFile is a BreachChecker over a local list of SHA-1 password hashes
// such as the Have I Been Pwned "ordered by hash" download: one 40-digit
// hex SHA-1 per line (either case), optionally followed by ":count", with
// LF or CRLF line endings. A sorted file is searched in place by binary
// search with ReadAt, so a file of tens of GB costs a few dozen small reads
// per lookup and no memory. It is safe for concurrent use.
type BreachFile struct {
	path   string
	f      *os.File // sorted file, searched in place
	size   int64
	set    map[[sha1.Size]byte]struct{} // small unsorted file, held in memory
	closed atomic.Bool
}

// OpenBreachFile opens and validates a breach list. A file up to 16 MiB is
// read in full: every line must parse, and if the file is not sorted its
// hashes are held in memory instead. A larger file must be sorted by hash:
// its first 64 KiB and 256 lines spread across it are checked, and a file
// found out of order is refused (the "ordered by prevalence" download, for
// example) — sort it first, e.g. with `LC_ALL=C sort`.
func OpenBreachFile(path string) (*BreachFile, error) {
	return openBreachFile(path, smallBreachFile)
}

func openBreachFile(path string, smallLimit int64) (*BreachFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("password: open breach file: %w", err)
	}
	b := &BreachFile{path: path, f: f}
	if err := b.load(smallLimit); err != nil {
		f.Close()
		return nil, fmt.Errorf("password: breach file %s: %w", path, err)
	}
	if b.set != nil {
		f.Close()
		b.f = nil
	}
	return b, nil
}

func (b *BreachFile) load(smallLimit int64) error {
	st, err := b.f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	b.size = st.Size()
	if b.size == 0 {
		return errors.New("empty")
	}
	if b.size <= smallLimit {
		return b.loadSmall()
	}
	return b.checkLarge()
}

// loadSmall reads the whole file, checks every line, and keeps an unsorted
// file's hashes in memory.
func (b *BreachFile) loadSmall() error {
	data := make([]byte, b.size)
	if _, err := b.f.ReadAt(data, 0); err != nil && err != io.EOF {
		return err
	}
	var keys [][sha1.Size]byte
	sorted := true
	err := eachLine(data, func(lineNo int, line []byte) error {
		k, err := parseBreachLine(line)
		if err != nil {
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
		if len(keys) > 0 && bytes.Compare(keys[len(keys)-1][:], k[:]) > 0 {
			sorted = false
		}
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		return err
	}
	if !sorted {
		b.set = make(map[[sha1.Size]byte]struct{}, len(keys))
		for _, k := range keys {
			b.set[k] = struct{}{}
		}
	}
	return nil
}

// checkLarge validates the head of a large file line by line and samples
// lines across it, all of which must be in order.
func (b *BreachFile) checkLarge() error {
	head := make([]byte, breachHeadBytes)
	n, err := b.f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return err
	}
	head = head[:n]
	head = head[:bytes.LastIndexByte(head, '\n')+1] // whole lines only
	if len(head) == 0 {
		return errors.New("first line is too long")
	}
	var prev []byte
	err = eachLine(head, func(lineNo int, line []byte) error {
		k, err := parseBreachLine(line)
		if err != nil {
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
		if prev != nil && bytes.Compare(prev, k[:]) > 0 {
			return fmt.Errorf("not sorted by hash (line %d); sort it or use the ordered-by-hash download", lineNo)
		}
		prev = k[:]
		return nil
	})
	if err != nil {
		return err
	}
	for i := int64(1); i <= breachSamples; i++ {
		off := b.size * i / (breachSamples + 1)
		if i == breachSamples {
			off = b.size - 1 // the last line
		}
		start, _, k, err := b.lineAt(off)
		if err != nil {
			return err
		}
		if start == b.size || start < int64(len(head)) {
			continue // past the end, or a line the head check covered
		}
		if bytes.Compare(prev, k[:]) > 0 {
			return fmt.Errorf("not sorted by hash (line at byte %d); sort it or use the ordered-by-hash download", start)
		}
		prev = k[:]
	}
	return nil
}

// eachLine calls fn for each line of data, without its line ending. A
// final line ending does not start an empty line.
func eachLine(data []byte, fn func(lineNo int, line []byte) error) error {
	for lineNo := 1; len(data) > 0; lineNo++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if err := fn(lineNo, line); err != nil {
			return err
		}
	}
	return nil
}

// parseBreachLine parses "<40 hex digits>[:<count>][\r]".
func parseBreachLine(line []byte) ([sha1.Size]byte, error) {
	var k [sha1.Size]byte
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) < 2*sha1.Size {
		return k, errors.New("want a 40-digit hex SHA-1")
	}
	if _, err := hex.Decode(k[:], line[:2*sha1.Size]); err != nil {
		return k, errors.New("want a 40-digit hex SHA-1")
	}
	rest := line[2*sha1.Size:]
	if len(rest) == 0 {
		return k, nil
	}
	if rest[0] != ':' || len(rest) == 1 || len(rest) > 21 {
		return k, errors.New("want an optional :count after the hash")
	}
	for _, c := range rest[1:] {
		if c < '0' || c > '9' {
			return k, errors.New("want an optional :count after the hash")
		}
	}
	return k, nil
}

// lineAt finds the first line starting at or after off: its start, the
// start of the line after it, and its hash. start is b.size if there is
// none.
func (b *BreachFile) lineAt(off int64) (start, next int64, key [sha1.Size]byte, err error) {
	var buf [2*maxBreachLine + 1]byte
	from := off
	if off > 0 {
		from = off - 1 // to see whether off itself starts a line
	}
	n, err := b.f.ReadAt(buf[:], from)
	if err != nil && err != io.EOF {
		return 0, 0, key, err
	}
	data := buf[:n]
	atEOF := from+int64(n) >= b.size
	i := 0
	if off > 0 {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			if atEOF {
				return b.size, b.size, key, nil
			}
			return 0, 0, key, fmt.Errorf("line longer than %d bytes near byte %d", maxBreachLine, off)
		}
		i = nl + 1
	}
	start = from + int64(i)
	if start >= b.size {
		return b.size, b.size, key, nil
	}
	line := data[i:]
	if end := bytes.IndexByte(line, '\n'); end >= 0 {
		line = line[:end]
		next = start + int64(end) + 1
	} else if atEOF {
		next = b.size
	} else {
		return 0, 0, key, fmt.Errorf("line longer than %d bytes at byte %d", maxBreachLine, start)
	}
	key, err = parseBreachLine(line)
	if err != nil {
		return 0, 0, key, fmt.Errorf("line at byte %d: %w", start, err)
	}
	return start, next, key, nil
}

// contains binary-searches the sorted file for target. The invariant is
// that a line holding target, if any, starts in [lo, hi), and lo is always
// a line start.
func (b *BreachFile) contains(target [sha1.Size]byte) (bool, error) {
	lo, hi := int64(0), b.size
	for hi-lo > breachScanWindow {
		mid := lo + (hi-lo)/2
		start, next, key, err := b.lineAt(mid)
		if err != nil {
			return false, err
		}
		if start >= hi { // no line starts in [mid, hi)
			hi = mid
			continue
		}
		switch c := bytes.Compare(key[:], target[:]); {
		case c == 0:
			return true, nil
		case c < 0:
			lo = next
		default: // target's line starts before start, so before mid
			hi = mid
		}
	}

	buf := make([]byte, hi-lo+maxBreachLine)
	n, err := b.f.ReadAt(buf, lo)
	if err != nil && err != io.EOF {
		return false, err
	}
	data := buf[:n]
	for pos := int64(0); pos < hi-lo && pos < int64(len(data)); {
		line := data[pos:]
		end := bytes.IndexByte(line, '\n')
		if end >= 0 {
			line = line[:end]
		} else if lo+int64(len(data)) < b.size {
			return false, fmt.Errorf("line longer than %d bytes at byte %d", maxBreachLine, lo+pos)
		}
		key, err := parseBreachLine(line)
		if err != nil {
			return false, fmt.Errorf("line at byte %d: %w", lo+pos, err)
		}
		if c := bytes.Compare(key[:], target[:]); c >= 0 {
			return c == 0, nil
		}
		if end < 0 {
			break
		}
		pos += int64(end) + 1
	}
	return false, nil
}

// Breached implements BreachChecker: it looks up the SHA-1 of password.
func (b *BreachFile) Breached(ctx context.Context, password string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if b.closed.Load() {
		return false, fmt.Errorf("password: breach file %s: %w", b.path, os.ErrClosed)
	}
	sum := sha1.Sum([]byte(password))
	if b.set != nil {
		_, ok := b.set[sum]
		return ok, nil
	}
	found, err := b.contains(sum)
	if err != nil {
		return false, fmt.Errorf("password: breach file %s: %w", b.path, err)
	}
	return found, nil
}

// Close closes the file. Breached fails afterwards.
func (b *BreachFile) Close() error {
	if b.closed.Swap(true) || b.f == nil {
		return nil
	}
	return b.f.Close()
}
