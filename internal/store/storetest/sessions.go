package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runSessions(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testSessionRoundTrip(t, migrated(t)) })
	t.Run("Defaults", func(t *testing.T) { testSessionDefaults(t, migrated(t)) })
	t.Run("CreateConflictsAndInvalid", func(t *testing.T) { testSessionCreateInvalid(t, migrated(t)) })
	t.Run("ListUserSessions", func(t *testing.T) { testListUserSessions(t, migrated(t)) })
	t.Run("StartSession", func(t *testing.T) { testStartSession(t, migrated(t)) })
	t.Run("StartSessionRiskProfile", func(t *testing.T) { testStartSessionRiskProfile(t, migrated(t)) })
	t.Run("RevokeSession", func(t *testing.T) { testRevokeSession(t, migrated(t)) })
	t.Run("RevokeUserSessions", func(t *testing.T) { testRevokeUserSessions(t, migrated(t)) })
	t.Run("RevokeUserSessionsWaitsForSignIn", func(t *testing.T) { testRevokeWaitsForSignIn(t, migrated(t)) })
	t.Run("RevokeCreatedBefore", func(t *testing.T) { testRevokeCreatedBefore(t, migrated(t)) })
	t.Run("Rotation", func(t *testing.T) {
		t.Run("Chain", func(t *testing.T) { testRotationChain(t, migrated(t)) })
		t.Run("GraceWindow", func(t *testing.T) { testRotationGraceWindow(t, migrated(t)) })
		t.Run("NoGrace", func(t *testing.T) { testRotationNoGrace(t, migrated(t)) })
		t.Run("IdleExpiry", func(t *testing.T) { testRotationIdle(t, migrated(t)) })
		t.Run("AbsoluteExpiry", func(t *testing.T) { testRotationExpiry(t, migrated(t)) })
		t.Run("NotFoundAndInvalid", func(t *testing.T) { testRotationNotFound(t, migrated(t)) })
		t.Run("InTx", func(t *testing.T) { testRotationInTx(t, migrated(t)) })
		t.Run("PreviousSeen", func(t *testing.T) { testRotationPreviousSeen(t, migrated(t)) })
		t.Run("Parallel", func(t *testing.T) { testRotationParallel(t, migrated(t), 10*time.Second) })
		t.Run("ParallelNoGrace", func(t *testing.T) { testRotationParallel(t, migrated(t), 0) })
		t.Run("Client", func(t *testing.T) { testRotationClient(t, migrated(t)) })
		t.Run("Scope", func(t *testing.T) { testRotationScope(t, migrated(t)) })
		t.Run("ClientScopeInvalid", func(t *testing.T) { testRotationClientScopeInvalid(t, migrated(t)) })
		t.Run("ParallelClientScope", func(t *testing.T) { testRotationParallelClient(t, migrated(t)) })
	})
	t.Run("Purge", func(t *testing.T) { testSessionPurge(t, migrated(t)) })
	t.Run("UserDeletionCascades", func(t *testing.T) { testSessionUserDeletion(t, migrated(t)) })
	t.Run("MigrationDown", func(t *testing.T) { testSessionsMigrationDown(t, migrated(t)) })
	t.Run("Clients", func(t *testing.T) {
		t.Run("CRUD", func(t *testing.T) { testClientCRUD(t, migrated(t)) })
		t.Run("Invalid", func(t *testing.T) { testClientInvalid(t, migrated(t)) })
		t.Run("Public", func(t *testing.T) { testClientPublic(t, migrated(t)) })
		t.Run("RateLimits", func(t *testing.T) { testClientRateLimits(t, migrated(t)) })
	})
}

// sessAt is the fixed "now" of the session tests; its nanoseconds check
// that the backends keep microseconds.
var sessAt = time.Date(2033, 4, 5, 6, 7, 8, 901234567, time.UTC)

// refreshHash returns the hex SHA-256 of a fresh random token.
func refreshHash() string {
	sum := sha256.Sum256([]byte(uuid.NewString()))
	return hex.EncodeToString(sum[:])
}

// sealed is the SealedNext the tests store for the successor with hash h.
func sealed(h string) string { return "sealed:" + h }

var equateEmpty = cmpopts.EquateEmpty()

// newSession starts a session of the user created at created, expiring
// after ttl, with a first token of a fresh hash.
func newSession(t *testing.T, s store.Store, userID string, created time.Time, ttl time.Duration) (store.Session, store.RefreshToken) {
	t.Helper()
	return mustCreateSession(t, s,
		store.Session{UserID: userID, CreatedAt: created, ExpiresAt: created.Add(ttl), IP: "192.0.2.1", AMR: []string{"pwd"}},
		store.RefreshToken{TokenHash: refreshHash()})
}

func mustCreateSession(t *testing.T, s store.Store, x store.Session, first store.RefreshToken) (store.Session, store.RefreshToken) {
	t.Helper()
	created, err := s.CreateSession(context.Background(), x, first)
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	tok := mustGetToken(t, s, first.TokenHash)
	return created, tok
}

func mustGetToken(t *testing.T, s store.Store, hash string) store.RefreshToken {
	t.Helper()
	tok, err := s.GetRefreshTokenByHash(context.Background(), hash)
	if err != nil {
		t.Fatalf("GetRefreshTokenByHash: %v", err)
	}
	// The owner's email comes with the token, from the same query.
	u, err := s.GetUser(context.Background(), tok.UserID)
	if err != nil {
		t.Fatalf("GetUser(%s): %v", tok.UserID, err)
	}
	if tok.UserEmail != u.Email || u.Email == "" {
		t.Errorf("GetRefreshTokenByHash UserEmail = %q, want %q", tok.UserEmail, u.Email)
	}
	tok.UserEmail = ""
	return tok
}

func mustGetSession(t *testing.T, s store.Store, id string) store.Session {
	t.Helper()
	x, err := s.GetSession(context.Background(), id)
	if err != nil {
		t.Fatalf("GetSession(%s): %v", id, err)
	}
	return x
}

// rotateReq is a refresh of the token with hash presented at now.
func rotateReq(presented string, now time.Time, grace time.Duration) store.RotateRequest {
	next := refreshHash()
	return store.RotateRequest{
		PresentedHash: presented, Next: store.RefreshToken{TokenHash: next}, SealedNext: sealed(next),
		Now: now, Grace: grace,
	}
}

func mustRotate(t *testing.T, s store.Store, r store.RotateRequest, want store.RotateOutcome) store.RotateResult {
	t.Helper()
	res, err := s.RotateRefreshToken(context.Background(), r)
	if err != nil {
		t.Fatalf("RotateRefreshToken: %v", err)
	}
	if res.Outcome != want {
		t.Fatalf("RotateRefreshToken outcome = %s, want %s", outcomeName(res.Outcome), outcomeName(want))
	}
	if want != store.Rotated && res.Issued != (store.RefreshToken{}) {
		t.Errorf("outcome %s issued a token: %+v", outcomeName(want), res.Issued)
	}
	return res
}

func outcomeName(o store.RotateOutcome) string {
	switch o {
	case store.Rotated:
		return "Rotated"
	case store.GraceReplay:
		return "GraceReplay"
	case store.ReuseDetected:
		return "ReuseDetected"
	case store.Invalid:
		return "Invalid"
	case store.ClientMismatch:
		return "ClientMismatch"
	case store.ScopeNotGranted:
		return "ScopeNotGranted"
	}
	return fmt.Sprintf("RotateOutcome(%d)", int(o))
}

// countFamily counts the refresh tokens of the session matching cond.
func countFamily(t *testing.T, s store.Store, sessionID, cond string) int64 {
	t.Helper()
	return count(t, s, "SELECT count(*) FROM refresh_tokens WHERE session_id = '"+sessionID+"' AND "+cond)
}

const liveToken = "rotated_at IS NULL AND revoked_at IS NULL"

// checkFamilyRevoked fails unless the session is revoked at `at` for
// reason and every token of its family is revoked, with no sealed
// successor left.
func checkFamilyRevoked(t *testing.T, s store.Store, sessionID string, at time.Time, reason string) {
	t.Helper()
	x := mustGetSession(t, s, sessionID)
	if !x.RevokedAt.Equal(micro(at)) || x.RevokedReason != reason {
		t.Errorf("session revoked at %v for %q, want %v for %q", x.RevokedAt, x.RevokedReason, micro(at), reason)
	}
	if n := countFamily(t, s, sessionID, "revoked_at IS NULL"); n != 0 {
		t.Errorf("%d tokens of the revoked family are not revoked", n)
	}
	if n := countFamily(t, s, sessionID, "sealed_successor IS NOT NULL"); n != 0 {
		t.Errorf("%d tokens of the revoked family keep a sealed successor", n)
	}
}

func testSessionRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("sessions@example.com"))
	zone := time.FixedZone("IST", 5*3600+1800)
	in := store.Session{
		ID:                strings.ToUpper(uuid.NewString()),
		UserID:            strings.ToUpper(user.ID),
		ClientID:          "gh_web",
		CreatedAt:         sessAt.In(zone),
		LastSeenAt:        sessAt.Add(time.Second),
		ExpiresAt:         sessAt.Add(30 * 24 * time.Hour).In(zone),
		IP:                "2001:db8::1",
		UserAgent:         "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
		Browser:           "Firefox",
		OS:                "Linux",
		DeviceType:        "desktop",
		DeviceFingerprint: refreshHash(),
		AMR:               []string{"pwd", "otp"},
		AuthTime:          sessAt.Add(-time.Second),
		Audience:          []string{"https://api.example.com", "https://billing.example.com/v1"},
		Scope:             "openid offline_access",
		Country:           "FR",
		City:              "Saint-Étienne",
		ASN:               4294967295,
		Risk:              &store.SessionRisk{Score: 80, Reasons: []string{"impossible_travel", "new_country", "new_asn"}},
	}
	first := store.RefreshToken{
		ID:            strings.ToUpper(uuid.NewString()),
		Scope:         "openid offline_access",
		TokenHash:     refreshHash(),
		CreatedAt:     sessAt,
		IdleExpiresAt: sessAt.Add(time.Hour),
	}
	got, err := s.CreateSession(ctx, in, first)
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	want := in
	want.ID, want.UserID = strings.ToLower(in.ID), user.ID
	want.CreatedAt, want.LastSeenAt, want.ExpiresAt, want.AuthTime = micro(in.CreatedAt), micro(in.LastSeenAt), micro(in.ExpiresAt), micro(in.AuthTime)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CreateSession returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, mustGetSession(t, s, strings.ToUpper(want.ID))); diff != "" {
		t.Errorf("GetSession (-want +got):\n%s", diff)
	}
	for _, tm := range []time.Time{got.CreatedAt, got.LastSeenAt, got.ExpiresAt, got.AuthTime} {
		if tm.Location() != time.UTC {
			t.Errorf("time %v not in UTC", tm)
		}
	}

	// The first token takes the session's IDs, client and expiry.
	wantTok := store.RefreshToken{
		ID: strings.ToLower(first.ID), SessionID: want.ID, UserID: user.ID, ClientID: "gh_web",
		Scope: first.Scope, TokenHash: first.TokenHash, CreatedAt: micro(sessAt),
		ExpiresAt: want.ExpiresAt, IdleExpiresAt: micro(sessAt.Add(time.Hour)),
	}
	if diff := cmp.Diff(wantTok, mustGetToken(t, s, first.TokenHash)); diff != "" {
		t.Errorf("GetRefreshTokenByHash (-want +got):\n%s", diff)
	}
	if _, err := s.GetRefreshTokenByHash(ctx, strings.ToUpper(first.TokenHash)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRefreshTokenByHash(upper case) err = %v, want ErrNotFound", err)
	}
	for _, h := range []string{"", refreshHash(), "\xff"} {
		if _, err := s.GetRefreshTokenByHash(ctx, h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRefreshTokenByHash(%q) err = %v, want ErrNotFound", h, err)
		}
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid", ""} {
		if _, err := s.GetSession(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSession(%q) err = %v, want ErrNotFound", id, err)
		}
	}
}

