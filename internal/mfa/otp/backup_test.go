package otp

import (
	"math"
	"regexp"
	"strings"
	"testing"
)

func TestBackupAlphabet(t *testing.T) {
	if len(BackupAlphabet) != 31 {
		t.Errorf("alphabet has %d symbols, want 31", len(BackupAlphabet))
	}
	seen := map[rune]bool{}
	for _, c := range BackupAlphabet {
		if seen[c] {
			t.Errorf("symbol %q repeated", c)
		}
		seen[c] = true
		if !('2' <= c && c <= '9' || 'A' <= c && c <= 'Z') {
			t.Errorf("symbol %q is not a digit 2-9 or an upper-case letter", c)
		}
	}
	if strings.ContainsAny(BackupAlphabet, "01OIL") {
		t.Error("alphabet contains an ambiguous symbol")
	}
}

func TestBackupCodeEntropy(t *testing.T) {
	bits := float64(BackupCodeLength) * math.Log2(float64(len(BackupAlphabet)))
	if bits < 50 {
		t.Errorf("backup codes carry %.1f bits, want at least 50", bits)
	}
	t.Logf("%d symbols of %d: %.1f bits", BackupCodeLength, len(BackupAlphabet), bits)
}

var backupFormat = regexp.MustCompile(`^[` + BackupAlphabet + `]{4}-[` + BackupAlphabet + `]{4}-[` + BackupAlphabet + `]{3}$`)

func TestGenerateBackupCodes(t *testing.T) {
	seen := map[string]bool{}
	symbols := map[rune]int{}
	for range 1000 {
		codes, err := GenerateBackupCodes(10)
		if err != nil {
			t.Fatal(err)
		}
		if len(codes) != 10 {
			t.Fatalf("got %d codes, want 10", len(codes))
		}
		for _, c := range codes {
			if !backupFormat.MatchString(c) {
				t.Fatalf("code %q does not match XXXX-XXXX-XXX over the alphabet", c)
			}
			if seen[c] {
				t.Fatalf("code %q generated twice", c)
			}
			seen[c] = true
			n := NormalizeBackupCode(c)
			if len(n) != BackupCodeLength || formatBackupCode(n) != c {
				t.Fatalf("NormalizeBackupCode(%q) = %q", c, n)
			}
			for _, r := range n {
				symbols[r]++
			}
		}
	}
	// 110,000 symbols: every one of the 31 appears, about 3548 times each.
	for _, r := range BackupAlphabet {
		if n := symbols[r]; n < 3000 || n > 4100 {
			t.Errorf("symbol %q appeared %d times in 110000, want about 3548", r, n)
		}
	}
	for _, n := range []int{0, -1, MaxBackupCodes + 1} {
		if _, err := GenerateBackupCodes(n); err == nil {
			t.Errorf("GenerateBackupCodes(%d) succeeded", n)
		}
	}
	if codes, err := GenerateBackupCodes(MaxBackupCodes); err != nil || len(codes) != MaxBackupCodes {
		t.Errorf("GenerateBackupCodes(%d) = %d codes, %v", MaxBackupCodes, len(codes), err)
	}
}

func TestNormalizeBackupCode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ABCD-EFGH-JKM", "ABCDEFGHJKM"},
		{"abcd-efgh-jkm", "ABCDEFGHJKM"},
		{"  aBcD efGH\tjkm ", "ABCDEFGHJKM"},
		{"ABCDEFGHJKM", "ABCDEFGHJKM"},
		{"AB-CD-EF-GH-JK-M", "ABCDEFGHJKM"},
		{"--ABCD--EFGH--JKM--", "ABCDEFGHJKM"},
		{"23456789XYZ", "23456789XYZ"},
		// Wrong length.
		{"", ""},
		{"----", ""},
		{"ABCD-EFGH-JK", ""},
		{"ABCD-EFGH-JKMN", ""},
		// Symbols outside the alphabet, lookalikes included, are refused.
		{"ABCD-EFGH-JK0", ""},
		{"ABCD-EFGH-JKO", ""},
		{"ABCD-EFGH-JK1", ""},
		{"ABCD-EFGH-JKI", ""},
		{"ABCD-EFGH-JKL", ""},
		{"abcd-efgh-jkl", ""},
		{"ABCD_EFGH_JKM", ""},
		{"ABCD.EFGH.JKM", ""},
		{"ABCD-EFGH-JK\x00M", ""},
		{"ABCD-EFGH-JKＭ", ""}, // full-width M
		{"ABCD-EFGH-JKſ", ""}, // long s, which strings.ToUpper maps to S
		{"ABCD-EFGH-JKM\n", ""},
		{strings.Repeat(" ", 100) + "ABCDEFGHJKM", ""},
	}
	for _, tt := range tests {
		if got := NormalizeBackupCode(tt.in); got != tt.want {
			t.Errorf("NormalizeBackupCode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzNormalizeBackupCode(f *testing.F) {
	for _, s := range []string{"ABCD-EFGH-JKM", "abcd efgh jkm", "", "0OIL1", "ABCD-EFGH-JKſ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := NormalizeBackupCode(in)
		if out == "" {
			return
		}
		if len(out) != BackupCodeLength {
			t.Fatalf("NormalizeBackupCode(%q) = %q: wrong length", in, out)
		}
		for i := range len(out) {
			if !strings.ContainsRune(BackupAlphabet, rune(out[i])) {
				t.Fatalf("NormalizeBackupCode(%q) = %q: symbol outside the alphabet", in, out)
			}
		}
		if again := NormalizeBackupCode(out); again != out {
			t.Fatalf("not idempotent: %q → %q → %q", in, out, again)
		}
		if NormalizeBackupCode(formatBackupCode(out)) != out {
			t.Fatalf("formatted %q does not normalise back", out)
		}
	})
}
