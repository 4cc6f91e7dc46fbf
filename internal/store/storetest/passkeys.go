package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runPasskeys(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testPasskeyRoundTrip(t, migrated(t)) })
	t.Run("Errors", func(t *testing.T) { testPasskeyErrors(t, migrated(t)) })
	t.Run("Lookup", func(t *testing.T) { testPasskeyLookup(t, migrated(t)) })
	t.Run("List", func(t *testing.T) { testPasskeyList(t, migrated(t)) })
	t.Run("Ownership", func(t *testing.T) { testPasskeyOwnership(t, migrated(t)) })
	t.Run("Rename", func(t *testing.T) { testPasskeyRename(t, migrated(t)) })
	t.Run("Use", func(t *testing.T) { testPasskeyUse(t, migrated(t)) })
	t.Run("ParallelUse", func(t *testing.T) { testPasskeyParallelUse(t, migrated(t)) })
	t.Run("Cloned", func(t *testing.T) { testPasskeyCloned(t, migrated(t)) })
	t.Run("Delete", func(t *testing.T) { testPasskeyDelete(t, migrated(t)) })
	t.Run("Cascades", func(t *testing.T) { testPasskeyCascades(t, migrated(t)) })
	t.Run("SecondFactors", func(t *testing.T) { testPasskeySecondFactors(t, migrated(t)) })
	t.Run("InTx", func(t *testing.T) { testPasskeyInTx(t, migrated(t)) })
}

// passkeyAt is the fixed time the passkey tests run at.
var passkeyAt = time.Date(2026, 10, 1, 9, 15, 0, 123456789, time.UTC)

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// newPasskey returns a minimal valid passkey of the user with a random
// credential ID.
func newPasskey(userID string) store.Passkey {
	return store.Passkey{
		UserID: userID, CredentialID: randomBytes(32), PublicKey: randomBytes(77),
		AttestationType: "none", Name: "passkey",
	}
}

func mustCreatePasskey(t *testing.T, s store.Store, p store.Passkey) store.Passkey {
	t.Helper()
	created, err := s.CreatePasskey(context.Background(), p)
	if err != nil {
		t.Fatalf("CreatePasskey(%s): %v", p.Name, err)
	}
	return created
}

func mustGetPasskey(t *testing.T, s store.Store, userID, id string) store.Passkey {
	t.Helper()
	p, err := s.GetPasskey(context.Background(), userID, id)
	if err != nil {
		t.Fatalf("GetPasskey(%s): %v", id, err)
	}
	return p
}

func passkeyIDs(l []store.Passkey) []string {
	ids := make([]string, len(l))
	for i, p := range l {
		ids[i] = p.ID
	}
	return ids
}

func testPasskeyRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	zone := time.FixedZone("X", -3*3600)
	full := store.Passkey{
		ID: strings.ToUpper(uuid.NewString()), UserID: strings.ToUpper(ada.ID),
		CredentialID: randomBytes(64), PublicKey: randomBytes(77), AttestationType: "packed",
		AAGUID: randomBytes(16), SignCount: math.MaxUint32,
		Transports:     []string{"usb", "nfc", "hybrid"},
		BackupEligible: true, BackupState: true, UserVerified: true, Name: "YubiKey 5 — bureau",
		CreatedAt:  time.Date(2026, 5, 1, 12, 0, 0, 987654321, zone),
		LastUsedAt: time.Date(2026, 5, 2, 12, 0, 0, 1001, zone),
		ClonedAt:   time.Date(2026, 5, 3, 12, 0, 0, 999, zone),
	}
	created, err := s.CreatePasskey(ctx, full)
	if err != nil {
		t.Fatalf("CreatePasskey: %v", err)
	}
	want := full
	want.ID, want.UserID = strings.ToLower(full.ID), ada.ID
	want.CreatedAt, want.LastUsedAt, want.ClonedAt = micro(full.CreatedAt), micro(full.LastUsedAt), micro(full.ClonedAt)
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("CreatePasskey (-want +got):\n%s", diff)
	}
	got := mustGetPasskey(t, s, ada.ID, full.ID)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetPasskey (-want +got):\n%s", diff)
	}
	for _, tm := range []time.Time{got.CreatedAt, got.LastUsedAt, got.ClonedAt} {
		if tm.Location() != time.UTC {
			t.Errorf("time %v read back not in UTC", tm)
		}
	}

	// The least: no ID, no time, no AAGUID (read back as 16 zero bytes),
	// no transports; an empty list reads back as nil like a nil one.
	for _, transports := range [][]string{nil, {}} {
		in := newPasskey(ada.ID)
		in.Transports = transports
		in.Name, in.AttestationType = "", ""
		minimal, err := s.CreatePasskey(ctx, in)
		if err != nil {
			t.Fatalf("CreatePasskey(minimal): %v", err)
		}
		if v, err := uuid.Parse(minimal.ID); err != nil || v.Version() != 7 {
			t.Errorf("ID %q is not a UUIDv7 (%v)", minimal.ID, err)
		}
		checkNow(t, "CreatedAt", minimal.CreatedAt)
		got := mustGetPasskey(t, s, ada.ID, minimal.ID)
		if !bytes.Equal(got.AAGUID, make([]byte, 16)) || got.Transports != nil || got.SignCount != 0 ||
			got.BackupEligible || got.BackupState || got.UserVerified || got.Name != "" || got.AttestationType != "" ||
			!got.LastUsedAt.IsZero() || !got.ClonedAt.IsZero() {
			t.Errorf("minimal passkey read back as %+v", got)
		}
		if !bytes.Equal(got.CredentialID, in.CredentialID) || !bytes.Equal(got.PublicKey, in.PublicKey) {
			t.Errorf("minimal passkey's credential ID or public key changed")
		}
		if diff := cmp.Diff(minimal, got); diff != "" {
			t.Errorf("GetPasskey(minimal) (-created +got):\n%s", diff)
		}
	}

	// The longest credential ID WebAuthn allows.
	longest := newPasskey(ada.ID)
	longest.CredentialID = randomBytes(1023)
	created = mustCreatePasskey(t, s, longest)
	if got, err := s.GetPasskeyByCredentialID(ctx, longest.CredentialID); err != nil || got.ID != created.ID {
		t.Errorf("GetPasskeyByCredentialID(1023 bytes) = %s, %v; want %s", got.ID, err, created.ID)
	}
}