func testSessionDefaults(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("defaults@example.com"))
	exp := time.Now().Add(time.Hour)
	hash := refreshHash()
	got, err := s.CreateSession(ctx, store.Session{UserID: user.ID, ExpiresAt: exp},
		store.RefreshToken{TokenHash: hash, ExpiresAt: exp.Add(time.Hour), IdleExpiresAt: exp.Add(time.Minute)})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if id, err := uuid.Parse(got.ID); err != nil || id.Version() != 7 || id.String() != got.ID {
		t.Errorf("generated ID = %q, want a canonical UUIDv7", got.ID)
	}
	checkNow(t, "CreatedAt", got.CreatedAt)
	if !got.LastSeenAt.Equal(got.CreatedAt) || !got.AuthTime.IsZero() || !got.RevokedAt.IsZero() {
		t.Errorf("LastSeenAt = %v, AuthTime = %v, RevokedAt = %v; want CreatedAt (%v), zero, zero",
			got.LastSeenAt, got.AuthTime, got.RevokedAt, got.CreatedAt)
	}
	if len(got.AMR) != 0 || got.ClientID != "" || got.IP != "" {
		t.Errorf("AMR = %q, ClientID = %q, IP = %q; want empty", got.AMR, got.ClientID, got.IP)
	}
	// Optional strings are NULL, and AMR an empty list.
	if n := count(t, s, "SELECT count(*) FROM sessions WHERE id = '"+got.ID+
		"' AND client_id IS NULL AND ip IS NULL AND user_agent IS NULL AND revoked_reason IS NULL AND auth_time IS NULL"); n != 1 {
		t.Error("empty optional fields of the session not stored as NULL")
	}
	tok := mustGetToken(t, s, hash)
	if tok.SessionID != got.ID || tok.UserID != user.ID || !tok.CreatedAt.Equal(got.CreatedAt) {
		t.Errorf("first token %+v does not carry the session's IDs and creation time", tok)
	}
	// Neither the token's absolute nor its idle expiry outlives the session.
	if !tok.ExpiresAt.Equal(micro(exp)) || !tok.IdleExpiresAt.Equal(micro(exp)) {
		t.Errorf("token ExpiresAt = %v, IdleExpiresAt = %v; want both capped at the session's %v", tok.ExpiresAt, tok.IdleExpiresAt, micro(exp))
	}
	if n := countFamily(t, s, got.ID, "client_id IS NULL AND scope IS NULL AND parent_id IS NULL AND sealed_successor IS NULL"); n != 1 {
		t.Error("empty optional fields of the token not stored as NULL")
	}
}

func testSessionCreateInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("invalid@example.com"))
	existing, existingTok := newSession(t, s, user.ID, sessAt, time.Hour)
	valid := func() (store.Session, store.RefreshToken) {
		return store.Session{UserID: user.ID, CreatedAt: sessAt, ExpiresAt: sessAt.Add(time.Hour)}, store.RefreshToken{TokenHash: refreshHash()}
	}

	// Conflicts leave nothing behind: the session and its token are one step.
	for name, mod := range map[string]func(x *store.Session, tok *store.RefreshToken){
		"session ID": func(x *store.Session, _ *store.RefreshToken) { x.ID = existing.ID },
		"token ID":   func(_ *store.Session, tok *store.RefreshToken) { tok.ID = existingTok.ID },
		"token hash": func(_ *store.Session, tok *store.RefreshToken) { tok.TokenHash = existingTok.TokenHash },
	} {
		x, tok := valid()
		mod(&x, &tok)
		if x.ID == "" {
			x.ID = uuid.NewString()
		}
		if _, err := s.CreateSession(ctx, x, tok); !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s taken: err = %v, want ErrConflict", name, err)
		}
		if x.ID != existing.ID {
			if _, err := s.GetSession(ctx, x.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s taken: the session was stored anyway (err = %v)", name, err)
			}
		}
		if tok.TokenHash != existingTok.TokenHash {
			if _, err := s.GetRefreshTokenByHash(ctx, tok.TokenHash); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s taken: the token was stored anyway (err = %v)", name, err)
			}
		}
	}

	for _, userID := range []string{uuid.NewString(), "not-a-uuid", ""} {
		x, tok := valid()
		x.UserID = userID
		if _, err := s.CreateSession(ctx, x, tok); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("CreateSession for user %q: err = %v, want ErrNotFound", userID, err)
		}
	}

	for name, mod := range map[string]func(x *store.Session, tok *store.RefreshToken){
		"no ExpiresAt":        func(x *store.Session, _ *store.RefreshToken) { x.ExpiresAt = time.Time{} },
		"revoked":             func(x *store.Session, _ *store.RefreshToken) { x.RevokedAt = sessAt },
		"revoked reason":      func(x *store.Session, _ *store.RefreshToken) { x.RevokedReason = "x" },
		"bad session ID":      func(x *store.Session, _ *store.RefreshToken) { x.ID = "nope" },
		"empty AMR entry":     func(x *store.Session, _ *store.RefreshToken) { x.AMR = []string{"pwd", ""} },
		"NUL in user agent":   func(x *store.Session, _ *store.RefreshToken) { x.UserAgent = "a\x00b" },
		"invalid UTF-8 IP":    func(x *store.Session, _ *store.RefreshToken) { x.IP = "\xff" },
		"no token hash":       func(_ *store.Session, tok *store.RefreshToken) { tok.TokenHash = "" },
		"bad token ID":        func(_ *store.Session, tok *store.RefreshToken) { tok.ID = "nope" },
		"other session's ID":  func(_ *store.Session, tok *store.RefreshToken) { tok.SessionID = existing.ID },
		"other user's ID":     func(_ *store.Session, tok *store.RefreshToken) { tok.UserID = uuid.NewString() },
		"other client":        func(_ *store.Session, tok *store.RefreshToken) { tok.ClientID = "other" },
		"token with a parent": func(_ *store.Session, tok *store.RefreshToken) { tok.ParentID = existingTok.ID },
		"rotated token":       func(_ *store.Session, tok *store.RefreshToken) { tok.RotatedAt = sessAt },
		"revoked token":       func(_ *store.Session, tok *store.RefreshToken) { tok.RevokedAt = sessAt },
	} {
		x, tok := valid()
		mod(&x, &tok)
		_, err := s.CreateSession(ctx, x, tok)
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: err = %v, want a validation error", name, err)
		}
	}
	// The user's IDs may come in any case.
	x, tok := valid()
	tok.UserID = strings.ToUpper(user.ID)
	if _, err := s.CreateSession(ctx, x, tok); err != nil {
		t.Errorf("CreateSession with the user ID in upper case on the token: %v", err)
	}
}

func testListUserSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("list@example.com"))
	other := mustCreateUser(t, s, newUser("other@example.com"))
	now := sessAt.Add(time.Hour)

	s1, _ := newSession(t, s, user.ID, sessAt, 30*time.Hour)
	s2, _ := newSession(t, s, user.ID, sessAt.Add(time.Minute), 30*time.Hour)
	revoked, _ := newSession(t, s, user.ID, sessAt.Add(2*time.Minute), 30*time.Hour)
	newSession(t, s, user.ID, sessAt.Add(3*time.Minute), time.Hour-3*time.Minute) // expires at now
	s5, _ := newSession(t, s, user.ID, sessAt.Add(4*time.Minute), 30*time.Hour)
	newSession(t, s, other.ID, sessAt.Add(5*time.Minute), 30*time.Hour)
	if _, err := s.RevokeSession(ctx, revoked.ID, "logout", now); err != nil {
		t.Fatal(err)
	}

	got, err := s.ListUserSessions(ctx, user.ID, now)
	if err != nil {
		t.Fatalf("ListUserSessions: %v", err)
	}
	if diff := cmp.Diff([]store.Session{s5, s2, s1}, got, equateEmpty); diff != "" {
		t.Errorf("ListUserSessions (-want +got):\n%s", diff)
	}
	// A microsecond earlier the expiring one is still live.
	got, err = s.ListUserSessions(ctx, strings.ToUpper(user.ID), now.Add(-time.Microsecond))
	if err != nil || len(got) != 4 {
		t.Errorf("ListUserSessions a microsecond earlier: %d sessions, %v; want 4", len(got), err)
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if got, err := s.ListUserSessions(ctx, id, now); err != nil || len(got) != 0 {
			t.Errorf("ListUserSessions(%q) = %d sessions, %v; want none", id, len(got), err)
		}
	}
}

