package rediskv

import "testing"

func TestSameSlot(t *testing.T) {
	tests := []struct {
		keys []string
		want bool
	}{
		{[]string{"a"}, true},
		{[]string{"a", "a"}, true},
		{[]string{"a", "b"}, false},
		{[]string{"p:login:{email:x}:fail", "p:login:{email:x}:locks"}, true},
		{[]string{"p:login:{email:x}:fail", "p:login:{email:y}:fail"}, false},
		// Only the first {...} counts.
		{[]string{"{t}:{a}", "{t}:{b}"}, true},
		{[]string{"{a}:{t}", "{b}:{t}"}, false},
		// An empty tag hashes the whole key.
		{[]string{"{}:a", "{}:b"}, false},
		{[]string{"{}{a}", "{}{a}x"}, false},
		// A '{' without a '}' after it is no tag.
		{[]string{"x{a", "y{a"}, false},
		// The tag is what the first '{' and the next '}' enclose.
		{[]string{"{{a}x", "y{{a}"}, true},
	}
	for _, tt := range tests {
		if got := sameSlot(tt.keys); got != tt.want {
			t.Errorf("sameSlot(%q) = %v, want %v", tt.keys, got, tt.want)
		}
	}
}
