package social

import (
	"errors"
	"strings"
	"testing"
)

// The example of RFC 7636, appendix B.
const (
	rfcVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfcChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

func TestCheckCodeChallenge(t *testing.T) {
	for _, c := range []struct {
		challenge, method string
		ok                bool
	}{
		{"", "", true},
		{rfcChallenge, "", true},
		{rfcChallenge, "S256", true},
		{"", "S256", false},
		{rfcChallenge, "plain", false},
		{rfcChallenge, "s256", false},
		{rfcVerifier + "x", "S256", false},       // 44 characters
		{rfcChallenge[:42], "S256", false},       // too short
		{rfcChallenge[:42] + "+", "S256", false}, // not base64url
		{rfcChallenge[:42] + "=", "S256", false},
		{strings.Repeat("A", 43), "S256", true},
	} {
		err := CheckCodeChallenge(c.challenge, c.method)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrInvalidChallenge)) {
			t.Errorf("CheckCodeChallenge(%q, %q) = %v, want ok=%v", c.challenge, c.method, err, c.ok)
		}
	}
}

func TestVerifierMatches(t *testing.T) {
	for _, c := range []struct {
		verifier string
		ok       bool
	}{
		{rfcVerifier, true},
		{"", false},
		{rfcVerifier[:42], false},
		{rfcVerifier + "~", false}, // another verifier
		{rfcChallenge, false},      // the challenge itself
		{strings.Repeat("a", 129), false},
		{rfcVerifier[:42] + "/", false}, // not an unreserved character
	} {
		if got := verifierMatches(c.verifier, rfcChallenge); got != c.ok {
			t.Errorf("verifierMatches(%q) = %v, want %v", c.verifier, got, c.ok)
		}
	}
}

func FuzzVerifierMatches(f *testing.F) {
	f.Add(rfcVerifier, rfcChallenge)
	f.Add("", "")
	f.Fuzz(func(t *testing.T, verifier, challenge string) {
		if verifierMatches(verifier, challenge) && CheckCodeChallenge(challenge, "S256") != nil {
			t.Errorf("%q matched the malformed challenge %q", verifier, challenge)
		}
	})
}