func testRevokeSession(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("revoke@example.com"))
	x, a := newSession(t, s, user.ID, sessAt, time.Hour)
	other, otherTok := newSession(t, s, user.ID, sessAt, time.Hour)
	b := mustRotate(t, s, rotateReq(a.TokenHash, sessAt.Add(time.Minute), time.Minute), store.Rotated).Issued

	at := sessAt.Add(2 * time.Minute)
	got, err := s.RevokeSession(ctx, x.ID, "logout", at)
	if err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	if !got.RevokedAt.Equal(micro(at)) || got.RevokedReason != "logout" || got.ID != x.ID {
		t.Errorf("RevokeSession returned %s revoked at %v for %q, want %s at %v for logout", got.ID, got.RevokedAt, got.RevokedReason, x.ID, micro(at))
	}
	checkFamilyRevoked(t, s, x.ID, at, "logout")
	for _, tok := range []store.RefreshToken{a, b} {
		if got := mustGetToken(t, s, tok.TokenHash); !got.RevokedAt.Equal(micro(at)) {
			t.Errorf("token %s RevokedAt = %v, want %v", tok.ID, got.RevokedAt, micro(at))
		}
	}
	mustRotate(t, s, rotateReq(b.TokenHash, at, time.Minute), store.Invalid)

	// Again: a no-op that returns the session as it was revoked.
	again, err := s.RevokeSession(ctx, strings.ToUpper(x.ID), "other", at.Add(time.Hour))
	if err != nil {
		t.Fatalf("RevokeSession again: %v", err)
	}
	if diff := cmp.Diff(got, again, equateEmpty); diff != "" {
		t.Errorf("RevokeSession of a revoked session changed it (-first +again):\n%s", diff)
	}
	if got := mustGetToken(t, s, b.TokenHash); !got.RevokedAt.Equal(micro(at)) {
		t.Errorf("token RevokedAt = %v after the second revocation, want %v", got.RevokedAt, micro(at))
	}

	// The other session is untouched.
	if o := mustGetSession(t, s, other.ID); !o.RevokedAt.IsZero() {
		t.Error("RevokeSession revoked another session")
	}
	mustRotate(t, s, rotateReq(otherTok.TokenHash, at, 0), store.Rotated)

	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if _, err := s.RevokeSession(ctx, id, "logout", at); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RevokeSession(%q): err = %v, want ErrNotFound", id, err)
		}
	}
}

func testRevokeUserSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("everywhere@example.com"))
	other := mustCreateUser(t, s, newUser("bystander@example.com"))
	now := sessAt.Add(time.Hour)

	s1, t1 := newSession(t, s, user.ID, sessAt, 30*time.Hour)
	kept, keptTok := newSession(t, s, user.ID, sessAt, 30*time.Hour)
	s3, t3 := newSession(t, s, user.ID, sessAt, 30*time.Hour)
	old, _ := newSession(t, s, user.ID, sessAt, 30*time.Hour)
	expired, _ := newSession(t, s, user.ID, sessAt, time.Hour)
	bystander, _ := newSession(t, s, other.ID, sessAt, 30*time.Hour)
	if _, err := s.RevokeSession(ctx, old.ID, "earlier", sessAt); err != nil {
		t.Fatal(err)
	}

	ids, err := s.RevokeUserSessions(ctx, user.ID, strings.ToUpper(kept.ID), "logout_all", now)
	if err != nil {
		t.Fatalf("RevokeUserSessions: %v", err)
	}
	want := []string{s1.ID, s3.ID}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("RevokeUserSessions IDs (-want +got):\n%s", diff)
	}
	checkFamilyRevoked(t, s, s1.ID, now, "logout_all")
	checkFamilyRevoked(t, s, s3.ID, now, "logout_all")
	for _, tok := range []store.RefreshToken{t1, t3} {
		mustRotate(t, s, rotateReq(tok.TokenHash, now, 0), store.Invalid)
	}
	if o := mustGetSession(t, s, old.ID); o.RevokedReason != "earlier" || !o.RevokedAt.Equal(micro(sessAt)) {
		t.Errorf("an already revoked session was revoked again: %v, %q", o.RevokedAt, o.RevokedReason)
	}
	for _, id := range []string{kept.ID, expired.ID, bystander.ID} {
		if x := mustGetSession(t, s, id); !x.RevokedAt.IsZero() {
			t.Errorf("session %s was revoked; want the excepted, expired and other user's sessions left alone", id)
		}
	}
	mustRotate(t, s, rotateReq(keptTok.TokenHash, now, 0), store.Rotated)

	if ids, err := s.RevokeUserSessions(ctx, user.ID, kept.ID, "logout_all", now); err != nil || len(ids) != 0 {
		t.Errorf("RevokeUserSessions again = %v, %v; want none", ids, err)
	}
	for _, except := range []string{"", "not-a-uuid"} {
		ids, err := s.RevokeUserSessions(ctx, user.ID, except, "logout_all", now)
		if err != nil {
			t.Fatalf("RevokeUserSessions(except %q): %v", except, err)
		}
		wantIDs := []string{kept.ID}
		if except != "" {
			wantIDs = nil
		}
		if diff := cmp.Diff(wantIDs, ids, equateEmpty); diff != "" {
			t.Errorf("RevokeUserSessions(except %q) IDs (-want +got):\n%s", except, diff)
		}
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if ids, err := s.RevokeUserSessions(ctx, id, "", "x", now); err != nil || len(ids) != 0 {
			t.Errorf("RevokeUserSessions(%q) = %v, %v; want none", id, ids, err)
		}
	}
}

func testRevokeCreatedBefore(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustCreateUser(t, s, newUser("a@example.com"))
	b := mustCreateUser(t, s, newUser("b@example.com"))
	now := sessAt.Add(3 * time.Hour)
	cutoff := sessAt.Add(2 * time.Hour)

	s1, t1 := newSession(t, s, a.ID, sessAt, 30*time.Hour)
	s2, _ := newSession(t, s, b.ID, sessAt.Add(time.Hour), 30*time.Hour)
	atCutoff, _ := newSession(t, s, a.ID, cutoff, 30*time.Hour)
	later, laterTok := newSession(t, s, b.ID, cutoff.Add(time.Minute), 30*time.Hour)
	old, _ := newSession(t, s, a.ID, sessAt, 30*time.Hour)
	expired, _ := newSession(t, s, a.ID, sessAt, time.Hour)
	if _, err := s.RevokeSession(ctx, old.ID, "earlier", sessAt); err != nil {
		t.Fatal(err)
	}

	n, err := s.RevokeSessionsCreatedBefore(ctx, cutoff, "revoked_before", now)
	if err != nil || n != 2 {
		t.Fatalf("RevokeSessionsCreatedBefore = %d, %v; want 2", n, err)
	}
	checkFamilyRevoked(t, s, s1.ID, now, "revoked_before")
	checkFamilyRevoked(t, s, s2.ID, now, "revoked_before")
	mustRotate(t, s, rotateReq(t1.TokenHash, now, 0), store.Invalid)
	for _, id := range []string{atCutoff.ID, later.ID, expired.ID} {
		if x := mustGetSession(t, s, id); !x.RevokedAt.IsZero() {
			t.Errorf("session %s revoked; want sessions created at or after the cutoff, and expired ones, left alone", id)
		}
	}
	if o := mustGetSession(t, s, old.ID); o.RevokedReason != "earlier" {
		t.Errorf("already revoked session now has reason %q", o.RevokedReason)
	}
	mustRotate(t, s, rotateReq(laterTok.TokenHash, now, 0), store.Rotated)
	if n, err := s.RevokeSessionsCreatedBefore(ctx, cutoff, "revoked_before", now); err != nil || n != 0 {
		t.Errorf("RevokeSessionsCreatedBefore again = %d, %v; want 0", n, err)
	}
}

// testRotationChain walks a chain A → B → C and then replays its links.
func testRotationChain(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("chain@example.com"))
	x, a := mustCreateSession(t, s,
		store.Session{UserID: user.ID, ClientID: "gh_app", CreatedAt: sessAt, ExpiresAt: sessAt.Add(24 * time.Hour), IP: "192.0.2.1"},
		store.RefreshToken{TokenHash: refreshHash(), Scope: "openid offline_access"})
	const grace = 10 * time.Second

	// A → B.
	t1 := sessAt.Add(time.Minute)
	r := rotateReq(a.TokenHash, t1, grace)
	r.LastSeenIP = "198.51.100.7"
	r.Next.Scope, r.Next.ClientID = "admin", "other" // the store copies these from A
	res := mustRotate(t, s, r, store.Rotated)
	b := res.Issued
	wantB := store.RefreshToken{
		ID: b.ID, SessionID: x.ID, UserID: user.ID, ClientID: "gh_app", Scope: "openid offline_access",
		TokenHash: r.Next.TokenHash, ParentID: a.ID, CreatedAt: micro(t1), ExpiresAt: a.ExpiresAt,
	}
	if diff := cmp.Diff(wantB, b); diff != "" {
		t.Errorf("Issued (-want +got):\n%s", diff)
	}
	if _, err := uuid.Parse(b.ID); err != nil {
		t.Errorf("Issued.ID = %q, want a UUID", b.ID)
	}
	wantA := a
	wantA.RotatedAt, wantA.SuccessorID, wantA.SealedSuccessor = micro(t1), b.ID, r.SealedNext
	if diff := cmp.Diff(wantA, res.Previous); diff != "" {
		t.Errorf("Previous (-want +got):\n%s", diff)
	}
	wantSess := x
	wantSess.LastSeenAt, wantSess.IP = micro(t1), "198.51.100.7"
	if diff := cmp.Diff(wantSess, res.Session, equateEmpty); diff != "" {
		t.Errorf("Session (-want +got):\n%s", diff)
	}
	for _, tok := range []store.RefreshToken{wantA, wantB} {
		if diff := cmp.Diff(tok, mustGetToken(t, s, tok.TokenHash)); diff != "" {
			t.Errorf("stored token %s (-want +got):\n%s", tok.ID, diff)
		}
	}
	if diff := cmp.Diff(wantSess, mustGetSession(t, s, x.ID), equateEmpty); diff != "" {
		t.Errorf("stored session (-want +got):\n%s", diff)
	}

	// B → C, two seconds later, without an IP: the session keeps its IP.
	t2 := t1.Add(2 * time.Second)
	rc := rotateReq(b.TokenHash, t2, grace)
	res = mustRotate(t, s, rc, store.Rotated)
	c := res.Issued
	if c.ParentID != b.ID || res.Previous.SuccessorID != c.ID || res.Session.IP != "198.51.100.7" || !res.Session.LastSeenAt.Equal(micro(t2)) {
		t.Errorf("B → C: Issued.ParentID = %s, Previous.SuccessorID = %s, Session IP %q, LastSeenAt %v",
			c.ParentID, res.Previous.SuccessorID, res.Session.IP, res.Session.LastSeenAt)
	}
	// A can never be replayed now (its successor B is rotated): its sealed
	// successor is gone; B keeps C's for the grace window.
	if got := mustGetToken(t, s, a.TokenHash).SealedSuccessor; got != "" {
		t.Errorf("A's sealed successor = %q after B was rotated, want it cleared", got)
	}
	if got := mustGetToken(t, s, b.TokenHash).SealedSuccessor; got != rc.SealedNext {
		t.Errorf("B's sealed successor = %q, want %q", got, rc.SealedNext)
	}

	// B again within its grace window, C being live: the same successor.
	t3 := t2.Add(3 * time.Second)
	res = mustRotate(t, s, rotateReq(b.TokenHash, t3, grace), store.GraceReplay)
	if res.Previous.ID != b.ID || res.Previous.SuccessorID != c.ID || res.Previous.SealedSuccessor != rc.SealedNext {
		t.Errorf("GraceReplay Previous = %+v, want B with C's sealed token", res.Previous)
	}
	if res.Session.ID != x.ID || !res.Session.LastSeenAt.Equal(micro(t2)) {
		t.Errorf("GraceReplay Session = %+v, want the session as it was", res.Session)
	}
	if n := countFamily(t, s, x.ID, "id = id"); n != 3 {
		t.Errorf("family has %d tokens after a grace replay, want 3", n)
	}
	if got := mustGetToken(t, s, c.TokenHash); got.RotatedAt != (time.Time{}) || got.RevokedAt != (time.Time{}) {
		t.Errorf("C after a grace replay of B: %+v, want it live", got)
	}
	if got := mustGetSession(t, s, x.ID); !got.LastSeenAt.Equal(micro(t2)) {
		t.Errorf("a grace replay moved LastSeenAt to %v", got.LastSeenAt)
	}

	// A again, within its own grace window, but its successor B has been
	// rotated: A is an older link, so this is reuse.
	res = mustRotate(t, s, rotateReq(a.TokenHash, t3, grace), store.ReuseDetected)
	if res.Session.ID != x.ID || !res.Session.RevokedAt.Equal(micro(t3)) || res.Session.RevokedReason != "refresh_token_reuse" {
		t.Errorf("ReuseDetected Session = %+v, want it revoked at %v for refresh_token_reuse", res.Session, micro(t3))
	}
	if res.Previous.ID != a.ID || res.Previous.SealedSuccessor != "" {
		t.Errorf("ReuseDetected Previous = %+v, want A without a sealed successor", res.Previous)
	}
	checkFamilyRevoked(t, s, x.ID, t3, "refresh_token_reuse")
	if got, err := s.ListUserSessions(ctx, user.ID, t3); err != nil || len(got) != 0 {
		t.Errorf("ListUserSessions after reuse = %d sessions, %v; want none", len(got), err)
	}

	// The family is dead: every link is Invalid, and nothing changes.
	for name, tok := range map[string]store.RefreshToken{"A": a, "B": b, "C": c} {
		res := mustRotate(t, s, rotateReq(tok.TokenHash, t3.Add(time.Second), grace), store.Invalid)
		if res.Previous.ID != tok.ID || res.Previous.SealedSuccessor != "" || res.Session.RevokedReason != "refresh_token_reuse" {
			t.Errorf("%s after reuse: Previous %+v, Session %+v", name, res.Previous, res.Session)
		}
	}
	checkFamilyRevoked(t, s, x.ID, t3, "refresh_token_reuse")
	if n := countFamily(t, s, x.ID, "id = id"); n != 3 {
		t.Errorf("family has %d tokens, want 3", n)
	}
}

