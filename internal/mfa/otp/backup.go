package otp

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// Backup code format.
const (
	// BackupAlphabet holds the symbols of backup codes: digits and upper-case
	// letters without 0, 1, I, L and O, which are easily confused.
	BackupAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
	// BackupCodeLength is the number of symbols in a backup code. 11 symbols
	// of 31 carry 11·log2(31) ≈ 54.5 bits, too many to guess online and,
	// stored as keyed hashes, useless to an attacker without the key.
	BackupCodeLength = 11
	// MaxBackupCodes is the most codes GenerateBackupCodes makes at once.
	MaxBackupCodes = 100
)

// backupGroups is how a code is shown: XXXX-XXXX-XXX.
var backupGroups = [...]int{4, 4, 3}

// GenerateBackupCodes returns n (1 to MaxBackupCodes) distinct random backup
// codes, formatted for reading as XXXX-XXXX-XXX. Show them to the user once
// and store only Hasher hashes of their NormalizeBackupCode forms.
func GenerateBackupCodes(n int) ([]string, error) {
	if n < 1 || n > MaxBackupCodes {
		return nil, fmt.Errorf("otp: %d backup codes requested, want 1 to %d", n, MaxBackupCodes)
	}
	codes := make([]string, 0, n)
	seen := make(map[string]bool, n)
	for len(codes) < n {
		c, err := randomString(rand.Reader, BackupAlphabet, BackupCodeLength)
		if err != nil {
			return nil, err
		}
		if seen[c] { // about n²/2^55: never in practice, but cheap to rule out
			continue
		}
		seen[c] = true
		codes = append(codes, formatBackupCode(c))
	}
	return codes, nil
}

// formatBackupCode inserts dashes between the groups of a normalised code.
func formatBackupCode(c string) string {
	var b strings.Builder
	b.Grow(len(c) + len(backupGroups) - 1)
	for i, n := range backupGroups {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(c[:n])
		c = c[n:]
	}
	return b.String()
}

// NormalizeBackupCode returns the canonical form of a backup code as a user
// typed it: ASCII letters upper-cased, spaces, tabs and dashes removed. It
// returns "" unless the result is exactly BackupCodeLength symbols of
// BackupAlphabet; lookalikes such as O or 1 are refused, not mapped, since
// no code contains them. Hash the normalised form, both when storing and
// when checking.
func NormalizeBackupCode(input string) string {
	if len(input) > 4*BackupCodeLength { // bound the work on hostile input
		return ""
	}
	out := make([]byte, 0, BackupCodeLength)
	for i := range len(input) {
		c := input[i]
		switch {
		case c == ' ' || c == '\t' || c == '-':
			continue
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		if strings.IndexByte(BackupAlphabet, c) < 0 || len(out) == BackupCodeLength {
			return ""
		}
		out = append(out, c)
	}
	if len(out) != BackupCodeLength {
		return ""
	}
	return string(out)
}
