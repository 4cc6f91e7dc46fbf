package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/token"
)

// recordingTokens issues opaque strings and records what it issued and
// which sessions it denied.
type recordingTokens struct {
	mu     sync.Mutex
	issued []token.AccessClaims
	denied []string
}

func (f *recordingTokens) Issue(_ context.Context, ac token.AccessClaims) (string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issued = append(f.issued, ac)
	return fmt.Sprintf("at-%d", len(f.issued)), time.Now().Add(15 * time.Minute), nil
}

func (f *recordingTokens) DenySession(_ context.Context, id string, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denied = append(f.denied, id)
	return nil
}

func (f *recordingTokens) RevokeIssuedBefore(context.Context, time.Time) error { return nil }

// take returns what was issued and denied since the last call.
func (f *recordingTokens) take() (issued []token.AccessClaims, denied []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	issued, denied = f.issued, f.denied
	f.issued, f.denied = nil, nil
	return issued, denied
}

// TestRefreshClientAndScope: the one refresh entry point binds a token to
// its client and narrows the access token's scope, issuing one access
// token per refresh; a wrong client ends the session everywhere, a scope
// beyond the grant changes nothing.
func TestRefreshClientAndScope(t *testing.T) {
	st := memory.New(time.Now)
	t.Cleanup(func() { st.Close() })
	s, _ := newTestService(t, st, DefaultLockout(), "owner@example.com")
	tokens := &recordingTokens{}
	s.Tokens = tokens
	ctx := context.Background()
	u, err := s.Store.GetUserByEmail(ctx, "owner@example.com")
	if err != nil {
		t.Fatal(err)
	}
	start := func(client, scope string) (store.Session, string) {
		t.Helper()
		raw, err := secret.NewToken(32)
		if err != nil {
			t.Fatal(err)
		}
		exp := time.Now().Add(time.Hour)
		sess, err := s.Store.CreateSession(ctx, store.Session{UserID: u.ID, ClientID: client, ExpiresAt: exp, AMR: []string{"pwd"}},
			store.RefreshToken{Scope: scope, TokenHash: secret.HashToken(raw)})
		if err != nil {
			t.Fatal(err)
		}
		return sess, raw
	}

	sess, raw := start("app", "read write")
	res, err := s.Refresh(ctx, RefreshRequest{Token: raw, Client: "app", Scopes: []string{"read"}})
	if err != nil {
		t.Fatalf("narrowed refresh: %v", err)
	}
	issued, denied := tokens.take()
	if res.Scope != "read" || len(issued) != 1 || issued[0].Scope != "read" || issued[0].ClientID != "app" || issued[0].SessionID != sess.ID || len(denied) != 0 {
		t.Fatalf("narrowed refresh: Scope %q, issued %+v, denied %v; want one access token for app with scope read", res.Scope, issued, denied)
	}
	if res.AccessToken != "at-1" || res.RefreshToken == "" || res.RefreshToken == raw {
		t.Errorf("narrowed refresh: access token %q, refresh token %q", res.AccessToken, res.RefreshToken)
	}
	if rt, err := s.FindRefreshToken(ctx, res.RefreshToken); err != nil || rt.Scope != "read write" {
		t.Errorf("new refresh token: scope %q, %v; want the original grant", rt.Scope, err)
	}
	raw = res.RefreshToken

	// Beyond the grant: refused, nothing issued, the token still works.
	for _, asked := range [][]string{{"admin"}, {"read", "admin"}} {
		if _, err := s.Refresh(ctx, RefreshRequest{Token: raw, Client: "app", Scopes: asked}); !errors.Is(err, ErrScopeNotGranted) {
			t.Errorf("scope %q: err = %v, want ErrScopeNotGranted", asked, err)
		}
	}
	if issued, denied := tokens.take(); len(issued) != 0 || len(denied) != 0 {
		t.Errorf("refused scopes issued %+v and denied %v", issued, denied)
	}
	res, err = s.Refresh(ctx, RefreshRequest{Token: raw, Client: "app"})
	if err != nil {
		t.Fatalf("refresh after refused scopes: %v", err)
	}
	if issued, _ := tokens.take(); res.Scope != "" || len(issued) != 1 || issued[0].Scope != "read write" {
		t.Errorf("refresh without a scope: Scope %q, issued %+v; want one access token with the original grant", res.Scope, issued)
	}
	raw = res.RefreshToken

	// Another client: the session ends, its access tokens are denied, and
	// the token is dead for its own client too.
	if _, err := s.Refresh(ctx, RefreshRequest{Token: raw, Client: "other"}); !errors.Is(err, ErrClientMismatch) {
		t.Fatalf("other client: err = %v, want ErrClientMismatch", err)
	}
	if issued, denied := tokens.take(); len(issued) != 0 || !slices.Equal(denied, []string{sess.ID}) {
		t.Errorf("other client: issued %+v, denied %v; want nothing issued and the session denied", issued, denied)
	}
	if got, err := s.Store.GetSession(ctx, sess.ID); err != nil || got.RevokedAt.IsZero() || got.RevokedReason != "client_mismatch" {
		t.Errorf("session after a client mismatch: %+v, %v; want it revoked for client_mismatch", got, err)
	}
	if _, err := s.Refresh(ctx, RefreshRequest{Token: raw, Client: "app"}); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("own client after a mismatch: err = %v, want ErrInvalidGrant", err)
	}

	// A first-party token is used without a client, and with one is a
	// mismatch.
	_, raw = start("", "")
	res, err = s.Refresh(ctx, RefreshRequest{Token: raw})
	if err != nil {
		t.Fatalf("first-party refresh: %v", err)
	}
	if issued, _ := tokens.take(); len(issued) != 1 || issued[0].ClientID != FirstPartyClientID {
		t.Errorf("first-party refresh issued %+v, want one token for %s", issued, FirstPartyClientID)
	}
	if _, err := s.Refresh(ctx, RefreshRequest{Token: res.RefreshToken, Client: "app"}); !errors.Is(err, ErrClientMismatch) {
		t.Errorf("first-party token from a client: err = %v, want ErrClientMismatch", err)
	}
	for _, bad := range []string{"", "unknown", string(make([]byte, 513))} {
		if _, err := s.Refresh(ctx, RefreshRequest{Token: bad}); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("token %.10q: err = %v, want ErrInvalidGrant", bad, err)
		}
	}
}
