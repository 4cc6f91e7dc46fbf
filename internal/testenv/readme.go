package testenv

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// MarkedBlock keeps the part of the file at path between the lines start
// and end (markers such as "<!-- config-table:start -->\n") equal to want:
// it fails the test naming regenerate, the command that rewrites it, or
// with update rewrites the block itself.
func MarkedBlock(t *testing.T, path, start, end, want string, update bool, regenerate string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q and %q", path, strings.TrimSpace(start), end)
	}
	got := s[i+len(start) : j]
	if got == want {
		return
	}
	if update {
		if err := os.WriteFile(path, []byte(s[:i+len(start)]+want+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date between %q and %q; run %s\n%s", path, strings.TrimSpace(start), end, regenerate, cmp.Diff(want, got))
}
