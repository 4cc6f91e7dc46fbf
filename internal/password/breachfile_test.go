package password

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

type breachEntry struct {
	password string
	sum      [sha1.Size]byte
}

// breachEntries returns n entries for passwords "breached-<i>", sorted by
// hash.
func breachEntries(n int) []breachEntry {
	es := make([]breachEntry, n)
	for i := range es {
		pw := fmt.Sprintf("breached-%d", i)
		es[i] = breachEntry{pw, sha1.Sum([]byte(pw))}
	}
	slices.SortFunc(es, func(a, b breachEntry) int { return bytes.Compare(a.sum[:], b.sum[:]) })
	return es
}

type fileStyle struct {
	lower, counts, crlf, noFinalNewline bool
}

func writeBreachFile(t *testing.T, es []breachEntry, st fileStyle) string {
	t.Helper()
	var b strings.Builder
	for i, e := range es {
		h := strings.ToUpper(hex.EncodeToString(e.sum[:]))
		if st.lower {
			h = strings.ToLower(h)
		}
		b.WriteString(h)
		if st.counts {
			fmt.Fprintf(&b, ":%d", i*7+1)
		}
		if st.noFinalNewline && i == len(es)-1 {
			break
		}
		if st.crlf {
			b.WriteString("\r")
		}
		b.WriteString("\n")
	}
	path := filepath.Join(t.TempDir(), "pwned.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkLookups(t *testing.T, b *BreachFile, members []breachEntry, nonMembers int) {
	t.Helper()
	ctx := context.Background()
	for _, e := range members {
		got, err := b.Breached(ctx, e.password)
		if err != nil || !got {
			t.Fatalf("Breached(%q) = %v, %v; want true (hash %x)", e.password, got, err, e.sum)
		}
	}
	for i := range nonMembers {
		pw := fmt.Sprintf("clean-%d", i)
		got, err := b.Breached(ctx, pw)
		if err != nil || got {
			t.Fatalf("Breached(%q) = %v, %v; want false", pw, got, err)
		}
	}
}

func TestBreachFileBinarySearch(t *testing.T) {
	es := breachEntries(3000) // ~130 KB: many rounds of binary search
	styles := map[string]fileStyle{
		"upper":            {},
		"lower":            {lower: true},
		"counts":           {counts: true},
		"crlf":             {crlf: true},
		"lower crlf count": {lower: true, crlf: true, counts: true},
		"no final newline": {counts: true, noFinalNewline: true},
	}
	for name, st := range styles {
		t.Run(name, func(t *testing.T) {
			b, err := OpenBreachFile(writeBreachFile(t, es, st))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.set != nil {
				t.Fatal("a sorted file was loaded into memory")
			}
			checkLookups(t, b, es, 3000)
			// The first and last lines, and hashes beyond either end.
			for _, target := range [][sha1.Size]byte{es[0].sum, es[len(es)-1].sum} {
				if ok, err := b.contains(target); !ok || err != nil {
					t.Errorf("contains(%x) = %v, %v; want true", target, ok, err)
				}
			}
			var zero, ones [sha1.Size]byte
			for i := range ones {
				ones[i] = 0xff
			}
			for _, target := range [][sha1.Size]byte{zero, ones} {
				if ok, err := b.contains(target); ok || err != nil {
					t.Errorf("contains(%x) = %v, %v; want false", target, ok, err)
				}
			}
		})
	}
}

func TestBreachFileTiny(t *testing.T) {
	es := breachEntries(3)
	for n := 1; n <= 3; n++ {
		for _, st := range []fileStyle{{}, {crlf: true, noFinalNewline: true}} {
			b, err := OpenBreachFile(writeBreachFile(t, es[:n], st))
			if err != nil {
				t.Fatal(err)
			}
			checkLookups(t, b, es[:n], 20)
			if ok, _ := b.Breached(context.Background(), es[n-1].password+"x"); ok {
				t.Error("found a password not in the file")
			}
			b.Close()
		}
	}
}

func TestBreachFileUnsortedSmallInMemory(t *testing.T) {
	es := breachEntries(500)
	shuffled := slices.Clone(es)
	slices.Reverse(shuffled)
	shuffled[0], shuffled[250] = shuffled[250], shuffled[0]
	b, err := OpenBreachFile(writeBreachFile(t, shuffled, fileStyle{lower: true, counts: true, crlf: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.set == nil || len(b.set) != len(es) {
		t.Fatalf("unsorted small file: in-memory set of %d; want %d", len(b.set), len(es))
	}
	checkLookups(t, b, es, 500)
}

func TestBreachFileLarge(t *testing.T) {
	es := breachEntries(3000)
	// With a 1 KiB "small" limit the file is treated as large: sampled,
	// not read in full.
	t.Run("sorted", func(t *testing.T) {
		b, err := openBreachFile(writeBreachFile(t, es, fileStyle{counts: true, crlf: true}), 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		checkLookups(t, b, es, 1000)
	})
	t.Run("unsorted head", func(t *testing.T) {
		bad := slices.Clone(es)
		bad[3], bad[4] = bad[4], bad[3]
		_, err := openBreachFile(writeBreachFile(t, bad, fileStyle{}), 1<<10)
		if err == nil || !strings.Contains(err.Error(), "not sorted") {
			t.Errorf("err = %v; want a not-sorted error", err)
		}
	})
	t.Run("unsorted tail", func(t *testing.T) {
		bad := slices.Clone(es)
		slices.Reverse(bad[2000:]) // beyond the 64 KiB head
		_, err := openBreachFile(writeBreachFile(t, bad, fileStyle{}), 1<<10)
		if err == nil || !strings.Contains(err.Error(), "not sorted") {
			t.Errorf("err = %v; want a not-sorted error", err)
		}
	})
	t.Run("ordered by prevalence", func(t *testing.T) {
		bad := slices.Clone(es)
		slices.SortFunc(bad, func(a, b breachEntry) int { return strings.Compare(a.password, b.password) })
		_, err := openBreachFile(writeBreachFile(t, bad, fileStyle{counts: true}), 1<<10)
		if err == nil || !strings.Contains(err.Error(), "not sorted") {
			t.Errorf("err = %v; want a not-sorted error", err)
		}
	})
}

func TestBreachFileInvalid(t *testing.T) {
	dir := t.TempDir()
	good := strings.Repeat("0", 40)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, content, want string
	}{
		{"empty", "", "empty"},
		{"not hex", "Z" + good[1:] + "\n", "line 1"},
		{"short hash", good[:39] + "\n", "line 1"},
		{"bad count", good + ":x\n", "line 1"},
		{"empty count", good + ":\n", "line 1"},
		{"trailing text", good + " 12\n", "line 1"},
		{"blank line", good + "\n\n" + good + "\n", "line 2"},
		{"bad second line", good + "\nhello\n", "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenBreachFile(write(tc.name, tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v; want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := OpenBreachFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("opened a missing file")
	}
	if _, err := OpenBreachFile(dir); err == nil {
		t.Error("opened a directory")
	}
	long := write("long", strings.Repeat("A", 70<<10))
	if _, err := openBreachFile(long, 1<<10); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("a file of one 70 KiB line: err = %v; want too long", err)
	}
	// A large file whose bad line is found only by a lookup.
	es := breachEntries(3000)
	path := writeBreachFile(t, es, fileStyle{})
	data, _ := os.ReadFile(path)
	mid := bytes.IndexByte(data[len(data)*3/4:], '\n') + len(data)*3/4 + 1 // beyond the 64 KiB head
	copy(data[mid:], "not-a-hash")
	os.WriteFile(path, data, 0o600)
	b, err := openBreachFile(path, 1<<10)
	if err != nil {
		// The sampled check may land on the corrupt line itself.
		if !strings.Contains(err.Error(), "line at byte") {
			t.Errorf("open: err = %v; want one naming the corrupt line", err)
		}
		return
	}
	defer b.Close()
	var sawErr bool
	for _, e := range es {
		if _, err := b.Breached(context.Background(), e.password); err != nil {
			sawErr = true
			break
		}
	}
	if !sawErr {
		t.Error("no lookup reported the corrupt line")
	}
}

func TestBreachFileCloseAndConcurrency(t *testing.T) {
	es := breachEntries(2000)
	b, err := OpenBreachFile(writeBreachFile(t, es, fileStyle{counts: true}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < len(es); i += 4 {
				if ok, err := b.Breached(context.Background(), es[i].password); !ok || err != nil {
					t.Errorf("Breached(%q) = %v, %v", es[i].password, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Breached(context.Background(), es[0].password); err == nil {
		t.Error("Breached after Close succeeded")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b2, err := OpenBreachFile(writeBreachFile(t, es[:10], fileStyle{}))
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if _, err := b2.Breached(ctx, es[0].password); err == nil {
		t.Error("Breached with an ended context succeeded")
	}
}