func testPasskeyErrors(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	p := mustCreatePasskey(t, s, newPasskey(ada.ID))
	with := func(userID string, f func(*store.Passkey)) store.Passkey {
		q := newPasskey(userID)
		f(&q)
		return q
	}
	for _, c := range []struct {
		name string
		p    store.Passkey
		want error
	}{
		{"credential ID of another user's", with(bob.ID, func(q *store.Passkey) { q.CredentialID = p.CredentialID }), store.ErrConflict},
		{"credential ID the user has", with(ada.ID, func(q *store.Passkey) { q.CredentialID = bytes.Clone(p.CredentialID) }), store.ErrConflict},
		{"taken ID", with(bob.ID, func(q *store.Passkey) { q.ID = p.ID }), store.ErrConflict},
		{"unknown user", newPasskey(uuid.NewString()), store.ErrNotFound},
		{"user not a UUID", newPasskey("ada"), store.ErrNotFound},
		{"no user", newPasskey(""), store.ErrNotFound},
	} {
		if _, err := s.CreatePasskey(ctx, c.p); !errors.Is(err, c.want) {
			t.Errorf("CreatePasskey(%s): err = %v, want %v", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name string
		p    store.Passkey
	}{
		{"no credential ID", with(ada.ID, func(q *store.Passkey) { q.CredentialID = nil })},
		{"credential ID too long", with(ada.ID, func(q *store.Passkey) { q.CredentialID = randomBytes(1024) })},
		{"no public key", with(ada.ID, func(q *store.Passkey) { q.PublicKey = nil })},
		{"short AAGUID", with(ada.ID, func(q *store.Passkey) { q.AAGUID = randomBytes(15) })},
		{"long AAGUID", with(ada.ID, func(q *store.Passkey) { q.AAGUID = randomBytes(17) })},
		{"ID not a UUID", with(ada.ID, func(q *store.Passkey) { q.ID = "x" })},
		{"empty transport", with(ada.ID, func(q *store.Passkey) { q.Transports = []string{"usb", ""} })},
		{"NUL in name", with(ada.ID, func(q *store.Passkey) { q.Name = "a\x00b" })},
		{"invalid UTF-8 attestation type", with(ada.ID, func(q *store.Passkey) { q.AttestationType = "\xff" })},
	} {
		if _, err := s.CreatePasskey(ctx, c.p); err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("CreatePasskey(%s): err = %v, want a validation error", c.name, err)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM passkeys"); n != 1 {
		t.Errorf("%d passkeys stored, want only the first", n)
	}
	if got := mustGetPasskey(t, s, ada.ID, p.ID); got.UserID != ada.ID {
		t.Errorf("the first passkey now belongs to %s", got.UserID)
	}
}

func testPasskeyLookup(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	p := mustCreatePasskey(t, s, newPasskey(ada.ID))
	q := mustCreatePasskey(t, s, newPasskey(bob.ID))

	// By credential ID, whoever holds it.
	for _, want := range []store.Passkey{p, q} {
		got, err := s.GetPasskeyByCredentialID(ctx, bytes.Clone(want.CredentialID))
		if err != nil {
			t.Fatalf("GetPasskeyByCredentialID: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GetPasskeyByCredentialID (-want +got):\n%s", diff)
		}
	}
	for name, id := range map[string][]byte{
		"nil": nil, "empty": {}, "unknown": randomBytes(32), "a prefix": p.CredentialID[:16],
		"longer": append(bytes.Clone(p.CredentialID), 0), "too long": randomBytes(1024),
	} {
		if _, err := s.GetPasskeyByCredentialID(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetPasskeyByCredentialID(%s): err = %v, want ErrNotFound", name, err)
		}
	}

	// By ID: in any case; an ID that is not a UUID finds nothing.
	if got := mustGetPasskey(t, s, strings.ToUpper(ada.ID), strings.ToUpper(p.ID)); got.ID != p.ID {
		t.Errorf("GetPasskey(upper case) = %s, want %s", got.ID, p.ID)
	}
	for _, c := range []struct{ user, id string }{
		{ada.ID, uuid.NewString()},
		{ada.ID, "not-a-uuid"},
		{ada.ID, ""},
		{"not-a-uuid", p.ID},
		{uuid.NewString(), p.ID},
	} {
		if _, err := s.GetPasskey(ctx, c.user, c.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetPasskey(%q, %q): err = %v, want ErrNotFound", c.user, c.id, err)
		}
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if _, err := s.UsePasskey(ctx, id, 0, 1, false, passkeyAt); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UsePasskey(%s): err = %v, want ErrNotFound", id, err)
		}
		if _, _, err := s.FlagPasskeyCloned(ctx, id, passkeyAt); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("FlagPasskeyCloned(%s): err = %v, want ErrNotFound", id, err)
		}
		if _, err := s.RenamePasskey(ctx, ada.ID, id, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RenamePasskey(%s): err = %v, want ErrNotFound", id, err)
		}
		if err := s.DeletePasskey(ctx, ada.ID, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeletePasskey(%s): err = %v, want ErrNotFound", id, err)
		}
	}
}

