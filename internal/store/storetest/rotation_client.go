package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/store"
)

// The conformance cases of RotateRequest's client binding and scope
// narrowing (store.ClientMismatch, store.ScopeNotGranted).

// clientReq is rotateReq presented by client ("" for first party) asking
// for scopes.
func clientReq(presented string, now time.Time, grace time.Duration, client string, scopes ...string) store.RotateRequest {
	r := rotateReq(presented, now, grace)
	r.CheckClient, r.Client, r.Scopes = true, client, scopes
	return r
}

// newClientSession starts a session of the user through client with a
// first token granted scope.
func newClientSession(t *testing.T, s store.Store, userID, client, scope string) (store.Session, store.RefreshToken) {
	t.Helper()
	return mustCreateSession(t, s,
		store.Session{UserID: userID, ClientID: client, CreatedAt: sessAt, ExpiresAt: sessAt.Add(time.Hour), IP: "192.0.2.1"},
		store.RefreshToken{TokenHash: refreshHash(), Scope: scope})
}

// testRotationClient: a token presented by another client than its own is
// ClientMismatch, and its family is revoked in the same step; reuse
// detection comes first; without CheckClient any client may present it.
func testRotationClient(t *testing.T, s store.Store) {
	user := mustCreateUser(t, s, newUser("client@example.com"))
	const grace = 10 * time.Second
	t1 := sessAt.Add(time.Minute)

	// A live token: its own client rotates it, another client kills it.
	x, a := newClientSession(t, s, user.ID, "gh_app", "read write")
	b := mustRotate(t, s, clientReq(a.TokenHash, t1, grace, "gh_app"), store.Rotated).Issued
	if b.ClientID != "gh_app" {
		t.Errorf("successor's ClientID = %q, want gh_app", b.ClientID)
	}
	t2 := t1.Add(time.Minute)
	res := mustRotate(t, s, clientReq(b.TokenHash, t2, grace, "gh_other"), store.ClientMismatch)
	if res.Previous.ID != b.ID || res.Previous.SealedSuccessor != "" {
		t.Errorf("ClientMismatch Previous = %+v, want B without a sealed successor", res.Previous)
	}
	if res.Session.ID != x.ID || !res.Session.RevokedAt.Equal(micro(t2)) || res.Session.RevokedReason != "client_mismatch" {
		t.Errorf("ClientMismatch Session = %+v, want it revoked at %v for client_mismatch", res.Session, micro(t2))
	}
	checkFamilyRevoked(t, s, x.ID, t2, "client_mismatch")
	if n := countFamily(t, s, x.ID, "id = id"); n != 2 {
		t.Errorf("family has %d tokens after a client mismatch, want 2 (no successor)", n)
	}
	// The family is dead for its own client too, and stays as it is.
	mustRotate(t, s, clientReq(b.TokenHash, t2.Add(time.Second), grace, "gh_app"), store.Invalid)
	mustRotate(t, s, clientReq(b.TokenHash, t2.Add(time.Second), grace, "gh_other"), store.Invalid)
	checkFamilyRevoked(t, s, x.ID, t2, "client_mismatch")

	// No client authentication ("") for a client's token, and a client for
	// a first-party token (ClientID "", stored without a client).
	for _, c := range []struct{ owner, presenter string }{{"gh_app", ""}, {"", "gh_app"}} {
		x, a := newClientSession(t, s, user.ID, c.owner, "")
		mustRotate(t, s, clientReq(a.TokenHash, t1, grace, c.presenter), store.ClientMismatch)
		checkFamilyRevoked(t, s, x.ID, t1, "client_mismatch")
	}
	x, a = newClientSession(t, s, user.ID, "", "")
	b = mustRotate(t, s, clientReq(a.TokenHash, t1, grace, ""), store.Rotated).Issued
	if b.ClientID != "" {
		t.Errorf("first-party successor's ClientID = %q, want none", b.ClientID)
	}
	mustRotate(t, s, clientReq(b.TokenHash, t2, grace, ""), store.Rotated)
	if got := mustGetSession(t, s, x.ID); !got.RevokedAt.IsZero() {
		t.Errorf("first-party session revoked: %+v", got)
	}

	// Without CheckClient the client is not looked at.
	_, a = newClientSession(t, s, user.ID, "gh_app", "")
	r := rotateReq(a.TokenHash, t1, grace)
	r.Client = "gh_other"
	mustRotate(t, s, r, store.Rotated)

	// A grace replay by another client is a leak too.
	x, a = newClientSession(t, s, user.ID, "gh_app", "")
	b = mustRotate(t, s, clientReq(a.TokenHash, t1, grace, "gh_app"), store.Rotated).Issued
	mustRotate(t, s, clientReq(a.TokenHash, t1.Add(time.Second), grace, "gh_app"), store.GraceReplay)
	mustRotate(t, s, clientReq(a.TokenHash, t1.Add(2*time.Second), grace, "gh_other"), store.ClientMismatch)
	checkFamilyRevoked(t, s, x.ID, t1.Add(2*time.Second), "client_mismatch")

	// Reuse is detected first, whoever presents the token.
	x, a = newClientSession(t, s, user.ID, "gh_app", "")
	mustRotate(t, s, clientReq(a.TokenHash, t1, grace, "gh_app"), store.Rotated)
	mustRotate(t, s, clientReq(a.TokenHash, t1.Add(time.Hour/2), grace, "gh_other"), store.ReuseDetected)
	checkFamilyRevoked(t, s, x.ID, t1.Add(time.Hour/2), "refresh_token_reuse")

	// A dead token is Invalid, whoever presents it, and nothing changes.
	x, a = newClientSession(t, s, user.ID, "gh_app", "")
	if _, err := s.RevokeSession(context.Background(), x.ID, "logout", t1); err != nil {
		t.Fatal(err)
	}
	mustRotate(t, s, clientReq(a.TokenHash, t2, grace, "gh_other"), store.Invalid)
	checkFamilyRevoked(t, s, x.ID, t1, "logout")
}

