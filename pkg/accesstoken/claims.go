package accesstoken

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Claims are the claims of a Gatehouse access token, a JWT in the RFC 9068
// profile. Their JSON form (MarshalJSON, UnmarshalJSON) is the token's
// payload: times are NumericDates (whole seconds since the epoch), a single
// audience is a string and several are an array, and empty fields are
// left out.
type Claims struct {
	Issuer    string    // iss
	Subject   string    // sub: the user (or, without a user, the client)
	Audience  []string  // aud
	ClientID  string    // client_id: the OAuth client the token was issued to
	ExpiresAt time.Time // exp
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf
	ID        string    // jti: unique per token
	SessionID string    // sid: the login session the token belongs to
	AuthTime  time.Time // auth_time: when the user last authenticated
	AMR       []string  // amr: how the user authenticated, e.g. ["pwd", "otp"]
	Scope     string    // scope: space-separated scopes
	// Extra holds any other top-level members. It may not contain the
	// registered names above.
	Extra map[string]any
}

// Scopes returns the space-separated Scope as a list.
func (c Claims) Scopes() []string { return strings.Fields(c.Scope) }

// HasScope reports whether scope is one of the token's scopes.
func (c Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes(), scope) }

// registered are the member names with a Claims field of their own.
var registered = map[string]bool{
	"iss": true, "sub": true, "aud": true, "client_id": true, "exp": true, "iat": true,
	"nbf": true, "jti": true, "sid": true, "auth_time": true, "amr": true, "scope": true,
}

// MarshalJSON encodes c as a JWT payload. It fails when Extra holds a
// registered name.
func (c Claims) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(registered)+len(c.Extra))
	for k, v := range c.Extra {
		if registered[k] {
			return nil, fmt.Errorf("accesstoken: extra claim %q is a registered claim", k)
		}
		m[k] = v
	}
	putString := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	putTime := func(k string, t time.Time) {
		if !t.IsZero() {
			m[k] = t.Unix()
		}
	}
	putString("iss", c.Issuer)
	putString("sub", c.Subject)
	switch len(c.Audience) {
	case 0:
	case 1:
		m["aud"] = c.Audience[0]
	default:
		m["aud"] = c.Audience
	}
	putString("client_id", c.ClientID)
	putTime("exp", c.ExpiresAt)
	putTime("iat", c.IssuedAt)
	putTime("nbf", c.NotBefore)
	putString("jti", c.ID)
	putString("sid", c.SessionID)
	putTime("auth_time", c.AuthTime)
	if len(c.AMR) > 0 {
		m["amr"] = c.AMR
	}
	putString("scope", c.Scope)
	return json.Marshal(m)
}

// UnmarshalJSON decodes a JWT payload. Member names match exactly (unlike
// encoding/json's struct decoding, which ignores case); a registered claim
// of the wrong JSON type is an error, and null counts as absent.
func (c *Claims) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("accesstoken: claims: %w", err)
	}
	if m == nil {
		return errors.New("accesstoken: claims: payload is not a JSON object")
	}
	var out Claims
	for k, raw := range m {
		if bytes.Equal(raw, []byte("null")) {
			continue
		}
		var err error
		switch k {
		case "iss":
			err = json.Unmarshal(raw, &out.Issuer)
		case "sub":
			err = json.Unmarshal(raw, &out.Subject)
		case "aud":
			out.Audience, err = decodeAudience(raw)
		case "client_id":
			err = json.Unmarshal(raw, &out.ClientID)
		case "exp":
			out.ExpiresAt, err = decodeNumericDate(raw)
		case "iat":
			out.IssuedAt, err = decodeNumericDate(raw)
		case "nbf":
			out.NotBefore, err = decodeNumericDate(raw)
		case "jti":
			err = json.Unmarshal(raw, &out.ID)
		case "sid":
			err = json.Unmarshal(raw, &out.SessionID)
		case "auth_time":
			out.AuthTime, err = decodeNumericDate(raw)
		case "amr":
			err = json.Unmarshal(raw, &out.AMR)
		case "scope":
			err = json.Unmarshal(raw, &out.Scope)
		default:
			var v any
			err = json.Unmarshal(raw, &v)
			if err == nil {
				if out.Extra == nil {
					out.Extra = make(map[string]any)
				}
				out.Extra[k] = v
			}
		}
		if err != nil {
			return fmt.Errorf("accesstoken: claim %q: %w", k, err)
		}
	}
	*c = out
	return nil
}

func decodeAudience(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("want a string or an array of strings")
	}
	return many, nil
}

// maxNumericDate is the end of year 9999, beyond which a NumericDate is
// rejected rather than risk overflow.
const maxNumericDate = 253402300799

func decodeNumericDate(raw json.RawMessage) (time.Time, error) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, errors.New("want a number of seconds")
	}
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, errors.New("time out of range")
	}
	// RFC 7519 allows fractions; like most implementations, drop them.
	return time.Unix(int64(f), 0).UTC(), nil
}

// Expected is what Claims.Validate checks claims against.
type Expected struct {
	Issuer string // required: iss must equal it
	// Audience is required: aud must contain at least one of these.
	Audience []string
	Time     time.Time     // the current time
	Leeway   time.Duration // clock skew allowed on exp, nbf and iat
	// StrictExpiry, when set, allows no skew on exp (Leeway still applies
	// to nbf and iat): for the issuer itself, whose own clock set exp, so
	// that a token dies at its exp there.
	StrictExpiry bool
}

// Validate checks the claims of a token whose signature has already been
// verified (never trust claims that have not been): the claims RFC 9068
// requires are present (iss, sub, aud, client_id, exp, iat, jti), the
// issuer and audience match, the token has not expired (exp) and is valid
// already (nbf), and it was not issued in the future (iat), each with
// e.Leeway (exp without it when e.StrictExpiry is set). Every error wraps ErrInvalid.
func (c Claims) Validate(e Expected) error {
	fail := func(reason string) error { return fmt.Errorf("%w: %s", ErrInvalid, reason) }
	switch {
	case e.Issuer == "" || len(e.Audience) == 0:
		return fail("no issuer or audience to check against")
	case c.Issuer == "":
		return fail("no iss claim")
	case c.Issuer != e.Issuer:
		return fail("wrong issuer")
	case !slices.ContainsFunc(e.Audience, func(a string) bool { return slices.Contains(c.Audience, a) }):
		return fail("wrong audience")
	case c.Subject == "":
		return fail("no sub claim")
	case c.ClientID == "":
		return fail("no client_id claim")
	case c.ID == "":
		return fail("no jti claim")
	case c.ExpiresAt.IsZero():
		return fail("no exp claim")
	case c.IssuedAt.IsZero():
		return fail("no iat claim")
	}
	now := e.Time
	expLeeway := e.Leeway
	if e.StrictExpiry {
		expLeeway = 0
	}
	if !now.Before(c.ExpiresAt.Add(expLeeway)) {
		return fail("expired")
	}
	if !c.NotBefore.IsZero() && now.Add(e.Leeway).Before(c.NotBefore) {
		return fail("not valid yet (nbf)")
	}
	if now.Add(e.Leeway).Before(c.IssuedAt) {
		return fail("issued in the future (iat)")
	}
	return nil
}
