package sqlrow

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse/gatehouse/internal/store"
)

func TestClassifyRotation(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	sess := store.Session{ExpiresAt: now.Add(time.Hour)}
	live := store.RefreshToken{ExpiresAt: now.Add(time.Hour)}
	rotated := live
	rotated.RotatedAt, rotated.SuccessorID = now.Add(-5*time.Second), "succ"
	with := func(t store.RefreshToken, f func(*store.RefreshToken)) store.RefreshToken { f(&t); return t }
	revokedSess := sess
	revokedSess.RevokedAt = now.Add(-time.Minute)
	expiredSess := sess
	expiredSess.ExpiresAt = now

	for _, tc := range []struct {
		name  string
		tok   store.RefreshToken
		sess  store.Session
		succ  store.RefreshToken
		found bool
		grace time.Duration
		want  store.RotateOutcome
	}{
		{"live", live, sess, store.RefreshToken{}, false, 0, store.Rotated},
		{"live, idle expiry ahead", with(live, func(t *store.RefreshToken) { t.IdleExpiresAt = now.Add(time.Microsecond) }), sess, store.RefreshToken{}, false, 0, store.Rotated},
		{"live, idle expired", with(live, func(t *store.RefreshToken) { t.IdleExpiresAt = now }), sess, store.RefreshToken{}, false, 0, store.Invalid},
		{"live, token expired", with(live, func(t *store.RefreshToken) { t.ExpiresAt = now }), sess, store.RefreshToken{}, false, 0, store.Invalid},
		{"live, revoked", with(live, func(t *store.RefreshToken) { t.RevokedAt = now }), sess, store.RefreshToken{}, false, 0, store.Invalid},
		{"live, session revoked", live, revokedSess, store.RefreshToken{}, false, 0, store.Invalid},
		{"live, session expired", live, expiredSess, store.RefreshToken{}, false, 0, store.Invalid},
		{"rotated, in grace, successor live", rotated, sess, live, true, 10 * time.Second, store.GraceReplay},
		{"rotated, at the end of grace", rotated, sess, live, true, 5 * time.Second, store.GraceReplay},
		{"rotated, past grace", rotated, sess, live, true, 5*time.Second - time.Microsecond, store.ReuseDetected},
		{"rotated, idle expired, in grace", with(rotated, func(t *store.RefreshToken) { t.IdleExpiresAt = now }), sess, live, true, 10 * time.Second, store.GraceReplay},
		{"rotated, no grace", rotated, sess, live, true, 0, store.ReuseDetected},
		{"rotated, successor rotated", rotated, sess, rotated, true, 10 * time.Second, store.ReuseDetected},
		{"rotated, successor revoked", rotated, sess, with(live, func(t *store.RefreshToken) { t.RevokedAt = now }), true, 10 * time.Second, store.ReuseDetected},
		{"rotated, successor gone", rotated, sess, store.RefreshToken{}, false, 10 * time.Second, store.ReuseDetected},
		{"rotated and revoked", with(rotated, func(t *store.RefreshToken) { t.RevokedAt = now }), sess, live, true, 0, store.Invalid},
		{"rotated, session revoked", rotated, revokedSess, live, true, 0, store.Invalid},
		{"rotated, session expired", rotated, expiredSess, live, true, 0, store.Invalid},
	} {
		r := store.RotateRequest{Now: now, Grace: tc.grace}
		if got := ClassifyRotation(tc.tok, tc.sess, tc.succ, tc.found, r); got != tc.want {
			t.Errorf("%s: outcome %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestClassifyRotationClientAndScope: reuse detection first, then client
// binding, then scope; a scope beyond the grant of a never-rotated token
// presented by its own client is refused before anything else.
func TestClassifyRotationClientAndScope(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	sess := store.Session{ExpiresAt: now.Add(time.Hour)}
	live := store.RefreshToken{ClientID: "app", Scope: "read write", ExpiresAt: now.Add(time.Hour)}
	firstParty := store.RefreshToken{ExpiresAt: now.Add(time.Hour)}
	rotated := live
	rotated.RotatedAt, rotated.SuccessorID = now.Add(-5*time.Second), "succ"
	revoked := live
	revoked.RevokedAt = now.Add(-time.Minute)
	const grace = 10 * time.Second

	for _, tc := range []struct {
		name   string
		tok    store.RefreshToken
		succ   store.RefreshToken
		found  bool
		grace  time.Duration
		check  bool
		client string
		scopes []string
		want   store.RotateOutcome
	}{
		{"own client", live, store.RefreshToken{}, false, 0, true, "app", nil, store.Rotated},
		{"no check, other client", live, store.RefreshToken{}, false, 0, false, "other", nil, store.Rotated},
		{"other client", live, store.RefreshToken{}, false, 0, true, "other", nil, store.ClientMismatch},
		{"no client for a client's token", live, store.RefreshToken{}, false, 0, true, "", nil, store.ClientMismatch},
		{"first party without a client", firstParty, store.RefreshToken{}, false, 0, true, "", nil, store.Rotated},
		{"first party with a client", firstParty, store.RefreshToken{}, false, 0, true, "app", nil, store.ClientMismatch},
		{"narrowed", live, store.RefreshToken{}, false, 0, true, "app", []string{"read"}, store.Rotated},
		{"the whole grant", live, store.RefreshToken{}, false, 0, true, "app", []string{"write", "read"}, store.Rotated},
		{"wider", live, store.RefreshToken{}, false, 0, true, "app", []string{"read", "admin"}, store.ScopeNotGranted},
		{"part of a scope name", live, store.RefreshToken{}, false, 0, true, "app", []string{"rea"}, store.ScopeNotGranted},
		{"any scope of a first-party token", firstParty, store.RefreshToken{}, false, 0, true, "", []string{"read"}, store.ScopeNotGranted},
		{"wider, no check", live, store.RefreshToken{}, false, 0, false, "x", []string{"admin"}, store.ScopeNotGranted},
		{"wider from another client", live, store.RefreshToken{}, false, 0, true, "other", []string{"admin"}, store.ClientMismatch},
		{"wider, revoked", revoked, store.RefreshToken{}, false, 0, true, "app", []string{"admin"}, store.ScopeNotGranted},
		{"revoked, other client", revoked, store.RefreshToken{}, false, 0, true, "other", nil, store.Invalid},
		{"grace replay, own client", rotated, live, true, grace, true, "app", []string{"read"}, store.GraceReplay},
		{"grace replay, other client", rotated, live, true, grace, true, "other", nil, store.ClientMismatch},
		{"grace replay, wider", rotated, live, true, grace, true, "app", []string{"admin"}, store.ScopeNotGranted},
		{"grace replay, other client, wider", rotated, live, true, grace, true, "other", []string{"admin"}, store.ClientMismatch},
		{"reuse, other client", rotated, live, true, 0, true, "other", nil, store.ReuseDetected},
		{"reuse, wider", rotated, live, true, 0, true, "app", []string{"admin"}, store.ReuseDetected},
	} {
		r := store.RotateRequest{Now: now, Grace: tc.grace, CheckClient: tc.check, Client: tc.client, Scopes: tc.scopes}
		if got := ClassifyRotation(tc.tok, sess, tc.succ, tc.found, r); got != tc.want {
			t.Errorf("%s: outcome %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestPrepareRotateRequestScopes(t *testing.T) {
	base := store.RotateRequest{Next: store.RefreshToken{TokenHash: "new"}, Client: "app"}
	r, err := PrepareRotateRequest(base, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r.Client != "" || r.Scopes != nil {
		t.Errorf("without CheckClient and Scopes: Client %q, Scopes %#v; want both empty", r.Client, r.Scopes)
	}
	base.Scopes = []string{}
	if r, err = PrepareRotateRequest(base, time.Now()); err != nil || r.Scopes != nil {
		t.Errorf("empty Scopes: %#v, %v; want nil", r.Scopes, err)
	}
	for _, bad := range [][]string{{""}, {"a b"}, {"a\tb"}, {"a\u00a0b"}, {"a\x00"}, {"\xff"}} {
		base.Scopes = bad
		if _, err := PrepareRotateRequest(base, time.Now()); err == nil {
			t.Errorf("Scopes %q accepted", bad)
		}
	}
}

func TestSuccessor(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 123456789, time.UTC)
	presented := store.RefreshToken{
		ID: "p", SessionID: "s", UserID: "u", ClientID: "c", Scope: "openid", TokenHash: "old",
		ExpiresAt: now.Add(time.Hour), RotatedAt: now, SealedSuccessor: "x",
	}
	r, err := PrepareRotateRequest(store.RotateRequest{
		Next: store.RefreshToken{TokenHash: "new", Scope: "ignored", SessionID: "ignored"}, Now: now, IdleTimeout: 2 * time.Hour,
	}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Successor(presented, r)
	if err != nil {
		t.Fatal(err)
	}
	want := store.RefreshToken{
		ID: r.Next.ID, SessionID: "s", UserID: "u", ClientID: "c", Scope: "openid", TokenHash: "new", ParentID: "p",
		CreatedAt: Micro(now), ExpiresAt: Micro(now.Add(time.Hour)), IdleExpiresAt: Micro(now.Add(time.Hour)),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Successor (-want +got):\n%s", diff)
	}
}

func TestLists(t *testing.T) {
	for _, l := range [][]string{nil, {}, {"a"}, {"pwd", "otp", "ü \"q\""}} {
		got, err := DecodeList([]byte(EncodeList(l)))
		if err != nil {
			t.Fatalf("DecodeList(EncodeList(%q)): %v", l, err)
		}
		if len(l) == 0 && got != nil {
			t.Errorf("empty list decoded as %#v, want nil", got)
		}
		if diff := cmp.Diff(l, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip of %q (-want +got):\n%s", l, diff)
		}
	}
	if EncodeList(nil) != "[]" {
		t.Errorf("EncodeList(nil) = %s, want []", EncodeList(nil))
	}
	for _, bad := range []string{"", "{}", "[1]", "null,"} {
		if _, err := DecodeList([]byte(bad)); err == nil {
			t.Errorf("DecodeList(%q) succeeded", bad)
		}
	}
}