// testRotationScope: a refresh may narrow the grant, never widen it
// (RFC 6749 §6); a refused one changes nothing.
func testRotationScope(t *testing.T, s store.Store) {
	user := mustCreateUser(t, s, newUser("scope@example.com"))
	const grace = 10 * time.Second
	t1 := sessAt.Add(time.Minute)

	x, a := newClientSession(t, s, user.ID, "gh_app", "read write")
	for _, asked := range [][]string{{"admin"}, {"read", "admin"}, {"rea"}, {"READ"}} {
		res := mustRotate(t, s, clientReq(a.TokenHash, t1, grace, "gh_app", asked...), store.ScopeNotGranted)
		if res.Previous.ID != a.ID || res.Session.ID != x.ID || !res.Session.RevokedAt.IsZero() {
			t.Errorf("ScopeNotGranted for %q: Previous %+v, Session %+v", asked, res.Previous, res.Session)
		}
	}
	if diff := cmp.Diff(a, mustGetToken(t, s, a.TokenHash)); diff != "" {
		t.Errorf("a refused scope changed the token (-want +got):\n%s", diff)
	}
	if got := mustGetSession(t, s, x.ID); !got.LastSeenAt.Equal(x.LastSeenAt) || !got.RevokedAt.IsZero() {
		t.Errorf("a refused scope changed the session: %+v", got)
	}
	if n := countFamily(t, s, x.ID, "id = id"); n != 1 {
		t.Errorf("family has %d tokens after refused scopes, want 1", n)
	}

	// Narrowed: the successor keeps the whole grant.
	res := mustRotate(t, s, clientReq(a.TokenHash, t1, grace, "gh_app", "read"), store.Rotated)
	b := res.Issued
	if b.Scope != "read write" {
		t.Errorf("successor of a narrowed refresh has scope %q, want the grant \"read write\"", b.Scope)
	}
	// A grace replay is held to the grant too, and a refused one does
	// not stop the replay that follows.
	mustRotate(t, s, clientReq(a.TokenHash, t1.Add(time.Second), grace, "gh_app", "admin"), store.ScopeNotGranted)
	res = mustRotate(t, s, clientReq(a.TokenHash, t1.Add(time.Second), grace, "gh_app", "write"), store.GraceReplay)
	if res.Previous.SuccessorID != b.ID {
		t.Errorf("grace replay after a refused scope replays %s, want %s", res.Previous.SuccessorID, b.ID)
	}
	mustRotate(t, s, clientReq(b.TokenHash, t1.Add(2*time.Second), grace, "gh_app", "write", "read"), store.Rotated)

	// A first-party token has no scope to narrow.
	_, fp := newClientSession(t, s, user.ID, "", "")
	mustRotate(t, s, clientReq(fp.TokenHash, t1, grace, "", "read"), store.ScopeNotGranted)
	mustRotate(t, s, clientReq(fp.TokenHash, t1, grace, ""), store.Rotated)

	// The grant's scopes are what strings.Fields makes of it, on both
	// backends (PostgreSQL's fast path splits on spaces only).
	_, odd := mustCreateSession(t, s,
		store.Session{UserID: user.ID, ClientID: "gh_app", CreatedAt: sessAt, ExpiresAt: sessAt.Add(time.Hour)},
		store.RefreshToken{TokenHash: refreshHash(), Scope: " read\twrite  admin "})
	mustRotate(t, s, clientReq(odd.TokenHash, t1, grace, "gh_app", "write", "admin"), store.Rotated)

	// Scope is refused first for a token never rotated, presented by its
	// client, even a revoked one (as the token endpoint always answered);
	// reuse is detected before scope.
	x, a = newClientSession(t, s, user.ID, "gh_app", "read")
	if _, err := s.RevokeSession(context.Background(), x.ID, "logout", t1); err != nil {
		t.Fatal(err)
	}
	mustRotate(t, s, clientReq(a.TokenHash, t1, grace, "gh_app", "admin"), store.ScopeNotGranted)
	mustRotate(t, s, clientReq(a.TokenHash, t1, grace, "gh_app", "read"), store.Invalid)
	x, a = newClientSession(t, s, user.ID, "gh_app", "read")
	mustRotate(t, s, clientReq(a.TokenHash, t1, grace, "gh_app"), store.Rotated)
	mustRotate(t, s, clientReq(a.TokenHash, t1.Add(time.Hour/2), grace, "gh_app", "admin"), store.ReuseDetected)
	checkFamilyRevoked(t, s, x.ID, t1.Add(time.Hour/2), "refresh_token_reuse")
}

