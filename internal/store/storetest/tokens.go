package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runTokens(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testTokenRoundTrip(t, migrated(t)) })
	t.Run("ConsumeRules", func(t *testing.T) { testTokenConsumeRules(t, migrated(t)) })
	t.Run("Supersede", func(t *testing.T) { testTokenSupersede(t, migrated(t)) })
	t.Run("DeleteUserTokens", func(t *testing.T) { testTokenDeleteUser(t, migrated(t)) })
	t.Run("Purge", func(t *testing.T) { testTokenPurge(t, migrated(t)) })
	t.Run("Invalid", func(t *testing.T) { testTokenInvalid(t, migrated(t)) })
	t.Run("ParallelConsume", func(t *testing.T) { testTokenParallelConsume(t, migrated(t)) })
	t.Run("ParallelCreate", func(t *testing.T) { testTokenParallelCreate(t, migrated(t)) })
	t.Run("UserDeletion", func(t *testing.T) { testTokenUserDeletion(t, migrated(t)) })
	t.Run("GetWithoutConsuming", func(t *testing.T) { testTokenGet(t, migrated(t)) })
	t.Run("NotMeKept", func(t *testing.T) { testTokenNotMeKept(t, migrated(t)) })
	t.Run("NotMePurgeAndConflict", func(t *testing.T) { testTokenNotMePurge(t, migrated(t)) })
	t.Run("NotMeParallelConsume", func(t *testing.T) { testTokenNotMeParallelConsume(t, migrated(t)) })
}

// tokenHash returns the hex SHA-256 of a fresh random token.
func tokenHash() string {
	sum := sha256.Sum256([]byte(uuid.NewString()))
	return hex.EncodeToString(sum[:])
}

// tokenAt is the fixed "now" the token tests run at.
var tokenAt = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func mustCreateToken(t *testing.T, s store.Store, userID string, p store.TokenPurpose) store.OneTimeToken {
	t.Helper()
	tok := store.OneTimeToken{
		ID: uuid.NewString(), UserID: userID, Purpose: p, TokenHash: tokenHash(),
		Email: "to@example.com", ExpiresAt: tokenAt.Add(time.Hour), CreatedAt: tokenAt,
	}
	if err := s.CreateOneTimeToken(context.Background(), tok); err != nil {
		t.Fatalf("CreateOneTimeToken: %v", err)
	}
	return tok
}

// consumable reports whether tok can still be consumed at tokenAt, and
// consumes it if so.
func consumable(t *testing.T, s store.Store, tok store.OneTimeToken) bool {
	t.Helper()
	_, err := s.ConsumeOneTimeToken(context.Background(), tok.Purpose, tok.TokenHash, tokenAt)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ConsumeOneTimeToken: %v", err)
	}
	return err == nil
}

func countTokens(t *testing.T, s store.Store, where string) int64 {
	t.Helper()
	return count(t, s, "SELECT count(*) FROM one_time_tokens WHERE "+where)
}

func testTokenRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("tokens@example.com"))
	chile := time.FixedZone("CLT", -4*3600)
	in := store.OneTimeToken{
		ID:        strings.ToUpper(uuid.NewString()),
		UserID:    strings.ToUpper(user.ID),
		Purpose:   store.PurposeEmailChange,
		TokenHash: tokenHash(),
		Email:     "new@example.com",
		ExpiresAt: time.Date(2025, 3, 14, 12, 9, 26, 999999999, chile),
		CreatedAt: time.Date(2025, 3, 14, 11, 9, 26, 1, chile),
	}
	if err := s.CreateOneTimeToken(ctx, in); err != nil {
		t.Fatalf("CreateOneTimeToken: %v", err)
	}
	now := time.Date(2025, 3, 14, 16, 0, 0, 123456789, time.UTC)
	got, err := s.ConsumeOneTimeToken(ctx, in.Purpose, in.TokenHash, now)
	if err != nil {
		t.Fatalf("ConsumeOneTimeToken: %v", err)
	}
	want := store.OneTimeToken{
		ID:         strings.ToLower(in.ID),
		UserID:     user.ID,
		Purpose:    store.PurposeEmailChange,
		TokenHash:  in.TokenHash,
		Email:      "new@example.com",
		ExpiresAt:  time.Date(2025, 3, 14, 16, 9, 26, 999999000, time.UTC),
		ConsumedAt: time.Date(2025, 3, 14, 16, 0, 0, 123456000, time.UTC),
		CreatedAt:  time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ConsumeOneTimeToken returned (-want +got):\n%s", diff)
	}
	for _, tm := range []time.Time{got.ExpiresAt, got.ConsumedAt, got.CreatedAt} {
		if tm.Location() != time.UTC {
			t.Errorf("time %v not in UTC", tm)
		}
	}
	if _, err := s.ConsumeOneTimeToken(ctx, in.Purpose, in.TokenHash, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second ConsumeOneTimeToken: err = %v, want ErrNotFound", err)
	}
	// Consuming keeps the row, marked.
	if n := countTokens(t, s, "token_hash = '"+in.TokenHash+"' AND consumed_at IS NOT NULL"); n != 1 {
		t.Errorf("consumed token rows = %d, want 1", n)
	}

	// Defaults: a UUIDv7 ID, CreatedAt now, an empty Email stored as NULL.
	minimal := store.OneTimeToken{UserID: user.ID, Purpose: store.PurposeVerifyEmail, TokenHash: tokenHash(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateOneTimeToken(ctx, minimal); err != nil {
		t.Fatalf("CreateOneTimeToken(minimal): %v", err)
	}
	got, err = s.ConsumeOneTimeToken(ctx, minimal.Purpose, minimal.TokenHash, time.Now())
	if err != nil {
		t.Fatalf("ConsumeOneTimeToken(minimal): %v", err)
	}
	if id, err := uuid.Parse(got.ID); err != nil || id.Version() != 7 || id.String() != got.ID {
		t.Errorf("generated ID = %q, want a canonical UUIDv7", got.ID)
	}
	checkNow(t, "CreatedAt", got.CreatedAt)
	if got.Email != "" {
		t.Errorf("Email = %q, want empty", got.Email)
	}
	if n := countTokens(t, s, "token_hash = '"+minimal.TokenHash+"' AND email IS NULL"); n != 1 {
		t.Error("empty Email not stored as NULL")
	}
}

func testTokenConsumeRules(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("rules@example.com"))
	tok := mustCreateToken(t, s, user.ID, store.PurposePasswordReset)

	for _, tc := range []struct {
		name    string
		purpose store.TokenPurpose
		hash    string
		now     time.Time
	}{
		{"wrong purpose", store.PurposeVerifyEmail, tok.TokenHash, tokenAt},
		{"unknown purpose", "other", tok.TokenHash, tokenAt},
		{"unknown hash", tok.Purpose, tokenHash(), tokenAt},
		{"hash in upper case", tok.Purpose, strings.ToUpper(tok.TokenHash), tokenAt},
		{"empty hash", tok.Purpose, "", tokenAt},
		{"at expiry", tok.Purpose, tok.TokenHash, tok.ExpiresAt},
		{"after expiry", tok.Purpose, tok.TokenHash, tok.ExpiresAt.Add(time.Hour)},
		{"expiry in another zone", tok.Purpose, tok.TokenHash, tok.ExpiresAt.In(time.FixedZone("X", 3600))},
		{"a nanosecond after expiry", tok.Purpose, tok.TokenHash, tok.ExpiresAt.Add(time.Nanosecond)},
	} {
		if _, err := s.ConsumeOneTimeToken(ctx, tc.purpose, tc.hash, tc.now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", tc.name, err)
		}
	}
	// None of that consumed it: a microsecond before expiry it still works.
	got, err := s.ConsumeOneTimeToken(ctx, tok.Purpose, tok.TokenHash, tok.ExpiresAt.Add(-time.Microsecond))
	if err != nil {
		t.Fatalf("ConsumeOneTimeToken just before expiry: %v", err)
	}
	if got.ID != tok.ID || !got.ConsumedAt.Equal(tok.ExpiresAt.Add(-time.Microsecond)) {
		t.Errorf("consumed %s at %v, want %s at %v", got.ID, got.ConsumedAt, tok.ID, tok.ExpiresAt.Add(-time.Microsecond))
	}
	if _, err := s.ConsumeOneTimeToken(ctx, tok.Purpose, tok.TokenHash, tokenAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("consume after consuming: err = %v, want ErrNotFound", err)
	}
}

