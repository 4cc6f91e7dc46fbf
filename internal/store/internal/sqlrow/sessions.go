package sqlrow

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/gatehouse/gatehouse/internal/store"
)

// ListDest adapts a *[]string to what the driver scans a list column into.
// PostgreSQL scans text[] straight into *[]string; SQLite stores a JSON
// array as TEXT and passes a sql.Scanner that decodes it.
type ListDest func(*[]string) any

// ListValue converts a list to the value a driver binds for a list column.
// It never gets nil: the prepare functions turn a nil list into an empty one.
type ListValue func([]string) any

// EncodeList returns l as a JSON array, [] for nil.
func EncodeList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l) // a []string always encodes
	return string(b)
}

// DecodeList decodes a JSON array of strings; an empty array becomes nil.
func DecodeList(raw []byte) ([]string, error) {
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("decode list: %w", err)
	}
	return nilIfEmpty(l), nil
}

func nilIfEmpty(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

// prepareList validates the elements of l and returns it with nil as an
// empty list, so no backend stores NULL.
func prepareList(what string, l []string) ([]string, error) {
	for _, v := range l {
		if v == "" || !validText(v) {
			return nil, fmt.Errorf("%s: elements must be non-empty UTF-8 text without NUL", what)
		}
	}
	if l == nil {
		return []string{}, nil
	}
	return l, nil
}

// Storable reports whether every backend can store and compare s as it is
// (see validText). A lookup by a key that is not storable finds nothing.
func Storable(s string) bool { return s != "" && validText(s) }

// ReasonRefreshTokenReuse is the RevokedReason of a session that
// RotateRefreshToken revoked because a rotated token came back.
const ReasonRefreshTokenReuse = "refresh_token_reuse"

// ReasonClientMismatch is the RevokedReason of a session that
// RotateRefreshToken revoked because another client than the one its
// token was issued to presented it (store.ClientMismatch).
const ReasonClientMismatch = "client_mismatch"

// SessionColumns is the column list ScanSession expects, in order; the
// values SessionValues returns are in the same order.
const SessionColumns = "id, user_id, client_id, created_at, last_seen_at, expires_at, ip, user_agent, " +
	"browser, os, device_type, device_fingerprint, amr, auth_time, revoked_at, revoked_reason, audience, scope, " +
	"country, city, asn, risk_score, risk_reasons"

// SessionColumnCount is the number of SessionColumns.
var SessionColumnCount = strings.Count(SessionColumns, ",") + 1

// ScanSession scans one row selected with SessionColumns. td scans a NOT
// NULL time column, ntd a nullable one, ld the amr, audience and
// risk_reasons lists. An empty AMR, Audience or Risk.Reasons comes back
// nil; Risk is nil when risk_score is NULL.
func ScanSession(s Scanner, td, ntd TimeDest, ld ListDest) (store.Session, error) {
	var (
		x                                        store.Session
		client, ip, ua, browser, os, device, fpr *string
		reason, scope, country, city             *string
		asn, riskScore                           *int64
		riskReasons                              []string
	)
	err := s.Scan(&x.ID, &x.UserID, &client, td(&x.CreatedAt), td(&x.LastSeenAt), td(&x.ExpiresAt),
		&ip, &ua, &browser, &os, &device, &fpr, ld(&x.AMR), ntd(&x.AuthTime), ntd(&x.RevokedAt), &reason, ld(&x.Audience), &scope,
		&country, &city, &asn, &riskScore, ld(&riskReasons))
	if err != nil {
		return store.Session{}, err
	}
	x.Country, x.City = deref(country), deref(city)
	if asn != nil {
		x.ASN = uint32(*asn)
	}
	if riskScore != nil {
		x.Risk = &store.SessionRisk{Score: int(*riskScore), Reasons: nilIfEmpty(riskReasons)}
	}
	x.ClientID, x.IP, x.UserAgent = deref(client), deref(ip), deref(ua)
	x.Browser, x.OS, x.DeviceType, x.DeviceFingerprint = deref(browser), deref(os), deref(device), deref(fpr)
	x.RevokedReason, x.Scope = deref(reason), deref(scope)
	x.AMR, x.Audience = nilIfEmpty(x.AMR), nilIfEmpty(x.Audience)
	utc(&x.CreatedAt, &x.LastSeenAt, &x.ExpiresAt, &x.AuthTime, &x.RevokedAt)
	return x, nil
}

// SessionValues returns the values of the SessionColumns columns of a
// session PrepareSession returned, in order.
func SessionValues(x store.Session, tv TimeValue, lv ListValue) []any {
	var (
		riskScore   *int64
		riskReasons = []string{} // NOT NULL: a nil list would bind as NULL
	)
	if x.Risk != nil {
		score := int64(x.Risk.Score)
		riskScore = &score
		if x.Risk.Reasons != nil {
			riskReasons = x.Risk.Reasons
		}
	}
	return []any{
		x.ID, x.UserID, Null(x.ClientID), tv(x.CreatedAt), tv(x.LastSeenAt), tv(x.ExpiresAt),
		Null(x.IP), Null(x.UserAgent), Null(x.Browser), Null(x.OS), Null(x.DeviceType), Null(x.DeviceFingerprint),
		lv(x.AMR), tv(x.AuthTime), tv(x.RevokedAt), Null(x.RevokedReason), lv(x.Audience), Null(x.Scope),
		Null(x.Country), Null(x.City), nullASN(x.ASN), riskScore, lv(riskReasons),
	}
}

// nullASN binds an ASN, 0 (unknown) as NULL.
func nullASN(asn uint32) *int64 {
	if asn == 0 {
		return nil
	}
	v := int64(asn)
	return &v
}

// PrepareSession validates the session and first refresh token of
// CreateSession and fills in what the caller may leave out: the session's
// ID (a UUIDv7), CreatedAt (now) and LastSeenAt (CreatedAt); the token's ID
// (a UUIDv7), SessionID, UserID and ClientID (the session's), CreatedAt
// (the session's) and ExpiresAt (the session's, which also caps it and
// IdleExpiresAt). A user ID that is not a UUID is store.ErrNotFound: no
// user has it. Neither may be revoked or rotated already. IDs come back in
// canonical form and times in UTC to the microsecond.
func PrepareSession(x store.Session, first store.RefreshToken, now time.Time) (store.Session, store.RefreshToken, error) {
	id, err := newID(x.ID)
	if err != nil {
		return x, first, fmt.Errorf("session: %w", err)
	}
	x.ID = id
	user, ok := ParseID(x.UserID)
	if !ok {
		return x, first, fmt.Errorf("session: user %q: %w", x.UserID, store.ErrNotFound)
	}
	x.UserID = user
	switch {
	case x.ExpiresAt.IsZero():
		return x, first, errors.New("session: ExpiresAt is required")
	case !x.RevokedAt.IsZero() || x.RevokedReason != "":
		return x, first, errors.New("session: a new session cannot be revoked")
	}
	for name, v := range map[string]string{
		"ClientID": x.ClientID, "IP": x.IP, "UserAgent": x.UserAgent, "Browser": x.Browser, "OS": x.OS,
		"DeviceType": x.DeviceType, "DeviceFingerprint": x.DeviceFingerprint, "Scope": x.Scope,
		"Country": x.Country, "City": x.City,
	} {
		if !validText(v) {
			return x, first, fmt.Errorf("session: %s is not valid UTF-8 text without NUL", name)
		}
	}
	if x.AMR, err = prepareList("session: AMR", x.AMR); err != nil {
		return x, first, err
	}
	if x.Audience, err = prepareList("session: Audience", x.Audience); err != nil {
		return x, first, err
	}
	if x.Risk != nil {
		r := *x.Risk // the caller's value is not changed
		if r.Score < 0 || r.Score > 100 {
			return x, first, fmt.Errorf("session: Risk.Score must be between 0 and 100, got %d", r.Score)
		}
		if r.Reasons, err = prepareList("session: Risk.Reasons", r.Reasons); err != nil {
			return x, first, err
		}
		x.Risk = &r
	}
	if x.CreatedAt.IsZero() {
		x.CreatedAt = now
	}
	if x.LastSeenAt.IsZero() {
		x.LastSeenAt = x.CreatedAt
	}
	x.CreatedAt, x.LastSeenAt, x.ExpiresAt = Micro(x.CreatedAt), Micro(x.LastSeenAt), Micro(x.ExpiresAt)
	if !x.AuthTime.IsZero() {
		x.AuthTime = Micro(x.AuthTime)
	}

	if first.ID, err = newID(first.ID); err != nil {
		return x, first, fmt.Errorf("refresh token: %w", err)
	}
	for _, f := range []struct {
		name string
		val  *string
		want string
		isID bool
	}{
		{"SessionID", &first.SessionID, x.ID, true},
		{"UserID", &first.UserID, x.UserID, true},
		{"ClientID", &first.ClientID, x.ClientID, false},
	} {
		got := *f.val
		if canon, ok := ParseID(got); ok && f.isID {
			got = canon
		}
		if got != "" && got != f.want {
			return x, first, fmt.Errorf("refresh token: %s %q is not the session's", f.name, *f.val)
		}
		*f.val = f.want
	}
	switch {
	case first.ParentID != "" || !first.RotatedAt.IsZero() || first.SuccessorID != "" || first.SealedSuccessor != "":
		return x, first, errors.New("refresh token: the first token cannot have a parent or a successor")
	case !first.RevokedAt.IsZero():
		return x, first, errors.New("refresh token: a new token cannot be revoked")
	}
	if first.CreatedAt.IsZero() {
		first.CreatedAt = x.CreatedAt
	}
	if first.ExpiresAt.IsZero() || first.ExpiresAt.After(x.ExpiresAt) {
		first.ExpiresAt = x.ExpiresAt
	}
	first, err = prepareRefreshToken(first)
	return x, first, err
}

// RefreshTokenColumns is the column list ScanRefreshToken expects, in
// order; the values RefreshTokenValues returns are in the same order.
const RefreshTokenColumns = "id, session_id, user_id, client_id, scope, token_hash, parent_id, created_at, " +
	"expires_at, idle_expires_at, rotated_at, successor_id, sealed_successor, revoked_at"

// ScanRefreshToken scans one row selected with RefreshTokenColumns.
func ScanRefreshToken(s Scanner, td, ntd TimeDest) (store.RefreshToken, error) {
	var (
		t                                   store.RefreshToken
		client, scope, parent, succ, sealed *string
	)
	err := s.Scan(&t.ID, &t.SessionID, &t.UserID, &client, &scope, &t.TokenHash, &parent, td(&t.CreatedAt),
		td(&t.ExpiresAt), ntd(&t.IdleExpiresAt), ntd(&t.RotatedAt), &succ, &sealed, ntd(&t.RevokedAt))
	if err != nil {
		return store.RefreshToken{}, err
	}
	t.ClientID, t.Scope, t.ParentID, t.SuccessorID, t.SealedSuccessor = deref(client), deref(scope), deref(parent), deref(succ), deref(sealed)
	utc(&t.CreatedAt, &t.ExpiresAt, &t.IdleExpiresAt, &t.RotatedAt, &t.RevokedAt)
	return t, nil
}

// RefreshTokenValues returns the values of the RefreshTokenColumns columns
// of a prepared token, in order.
func RefreshTokenValues(t store.RefreshToken, tv TimeValue) []any {
	return []any{
		t.ID, t.SessionID, t.UserID, Null(t.ClientID), Null(t.Scope), t.TokenHash, Null(t.ParentID), tv(t.CreatedAt),
		tv(t.ExpiresAt), tv(t.IdleExpiresAt), tv(t.RotatedAt), Null(t.SuccessorID), Null(t.SealedSuccessor), tv(t.RevokedAt),
	}
}

// prepareRefreshToken checks the text fields of a new token, caps
// IdleExpiresAt at ExpiresAt and truncates its times to the microsecond.
func prepareRefreshToken(t store.RefreshToken) (store.RefreshToken, error) {
	switch {
	case t.TokenHash == "":
		return t, errors.New("refresh token: TokenHash is required")
	case !validText(t.TokenHash) || !validText(t.Scope) || !validText(t.ClientID):
		return t, errors.New("refresh token: TokenHash, Scope and ClientID must be valid UTF-8 text without NUL")
	}
	if !t.IdleExpiresAt.IsZero() && t.IdleExpiresAt.After(t.ExpiresAt) {
		t.IdleExpiresAt = t.ExpiresAt
	}
	t.CreatedAt, t.ExpiresAt = Micro(t.CreatedAt), Micro(t.ExpiresAt)
	if !t.IdleExpiresAt.IsZero() {
		t.IdleExpiresAt = Micro(t.IdleExpiresAt)
	}
	return t, nil
}

// PrepareRotateRequest validates r and normalises it: Now (now when zero)
// in UTC to the microsecond, negative durations as 0, Next's ID in
// canonical form or a new UUIDv7. Next must be a new token: only its ID,
// TokenHash and (when IdleTimeout is 0) IdleExpiresAt are taken from the
// caller; Successor fills in the rest. Empty Scopes become nil, and Client
// "" without CheckClient.
func PrepareRotateRequest(r store.RotateRequest, now time.Time) (store.RotateRequest, error) {
	if r.Now.IsZero() {
		r.Now = now
	}
	r.Now = Micro(r.Now)
	r.Grace, r.IdleTimeout = max(r.Grace, 0), max(r.IdleTimeout, 0)
	n := r.Next
	switch {
	case !Storable(n.TokenHash):
		return r, errors.New("rotate refresh token: Next.TokenHash is required (UTF-8 text without NUL)")
	case !validText(r.SealedNext) || !validText(r.LastSeenIP):
		return r, errors.New("rotate refresh token: SealedNext and LastSeenIP must be UTF-8 text without NUL")
	case !n.RotatedAt.IsZero() || n.SuccessorID != "" || n.SealedSuccessor != "" || !n.RevokedAt.IsZero():
		return r, errors.New("rotate refresh token: Next cannot be rotated or revoked")
	case !validText(r.Client):
		return r, errors.New("rotate refresh token: Client must be UTF-8 text without NUL")
	}
	// A scope with white space could match part of a stored scope in one
	// backend's split and not in another's (PostgreSQL's fast path splits
	// on spaces only); RFC 6749 §3.3 scope tokens have none.
	for _, sc := range r.Scopes {
		if sc == "" || !validText(sc) || strings.ContainsFunc(sc, unicode.IsSpace) {
			return r, errors.New("rotate refresh token: Scopes must be non-empty UTF-8 text without NUL or white space")
		}
	}
	if len(r.Scopes) == 0 {
		r.Scopes = nil
	}
	if !r.CheckClient {
		r.Client = ""
	}
	id, err := newID(n.ID)
	if err != nil {
		return r, fmt.Errorf("rotate refresh token: Next: %w", err)
	}
	r.Next.ID = id
	return r, nil
}

// Successor returns the token that replaces presented in the rotation r (a
// request PrepareRotateRequest returned): r.Next with the session, user,
// client, scope and absolute expiry of presented, presented as its parent,
// created at r.Now, and IdleExpiresAt = r.Now + r.IdleTimeout when that is
// set, capped at ExpiresAt.
func Successor(presented store.RefreshToken, r store.RotateRequest) (store.RefreshToken, error) {
	n := store.RefreshToken{
		ID:            r.Next.ID,
		SessionID:     presented.SessionID,
		UserID:        presented.UserID,
		ClientID:      presented.ClientID,
		Scope:         presented.Scope,
		TokenHash:     r.Next.TokenHash,
		ParentID:      presented.ID,
		CreatedAt:     r.Now,
		ExpiresAt:     presented.ExpiresAt,
		IdleExpiresAt: r.Next.IdleExpiresAt,
	}
	if r.IdleTimeout > 0 {
		n.IdleExpiresAt = r.Now.Add(r.IdleTimeout)
	}
	return prepareRefreshToken(n)
}

// ClassifyRotation decides what RotateRefreshToken does with the presented
// token tok of session sess, given r (a prepared request) and, when tok
// was rotated, its successor succ (found is false when the successor row
// is gone). Both backends read these rows under their locks and then act
// on the outcome. In the order the rules apply:
//
//   - ScopeNotGranted: tok was never rotated, is presented by its own
//     client (or r.CheckClient is off) and r.Scopes is not within its
//     scope. This comes first, whatever the state of tok and sess, as
//     the token endpoint refused such a request before it ever rotated;
//   - Invalid: tok or sess is revoked, sess or tok has reached its absolute
//     expiry, or tok is live and has reached its idle expiry;
//   - ReuseDetected: tok was rotated and is not a grace replay (outside
//     the grace window, or an older link of the chain whose successor was
//     rotated too), whoever presents it;
//   - ClientMismatch: tok is live, or a grace replay, and r.CheckClient is
//     set and r.Client is not the client tok was issued to;
//   - ScopeNotGranted: a grace replay whose r.Scopes is not within its
//     scope;
//   - Rotated: tok is live;
//   - GraceReplay: tok was rotated at most r.Grace ago (Grace > 0) and its
//     successor is still live (neither rotated nor revoked).
//
// A revoked token is Invalid even when it was rotated: once a family has
// been revoked (for reuse or otherwise), presenting its tokens again
// changes nothing and reports nothing new.
func ClassifyRotation(tok store.RefreshToken, sess store.Session, succ store.RefreshToken, found bool, r store.RotateRequest) store.RotateOutcome {
	now := r.Now
	live := tok.RotatedAt.IsZero()
	owned := !r.CheckClient || tok.ClientID == r.Client
	granted := ScopeWithin(r.Scopes, tok.Scope)
	switch {
	case live && owned && !granted:
		return store.ScopeNotGranted
	case !tok.RevokedAt.IsZero(), !sess.RevokedAt.IsZero(),
		!sess.ExpiresAt.After(now), !tok.ExpiresAt.After(now),
		live && !tok.IdleExpiresAt.IsZero() && !tok.IdleExpiresAt.After(now):
		return store.Invalid
	case !live && !(r.Grace > 0 && now.Sub(tok.RotatedAt) <= r.Grace &&
		found && succ.RotatedAt.IsZero() && succ.RevokedAt.IsZero()):
		return store.ReuseDetected
	case !owned:
		return store.ClientMismatch
	case !granted:
		return store.ScopeNotGranted
	case live:
		return store.Rotated
	}
	return store.GraceReplay
}

// ScopeWithin reports whether every scope in asked is one of the
// space-separated scopes of granted (RFC 6749 §6: a refresh may narrow the
// grant, never widen it). Nothing asked is always within.
func ScopeWithin(asked []string, granted string) bool {
	if len(asked) == 0 {
		return true
	}
	have := strings.Fields(granted)
	for _, sc := range asked {
		if !slices.Contains(have, sc) {
			return false
		}
	}
	return true
}

// ClientColumns is the column list ScanClient expects, in order; the values
// ClientValues returns are in the same order.
const ClientColumns = "id, name, secret_hash, scopes, created_at, updated_at, disabled_at, public, rate_limit_tier, rate_limit_exempt"

// ScanClient scans one row selected with ClientColumns. Empty Scopes come
// back nil.
func ScanClient(s Scanner, td, ntd TimeDest, ld ListDest) (store.Client, error) {
	var (
		c                  store.Client
		name, secret, tier *string
	)
	err := s.Scan(&c.ID, &name, &secret, ld(&c.Scopes), td(&c.CreatedAt), td(&c.UpdatedAt), ntd(&c.DisabledAt), &c.Public, &tier, &c.RateLimitExempt)
	if err != nil {
		return store.Client{}, err
	}
	c.Name, c.SecretHash, c.RateLimitTier = deref(name), deref(secret), deref(tier)
	c.Scopes = nilIfEmpty(c.Scopes)
	utc(&c.CreatedAt, &c.UpdatedAt, &c.DisabledAt)
	return c, nil
}

// ClientValues returns the values of the ClientColumns columns of a
// prepared client, in order.
func ClientValues(c store.Client, tv TimeValue, lv ListValue) []any {
	return []any{c.ID, Null(c.Name), Null(c.SecretHash), lv(c.Scopes), tv(c.CreatedAt), tv(c.UpdatedAt), tv(c.DisabledAt), c.Public, Null(c.RateLimitTier), c.RateLimitExempt}
}

// PrepareClient validates c for CreateClient and fills in CreatedAt (now)
// and UpdatedAt (CreatedAt). The ID (the client_id) is required; Name and
// SecretHash are optional. Times come back in UTC to the microsecond.
func PrepareClient(c store.Client, now time.Time) (store.Client, error) {
	switch {
	case c.ID == "":
		return c, errors.New("client: ID is required")
	case !validText(c.ID) || !validText(c.Name) || !validText(c.SecretHash) || !validText(c.RateLimitTier):
		return c, errors.New("client: ID, Name, SecretHash and RateLimitTier must be UTF-8 text without NUL")
	case c.Public && c.SecretHash != "":
		return c, errors.New("client: a public client has no SecretHash")
	}
	var err error
	if c.Scopes, err = prepareList("client: Scopes", c.Scopes); err != nil {
		return c, err
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	c.CreatedAt, c.UpdatedAt = Micro(c.CreatedAt), Micro(c.UpdatedAt)
	if !c.DisabledAt.IsZero() {
		c.DisabledAt = Micro(c.DisabledAt)
	}
	return c, nil
}

// utc converts every non-zero time to UTC.
func utc(ts ...*time.Time) {
	for _, t := range ts {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
}

// PrepareSignIn prepares StartSession's input at now: the session and its
// first token as PrepareSession does, the session's CreatedAt as the
// user's new LastLoginAt, and the event (with Data["session_id"] set, on a
// copy of Data) as PrepareAuditEvent does, returning its encoded data.
func PrepareSignIn(in store.SignIn, now time.Time) (store.SignIn, []byte, error) {
	var err error
	if in.Session, in.First, err = PrepareSession(in.Session, in.First, now); err != nil {
		return in, nil, err
	}
	if in.PasswordHash != "" && !Storable(in.PasswordHash) {
		return in, nil, errors.New("sign-in: PasswordHash must be UTF-8 text without NUL")
	}
	if in.RiskProfile != nil {
		p := *in.RiskProfile
		p.UserID = in.Session.UserID
		if p, _, err = PrepareRiskProfile(p, now); err != nil {
			return in, nil, fmt.Errorf("sign-in: %w", err)
		}
		p.UpdatedAt = Micro(p.UpdatedAt)
		in.RiskProfile = &p
	}
	data := make(map[string]any, len(in.Event.Data)+1)
	maps.Copy(data, in.Event.Data)
	data["session_id"] = in.Session.ID
	in.Event.Data = data
	var raw []byte
	in.Event, raw, err = PrepareAuditEvent(in.Event, now)
	return in, raw, err
}