func testRotationGraceWindow(t *testing.T, s store.Store) {
	user := mustCreateUser(t, s, newUser("grace@example.com"))
	x, a := newSession(t, s, user.ID, sessAt, time.Hour)
	const grace = 10 * time.Second
	t1 := sessAt.Add(time.Minute)
	rb := rotateReq(a.TokenHash, t1, grace)
	b := mustRotate(t, s, rb, store.Rotated).Issued

	// At exactly the end of the window it is still a replay ...
	res := mustRotate(t, s, rotateReq(a.TokenHash, t1.Add(grace), grace), store.GraceReplay)
	if res.Previous.SealedSuccessor != rb.SealedNext {
		t.Errorf("SealedSuccessor = %q, want %q", res.Previous.SealedSuccessor, rb.SealedNext)
	}
	// ... and with a clock a little behind, too.
	mustRotate(t, s, rotateReq(a.TokenHash, t1.Add(-time.Second), grace), store.GraceReplay)
	if n := countFamily(t, s, x.ID, liveToken); n != 1 {
		t.Errorf("%d live tokens after grace replays, want 1", n)
	}
	// ... a microsecond later it is reuse.
	late := t1.Add(grace + time.Microsecond)
	mustRotate(t, s, rotateReq(a.TokenHash, late, grace), store.ReuseDetected)
	checkFamilyRevoked(t, s, x.ID, late, "refresh_token_reuse")
	mustRotate(t, s, rotateReq(b.TokenHash, late, grace), store.Invalid)
}

func testRotationNoGrace(t *testing.T, s store.Store) {
	user := mustCreateUser(t, s, newUser("nograce@example.com"))
	x, a := newSession(t, s, user.ID, sessAt, time.Hour)
	t1 := sessAt.Add(time.Minute)
	b := mustRotate(t, s, rotateReq(a.TokenHash, t1, 0), store.Rotated).Issued
	// With grace 0 even a replay at the same instant is reuse.
	mustRotate(t, s, rotateReq(a.TokenHash, t1, 0), store.ReuseDetected)
	checkFamilyRevoked(t, s, x.ID, t1, "refresh_token_reuse")
	mustRotate(t, s, rotateReq(b.TokenHash, t1, 0), store.Invalid)
	// A negative grace is no grace.
	y, c := newSession(t, s, user.ID, sessAt, time.Hour)
	mustRotate(t, s, rotateReq(c.TokenHash, t1, -time.Minute), store.Rotated)
	mustRotate(t, s, rotateReq(c.TokenHash, t1, -time.Minute), store.ReuseDetected)
	checkFamilyRevoked(t, s, y.ID, t1, "refresh_token_reuse")
}

func testRotationIdle(t *testing.T, s store.Store) {
	user := mustCreateUser(t, s, newUser("idle@example.com"))
	x, a := mustCreateSession(t, s,
		store.Session{UserID: user.ID, CreatedAt: sessAt, ExpiresAt: sessAt.Add(time.Hour)},
		store.RefreshToken{TokenHash: refreshHash(), IdleExpiresAt: sessAt.Add(10 * time.Minute)})

	// Rotating sets the successor's idle expiry to now + IdleTimeout.
	t1 := sessAt.Add(10*time.Minute - time.Microsecond)
	r := rotateReq(a.TokenHash, t1, time.Minute)
	r.IdleTimeout = 10 * time.Minute
	b := mustRotate(t, s, r, store.Rotated).Issued
	if !b.IdleExpiresAt.Equal(micro(t1.Add(10 * time.Minute))) {
		t.Errorf("Issued.IdleExpiresAt = %v, want %v", b.IdleExpiresAt, micro(t1.Add(10*time.Minute)))
	}
	// At its idle expiry B is Invalid, and stays live otherwise untouched.
	res := mustRotate(t, s, rotateReq(b.TokenHash, b.IdleExpiresAt, time.Minute), store.Invalid)
	if res.Previous.ID != b.ID {
		t.Errorf("Invalid Previous = %s, want B", res.Previous.ID)
	}
	if got := mustGetToken(t, s, b.TokenHash); !got.RotatedAt.IsZero() || !got.RevokedAt.IsZero() {
		t.Errorf("B after an idle-expired refresh: %+v, want unchanged", got)
	}
	if got := mustGetSession(t, s, x.ID); !got.RevokedAt.IsZero() || !got.LastSeenAt.Equal(micro(t1)) {
		t.Errorf("session after an idle-expired refresh: %+v, want unchanged", got)
	}
	// A rotated token's idle expiry does not matter: A, past it and within
	// the grace window, is a replay.
	mustRotate(t, s, rotateReq(a.TokenHash, t1.Add(time.Second), time.Minute), store.GraceReplay)

	// The idle expiry is capped at the absolute one; IdleTimeout 0 leaves
	// none.
	_, c := newSession(t, s, user.ID, sessAt, 15*time.Minute)
	r = rotateReq(c.TokenHash, sessAt.Add(10*time.Minute), 0)
	r.IdleTimeout = 10 * time.Minute
	d := mustRotate(t, s, r, store.Rotated).Issued
	if !d.IdleExpiresAt.Equal(micro(sessAt.Add(15 * time.Minute))) {
		t.Errorf("capped IdleExpiresAt = %v, want the session's expiry %v", d.IdleExpiresAt, micro(sessAt.Add(15*time.Minute)))
	}
	e := mustRotate(t, s, rotateReq(d.TokenHash, sessAt.Add(11*time.Minute), 0), store.Rotated).Issued
	if !e.IdleExpiresAt.IsZero() {
		t.Errorf("IdleExpiresAt with IdleTimeout 0 = %v, want none", e.IdleExpiresAt)
	}
	mustRotate(t, s, rotateReq(e.TokenHash, sessAt.Add(14*time.Minute), 0), store.Rotated)
}

func testRotationExpiry(t *testing.T, s store.Store) {
	user := mustCreateUser(t, s, newUser("expiry@example.com"))
	x, a := newSession(t, s, user.ID, sessAt, time.Hour)
	b := mustRotate(t, s, rotateReq(a.TokenHash, sessAt.Add(time.Minute), time.Hour), store.Rotated).Issued

	// At the session's end the live token is Invalid, and so is the
	// rotated one: an expired family is dead, not reused.
	for name, tok := range map[string]store.RefreshToken{"live": b, "rotated": a} {
		mustRotate(t, s, rotateReq(tok.TokenHash, x.ExpiresAt, 0), store.Invalid)
		mustRotate(t, s, rotateReq(tok.TokenHash, x.ExpiresAt.Add(time.Hour), 0), store.Invalid)
		if got := mustGetSession(t, s, x.ID); !got.RevokedAt.IsZero() {
			t.Fatalf("%s token after expiry revoked the session", name)
		}
	}
	if n := countFamily(t, s, x.ID, liveToken); n != 1 {
		t.Errorf("%d live tokens, want B still (expired but) unrotated", n)
	}

	// A token that expires before its session.
	_, c := mustCreateSession(t, s,
		store.Session{UserID: user.ID, CreatedAt: sessAt, ExpiresAt: sessAt.Add(time.Hour)},
		store.RefreshToken{TokenHash: refreshHash(), ExpiresAt: sessAt.Add(30 * time.Minute)})
	mustRotate(t, s, rotateReq(c.TokenHash, sessAt.Add(30*time.Minute), 0), store.Invalid)
	d := mustRotate(t, s, rotateReq(c.TokenHash, sessAt.Add(30*time.Minute-time.Microsecond), 0), store.Rotated).Issued
	if !d.ExpiresAt.Equal(micro(sessAt.Add(30 * time.Minute))) {
		t.Errorf("successor ExpiresAt = %v, want the presented token's %v", d.ExpiresAt, micro(sessAt.Add(30*time.Minute)))
	}
}

func testRotationNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("notfound@example.com"))
	x, a := newSession(t, s, user.ID, sessAt, time.Hour)
	for _, h := range []string{refreshHash(), "", "\xff", strings.ToUpper(a.TokenHash)} {
		if _, err := s.RotateRefreshToken(ctx, rotateReq(h, sessAt, time.Minute)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RotateRefreshToken(%q): err = %v, want ErrNotFound", h, err)
		}
	}
	for name, mod := range map[string]func(r *store.RotateRequest){
		"no next hash":      func(r *store.RotateRequest) { r.Next.TokenHash = "" },
		"bad next ID":       func(r *store.RotateRequest) { r.Next.ID = "nope" },
		"rotated next":      func(r *store.RotateRequest) { r.Next.RotatedAt = sessAt },
		"revoked next":      func(r *store.RotateRequest) { r.Next.RevokedAt = sessAt },
		"NUL in sealed":     func(r *store.RotateRequest) { r.SealedNext = "a\x00b" },
		"next with sealing": func(r *store.RotateRequest) { r.Next.SealedSuccessor = "x" },
	} {
		r := rotateReq(a.TokenHash, sessAt, time.Minute)
		mod(&r)
		res, err := s.RotateRefreshToken(ctx, r)
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: %s, %v; want a validation error", name, outcomeName(res.Outcome), err)
		}
	}
	// A successor hash that is taken: nothing changes.
	r := rotateReq(a.TokenHash, sessAt, time.Minute)
	r.Next.TokenHash = a.TokenHash
	if _, err := s.RotateRefreshToken(ctx, r); !errors.Is(err, store.ErrConflict) {
		t.Errorf("successor with a taken hash: err = %v, want ErrConflict", err)
	}
	if n := countFamily(t, s, x.ID, liveToken); n != 1 || !mustGetToken(t, s, a.TokenHash).RotatedAt.IsZero() {
		t.Error("a failed rotation left changes behind")
	}
	mustRotate(t, s, rotateReq(a.TokenHash, sessAt, time.Minute), store.Rotated)
}

// testRotationInTx checks that RotateRefreshToken joins an open
// transaction: rolled back with it, committed with it.
func testRotationInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("intx@example.com"))
	x, a := newSession(t, s, user.ID, sessAt, time.Hour)
	r := rotateReq(a.TokenHash, sessAt.Add(time.Minute), time.Minute)
	err := s.InTx(ctx, func(tx store.Store) error {
		res, err := tx.RotateRefreshToken(ctx, r)
		if err != nil {
			return err
		}
		if res.Outcome != store.Rotated {
			return fmt.Errorf("outcome %s, want Rotated", outcomeName(res.Outcome))
		}
		if _, err := tx.GetRefreshTokenByHash(ctx, r.Next.TokenHash); err != nil {
			return fmt.Errorf("the transaction does not see the successor: %w", err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx = %v, want errRollback", err)
	}
	if _, err := s.GetRefreshTokenByHash(ctx, r.Next.TokenHash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("successor after rollback: err = %v, want ErrNotFound", err)
	}
	if got := mustGetToken(t, s, a.TokenHash); !got.RotatedAt.IsZero() {
		t.Error("A is rotated after the rollback")
	}

	// Committed: the session methods all work on tx.
	err = s.InTx(ctx, func(tx store.Store) error {
		first, err := tx.RotateRefreshToken(ctx, r)
		if err != nil {
			return err
		}
		// A token that is no longer live is decided in the same
		// transaction too.
		replay, err := tx.RotateRefreshToken(ctx, rotateReq(a.TokenHash, sessAt.Add(time.Minute+time.Second), time.Minute))
		if err != nil || replay.Outcome != store.GraceReplay || replay.Previous.SuccessorID != first.Issued.ID {
			return fmt.Errorf("replay in the transaction: %s, %v; want GraceReplay of the successor", outcomeName(replay.Outcome), err)
		}
		y := store.Session{UserID: user.ID, CreatedAt: sessAt, ExpiresAt: sessAt.Add(time.Hour)}
		if _, err := tx.CreateSession(ctx, y, store.RefreshToken{TokenHash: refreshHash()}); err != nil {
			return err
		}
		if _, err := tx.ListUserSessions(ctx, user.ID, sessAt); err != nil {
			return err
		}
		_, err = tx.RevokeSession(ctx, x.ID, "logout", sessAt.Add(2*time.Minute))
		return err
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	mustGetToken(t, s, r.Next.TokenHash)
	checkFamilyRevoked(t, s, x.ID, sessAt.Add(2*time.Minute), "logout")
	if got, err := s.ListUserSessions(ctx, user.ID, sessAt); err != nil || len(got) != 1 {
		t.Errorf("ListUserSessions = %d, %v; want the session created in the transaction", len(got), err)
	}
}

// testRotationPreviousSeen: every outcome reports where and when the
// session was last seen before the step (PreviousIP, PreviousSeenAt),
// while Session holds what a rotation recorded; on PostgreSQL both the
// one-round-trip rotation and the one decided in Go (a scope the fast
// path cannot split) and a rotation inside a transaction.
func testRotationPreviousSeen(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("previous@example.com"))
	x, a := newSession(t, s, user.ID, sessAt, time.Hour) // IP 192.0.2.1, last seen at creation
	check := func(what string, res store.RotateResult, ip string, at time.Time) {
		t.Helper()
		if res.PreviousIP != ip || !res.PreviousSeenAt.Equal(micro(at)) {
			t.Errorf("%s: PreviousIP %q, PreviousSeenAt %v; want %q, %v", what, res.PreviousIP, res.PreviousSeenAt, ip, micro(at))
		}
	}
	const grace = 10 * time.Second

	t1 := sessAt.Add(time.Minute)
	r := rotateReq(a.TokenHash, t1, grace)
	r.LastSeenIP = "198.51.100.7"
	res := mustRotate(t, s, r, store.Rotated)
	check("A → B", res, "192.0.2.1", sessAt)
	if res.Session.IP != "198.51.100.7" || !res.Session.LastSeenAt.Equal(micro(t1)) {
		t.Errorf("A → B: Session IP %q, LastSeenAt %v; want the refresh's", res.Session.IP, res.Session.LastSeenAt)
	}
	b := res.Issued

	// Without an IP the session keeps its own; the time moves on.
	t2 := t1.Add(2 * time.Second)
	res = mustRotate(t, s, rotateReq(b.TokenHash, t2, grace), store.Rotated)
	check("B → C", res, "198.51.100.7", t1)
	c := res.Issued

	// A grace replay changes nothing: the previous is the session as it is.
	t3 := t2.Add(time.Second)
	replay := rotateReq(b.TokenHash, t3, grace)
	replay.LastSeenIP = "203.0.113.5"
	res = mustRotate(t, s, replay, store.GraceReplay)
	check("grace replay of B", res, "198.51.100.7", t2)
	if got := mustGetSession(t, s, x.ID); got.IP != "198.51.100.7" || !got.LastSeenAt.Equal(micro(t2)) {
		t.Errorf("after a grace replay the session is at %q, %v", got.IP, got.LastSeenAt)
	}

	// Inside a transaction.
	t4 := t3.Add(time.Minute)
	rc := rotateReq(c.TokenHash, t4, grace)
	rc.LastSeenIP = "2001:db8::7"
	err := s.InTx(ctx, func(tx store.Store) error {
		res, err := tx.RotateRefreshToken(ctx, rc)
		if err != nil {
			return err
		}
		if res.Outcome != store.Rotated {
			return fmt.Errorf("outcome %s, want Rotated", outcomeName(res.Outcome))
		}
		check("C → D in a transaction", res, "198.51.100.7", t2)
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}

	// Reuse of A revokes the family; the previous is where it was seen.
	t5 := t4.Add(time.Minute)
	res = mustRotate(t, s, rotateReq(a.TokenHash, t5, grace), store.ReuseDetected)
	check("reuse of A", res, "2001:db8::7", t4)
	res = mustRotate(t, s, rotateReq(c.TokenHash, t5, grace), store.Invalid)
	check("C after the reuse", res, "2001:db8::7", t4)

	// A grant PostgreSQL's fast path cannot split is rotated by the path
	// decided in Go, with the same result.
	_, odd := mustCreateSession(t, s,
		store.Session{UserID: user.ID, CreatedAt: sessAt, ExpiresAt: sessAt.Add(time.Hour), IP: "192.0.2.99"},
		store.RefreshToken{TokenHash: refreshHash(), Scope: "read\twrite"})
	ro := rotateReq(odd.TokenHash, t1, grace)
	ro.Scopes, ro.LastSeenIP = []string{"write"}, "198.51.100.8"
	res = mustRotate(t, s, ro, store.Rotated)
	check("rotation decided in Go", res, "192.0.2.99", sessAt)
	if res.Session.IP != "198.51.100.8" || !res.Session.LastSeenAt.Equal(micro(t1)) {
		t.Errorf("rotation decided in Go: Session IP %q, LastSeenAt %v; want the refresh's", res.Session.IP, res.Session.LastSeenAt)
	}
}

// testRotationParallel presents one live token from 50 goroutines at once.
// With a grace window exactly one rotates it and the others get the same
// successor back; without, one rotates it, the next detects reuse and
// revokes the family, and the rest find it revoked.
func testRotationParallel(t *testing.T, s store.Store, grace time.Duration) {
	user := mustCreateUser(t, s, newUser("parallel@example.com"))
	// A race that a broken backend loses only sometimes: run it a few
	// times, each on a new session.
	for round := range 3 {
		t.Run(fmt.Sprintf("round%d", round+1), func(t *testing.T) { rotateInParallel(t, s, user.ID, grace) })
	}
}

func rotateInParallel(t *testing.T, s store.Store, userID string, grace time.Duration) {
	ctx := context.Background()
	x, a := newSession(t, s, userID, sessAt, time.Hour)
	now := sessAt.Add(time.Minute)

	const n = 50
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		reqs    = make([]store.RotateRequest, n)
		results = make([]store.RotateResult, n)
		errs    = make([]error, n)
	)
	// Open the pool's connections first, so that the rotations start
	// together instead of one per newly opened connection.
	for range n {
		wg.Go(func() { _, _ = s.GetSession(ctx, x.ID) })
	}
	wg.Wait()
	for i := range n {
		reqs[i] = rotateReq(a.TokenHash, now, grace)
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.RotateRefreshToken(ctx, reqs[i])
		})
	}
	close(start)
	wg.Wait()

	outcomes := map[store.RotateOutcome]int{}
	winner := -1
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("RotateRefreshToken #%d: %v", i, errs[i])
		}
		outcomes[res.Outcome]++
		if res.Outcome == store.Rotated {
			winner = i
		}
	}
	if outcomes[store.Rotated] != 1 {
		t.Fatalf("outcomes %v: want exactly one Rotated", outcomes)
	}
	issued := results[winner].Issued
	if issued.TokenHash != reqs[winner].Next.TokenHash {
		t.Errorf("the winner's Issued has hash %s, want its Next's", issued.TokenHash)
	}

	if grace > 0 {
		if outcomes[store.GraceReplay] != n-1 {
			t.Errorf("outcomes %v: want the other %d GraceReplay", outcomes, n-1)
		}
		for i, res := range results {
			if res.Outcome == store.GraceReplay && (res.Previous.SealedSuccessor != reqs[winner].SealedNext || res.Previous.SuccessorID != issued.ID) {
				t.Errorf("#%d replayed successor %s (sealed %q), want the winner's %s (%q)",
					i, res.Previous.SuccessorID, res.Previous.SealedSuccessor, issued.ID, reqs[winner].SealedNext)
			}
		}
		if live := countFamily(t, s, x.ID, liveToken); live != 1 {
			t.Errorf("%d live tokens in the family, want 1", live)
		}
		if got := mustGetToken(t, s, issued.TokenHash); !got.RotatedAt.IsZero() || !got.RevokedAt.IsZero() {
			t.Errorf("the winner's successor is not the live token: %+v", got)
		}
		if got := mustGetSession(t, s, x.ID); !got.RevokedAt.IsZero() {
			t.Error("the session was revoked")
		}
	} else {
		if outcomes[store.ReuseDetected] != 1 || outcomes[store.Invalid] != n-2 {
			t.Errorf("outcomes %v: want one ReuseDetected and %d Invalid", outcomes, n-2)
		}
		if live := countFamily(t, s, x.ID, liveToken); live != 0 {
			t.Errorf("%d live tokens in the family, want 0", live)
		}
		checkFamilyRevoked(t, s, x.ID, now, "refresh_token_reuse")
	}
	if total := countFamily(t, s, x.ID, "id = id"); total != 2 {
		t.Errorf("family has %d tokens, want 2 (A and one successor)", total)
	}
}

func testSessionPurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("purge@example.com"))
	before := sessAt.Add(2 * time.Hour)

	expired, expiredTok := newSession(t, s, user.ID, sessAt, time.Hour)
	revoked, revokedTok := newSession(t, s, user.ID, sessAt, 30*time.Hour)
	if _, err := s.RevokeSession(ctx, revoked.ID, "logout", sessAt.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	endsAtBefore, _ := newSession(t, s, user.ID, sessAt, 2*time.Hour)
	revokedLater, _ := newSession(t, s, user.ID, sessAt, 30*time.Hour)
	if _, err := s.RevokeSession(ctx, revokedLater.ID, "logout", before.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// A live session whose chain leaves a sealed successor on B.
	live, a := newSession(t, s, user.ID, sessAt, 30*time.Hour)
	b := mustRotate(t, s, rotateReq(a.TokenHash, sessAt.Add(time.Minute), time.Minute), store.Rotated).Issued
	rc := rotateReq(b.TokenHash, sessAt.Add(2*time.Minute), time.Minute)
	c := mustRotate(t, s, rc, store.Rotated).Issued
	// A live session whose first token expired on its own.
	shortLived, shortTok := mustCreateSession(t, s,
		store.Session{UserID: user.ID, CreatedAt: sessAt, ExpiresAt: sessAt.Add(30 * time.Hour)},
		store.RefreshToken{TokenHash: refreshHash(), ExpiresAt: sessAt.Add(time.Hour)})
	// A sealed successor younger than before stays.
	fresh, f := newSession(t, s, user.ID, sessAt, 30*time.Hour)
	rg := rotateReq(f.TokenHash, before.Add(time.Second), time.Minute)
	mustRotate(t, s, rg, store.Rotated)

	n, err := s.PurgeSessions(ctx, before)
	if err != nil || n != 2 {
		t.Fatalf("PurgeSessions = %d, %v; want 2", n, err)
	}
	for _, id := range []string{expired.ID, revoked.ID} {
		if _, err := s.GetSession(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSession(%s) after purge: err = %v, want ErrNotFound", id, err)
		}
	}
	for _, h := range []string{expiredTok.TokenHash, revokedTok.TokenHash, shortTok.TokenHash} {
		if _, err := s.GetRefreshTokenByHash(ctx, h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("token of a purged session or expired: err = %v, want ErrNotFound", err)
		}
	}
	for _, id := range []string{endsAtBefore.ID, revokedLater.ID, live.ID, shortLived.ID, fresh.ID} {
		mustGetSession(t, s, id)
	}
	if got := mustGetToken(t, s, b.TokenHash).SealedSuccessor; got != "" {
		t.Errorf("B's sealed successor from before the cutoff survived the purge: %q", got)
	}
	if got := mustGetToken(t, s, f.TokenHash).SealedSuccessor; got != rg.SealedNext {
		t.Errorf("a sealed successor from after the cutoff = %q, want %q", got, rg.SealedNext)
	}
	// The live chain still works, and its rotated tokens still reveal reuse.
	mustRotate(t, s, rotateReq(c.TokenHash, before, time.Minute), store.Rotated)
	mustRotate(t, s, rotateReq(a.TokenHash, before, time.Minute), store.ReuseDetected)
	if n, err := s.PurgeSessions(ctx, before); err != nil || n != 0 {
		t.Errorf("PurgeSessions again = %d, %v; want 0", n, err)
	}
}

func testSessionUserDeletion(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("gone@example.com"))
	kept := mustCreateUser(t, s, newUser("kept@example.com"))
	x, a := newSession(t, s, user.ID, sessAt, time.Hour)
	mustRotate(t, s, rotateReq(a.TokenHash, sessAt, time.Minute), store.Rotated)
	y, b := newSession(t, s, kept.ID, sessAt, time.Hour)
	if err := rawExec(t, s).RawExec(ctx, "DELETE FROM users WHERE id = '"+user.ID+"'"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, x.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session of a deleted user: err = %v, want ErrNotFound", err)
	}
	if n := countFamily(t, s, x.ID, "id = id"); n != 0 {
		t.Errorf("%d tokens of a deleted user remain", n)
	}
	mustGetSession(t, s, y.ID)
	mustGetToken(t, s, b.TokenHash)
}

func testSessionsMigrationDown(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := s.Migrator()
	status, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) < 4 || status[3].Version != 4 || status[3].Name != "sessions" {
		t.Fatalf("Status = %+v, want migration 4 named sessions", status)
	}
	// A session with every column the current schema has, so that the
	// later migrations' down steps run over rows too.
	user := mustCreateUser(t, s, newUser("down@example.com"))
	mustCreateSession(t, s,
		store.Session{UserID: user.ID, CreatedAt: sessAt, ExpiresAt: sessAt.Add(time.Hour), AMR: []string{"pwd"}, Audience: []string{"https://api.example.com"}, Scope: "openid"},
		store.RefreshToken{TokenHash: refreshHash(), Scope: "openid"})
	for len(status) > 4 { // later migrations first
		if _, err := m.Down(ctx); err != nil {
			t.Fatal(err)
		}
		status = status[:len(status)-1]
	}
	if got, err := m.Down(ctx); err != nil || got.Version != 4 {
		t.Fatalf("Down = %+v, %v; want version 4", got, err)
	}
	for _, table := range []string{"sessions", "refresh_tokens", "oauth_clients"} {
		if err := rawExec(t, s).RawExec(ctx, "CREATE TABLE "+table+" (x INTEGER)"); err != nil {
			t.Errorf("table %s survived the down migration: %v", table, err)
		}
		if err := rawExec(t, s).RawExec(ctx, "DROP TABLE "+table); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("Up again: %v", err)
	}
	newSession(t, s, user.ID, sessAt, time.Hour)
}

func testClientCRUD(t *testing.T, s store.Store) {
	ctx := context.Background()
	full := store.Client{
		ID:         "gh_full",
		Name:       "Billing service",
		SecretHash: refreshHash(),
		Scopes:     []string{"introspect", "revoke"},
		CreatedAt:  sessAt.Add(2 * time.Minute).In(time.FixedZone("X", -3600)),
		UpdatedAt:  sessAt.Add(3 * time.Minute),
		DisabledAt: sessAt.Add(4 * time.Minute),
	}
	got, err := s.CreateClient(ctx, full)
	if err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	want := full
	want.CreatedAt, want.UpdatedAt, want.DisabledAt = micro(full.CreatedAt), micro(full.UpdatedAt), micro(full.DisabledAt)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CreateClient returned (-want +got):\n%s", diff)
	}
	if g, err := s.GetClient(ctx, "gh_full"); err != nil {
		t.Errorf("GetClient: %v", err)
	} else if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("GetClient (-want +got):\n%s", diff)
	}

	// Defaults: CreatedAt now, UpdatedAt = CreatedAt, no scopes, optional
	// strings NULL.
	minimal, err := s.CreateClient(ctx, store.Client{ID: "gh_minimal"})
	if err != nil {
		t.Fatalf("CreateClient(minimal): %v", err)
	}
	checkNow(t, "CreatedAt", minimal.CreatedAt)
	if !minimal.UpdatedAt.Equal(minimal.CreatedAt) || len(minimal.Scopes) != 0 || !minimal.DisabledAt.IsZero() {
		t.Errorf("minimal client = %+v, want UpdatedAt = CreatedAt, no scopes, not disabled", minimal)
	}
	if n := count(t, s, "SELECT count(*) FROM oauth_clients WHERE id = 'gh_minimal' AND name IS NULL AND secret_hash IS NULL AND disabled_at IS NULL"); n != 1 {
		t.Error("empty optional fields of the client not stored as NULL")
	}
	early, err := s.CreateClient(ctx, store.Client{ID: "gh_early", Name: "Early", CreatedAt: sessAt, Scopes: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	tie, err := s.CreateClient(ctx, store.Client{ID: "gh_early2", CreatedAt: sessAt})
	if err != nil {
		t.Fatal(err)
	}

	for _, dup := range []store.Client{{ID: "gh_full"}, {ID: "gh_early", Name: "Other", CreatedAt: sessAt.Add(time.Hour)}} {
		if _, err := s.CreateClient(ctx, dup); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateClient(duplicate %s): err = %v, want ErrConflict", dup.ID, err)
		}
	}
	if g, err := s.GetClient(ctx, "gh_early"); err != nil || g.Name != "Early" {
		t.Errorf("GetClient after a duplicate create = %+v, %v; want the original", g, err)
	}

	list, err := s.ListClients(ctx)
	if err != nil {
		t.Fatalf("ListClients: %v", err)
	}
	// minimal was created now, years before sessAt.
	if diff := cmp.Diff([]store.Client{minimal, early, tie, want}, list, equateEmpty); diff != "" {
		t.Errorf("ListClients, oldest first (-want +got):\n%s", diff)
	}

	if err := s.DeleteClient(ctx, "gh_full"); err != nil {
		t.Fatalf("DeleteClient: %v", err)
	}
	for _, id := range []string{"gh_full", "gh_unknown", "", "GH_EARLY", "\xff"} {
		if _, err := s.GetClient(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetClient(%q): err = %v, want ErrNotFound", id, err)
		}
		if err := s.DeleteClient(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteClient(%q): err = %v, want ErrNotFound", id, err)
		}
	}
	list, err = s.ListClients(ctx)
	if err != nil || len(list) != 3 {
		t.Errorf("ListClients after delete = %d clients, %v; want 3", len(list), err)
	}
	// The ID is free again.
	if _, err := s.CreateClient(ctx, store.Client{ID: "gh_full"}); err != nil {
		t.Errorf("CreateClient with a deleted client's ID: %v", err)
	}
}

func testClientInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	for name, c := range map[string]store.Client{
		"no ID":              {Name: "x"},
		"NUL in ID":          {ID: "a\x00b"},
		"invalid UTF-8 name": {ID: "gh_x", Name: "\xff"},
		"empty scope":        {ID: "gh_y", Scopes: []string{"a", ""}},
		"public with secret": {ID: "gh_z", Public: true, SecretHash: refreshHash()},
	} {
		_, err := s.CreateClient(ctx, c)
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want a validation error", name, err)
		}
	}
	if list, err := s.ListClients(ctx); err != nil || len(list) != 0 {
		t.Errorf("ListClients = %d clients, %v; want none", len(list), err)
	}
}

// testClientPublic: a public client is stored as one, without a secret, and
// reads back as one from GetClient and ListClients; a confidential client
// (the default) reads back as not public.
func testClientPublic(t *testing.T, s store.Store) {
	ctx := context.Background()
	pub, err := s.CreateClient(ctx, store.Client{ID: "gh_spa", Name: "Single-page app", Public: true, CreatedAt: sessAt})
	if err != nil {
		t.Fatalf("CreateClient(public): %v", err)
	}
	conf, err := s.CreateClient(ctx, store.Client{ID: "gh_api", Name: "API", SecretHash: refreshHash(), CreatedAt: sessAt.Add(time.Second)})
	if err != nil {
		t.Fatalf("CreateClient(confidential): %v", err)
	}
	if !pub.Public || pub.SecretHash != "" || conf.Public {
		t.Errorf("created: public client %+v, confidential %+v", pub, conf)
	}
	if g, err := s.GetClient(ctx, "gh_spa"); err != nil || !g.Public || g.SecretHash != "" {
		t.Errorf("GetClient(public) = %+v, %v; want Public and no secret", g, err)
	}
	if g, err := s.GetClient(ctx, "gh_api"); err != nil || g.Public {
		t.Errorf("GetClient(confidential) = %+v, %v; want not Public", g, err)
	}
	list, err := s.ListClients(ctx)
	if err != nil {
		t.Fatalf("ListClients: %v", err)
	}
	if diff := cmp.Diff([]store.Client{pub, conf}, list, equateEmpty); diff != "" {
		t.Errorf("ListClients (-want +got):\n%s", diff)
	}
	if n := count(t, s, "SELECT count(*) FROM oauth_clients WHERE id = 'gh_spa' AND secret_hash IS NULL"); n != 1 {
		t.Error("the public client is not stored without a secret")
	}
}

// testStartSessionRiskProfile: a sign-in stores the user's risk profile in
// the same step when it carries one, replacing the previous one, and not
// when the sign-in is refused (a password changed since it was checked);
// a profile that is not a JSON object is refused with nothing written.
func testStartSessionRiskProfile(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("learn@example.com"))
	sign := func(at time.Time, profile string, checked string) error {
		t.Helper()
		_, _, err := s.StartSession(ctx, store.SignIn{
			Session:             store.Session{UserID: user.ID, CreatedAt: at, ExpiresAt: at.Add(time.Hour), AMR: []string{"pwd"}, AuthTime: at},
			First:               store.RefreshToken{TokenHash: refreshHash()},
			CheckedPasswordHash: checked,
			Event:               store.AuditEvent{OccurredAt: at, SubjectID: user.ID, Action: "user.logged_in"},
			RiskProfile:         &store.RiskProfile{Profile: []byte(profile), UpdatedAt: at},
		})
		return err
	}
	if err := sign(sessAt, `{"n":1}`, user.PasswordHash); err != nil {
		t.Fatalf("StartSession with a profile: %v", err)
	}
	if p, err := s.GetRiskProfile(ctx, user.ID); err != nil || string(p.Profile) != `{"n":1}` || !p.UpdatedAt.Equal(micro(sessAt)) {
		t.Fatalf("profile after the sign-in = %s %v %v", p.Profile, p.UpdatedAt, err)
	}
	if err := sign(sessAt.Add(time.Minute), `{"n":2}`, ""); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.GetRiskProfile(ctx, user.ID); string(p.Profile) != `{"n":2}` {
		t.Errorf("profile after the second sign-in = %s, want it replaced", p.Profile)
	}
	stale := "$argon2id$v=19$m=19456,t=2,p=1$c3RhbGVzYWx0$c3RhbGVoYXNoc3RhbGVoYXNoc3RhbGVoYXNoMTIz"
	if err := sign(sessAt.Add(2*time.Minute), `{"n":3}`, stale); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused sign-in: %v, want ErrNotFound", err)
	}
	if err := sign(sessAt.Add(3*time.Minute), `[1]`, ""); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("a profile that is no JSON object: %v, want an error", err)
	}
	if p, _ := s.GetRiskProfile(ctx, user.ID); string(p.Profile) != `{"n":2}` {
		t.Errorf("profile after refused sign-ins = %s, want {\"n\":2}", p.Profile)
	}
	if list, _ := s.ListUserSessions(ctx, user.ID, sessAt); len(list) != 2 {
		t.Errorf("%d sessions, want the 2 recorded", len(list))
	}
}