func testTokenSupersede(t *testing.T, s store.Store) {
	a := mustCreateUser(t, s, newUser("a@example.com"))
	b := mustCreateUser(t, s, newUser("b@example.com"))
	aVerify1 := mustCreateToken(t, s, a.ID, store.PurposeVerifyEmail)
	aReset := mustCreateToken(t, s, a.ID, store.PurposePasswordReset)
	aChange := mustCreateToken(t, s, a.ID, store.PurposeEmailChange)
	bVerify := mustCreateToken(t, s, b.ID, store.PurposeVerifyEmail)
	aVerify2 := mustCreateToken(t, s, a.ID, store.PurposeVerifyEmail)

	if consumable(t, s, aVerify1) {
		t.Error("the superseded token was consumed")
	}
	for name, tok := range map[string]store.OneTimeToken{
		"new token": aVerify2, "other purpose": aReset, "third purpose": aChange, "other user": bVerify,
	} {
		if !consumable(t, s, tok) {
			t.Errorf("%s: not consumable after a new verify_email token for user a", name)
		}
	}

	// Consumed tokens are history, not superseded: creating another one
	// keeps aVerify2's row.
	aVerify3 := mustCreateToken(t, s, a.ID, store.PurposeVerifyEmail)
	if n := countTokens(t, s, "user_id = '"+a.ID+"' AND purpose = 'verify_email'"); n != 2 {
		t.Errorf("user a has %d verify_email tokens, want 2 (one consumed, one new)", n)
	}
	// A new token may carry the hash of the very token it replaces.
	again := store.OneTimeToken{UserID: a.ID, Purpose: store.PurposeVerifyEmail, TokenHash: aVerify3.TokenHash, ExpiresAt: tokenAt.Add(2 * time.Hour)}
	if err := s.CreateOneTimeToken(context.Background(), again); err != nil {
		t.Fatalf("CreateOneTimeToken with the hash of the token it replaces: %v", err)
	}
	got, err := s.ConsumeOneTimeToken(context.Background(), again.Purpose, again.TokenHash, tokenAt)
	if err != nil || got.ID == aVerify3.ID || !got.ExpiresAt.Equal(again.ExpiresAt) {
		t.Errorf("consume the replacement = %+v, %v; want a new token expiring at %v", got, err, again.ExpiresAt)
	}
}

func testTokenDeleteUser(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustCreateUser(t, s, newUser("a@example.com"))
	b := mustCreateUser(t, s, newUser("b@example.com"))
	consumed := mustCreateToken(t, s, a.ID, store.PurposePasswordReset)
	if !consumable(t, s, consumed) {
		t.Fatal("token not consumable")
	}
	aReset := mustCreateToken(t, s, a.ID, store.PurposePasswordReset)
	aVerify := mustCreateToken(t, s, a.ID, store.PurposeVerifyEmail)
	bReset := mustCreateToken(t, s, b.ID, store.PurposePasswordReset)

	if err := s.DeleteUserOneTimeTokens(ctx, strings.ToUpper(a.ID), store.PurposePasswordReset); err != nil {
		t.Fatalf("DeleteUserOneTimeTokens: %v", err)
	}
	if consumable(t, s, aReset) {
		t.Error("deleted token was consumed")
	}
	if !consumable(t, s, aVerify) || !consumable(t, s, bReset) {
		t.Error("tokens of another purpose or user were deleted too")
	}
	if n := countTokens(t, s, "id = '"+consumed.ID+"'"); n != 1 {
		t.Error("DeleteUserOneTimeTokens deleted a consumed token")
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if err := s.DeleteUserOneTimeTokens(ctx, id, store.PurposeVerifyEmail); err != nil {
			t.Errorf("DeleteUserOneTimeTokens(%q): %v, want nil", id, err)
		}
	}
}

func testTokenPurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	before := tokenAt
	create := func(purpose store.TokenPurpose, expires time.Time) store.OneTimeToken {
		t.Helper()
		u := mustCreateUser(t, s, newUser(uuid.NewString()+"@example.com"))
		tok := store.OneTimeToken{UserID: u.ID, Purpose: purpose, TokenHash: tokenHash(), ExpiresAt: expires}
		if err := s.CreateOneTimeToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	consume := func(tok store.OneTimeToken, at time.Time) {
		t.Helper()
		if _, err := s.ConsumeOneTimeToken(ctx, tok.Purpose, tok.TokenHash, at); err != nil {
			t.Fatal(err)
		}
	}
	expired := create(store.PurposeVerifyEmail, before.Add(-time.Microsecond))
	consumedLongAgo := create(store.PurposePasswordReset, before.Add(time.Hour))
	consume(consumedLongAgo, before.Add(-time.Hour))
	// Expired (long ago) after being consumed (even longer ago).
	consumedAndExpired := create(store.PurposeEmailChange, before.Add(-time.Hour))
	consume(consumedAndExpired, before.Add(-2*time.Hour))
	expiresAtBefore := create(store.PurposeVerifyEmail, before)
	consumedAtBefore := create(store.PurposeVerifyEmail, before.Add(time.Hour))
	consume(consumedAtBefore, before)
	live := create(store.PurposePasswordReset, before.Add(time.Hour))

	n, err := s.PurgeOneTimeTokens(ctx, before)
	if err != nil {
		t.Fatalf("PurgeOneTimeTokens: %v", err)
	}
	if n != 3 {
		t.Errorf("PurgeOneTimeTokens = %d, want 3", n)
	}
	for name, tok := range map[string]store.OneTimeToken{
		"expired": expired, "consumed long ago": consumedLongAgo, "consumed and expired": consumedAndExpired,
	} {
		if got := countTokens(t, s, "token_hash = '"+tok.TokenHash+"'"); got != 0 {
			t.Errorf("%s token not purged", name)
		}
	}
	for name, tok := range map[string]store.OneTimeToken{
		"expiring at the cut-off": expiresAtBefore, "consumed at the cut-off": consumedAtBefore, "live": live,
	} {
		if got := countTokens(t, s, "token_hash = '"+tok.TokenHash+"'"); got != 1 {
			t.Errorf("%s token purged", name)
		}
	}
	if n, err := s.PurgeOneTimeTokens(ctx, before); err != nil || n != 0 {
		t.Errorf("second PurgeOneTimeTokens = %d, %v; want 0", n, err)
	}
	if _, err := s.ConsumeOneTimeToken(ctx, live.Purpose, live.TokenHash, before); err != nil {
		t.Errorf("live token after purge: %v", err)
	}
}

func testTokenInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("invalid@example.com"))
	taken := mustCreateToken(t, s, user.ID, store.PurposeVerifyEmail)
	for _, tc := range []struct {
		name string
		mod  func(tok *store.OneTimeToken)
	}{
		{"bad ID", func(tok *store.OneTimeToken) { tok.ID = "not-a-uuid" }},
		{"bad user ID", func(tok *store.OneTimeToken) { tok.UserID = "not-a-uuid" }},
		{"no user ID", func(tok *store.OneTimeToken) { tok.UserID = "" }},
		{"unknown user", func(tok *store.OneTimeToken) { tok.UserID = uuid.NewString() }},
		{"unknown purpose", func(tok *store.OneTimeToken) { tok.Purpose = "login" }},
		{"no purpose", func(tok *store.OneTimeToken) { tok.Purpose = "" }},
		{"no hash", func(tok *store.OneTimeToken) { tok.TokenHash = "" }},
		{"no expiry", func(tok *store.OneTimeToken) { tok.ExpiresAt = time.Time{} }},
		{"already consumed", func(tok *store.OneTimeToken) { tok.ConsumedAt = tokenAt }},
	} {
		tok := store.OneTimeToken{UserID: user.ID, Purpose: store.PurposePasswordReset, TokenHash: tokenHash(), ExpiresAt: tokenAt.Add(time.Hour)}
		tc.mod(&tok)
		if err := s.CreateOneTimeToken(ctx, tok); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: err = %v, want a validation error", tc.name, err)
		}
	}
	if n := countTokens(t, s, "1 = 1"); n != 1 {
		t.Errorf("%d tokens after invalid creates, want 1", n)
	}

	// Hashes are unique across users and purposes.
	other := mustCreateUser(t, s, newUser("other@example.com"))
	for _, tok := range []store.OneTimeToken{
		{UserID: other.ID, Purpose: store.PurposeVerifyEmail, TokenHash: taken.TokenHash, ExpiresAt: tokenAt.Add(time.Hour)},
		{UserID: user.ID, Purpose: store.PurposePasswordReset, TokenHash: taken.TokenHash, ExpiresAt: tokenAt.Add(time.Hour)},
		{ID: taken.ID, UserID: other.ID, Purpose: store.PurposeVerifyEmail, TokenHash: tokenHash(), ExpiresAt: tokenAt.Add(time.Hour)},
	} {
		if err := s.CreateOneTimeToken(ctx, tok); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateOneTimeToken(%+v) clashing with an existing token: err = %v, want ErrConflict", tok, err)
		}
	}
	if !consumable(t, s, taken) {
		t.Error("the existing token is gone after clashing creates")
	}
}