func testPasskeyList(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	if l, err := s.ListPasskeys(ctx, ada.ID); err != nil || len(l) != 0 {
		t.Errorf("ListPasskeys(nothing yet) = %v, %v; want none", passkeyIDs(l), err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(id string, d time.Duration) store.Passkey {
		p := newPasskey(ada.ID)
		p.ID, p.CreatedAt = id, base.Add(d)
		return p
	}
	newest := mustCreatePasskey(t, s, at("", 2*time.Hour))
	// Two at the same time, the greater ID created first: the lesser ID
	// is listed first.
	tieB := mustCreatePasskey(t, s, at("00000000-0000-4000-8000-00000000000b", time.Hour))
	tieA := mustCreatePasskey(t, s, at("00000000-0000-4000-8000-00000000000a", time.Hour))
	oldest := mustCreatePasskey(t, s, at("", 0))
	// Cloned ones are listed too.
	if _, _, err := s.FlagPasskeyCloned(ctx, tieB.ID, passkeyAt); err != nil {
		t.Fatal(err)
	}
	other := newPasskey(bob.ID)
	other.CreatedAt = base.Add(time.Minute)
	mustCreatePasskey(t, s, other)

	list, err := s.ListPasskeys(ctx, strings.ToUpper(ada.ID))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{oldest.ID, tieA.ID, tieB.ID, newest.ID}; !cmp.Equal(want, passkeyIDs(list)) {
		t.Errorf("ListPasskeys = %v, want %v", passkeyIDs(list), want)
	}
	if len(list) == 4 {
		if diff := cmp.Diff(oldest, list[0]); diff != "" {
			t.Errorf("listed (-created +got):\n%s", diff)
		}
		if !list[2].ClonedAt.Equal(micro(passkeyAt)) {
			t.Errorf("the listed cloned passkey has ClonedAt %v", list[2].ClonedAt)
		}
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid", ""} {
		if l, err := s.ListPasskeys(ctx, id); err != nil || len(l) != 0 {
			t.Errorf("ListPasskeys(%q) = %v, %v; want none", id, passkeyIDs(l), err)
		}
	}
}

// testPasskeyOwnership: another user's passkey is ErrNotFound for the
// methods that take a user, and they leave it as it was.
func testPasskeyOwnership(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	p := mustCreatePasskey(t, s, newPasskey(ada.ID))
	if _, err := s.GetPasskey(ctx, bob.ID, p.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPasskey(another user's): err = %v, want ErrNotFound", err)
	}
	if _, err := s.RenamePasskey(ctx, bob.ID, p.ID, "mine now"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RenamePasskey(another user's): err = %v, want ErrNotFound", err)
	}
	if err := s.DeletePasskey(ctx, bob.ID, p.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeletePasskey(another user's): err = %v, want ErrNotFound", err)
	}
	if l, err := s.ListPasskeys(ctx, bob.ID); err != nil || len(l) != 0 {
		t.Errorf("ListPasskeys(bob) = %v, %v; want none", passkeyIDs(l), err)
	}
	if diff := cmp.Diff(p, mustGetPasskey(t, s, ada.ID, p.ID)); diff != "" {
		t.Errorf("the passkey after another user's attempts (-created +got):\n%s", diff)
	}
}

func testPasskeyRename(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	p := mustCreatePasskey(t, s, newPasskey(ada.ID))
	q := mustCreatePasskey(t, s, newPasskey(ada.ID))
	got, err := s.RenamePasskey(ctx, ada.ID, strings.ToUpper(p.ID), "Pixel 9 ✓")
	if err != nil {
		t.Fatalf("RenamePasskey: %v", err)
	}
	want := p
	want.Name = "Pixel 9 ✓"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RenamePasskey (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, mustGetPasskey(t, s, ada.ID, p.ID)); diff != "" {
		t.Errorf("GetPasskey after the rename (-want +got):\n%s", diff)
	}
	if got, err := s.RenamePasskey(ctx, ada.ID, p.ID, ""); err != nil || got.Name != "" {
		t.Errorf("RenamePasskey(\"\") = %q, %v; want no name", got.Name, err)
	}
	if _, err := s.RenamePasskey(ctx, ada.ID, p.ID, "a\x00b"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("RenamePasskey(NUL): err = %v, want a validation error", err)
	}
	if got := mustGetPasskey(t, s, ada.ID, q.ID); got.Name != q.Name {
		t.Errorf("the other passkey's name = %q, want %q", got.Name, q.Name)
	}
}

// testPasskeyUse: UsePasskey is a compare-and-set on the sign count; a
// stale prev records nothing.
func testPasskeyUse(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	in := newPasskey(ada.ID)
	in.SignCount, in.BackupEligible = 5, true
	p := mustCreatePasskey(t, s, in)

	// A stale prev, behind or ahead of the stored count: nothing changes.
	for _, prev := range []uint32{4, 6, 0} {
		ok, err := s.UsePasskey(ctx, p.ID, prev, 7, true, passkeyAt)
		if err != nil || ok {
			t.Errorf("UsePasskey(prev %d, stored 5) = %v, %v; want false", prev, ok, err)
		}
	}
	if diff := cmp.Diff(p, mustGetPasskey(t, s, ada.ID, p.ID)); diff != "" {
		t.Errorf("after stale uses (-created +got):\n%s", diff)
	}

	ok, err := s.UsePasskey(ctx, strings.ToUpper(p.ID), 5, 6, true, passkeyAt)
	if err != nil || !ok {
		t.Fatalf("UsePasskey(5 → 6) = %v, %v; want true", ok, err)
	}
	want := p
	want.SignCount, want.BackupState, want.LastUsedAt = 6, true, micro(passkeyAt)
	if diff := cmp.Diff(want, mustGetPasskey(t, s, ada.ID, p.ID)); diff != "" {
		t.Errorf("after UsePasskey (-want +got):\n%s", diff)
	}
	// The same assertion again: its prev is stale now.
	if ok, err := s.UsePasskey(ctx, p.ID, 5, 6, false, passkeyAt.Add(time.Minute)); err != nil || ok {
		t.Errorf("UsePasskey(5 → 6) again = %v, %v; want false", ok, err)
	}
	if diff := cmp.Diff(want, mustGetPasskey(t, s, ada.ID, p.ID)); diff != "" {
		t.Errorf("after a replayed use (-want +got):\n%s", diff)
	}
	// The whole uint32 range; the backup state may go back to false.
	later := passkeyAt.Add(time.Hour)
	if ok, err := s.UsePasskey(ctx, p.ID, 6, math.MaxUint32, false, later); err != nil || !ok {
		t.Fatalf("UsePasskey(6 → max) = %v, %v; want true", ok, err)
	}
	want.SignCount, want.BackupState, want.LastUsedAt = math.MaxUint32, false, micro(later)
	if diff := cmp.Diff(want, mustGetPasskey(t, s, ada.ID, p.ID)); diff != "" {
		t.Errorf("after UsePasskey to the maximum (-want +got):\n%s", diff)
	}

	// An authenticator without a counter reports 0 each time: 0 → 0 is
	// recorded, and each use moves LastUsedAt.
	zero := mustCreatePasskey(t, s, newPasskey(ada.ID))
	for i := range 2 {
		at := passkeyAt.Add(time.Duration(i) * time.Second)
		if ok, err := s.UsePasskey(ctx, zero.ID, 0, 0, false, at); err != nil || !ok {
			t.Fatalf("UsePasskey(0 → 0) #%d = %v, %v; want true", i+1, ok, err)
		}
		if got := mustGetPasskey(t, s, ada.ID, zero.ID); got.SignCount != 0 || !got.LastUsedAt.Equal(micro(at)) {
			t.Errorf("after UsePasskey(0 → 0) #%d: count %d, LastUsedAt %v", i+1, got.SignCount, got.LastUsedAt)
		}
	}
	// A zero time is now.
	if ok, err := s.UsePasskey(ctx, zero.ID, 0, 1, false, time.Time{}); err != nil || !ok {
		t.Fatalf("UsePasskey(zero time) = %v, %v; want true", ok, err)
	}
	checkNow(t, "LastUsedAt", mustGetPasskey(t, s, ada.ID, zero.ID).LastUsedAt)
	// The first passkey was not touched by the other's uses.
	if diff := cmp.Diff(want, mustGetPasskey(t, s, ada.ID, p.ID)); diff != "" {
		t.Errorf("the first passkey after the other's uses (-want +got):\n%s", diff)
	}
}

// testPasskeyParallelUse: of parallel assertions counted from the same
// value, exactly one is recorded, and what is stored is that one's.
func testPasskeyParallelUse(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	in := newPasskey(ada.ID)
	in.SignCount = 41
	p := mustCreatePasskey(t, s, in)
	const goroutines, rounds = 8, 5
	prev := p.SignCount
	for round := range rounds {
		var (
			wg     sync.WaitGroup
			won    atomic.Int32
			winner atomic.Int32
			start  = make(chan struct{})
			errs   = make(chan error, goroutines)
		)
		for i := range goroutines {
			wg.Go(func() {
				<-start
				// Each its own count and time, so the stored row tells
				// whose was recorded.
				at := passkeyAt.Add(time.Duration(round*goroutines+i) * time.Second)
				ok, err := s.UsePasskey(ctx, p.ID, prev, prev+1+uint32(i), i%2 == 0, at)
				if err != nil {
					errs <- fmt.Errorf("goroutine %d: %w", i, err)
					return
				}
				if ok {
					won.Add(1)
					winner.Store(int32(i))
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: UsePasskey: %v", round, err)
		}
		if n := won.Load(); n != 1 {
			t.Fatalf("round %d: %d of %d parallel UsePasskey calls from %d returned true, want exactly 1", round, n, goroutines, prev)
		}
		i := int(winner.Load())
		got := mustGetPasskey(t, s, ada.ID, p.ID)
		wantAt := micro(passkeyAt.Add(time.Duration(round*goroutines+i) * time.Second))
		if got.SignCount != prev+1+uint32(i) || got.BackupState != (i%2 == 0) || !got.LastUsedAt.Equal(wantAt) {
			t.Errorf("round %d: stored count %d, backup state %v, last used %v; want the winner's %d, %v, %v",
				round, got.SignCount, got.BackupState, got.LastUsedAt, prev+1+uint32(i), i%2 == 0, wantAt)
		}
		prev = got.SignCount
	}
}

// testPasskeyCloned: FlagPasskeyCloned sets ClonedAt once; a cloned
// passkey is never used again, but is still found and listed.
func testPasskeyCloned(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	in := newPasskey(ada.ID)
	in.SignCount = 10
	p := mustCreatePasskey(t, s, in)
	other := mustCreatePasskey(t, s, newPasskey(ada.ID))

	got, flagged, err := s.FlagPasskeyCloned(ctx, strings.ToUpper(p.ID), passkeyAt)
	if err != nil || !flagged {
		t.Fatalf("FlagPasskeyCloned = %v, %v; want true", flagged, err)
	}
	want := p
	want.ClonedAt = micro(passkeyAt)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FlagPasskeyCloned (-want +got):\n%s", diff)
	}
	got, flagged, err = s.FlagPasskeyCloned(ctx, p.ID, passkeyAt.Add(time.Hour))
	if err != nil || flagged {
		t.Errorf("second FlagPasskeyCloned = %v, %v; want false", flagged, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second FlagPasskeyCloned returned (-want +got):\n%s", diff)
	}
	// Never used again, even from the right count.
	if ok, err := s.UsePasskey(ctx, p.ID, 10, 11, true, passkeyAt.Add(time.Minute)); err != nil || ok {
		t.Errorf("UsePasskey(cloned) = %v, %v; want false", ok, err)
	}
	if diff := cmp.Diff(want, mustGetPasskey(t, s, ada.ID, p.ID)); diff != "" {
		t.Errorf("the cloned passkey after a use (-want +got):\n%s", diff)
	}
	if got, err := s.GetPasskeyByCredentialID(ctx, p.CredentialID); err != nil || !got.ClonedAt.Equal(want.ClonedAt) {
		t.Errorf("GetPasskeyByCredentialID(cloned) = %v, %v", got.ClonedAt, err)
	}
	if got := mustGetPasskey(t, s, ada.ID, other.ID); !got.ClonedAt.IsZero() {
		t.Errorf("the other passkey was flagged too")
	}

	// A zero time is now.
	got, flagged, err = s.FlagPasskeyCloned(ctx, other.ID, time.Time{})
	if err != nil || !flagged {
		t.Fatalf("FlagPasskeyCloned(zero time) = %v, %v", flagged, err)
	}
	checkNow(t, "ClonedAt", got.ClonedAt)

	// Of parallel flags, exactly one sets it, and every call returns the
	// time that one set.
	third := mustCreatePasskey(t, s, newPasskey(ada.ID))
	const goroutines = 8
	var (
		wg      sync.WaitGroup
		flags   atomic.Int32
		start   = make(chan struct{})
		results = make([]store.Passkey, goroutines)
		errs    = make([]error, goroutines)
	)
	for i := range goroutines {
		wg.Go(func() {
			<-start
			var ok bool
			results[i], ok, errs[i] = s.FlagPasskeyCloned(ctx, third.ID, passkeyAt.Add(time.Duration(i)*time.Second))
			if ok {
				flags.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := flags.Load(); n != 1 {
		t.Errorf("%d of %d parallel FlagPasskeyCloned calls reported setting it, want 1", n, goroutines)
	}
	stored := mustGetPasskey(t, s, ada.ID, third.ID).ClonedAt
	for i := range goroutines {
		if errs[i] != nil {
			t.Errorf("FlagPasskeyCloned #%d: %v", i, errs[i])
		} else if !results[i].ClonedAt.Equal(stored) {
			t.Errorf("FlagPasskeyCloned #%d returned ClonedAt %v, stored %v", i, results[i].ClonedAt, stored)
		}
	}
}

func testPasskeyDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	p := mustCreatePasskey(t, s, newPasskey(ada.ID))
	q := mustCreatePasskey(t, s, newPasskey(ada.ID))
	if err := s.DeletePasskey(ctx, ada.ID, strings.ToUpper(p.ID)); err != nil {
		t.Fatalf("DeletePasskey: %v", err)
	}
	if _, err := s.GetPasskey(ctx, ada.ID, p.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPasskey after the deletion: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetPasskeyByCredentialID(ctx, p.CredentialID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPasskeyByCredentialID after the deletion: err = %v, want ErrNotFound", err)
	}
	if err := s.DeletePasskey(ctx, ada.ID, p.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeletePasskey: err = %v, want ErrNotFound", err)
	}
	if ok, err := s.UsePasskey(ctx, p.ID, 0, 1, false, passkeyAt); !errors.Is(err, store.ErrNotFound) || ok {
		t.Errorf("UsePasskey(deleted) = %v, %v; want ErrNotFound", ok, err)
	}
	if _, _, err := s.FlagPasskeyCloned(ctx, p.ID, passkeyAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FlagPasskeyCloned(deleted): err = %v, want ErrNotFound", err)
	}
	if l, err := s.ListPasskeys(ctx, ada.ID); err != nil || !cmp.Equal([]string{q.ID}, passkeyIDs(l)) {
		t.Errorf("ListPasskeys after the deletion = %v, %v; want only the other", passkeyIDs(l), err)
	}
	// The credential ID is free again.
	again := newPasskey(ada.ID)
	again.CredentialID = p.CredentialID
	mustCreatePasskey(t, s, again)
}

// testPasskeyCascades: a user's passkeys stay through a soft delete and go
// with the user's row.
func testPasskeyCascades(t *testing.T, s store.Store) {
	ctx := context.Background()
	gone := mustCreateUser(t, s, newUser("gone@example.com"))
	kept := mustCreateUser(t, s, newUser("kept@example.com"))
	gp := mustCreatePasskey(t, s, newPasskey(gone.ID))
	mustCreatePasskey(t, s, newPasskey(gone.ID))
	kp := mustCreatePasskey(t, s, newPasskey(kept.ID))
	rows := func(userID string) int64 {
		t.Helper()
		return count(t, s, "SELECT count(*) FROM passkeys WHERE user_id = '"+userID+"'")
	}
	if err := s.SoftDeleteUser(ctx, gone.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := rows(gone.ID); n != 2 {
		t.Errorf("after a soft delete: %d passkeys, want both kept", n)
	}
	if err := rawExec(t, s).RawExec(ctx, "DELETE FROM users WHERE id = '"+gone.ID+"'"); err != nil {
		t.Fatalf("delete user row: %v", err)
	}
	if n := rows(gone.ID); n != 0 {
		t.Errorf("after removing the user's row: %d passkeys, want none", n)
	}
	if _, err := s.GetPasskeyByCredentialID(ctx, gp.CredentialID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPasskeyByCredentialID(removed user's): err = %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff(kp, mustGetPasskey(t, s, kept.ID, kp.ID)); diff != "" {
		t.Errorf("another user's passkey after removing a user (-created +got):\n%s", diff)
	}
}

// testPasskeySecondFactors: SecondFactors returns the user's passkeys as
// ListPasskeys does, cloned ones included, and sees its transaction.
func testPasskeySecondFactors(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	if f, err := s.SecondFactors(ctx, ada.ID); err != nil || len(f.Passkeys) != 0 {
		t.Errorf("SecondFactors(no passkey) = %+v, %v; want no passkeys", f.Passkeys, err)
	}
	second := newPasskey(ada.ID)
	second.CreatedAt = passkeyAt.Add(time.Hour)
	second.Transports = []string{"internal", "hybrid"}
	second = mustCreatePasskey(t, s, second)
	first := newPasskey(ada.ID)
	first.CreatedAt = passkeyAt
	first = mustCreatePasskey(t, s, first)
	if _, _, err := s.FlagPasskeyCloned(ctx, first.ID, passkeyAt.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustCreatePasskey(t, s, newPasskey(bob.ID))
	mustCreateDevice(t, s, totpDevice(ada.ID))

	for _, u := range []store.User{ada, bob} {
		list, err := s.ListPasskeys(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.SecondFactors(ctx, strings.ToUpper(u.ID))
		if err != nil {
			t.Fatalf("SecondFactors(%s): %v", u.Email, err)
		}
		if diff := cmp.Diff(list, f.Passkeys); diff != "" {
			t.Errorf("SecondFactors(%s).Passkeys (-ListPasskeys +got):\n%s", u.Email, diff)
		}
		if u.ID == ada.ID && (len(f.Passkeys) != 2 || f.Passkeys[0].ID != first.ID || f.Passkeys[0].ClonedAt.IsZero() || len(f.Devices) != 1) {
			t.Errorf("SecondFactors(ada) = %d passkeys (%v), %d devices; want the cloned first, then the second, and 1 device",
				len(f.Passkeys), passkeyIDs(f.Passkeys), len(f.Devices))
		}
	}
	if f, err := s.SecondFactors(ctx, "not-a-uuid"); err != nil || len(f.Passkeys) != 0 {
		t.Errorf("SecondFactors(not a UUID) = %+v, %v; want nothing", f, err)
	}

	errRollback := errors.New("rollback")
	err := s.InTx(ctx, func(tx store.Store) error {
		mustCreatePasskey(t, tx, newPasskey(ada.ID))
		f, err := tx.SecondFactors(ctx, ada.ID)
		if err != nil {
			return err
		}
		if len(f.Passkeys) != 3 {
			t.Errorf("SecondFactors inside InTx: %d passkeys, want 3", len(f.Passkeys))
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx = %v", err)
	}
	if f, err := s.SecondFactors(ctx, ada.ID); err != nil || len(f.Passkeys) != 2 {
		t.Errorf("SecondFactors after the rollback = %d passkeys, %v; want 2", len(f.Passkeys), err)
	}
}

// testPasskeyInTx: every method works inside InTx and a rollback undoes
// them all.
func testPasskeyInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	kept := mustCreatePasskey(t, s, newPasskey(ada.ID))
	doomed := mustCreatePasskey(t, s, newPasskey(ada.ID))
	errRollback := errors.New("roll back")
	var createdID string
	err := s.InTx(ctx, func(tx store.Store) error {
		p, err := tx.CreatePasskey(ctx, newPasskey(ada.ID))
		if err != nil {
			return err
		}
		createdID = p.ID
		if got, err := tx.GetPasskeyByCredentialID(ctx, p.CredentialID); err != nil || got.ID != p.ID {
			return fmt.Errorf("GetPasskeyByCredentialID in the transaction = %s, %w", got.ID, err)
		}
		if got, err := tx.GetPasskey(ctx, ada.ID, p.ID); err != nil || got.ID != p.ID {
			return fmt.Errorf("GetPasskey in the transaction = %s, %w", got.ID, err)
		}
		if l, err := tx.ListPasskeys(ctx, ada.ID); err != nil || len(l) != 3 {
			return fmt.Errorf("ListPasskeys in the transaction = %v, %w", passkeyIDs(l), err)
		}
		if _, err := tx.RenamePasskey(ctx, ada.ID, kept.ID, "renamed"); err != nil {
			return err
		}
		if ok, err := tx.UsePasskey(ctx, kept.ID, 0, 1, true, passkeyAt); err != nil || !ok {
			return fmt.Errorf("UsePasskey in the transaction = %v, %w", ok, err)
		}
		if ok, err := tx.UsePasskey(ctx, kept.ID, 0, 1, true, passkeyAt); err != nil || ok {
			return fmt.Errorf("UsePasskey again in the transaction = %v, %w", ok, err)
		}
		if _, ok, err := tx.FlagPasskeyCloned(ctx, kept.ID, passkeyAt); err != nil || !ok {
			return fmt.Errorf("FlagPasskeyCloned in the transaction = %v, %w", ok, err)
		}
		if err := tx.DeletePasskey(ctx, ada.ID, doomed.ID); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx: %v", err)
	}
	if _, err := s.GetPasskey(ctx, ada.ID, createdID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPasskey after rollback: err = %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff(kept, mustGetPasskey(t, s, ada.ID, kept.ID)); diff != "" {
		t.Errorf("kept passkey after rollback (-created +got):\n%s", diff)
	}
	if diff := cmp.Diff(doomed, mustGetPasskey(t, s, ada.ID, doomed.ID)); diff != "" {
		t.Errorf("deleted passkey after rollback (-created +got):\n%s", diff)
	}
	if n := count(t, s, "SELECT count(*) FROM passkeys"); n != 2 {
		t.Errorf("%d passkeys after rollback, want 2", n)
	}
}