// testRotationClientScopeInvalid: malformed clients and scopes are
// validation errors that change nothing.
func testRotationClientScopeInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("scopeinvalid@example.com"))
	x, a := newClientSession(t, s, user.ID, "gh_app", "read")
	for name, r := range map[string]store.RotateRequest{
		"empty scope":      clientReq(a.TokenHash, sessAt, 0, "gh_app", "read", ""),
		"space in scope":   clientReq(a.TokenHash, sessAt, 0, "gh_app", "read write"),
		"tab in scope":     clientReq(a.TokenHash, sessAt, 0, "gh_app", "read\twrite"),
		"NUL in scope":     clientReq(a.TokenHash, sessAt, 0, "gh_app", "read\x00"),
		"invalid UTF-8":    clientReq(a.TokenHash, sessAt, 0, "gh_app", "\xff"),
		"NUL in client ID": clientReq(a.TokenHash, sessAt, 0, "gh_app\x00"),
	} {
		res, err := s.RotateRefreshToken(ctx, r)
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: %s, %v; want a validation error", name, outcomeName(res.Outcome), err)
		}
	}
	if n := countFamily(t, s, x.ID, liveToken); n != 1 || !mustGetToken(t, s, a.TokenHash).RotatedAt.IsZero() {
		t.Error("a refused request left changes behind")
	}
	mustRotate(t, s, clientReq(a.TokenHash, sessAt, 0, "gh_app", "read"), store.Rotated)
}