// Of many parallel attempts to consume one token exactly one succeeds.
func testTokenParallelConsume(t *testing.T, s store.Store) {
	const goroutines = 50
	user := mustCreateUser(t, s, newUser("race@example.com"))
	tok := mustCreateToken(t, s, user.ID, store.PurposePasswordReset)

	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, goroutines)
	)
	for i := range goroutines {
		wg.Go(func() {
			<-start
			_, errs[i] = s.ConsumeOneTimeToken(context.Background(), tok.Purpose, tok.TokenHash, tokenAt)
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("ConsumeOneTimeToken: %v, want success or ErrNotFound", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d parallel consumers succeeded, want exactly 1", won, goroutines)
	}
}

// Parallel requests for a new link leave exactly one usable token.
func testTokenParallelCreate(t *testing.T, s store.Store) {
	const goroutines = 20
	user := mustCreateUser(t, s, newUser("resend@example.com"))
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		tokens = make([]store.OneTimeToken, goroutines)
		errs   = make([]error, goroutines)
	)
	for i := range goroutines {
		tokens[i] = store.OneTimeToken{UserID: user.ID, Purpose: store.PurposeVerifyEmail, TokenHash: tokenHash(), ExpiresAt: tokenAt.Add(time.Hour)}
		wg.Go(func() {
			<-start
			errs[i] = s.CreateOneTimeToken(context.Background(), tokens[i])
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("CreateOneTimeToken #%d: %v", i, err)
		}
	}
	usable := 0
	for _, tok := range tokens {
		if consumable(t, s, tok) {
			usable++
		}
	}
	if usable != 1 {
		t.Errorf("%d of %d parallel tokens for one user and purpose are usable, want 1", usable, goroutines)
	}
}

// Soft-deleting a user leaves its tokens alone; removing the row (a purge
// of deleted accounts, later) removes its tokens and identities with it.
func testTokenUserDeletion(t *testing.T, s store.Store) {
	ctx := context.Background()
	raw := rawExec(t, s)
	gone := mustCreateUser(t, s, newUser("gone@example.com"))
	kept := mustCreateUser(t, s, newUser("kept@example.com"))
	goneTok := mustCreateToken(t, s, gone.ID, store.PurposeVerifyEmail)
	keptTok := mustCreateToken(t, s, kept.ID, store.PurposeVerifyEmail)
	identity := func(id, userID, subject string) string {
		return fmt.Sprintf("INSERT INTO identities (id, user_id, provider, subject) VALUES ('%s', '%s', 'github', '%s')", id, userID, subject)
	}
	if err := raw.RawExec(ctx, identity(uuid.NewString(), gone.ID, "gh-1")); err != nil {
		t.Fatalf("insert identity: %v", err)
	}
	if err := raw.RawExec(ctx, identity(uuid.NewString(), kept.ID, "gh-1")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second identity with the same provider and subject: err = %v, want ErrConflict", err)
	}
	if err := raw.RawExec(ctx, identity(uuid.NewString(), uuid.NewString(), "gh-2")); err == nil {
		t.Error("identity of a user that does not exist was inserted")
	}

	if err := s.SoftDeleteUser(ctx, gone.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := countTokens(t, s, "user_id = '"+gone.ID+"'"); n != 1 {
		t.Errorf("soft delete: %d tokens left, want 1", n)
	}

	if err := raw.RawExec(ctx, "DELETE FROM users WHERE id = '"+gone.ID+"'"); err != nil {
		t.Fatalf("delete user row: %v", err)
	}
	if n := countTokens(t, s, "user_id = '"+gone.ID+"'"); n != 0 {
		t.Errorf("row deleted: %d tokens left, want 0", n)
	}
	if n := count(t, s, "SELECT count(*) FROM identities WHERE user_id = '"+gone.ID+"'"); n != 0 {
		t.Errorf("row deleted: %d identities left, want 0", n)
	}
	if consumable(t, s, goneTok) {
		t.Error("token of a removed user consumed")
	}
	if !consumable(t, s, keptTok) {
		t.Error("another user's token went with the removed user")
	}
	if err := raw.RawExec(ctx, identity(uuid.NewString(), kept.ID, "gh-1")); err != nil {
		t.Errorf("provider subject of the removed user not free again: %v", err)
	}
}

func testTokenGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, newUser("get-token@example.com"))
	tok := mustCreateToken(t, s, u.ID, store.PurposePasswordReset)
	got, err := s.GetOneTimeToken(ctx, store.PurposePasswordReset, tok.TokenHash, tokenAt)
	if err != nil || got.ID != tok.ID || got.UserID != u.ID {
		t.Fatalf("GetOneTimeToken = %+v, %v", got, err)
	}
	for name, call := range map[string]func() error{
		"wrong purpose": func() error {
			_, err := s.GetOneTimeToken(ctx, store.PurposeVerifyEmail, tok.TokenHash, tokenAt)
			return err
		},
		"expired": func() error {
			_, err := s.GetOneTimeToken(ctx, store.PurposePasswordReset, tok.TokenHash, tok.ExpiresAt)
			return err
		},
		"unknown": func() error {
			_, err := s.GetOneTimeToken(ctx, store.PurposePasswordReset, tokenHash(), tokenAt)
			return err
		},
	} {
		if err := call(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", name, err)
		}
	}
	// Reading does not consume; consuming once makes it unreadable.
	if !consumable(t, s, tok) {
		t.Fatal("token not consumable after GetOneTimeToken")
	}
	if _, err := s.GetOneTimeToken(ctx, store.PurposePasswordReset, tok.TokenHash, tokenAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("consumed token still readable: %v", err)
	}
}

// not_me tokens do not supersede each other: every new-sign-in email keeps
// a working link, until one is redeemed and the others are deleted.
func testTokenNotMeKept(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustCreateUser(t, s, newUser("a@example.com"))
	b := mustCreateUser(t, s, newUser("b@example.com"))
	first := mustCreateToken(t, s, a.ID, store.PurposeNotMe)
	second := mustCreateToken(t, s, a.ID, store.PurposeNotMe)
	third := mustCreateToken(t, s, a.ID, store.PurposeNotMe)
	aReset := mustCreateToken(t, s, a.ID, store.PurposePasswordReset)
	bNotMe := mustCreateToken(t, s, b.ID, store.PurposeNotMe)
	// Tokens of the other purposes do not touch them, nor they those.
	aReset2 := mustCreateToken(t, s, a.ID, store.PurposePasswordReset)
	if consumable(t, s, aReset) {
		t.Error("the superseded reset token was consumed")
	}
	for _, tok := range []store.OneTimeToken{first, second, third, bNotMe} {
		if got, err := s.GetOneTimeToken(ctx, store.PurposeNotMe, tok.TokenHash, tokenAt); err != nil || got.ID != tok.ID || got.Purpose != store.PurposeNotMe || got.UserID != tok.UserID {
			t.Errorf("GetOneTimeToken(not_me %s) = %+v, %v", tok.ID, got, err)
		}
	}
	// A not_me token is found under its purpose only, and other tokens
	// not under not_me.
	if _, err := s.ConsumeOneTimeToken(ctx, store.PurposePasswordReset, first.TokenHash, tokenAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("not_me token consumed as a reset token: err = %v", err)
	}
	if _, err := s.ConsumeOneTimeToken(ctx, store.PurposeNotMe, aReset2.TokenHash, tokenAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("reset token consumed as a not_me token: err = %v", err)
	}
	if _, err := s.GetOneTimeToken(ctx, store.PurposeVerifyEmail, first.TokenHash, tokenAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("not_me token read as a verify_email token: err = %v", err)
	}

	// Redeeming one: consume it, then delete the user's others.
	got, err := s.ConsumeOneTimeToken(ctx, store.PurposeNotMe, second.TokenHash, tokenAt)
	if err != nil {
		t.Fatalf("ConsumeOneTimeToken(not_me): %v", err)
	}
	want := second
	want.ExpiresAt, want.CreatedAt, want.ConsumedAt = micro(second.ExpiresAt), micro(second.CreatedAt), micro(tokenAt)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("consumed not_me token (-want +got):\n%s", diff)
	}
	if _, err := s.ConsumeOneTimeToken(ctx, store.PurposeNotMe, second.TokenHash, tokenAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("not_me token consumed twice: err = %v", err)
	}
	if err := s.DeleteUserOneTimeTokens(ctx, a.ID, store.PurposeNotMe); err != nil {
		t.Fatalf("DeleteUserOneTimeTokens(not_me): %v", err)
	}
	if consumable(t, s, first) || consumable(t, s, third) {
		t.Error("a not_me token of the user survived DeleteUserOneTimeTokens")
	}
	if !consumable(t, s, bNotMe) || !consumable(t, s, aReset2) {
		t.Error("DeleteUserOneTimeTokens(not_me) deleted another user's token or another purpose's")
	}
	// The consumed one stays, as history.
	if n := count(t, s, "SELECT count(*) FROM not_me_tokens WHERE id = '"+second.ID+"' AND consumed_at IS NOT NULL"); n != 1 {
		t.Errorf("consumed not_me rows = %d, want 1", n)
	}
}

