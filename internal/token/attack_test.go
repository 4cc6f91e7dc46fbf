package token_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/token"
)

func attackerKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// validClaims are the claims of a valid token issued now.
func validClaims(clk *clocktest.Clock) map[string]any {
	now := clk.Now().Unix()
	return map[string]any{
		"iss":       issuer,
		"sub":       "user-1",
		"aud":       issuer,
		"client_id": "client-1",
		"iat":       now,
		"nbf":       now,
		"exp":       now + 900,
		"jti":       "jti-1",
		"sid":       "session-1",
		"scope":     "openid",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// TestAttacks feeds the verifier tokens that must all be rejected. Two
// keys of different algorithms are known (ES256, retired, and RS256,
// current), so that an alg allowed in general but not for the named key
// is tried too. Each forged token changes one thing of a token that the
// "control" cases show is accepted.
func TestAttacks(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	st, kr, state := sqliteStore(t), newKeyring(t), memoryKV(t, clk)
	m := startManager(t, st, kr, state, clk, baseConfig())
	esKID := m.SigningKeyID()
	rsa, err := token.NewManager(token.Config{Issuer: issuer, Algorithm: "RS256"}, st, kr, state, discardLogger(), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	rsKID, err := rsa.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the node loads the RS256 key", func() bool { return m.SigningKeyID() == rsKID })
	esPriv, err := m.PrivateKey(ctx, esKID)
	if err != nil {
		t.Fatal(err)
	}
	rsPriv, err := m.PrivateKey(ctx, rsKID)
	if err != nil {
		t.Fatal(err)
	}
	forger := attackerKey(t)
	_, edForger, _ := ed25519.GenerateKey(rand.Reader)

	hdr := func(alg, kid string, kv ...any) map[string]any {
		h := map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid}
		return with(h, kv...)
	}
	claims := validClaims(clk)
	now := clk.Now().Unix()
	leeway := int64(token.DefaultLeeway / time.Second)

	// Key material an attacker can see, for HMAC "alg confusion".
	var publicForms [][]byte
	for _, k := range m.JWKS().Keys {
		jwkJSON, _ := json.Marshal(k)
		der, err := x509.MarshalPKIXPublicKey(k.Key)
		if err != nil {
			t.Fatal(err)
		}
		publicForms = append(publicForms, jwkJSON, der, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}

	valid := signJWS(t, esPriv, hdr("ES256", esKID), claims)
	for name, raw := range map[string]string{
		"control ES256":              valid,
		"control RS256":              signJWS(t, rsPriv, hdr("RS256", rsKID), claims),
		"control application/at+jwt": signJWS(t, esPriv, hdr("ES256", esKID, "typ", "application/at+JWT"), claims),
		"control array audience":     signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "aud", []string{"x", issuer})),
		"control within leeway":      signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "exp", now+1, "nbf", now+leeway-1, "iat", now+leeway-1)),
	} {
		if _, err := m.Verify(ctx, raw); err != nil {
			t.Fatalf("%s: a correctly forged token is rejected, so the cases below prove nothing: %v", name, err)
		}
	}

	cases := map[string]string{
		"alg none":                 signJWS(t, nil, hdr("none", esKID), claims),
		"alg none with signature":  strings.TrimSuffix(signJWS(t, nil, hdr("none", esKID), claims), ".") + "." + strings.Split(valid, ".")[2],
		"alg None":                 signJWS(t, nil, hdr("none", esKID, "alg", "None"), claims),
		"RS256 for the ES256 key":  signJWS(t, rsPriv, hdr("RS256", esKID), claims),
		"ES256 for the RS256 key":  signJWS(t, esPriv, hdr("ES256", rsKID), claims),
		"EdDSA (no such key)":      signJWS(t, edForger, hdr("EdDSA", esKID), claims),
		"no kid":                   signJWS(t, esPriv, hdr("ES256", esKID, "kid", nil), claims),
		"empty kid":                signJWS(t, esPriv, hdr("ES256", ""), claims),
		"unknown kid":              signJWS(t, esPriv, hdr("ES256", "no-such-key"), claims),
		"foreign key, right kid":   signJWS(t, forger, hdr("ES256", esKID), claims),
		"embedded jwk":             signJWS(t, forger, hdr("ES256", esKID, "jwk", map[string]any{"kty": "EC", "crv": "P-256", "x": b64.EncodeToString(forger.X.Bytes()), "y": b64.EncodeToString(forger.Y.Bytes())}), claims),
		"typ JWT":                  signJWS(t, esPriv, hdr("ES256", esKID, "typ", "JWT"), claims),
		"no typ":                   signJWS(t, esPriv, hdr("ES256", esKID, "typ", nil), claims),
		"typ not a string":         signJWS(t, esPriv, hdr("ES256", esKID, "typ", 1), claims),
		"unknown crit":             signJWS(t, esPriv, hdr("ES256", esKID, "crit", []string{"exp"}, "exp", 1), claims),
		"wrong iss":                signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "iss", "https://evil.example")),
		"iss with trailing slash":  signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "iss", issuer+"/")),
		"no iss":                   signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "iss", nil)),
		"wrong aud":                signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "aud", "https://other.example")),
		"no aud":                   signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "aud", nil)),
		"aud of wrong type":        signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "aud", 7)),
		"expired":                  signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "exp", now-leeway)),
		"expired now (no leeway)":  signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "exp", now)),
		"expired a second ago":     signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "exp", now-1)),
		"nbf in the future":        signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "nbf", now+leeway+1)),
		"iat in the future":        signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "iat", now+leeway+1)),
		"no exp":                   signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "exp", nil)),
		"exp as string":            signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "exp", "9999999999")),
		"exp overflowing":          signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "exp", 1e300)),
		"no iat":                   signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "iat", nil)),
		"no sub":                   signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "sub", nil)),
		"no client_id":             signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "client_id", nil)),
		"no jti":                   signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "jti", nil)),
		"payload not an object":    signJWS(t, esPriv, hdr("ES256", esKID), []string{"iss"}),
		"tampered payload":         tamper(t, valid, with(claims, "sub", "admin")),
		"tampered header":          retitle(t, valid, hdr("ES256", esKID, "typ", "at+jwt", "x", "y")),
		"signature cut":            valid[:len(valid)-4],
		"signature of other token": strings.Join(append(strings.Split(valid, ".")[:2], strings.Split(signJWS(t, esPriv, hdr("ES256", esKID), with(claims, "sub", "x")), ".")[2]), "."),
		"empty":                    "",
		"dots":                     "..",
		"garbage":                  "not a token",
		"four parts":               valid + ".e30",
		"json serialization":       `{"payload":"e30","protected":"e30","signature":""}`,
		"too long":                 valid + strings.Repeat("A", 9000),
		"bearer prefix":            "Bearer " + valid,
	}
	for i, key := range publicForms {
		cases["HS256 with public key form "+string(rune('a'+i))] = signJWS(t, key, hdr("HS256", esKID), claims)
		cases["HS256 with public key form "+string(rune('a'+i))+" (RS key id)"] = signJWS(t, key, hdr("HS256", rsKID), claims)
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) { wantInvalid(t, m, raw) })
	}
}

// tamper replaces a token's payload, keeping its header and signature.
func tamper(t *testing.T, raw string, claims map[string]any) string {
	p := strings.Split(raw, ".")
	return p[0] + "." + encodeJSON(t, claims) + "." + p[2]
}

// retitle replaces a token's header, keeping its payload and signature.
func retitle(t *testing.T, raw string, header map[string]any) string {
	p := strings.Split(raw, ".")
	return encodeJSON(t, header) + "." + p[1] + "." + p[2]
}