// testRotationParallelClient fires n refreshes of one token at once: by
// the wrong client, exactly one decides (ClientMismatch, the family
// revoked once, at its time) and the others find it revoked; by the right
// client asking for too wide a scope, none rotates anything.
func testRotationParallelClient(t *testing.T, s store.Store) {
	user := mustCreateUser(t, s, newUser("parallelclient@example.com"))
	for round := range 3 {
		t.Run(fmt.Sprintf("round%d", round+1), func(t *testing.T) {
			t1 := sessAt.Add(time.Minute)
			x, a := newClientSession(t, s, user.ID, "gh_app", "read")
			reqs, results := rotateAtOnce(t, s, x.ID, 50, func(i int) store.RotateRequest {
				// Each at its own time, so the revocation shows whose it is.
				return clientReq(a.TokenHash, t1.Add(time.Duration(i)*time.Millisecond), 10*time.Second, "gh_other")
			})
			outcomes := map[store.RotateOutcome]int{}
			winner := -1
			for i, res := range results {
				outcomes[res.Outcome]++
				if res.Outcome == store.ClientMismatch {
					winner = i
				}
			}
			if outcomes[store.ClientMismatch] != 1 || outcomes[store.Invalid] != len(results)-1 {
				t.Fatalf("outcomes %v: want one ClientMismatch and %d Invalid", outcomes, len(results)-1)
			}
			checkFamilyRevoked(t, s, x.ID, reqs[winner].Now, "client_mismatch")
			if n := countFamily(t, s, x.ID, "id = id"); n != 1 {
				t.Errorf("family has %d tokens, want 1 (nothing rotated)", n)
			}

			x, a = newClientSession(t, s, user.ID, "gh_app", "read")
			_, results = rotateAtOnce(t, s, x.ID, 50, func(int) store.RotateRequest {
				return clientReq(a.TokenHash, t1, 10*time.Second, "gh_app", "read", "write")
			})
			for i, res := range results {
				if res.Outcome != store.ScopeNotGranted {
					t.Fatalf("#%d: outcome %s, want ScopeNotGranted", i, outcomeName(res.Outcome))
				}
			}
			if diff := cmp.Diff(a, mustGetToken(t, s, a.TokenHash)); diff != "" {
				t.Errorf("refused scopes changed the token (-want +got):\n%s", diff)
			}
			if n := countFamily(t, s, x.ID, "id = id"); n != 1 {
				t.Errorf("family has %d tokens, want 1 (nothing rotated)", n)
			}
			mustRotate(t, s, clientReq(a.TokenHash, t1, 10*time.Second, "gh_app", "read"), store.Rotated)
		})
	}
}

// rotateAtOnce runs the n requests req(i) at once on the token family of
// session sessionID and returns them with their results; an error fails
// the test.
func rotateAtOnce(t *testing.T, s store.Store, sessionID string, n int, req func(i int) store.RotateRequest) ([]store.RotateRequest, []store.RotateResult) {
	t.Helper()
	ctx := context.Background()
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
		wg.Go(func() { _, _ = s.GetSession(ctx, sessionID) })
	}
	wg.Wait()
	for i := range n {
		reqs[i] = req(i)
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.RotateRefreshToken(ctx, reqs[i])
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("RotateRefreshToken #%d: %v", i, err)
		}
		if results[i].Issued != (store.RefreshToken{}) && results[i].Outcome != store.Rotated {
			t.Errorf("#%d: outcome %s issued a token", i, outcomeName(results[i].Outcome))
		}
	}
	return reqs, results
}