// not_me tokens expire and are purged like the others; their hashes are
// unique.
func testTokenNotMePurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, newUser("purge-not-me@example.com"))
	expired := store.OneTimeToken{UserID: u.ID, Purpose: store.PurposeNotMe, TokenHash: tokenHash(), ExpiresAt: tokenAt.Add(-time.Microsecond)}
	live := store.OneTimeToken{UserID: u.ID, Purpose: store.PurposeNotMe, TokenHash: tokenHash(), ExpiresAt: tokenAt.Add(7 * 24 * time.Hour)}
	other := store.OneTimeToken{UserID: u.ID, Purpose: store.PurposeVerifyEmail, TokenHash: tokenHash(), ExpiresAt: tokenAt.Add(-time.Microsecond)}
	for _, tok := range []store.OneTimeToken{expired, live, other} {
		if err := s.CreateOneTimeToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ConsumeOneTimeToken(ctx, store.PurposeNotMe, expired.TokenHash, tokenAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired not_me token consumed: err = %v", err)
	}
	dup := store.OneTimeToken{UserID: u.ID, Purpose: store.PurposeNotMe, TokenHash: live.TokenHash, ExpiresAt: tokenAt.Add(time.Hour)}
	if err := s.CreateOneTimeToken(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second not_me token with the same hash: err = %v, want ErrConflict", err)
	}
	n, err := s.PurgeOneTimeTokens(ctx, tokenAt)
	if err != nil || n != 2 {
		t.Fatalf("PurgeOneTimeTokens = %d, %v; want 2 (an expired not_me token and another)", n, err)
	}
	if !consumable(t, s, live) {
		t.Error("the live not_me token was purged")
	}
}

// Of many parallel redemptions of one not_me token exactly one succeeds.
func testTokenNotMeParallelConsume(t *testing.T, s store.Store) {
	const goroutines = 20
	user := mustCreateUser(t, s, newUser("race-not-me@example.com"))
	tok := mustCreateToken(t, s, user.ID, store.PurposeNotMe)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, goroutines)
	)
	for i := range goroutines {
		wg.Go(func() {
			<-start
			_, errs[i] = s.ConsumeOneTimeToken(context.Background(), store.PurposeNotMe, tok.TokenHash, tokenAt)
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("ConsumeOneTimeToken: %v, want success or ErrNotFound", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d parallel consumers of a not_me token succeeded, want exactly 1", won, goroutines)
	}
}