// testStartSession checks the one-step record of a sign-in: the user's
// LastLoginAt (and an upgraded hash), the session with its first token and
// the audit event, or nothing at all for a user that is gone.
func testStartSession(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("start@example.com"))
	data := map[string]any{"amr": []any{"pwd"}}
	in := store.SignIn{
		Session: store.Session{
			UserID: user.ID, CreatedAt: sessAt, ExpiresAt: sessAt.Add(time.Hour), IP: "192.0.2.9", AMR: []string{"pwd"}, AuthTime: sessAt, Audience: []string{"https://api.example.com"}, Scope: "openid read:invoices",
			Country: "AU", City: "Sydney", ASN: 1221, Risk: &store.SessionRisk{Score: 50, Reasons: []string{"impossible_travel"}},
		},
		First: store.RefreshToken{TokenHash: refreshHash(), Scope: "openid read:invoices"},
		Event: store.AuditEvent{OccurredAt: sessAt, ActorID: user.ID, SubjectID: user.ID, Action: "user.logged_in", Data: data},
	}
	sess, got, err := s.StartSession(ctx, in)
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	if !slices.Equal(sess.Audience, in.Session.Audience) {
		t.Errorf("session Audience = %q, want %q", sess.Audience, in.Session.Audience)
	}
	if !got.LastLoginAt.Equal(micro(sessAt)) || got.PasswordHash != user.PasswordHash || got.ID != user.ID {
		t.Errorf("user after StartSession: LastLoginAt %v, hash changed %v; want %v, unchanged", got.LastLoginAt, got.PasswordHash != user.PasswordHash, micro(sessAt))
	}
	if diff := cmp.Diff(sess, mustGetSession(t, s, sess.ID), equateEmpty); diff != "" {
		t.Errorf("stored session (-returned +stored):\n%s", diff)
	}
	if sess.Country != "AU" || sess.City != "Sydney" || sess.ASN != 1221 || !cmp.Equal(sess.Risk, in.Session.Risk) {
		t.Errorf("session location and risk = %q %q %d %+v, want those of the sign-in", sess.Country, sess.City, sess.ASN, sess.Risk)
	}
	if sess.UserID != user.ID || sess.IP != "192.0.2.9" || !sess.CreatedAt.Equal(micro(sessAt)) {
		t.Errorf("session = %+v", sess)
	}
	if tok := mustGetToken(t, s, in.First.TokenHash); tok.SessionID != sess.ID || tok.UserID != user.ID {
		t.Errorf("first token = %+v, want it in session %s", tok, sess.ID)
	}
	events, _, err := s.ListAuditEvents(ctx, store.AuditFilter{SubjectID: user.ID})
	if err != nil || len(events) != 1 || events[0].Action != "user.logged_in" || events[0].Data["session_id"] != sess.ID {
		t.Errorf("audit events = %+v, %v; want one user.logged_in with session_id %s", events, err, sess.ID)
	}
	if _, ok := data["session_id"]; ok {
		t.Errorf("StartSession wrote into the caller's event data")
	}
	if stored, err := s.GetUser(ctx, user.ID); err != nil || !stored.LastLoginAt.Equal(micro(sessAt)) {
		t.Errorf("stored user LastLoginAt = %v, %v", stored.LastLoginAt, err)
	}

	// A rotation returns the session with what it was granted, and the
	// successor keeps the scope.
	rot := mustRotate(t, s, rotateReq(in.First.TokenHash, sessAt.Add(time.Minute), 0), store.Rotated)
	if !slices.Equal(rot.Session.Audience, in.Session.Audience) || rot.Issued.Scope != "openid read:invoices" {
		t.Errorf("rotated: session Audience %q, successor scope %q; want %q and the first token's", rot.Session.Audience, rot.Issued.Scope, in.Session.Audience)
	}

	// A rehash at login replaces the password hash.
	in.First.TokenHash, in.PasswordHash = refreshHash(), "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	in.Session.CreatedAt = sessAt.Add(time.Minute)
	if _, got, err = s.StartSession(ctx, in); err != nil || got.PasswordHash != in.PasswordHash || !got.LastLoginAt.Equal(micro(sessAt.Add(time.Minute))) {
		t.Errorf("StartSession with a new hash: %v; user hash %q, LastLoginAt %v", err, got.PasswordHash, got.LastLoginAt)
	}

	// A password changed since it was checked: ErrNotFound, and nothing is
	// written; the hash that was checked (with or without a rehash) passes.
	current, err := s.GetUser(ctx, user.ID)
	if err != nil {
		t.Fatal(err)
	}
	stale := in
	stale.Session.CreatedAt = sessAt.Add(2 * time.Minute)
	stale.CheckedPasswordHash = "$argon2id$v=19$m=19456,t=2,p=1$c3RhbGVzYWx0$c3RhbGVoYXNoc3RhbGVoYXNoc3RhbGVoYXNoMTIz"
	if current.PasswordHash == "" || current.PasswordHash == stale.CheckedPasswordHash {
		t.Fatalf("set-up: the user's hash %q must differ from the checked one", current.PasswordHash)
	}
	for _, rehash := range []string{"", "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0$b3RoZXJoYXNob3RoZXJoYXNob3RoZXJoYXNoMTI"} {
		stale.First.TokenHash, stale.PasswordHash = refreshHash(), rehash
		if _, _, err := s.StartSession(ctx, stale); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("StartSession after the password changed (rehash %q): %v, want ErrNotFound", rehash, err)
		}
		if _, err := s.GetRefreshTokenByHash(ctx, stale.First.TokenHash); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("StartSession after the password changed left its token behind: %v", err)
		}
	}
	if after, err := s.GetUser(ctx, user.ID); err != nil || after.PasswordHash != current.PasswordHash || !after.LastLoginAt.Equal(current.LastLoginAt) {
		t.Errorf("StartSession after the password changed wrote the user: hash changed %v, LastLoginAt %v (was %v), %v",
			after.PasswordHash != current.PasswordHash, after.LastLoginAt, current.LastLoginAt, err)
	}
	if list, err := s.ListUserSessions(ctx, user.ID, sessAt); err != nil || len(list) != 2 {
		t.Errorf("sessions after the refused sign-ins: %d (%v), want the 2 from before", len(list), err)
	}
	if events, _, err := s.ListAuditEvents(ctx, store.AuditFilter{SubjectID: user.ID}); err != nil || len(events) != 2 {
		t.Errorf("audit events after the refused sign-ins: %d (%v), want 2", len(events), err)
	}
	fresh := stale
	fresh.First.TokenHash, fresh.PasswordHash = refreshHash(), ""
	fresh.CheckedPasswordHash = current.PasswordHash
	if _, got, err := s.StartSession(ctx, fresh); err != nil || !got.LastLoginAt.Equal(micro(fresh.Session.CreatedAt)) {
		t.Errorf("StartSession with the current hash checked: %v (LastLoginAt %v)", err, got.LastLoginAt)
	}
	fresh.First.TokenHash, fresh.PasswordHash = refreshHash(), "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2huZXdoYXNobmV3aGFzaDEy"
	fresh.Session.CreatedAt = sessAt.Add(3 * time.Minute)
	if _, got, err := s.StartSession(ctx, fresh); err != nil || got.PasswordHash != fresh.PasswordHash {
		t.Errorf("StartSession with the current hash checked and a rehash: %v (hash replaced %v)", err, got.PasswordHash == fresh.PasswordHash)
	} else if tok := mustGetToken(t, s, fresh.First.TokenHash); tok.UserID != user.ID {
		t.Errorf("first token after a checked rehash = %+v", tok)
	}

	// A password sign-in of a user who must reset the password (a sign-in
	// was disowned meanwhile): ErrNotFound, and nothing is written; a
	// sign-in without a password (social, magic link) still starts.
	disowned, err := s.GetUser(ctx, user.ID)
	if err != nil {
		t.Fatal(err)
	}
	disowned.PasswordResetRequiredAt = sessAt
	if _, err := s.UpdateUser(ctx, disowned); err != nil {
		t.Fatal(err)
	}
	for _, rehash := range []string{"", "$argon2id$v=19$m=19456,t=2,p=1$cmVzZXRzYWx0$cmVzZXRoYXNocmVzZXRoYXNocmVzZXRoYXNoMTIz"} {
		blocked := fresh
		blocked.First.TokenHash, blocked.PasswordHash = refreshHash(), rehash
		blocked.CheckedPasswordHash = disowned.PasswordHash
		if _, _, err := s.StartSession(ctx, blocked); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("password StartSession of a user who must reset the password (rehash %q): %v, want ErrNotFound", rehash, err)
		}
		if _, err := s.GetRefreshTokenByHash(ctx, blocked.First.TokenHash); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the refused password sign-in left its token behind: %v", err)
		}
	}
	if after, err := s.GetUser(ctx, user.ID); err != nil || after.PasswordHash != disowned.PasswordHash || !after.LastLoginAt.Equal(disowned.LastLoginAt) {
		t.Errorf("the refused password sign-in wrote the user: %+v, %v", after, err)
	}
	social := fresh
	social.First.TokenHash, social.PasswordHash, social.CheckedPasswordHash = refreshHash(), "", ""
	social.Session.AMR = []string{"fed"}
	if _, got, err := s.StartSession(ctx, social); err != nil || got.PasswordResetRequiredAt.IsZero() {
		t.Errorf("StartSession without a password for a user who must reset it: %v (reset still required %v)", err, !got.PasswordResetRequiredAt.IsZero())
	}
	disowned.PasswordResetRequiredAt = time.Time{}
	if _, err := s.UpdateUser(ctx, disowned); err != nil {
		t.Fatal(err)
	}

	// A deleted, disabled or unknown user: ErrNotFound, and nothing is
	// written.
	gone := mustCreateUser(t, s, newUser("gone@example.com"))
	if err := s.SoftDeleteUser(ctx, gone.ID, sessAt); err != nil {
		t.Fatal(err)
	}
	disabled := mustCreateUser(t, s, newUser("disabled@example.com"))
	disabled.Status = store.UserDisabled
	if _, err := s.UpdateUser(ctx, disabled); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]string{"deleted": gone.ID, "disabled": disabled.ID, "unknown": uuid.NewString()} {
		bad := in
		bad.Session.UserID, bad.PasswordHash = id, ""
		bad.First.TokenHash = refreshHash()
		bad.Event.SubjectID, bad.Event.ActorID = id, id
		if _, _, err := s.StartSession(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("StartSession for a %s user: %v, want ErrNotFound", name, err)
		}
		if _, err := s.GetRefreshTokenByHash(ctx, bad.First.TokenHash); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("StartSession for a %s user left its token behind: %v", name, err)
		}
		if list, err := s.ListUserSessions(ctx, id, sessAt); err != nil || len(list) != 0 {
			t.Errorf("StartSession for a %s user left sessions %+v (%v)", name, list, err)
		}
		if events, _, _ := s.ListAuditEvents(ctx, store.AuditFilter{SubjectID: id}); len(events) != 0 {
			t.Errorf("StartSession for a %s user left %d audit events", name, len(events))
		}
	}

	// Inside InTx it joins the transaction: a rollback undoes it.
	errRollback := errors.New("rollback")
	in.First.TokenHash, in.PasswordHash = refreshHash(), ""
	err = s.InTx(ctx, func(tx store.Store) error {
		if _, _, err := tx.StartSession(ctx, in); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx = %v, want the rollback", err)
	}
	if _, err := s.GetRefreshTokenByHash(ctx, in.First.TokenHash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a rolled-back StartSession left its token: %v", err)
	}
}

// testRevokeWaitsForSignIn checks that ending all of a user's sessions
// waits for a sign-in being recorded at that moment, and ends its session
// too, instead of missing it because it was not committed yet.
func testRevokeWaitsForSignIn(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("racing@example.com"))
	in := store.SignIn{
		Session: store.Session{UserID: user.ID, CreatedAt: sessAt, ExpiresAt: sessAt.Add(time.Hour), AMR: []string{"pwd"}, AuthTime: sessAt},
		First:   store.RefreshToken{TokenHash: refreshHash()},
		Event:   store.AuditEvent{OccurredAt: sessAt, ActorID: user.ID, SubjectID: user.ID, Action: "user.logged_in"},
	}
	type result struct {
		ids []string
		err error
	}
	revoked := make(chan result, 1)
	var sess store.Session
	err := s.InTx(ctx, func(tx store.Store) error {
		var err error
		if sess, _, err = tx.StartSession(ctx, in); err != nil {
			return err
		}
		go func() {
			ids, err := s.RevokeUserSessions(ctx, user.ID, "", "logout_all", sessAt.Add(time.Second))
			revoked <- result{ids, err}
		}()
		// A revocation that does not wait for this transaction finishes
		// now, without the session; one that waits cannot finish before
		// the commit below.
		select {
		case r := <-revoked:
			t.Errorf("RevokeUserSessions finished (%v, %v) while a sign-in was still being recorded", r.ids, r.err)
			revoked <- r
		case <-time.After(300 * time.Millisecond):
		}
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	r := <-revoked
	if r.err != nil || !slices.Contains(r.ids, sess.ID) {
		t.Errorf("RevokeUserSessions = %v, %v; want it to end the session %s", r.ids, r.err, sess.ID)
	}
	if got := mustGetSession(t, s, sess.ID); got.RevokedAt.IsZero() {
		t.Errorf("the session signed in during the revocation is live: %+v", got)
	}
}

// testClientRateLimits: a client's rate-limit tier and exemption are stored
// at creation and changed by SetClientRateLimits, which touches nothing
// else.
func testClientRateLimits(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, err := s.CreateClient(ctx, store.Client{ID: "gh_tiered", Name: "Partner", Scopes: []string{"introspect"}, CreatedAt: sessAt, RateLimitTier: "enterprise", RateLimitExempt: true})
	if err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	if c.RateLimitTier != "enterprise" || !c.RateLimitExempt {
		t.Errorf("created %+v, want tier enterprise, exempt", c)
	}
	plain, err := s.CreateClient(ctx, store.Client{ID: "gh_plain", CreatedAt: sessAt})
	if err != nil || plain.RateLimitTier != "" || plain.RateLimitExempt {
		t.Fatalf("plain client = %+v, %v; want no tier, not exempt", plain, err)
	}
	if n := count(t, s, "SELECT count(*) FROM oauth_clients WHERE id = 'gh_plain' AND rate_limit_tier IS NULL"); n != 1 {
		t.Error("an empty tier is not stored as NULL")
	}
	at := sessAt.Add(time.Hour)
	got, err := s.SetClientRateLimits(ctx, "gh_tiered", "free", false, at)
	if err != nil {
		t.Fatalf("SetClientRateLimits: %v", err)
	}
	want := c
	want.RateLimitTier, want.RateLimitExempt, want.UpdatedAt = "free", false, micro(at)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SetClientRateLimits returned (-want +got):\n%s", diff)
	}
	if g, err := s.GetClient(ctx, "gh_tiered"); err != nil || !cmp.Equal(want, g) {
		t.Errorf("GetClient after SetClientRateLimits = %+v, %v; want %+v", g, err, want)
	}
	if got, err := s.SetClientRateLimits(ctx, "gh_tiered", "", false, at); err != nil || got.RateLimitTier != "" {
		t.Errorf("clearing the tier = %+v, %v", got, err)
	}
	for _, id := range []string{"gh_unknown", "", "\xff"} {
		if _, err := s.SetClientRateLimits(ctx, id, "free", false, at); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetClientRateLimits(%q): err = %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s.SetClientRateLimits(ctx, "gh_plain", "bad\x00tier", false, at); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("a tier with NUL: err = %v, want a validation error", err)
	}
}
