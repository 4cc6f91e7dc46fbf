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

func runSigningKeys(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testSigningKeyRoundTrip(t, migrated(t)) })
	t.Run("Invalid", func(t *testing.T) { testSigningKeyInvalid(t, migrated(t)) })
	t.Run("OrderAndExpiry", func(t *testing.T) { testSigningKeyOrder(t, migrated(t)) })
	t.Run("Rotate", func(t *testing.T) { testSigningKeyRotate(t, migrated(t)) })
	t.Run("RotateConflictRollsBack", func(t *testing.T) { testSigningKeyRotateConflict(t, migrated(t)) })
	t.Run("RotateInTx", func(t *testing.T) { testSigningKeyRotateInTx(t, migrated(t)) })
	t.Run("ConcurrentRotate", func(t *testing.T) { testSigningKeyConcurrentRotate(t, migrated(t)) })
	t.Run("Purge", func(t *testing.T) { testSigningKeyPurge(t, migrated(t)) })
}

// keyTime is a fixed instant with sub-microsecond digits, which the store
// must drop.
var keyTime = time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)

func testKey(id string) store.SigningKey {
	return store.SigningKey{
		ID:         id,
		Algorithm:  "ES256",
		PrivateKey: "v1.test." + id + ".sealed",
		PublicKey:  `{"kty":"EC","crv":"P-256","kid":"` + id + `","x":"x","y":"y"}`,
	}
}

func listKeys(t *testing.T, s store.Store, now time.Time) []store.SigningKey {
	t.Helper()
	keys, err := s.ListSigningKeys(context.Background(), now)
	if err != nil {
		t.Fatalf("ListSigningKeys: %v", err)
	}
	return keys
}

func keyIDs(keys []store.SigningKey) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}

func testSigningKeyRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	full := testKey("full")
	full.Algorithm = "RS256"
	full.CreatedAt = keyTime.In(time.FixedZone("X", 3600))
	full.ActivatedAt = keyTime.Add(time.Second)
	full.RetiredAt = keyTime.Add(time.Hour)
	full.ExpiresAt = keyTime.Add(2 * time.Hour)
	if err := s.CreateSigningKey(ctx, full); err != nil {
		t.Fatalf("CreateSigningKey: %v", err)
	}

	before := time.Now().UTC()
	bare := testKey("bare")
	bare.Algorithm = "EdDSA"
	if err := s.CreateSigningKey(ctx, bare); err != nil {
		t.Fatalf("CreateSigningKey without times: %v", err)
	}
	after := time.Now().UTC()

	got := listKeys(t, s, keyTime)
	if len(got) != 2 {
		t.Fatalf("ListSigningKeys returned %d keys, want 2", len(got))
	}
	gotBare, gotFull := got[1], got[0]
	if gotBare.ID != "bare" {
		gotBare, gotFull = got[0], got[1]
	}
	want := full
	want.CreatedAt, want.ActivatedAt = micro(full.CreatedAt), micro(full.ActivatedAt)
	want.RetiredAt, want.ExpiresAt = micro(full.RetiredAt), micro(full.ExpiresAt)
	if diff := cmp.Diff(want, gotFull); diff != "" {
		t.Errorf("stored key (-want +got):\n%s", diff)
	}
	for _, tm := range []time.Time{gotFull.CreatedAt, gotFull.ActivatedAt, gotFull.RetiredAt, gotFull.ExpiresAt, gotBare.CreatedAt} {
		if tm.Location() != time.UTC {
			t.Errorf("time %v is not in UTC", tm)
		}
	}
	if gotBare.CreatedAt.Before(before.Truncate(time.Microsecond)) || gotBare.CreatedAt.After(after) {
		t.Errorf("default CreatedAt = %v, want between %v and %v", gotBare.CreatedAt, before, after)
	}
	if !gotBare.ActivatedAt.Equal(gotBare.CreatedAt) || !gotBare.RetiredAt.IsZero() || !gotBare.ExpiresAt.IsZero() {
		t.Errorf("key created without times = %+v; want ActivatedAt = CreatedAt, not retired, no expiry", gotBare)
	}
	if gotBare.PrivateKey != bare.PrivateKey || gotBare.PublicKey != bare.PublicKey || gotBare.Algorithm != "EdDSA" {
		t.Errorf("key material changed on the way: %+v", gotBare)
	}

	dup := testKey("full")
	if err := s.CreateSigningKey(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateSigningKey with an existing ID: err = %v, want ErrConflict", err)
	}
}

func testSigningKeyInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		modify func(*store.SigningKey)
	}{
		{"no id", func(k *store.SigningKey) { k.ID = "" }},
		{"unknown algorithm", func(k *store.SigningKey) { k.Algorithm = "HS256" }},
		{"none algorithm", func(k *store.SigningKey) { k.Algorithm = "none" }},
		{"no private key", func(k *store.SigningKey) { k.PrivateKey = "" }},
		{"no public key", func(k *store.SigningKey) { k.PublicKey = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := testKey("bad")
			tc.modify(&k)
			if err := s.CreateSigningKey(ctx, k); err == nil {
				t.Error("CreateSigningKey accepted an invalid key")
			}
			if err := s.RotateSigningKeys(ctx, k, keyTime, keyTime.Add(time.Hour)); err == nil {
				t.Error("RotateSigningKeys accepted an invalid key")
			}
		})
	}
	if err := s.RotateSigningKeys(ctx, testKey("no-retire-time"), time.Time{}, keyTime); err == nil {
		t.Error("RotateSigningKeys accepted a zero retire time")
	}
	if keys := listKeys(t, s, keyTime); len(keys) != 0 {
		t.Errorf("invalid keys were stored: %v", keyIDs(keys))
	}
}

func testSigningKeyOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := func(id string, activated, created time.Duration, expires time.Duration) store.SigningKey {
		k := testKey(id)
		k.CreatedAt = keyTime.Add(created)
		k.ActivatedAt = keyTime.Add(activated)
		if expires != 0 {
			k.RetiredAt = keyTime
			k.ExpiresAt = keyTime.Add(expires)
		}
		return k
	}
	for _, k := range []store.SigningKey{
		at("b-middle", 2*time.Minute, 0, 0),
		at("e-oldest", -time.Hour, -time.Hour, 10*time.Minute),
		at("c-tie-older-created", time.Hour, -time.Minute, 0),
		at("a-tie-newer-created", time.Hour, 0, 0),
		at("d-tie-id-b", time.Hour, 0, 20*time.Minute),
		at("expired", 3*time.Hour, 0, time.Minute),
		at("expires-exactly", 3*time.Hour, 0, 5*time.Minute),
	} {
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatalf("CreateSigningKey(%s): %v", k.ID, err)
		}
	}
	now := keyTime.Add(5 * time.Minute)
	want := []string{"d-tie-id-b", "a-tie-newer-created", "c-tie-older-created", "b-middle", "e-oldest"}
	if diff := cmp.Diff(want, keyIDs(listKeys(t, s, now))); diff != "" {
		t.Errorf("ListSigningKeys at +5m (-want +got):\n%s", diff)
	}
	want = []string{"d-tie-id-b", "a-tie-newer-created", "c-tie-older-created", "b-middle"}
	if diff := cmp.Diff(want, keyIDs(listKeys(t, s, keyTime.Add(15*time.Minute)))); diff != "" {
		t.Errorf("ListSigningKeys at +15m (-want +got):\n%s", diff)
	}
}

func testSigningKeyRotate(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Two current keys, as when two nodes started at once.
	for i, id := range []string{"first", "second"} {
		k := testKey(id)
		k.CreatedAt = keyTime.Add(time.Duration(i) * time.Second)
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	old := testKey("old")
	old.CreatedAt = keyTime.Add(-time.Hour)
	old.RetiredAt = keyTime.Add(-30 * time.Minute)
	old.ExpiresAt = keyTime.Add(time.Hour)
	if err := s.CreateSigningKey(ctx, old); err != nil {
		t.Fatal(err)
	}

	retire, expire := keyTime.Add(time.Minute), keyTime.Add(20*time.Minute)
	next := testKey("next")
	next.RetiredAt, next.ExpiresAt = keyTime, keyTime // ignored
	if err := s.RotateSigningKeys(ctx, next, retire, expire); err != nil {
		t.Fatalf("RotateSigningKeys: %v", err)
	}
	keys := listKeys(t, s, keyTime)
	if diff := cmp.Diff([]string{"next", "second", "first", "old"}, keyIDs(keys)); diff != "" {
		t.Fatalf("keys after rotation (-want +got):\n%s", diff)
	}
	got := keys[0]
	if !got.RetiredAt.IsZero() || !got.ExpiresAt.IsZero() || !got.ActivatedAt.Equal(micro(retire)) || got.CreatedAt.IsZero() {
		t.Errorf("new key = %+v; want current, no expiry, activated at the retire time %v", got, micro(retire))
	}
	for _, k := range keys[1:3] {
		if !k.RetiredAt.Equal(micro(retire)) || !k.ExpiresAt.Equal(micro(expire)) {
			t.Errorf("key %s: retired %v, expires %v; want %v, %v", k.ID, k.RetiredAt, k.ExpiresAt, micro(retire), micro(expire))
		}
	}
	if k := keys[3]; !k.RetiredAt.Equal(micro(old.RetiredAt)) || !k.ExpiresAt.Equal(micro(old.ExpiresAt)) {
		t.Errorf("an already retired key was changed: %+v", k)
	}
	if ids := keyIDs(listKeys(t, s, expire)); !cmp.Equal(ids, []string{"next", "old"}) {
		t.Errorf("keys at the old keys' expiry = %v, want [next old]", ids)
	}
}

func testSigningKeyRotateConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateSigningKey(ctx, testKey("current")); err != nil {
		t.Fatal(err)
	}
	// The new key's ID clashes with the current key: the insert fails after
	// the update retired the current key, and the whole rotation must roll
	// back.
	err := s.RotateSigningKeys(ctx, testKey("current"), keyTime, keyTime.Add(time.Hour))
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("RotateSigningKeys with a duplicate ID: err = %v, want ErrConflict", err)
	}
	keys := listKeys(t, s, keyTime)
	if len(keys) != 1 || !keys[0].RetiredAt.IsZero() || !keys[0].ExpiresAt.IsZero() {
		t.Errorf("after a failed rotation: %+v; want the current key untouched", keys)
	}
}

func testSigningKeyRotateInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateSigningKey(ctx, testKey("current")); err != nil {
		t.Fatal(err)
	}
	errAbort := errors.New("abort")
	err := s.InTx(ctx, func(tx store.Store) error {
		if err := tx.RotateSigningKeys(ctx, testKey("in-tx"), keyTime, keyTime.Add(time.Hour)); err != nil {
			return err
		}
		if ids := keyIDs(listKeys(t, tx, keyTime)); !cmp.Equal(ids, []string{"in-tx", "current"}) {
			t.Errorf("keys inside the transaction = %v", ids)
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("InTx: %v", err)
	}
	keys := listKeys(t, s, keyTime)
	if len(keys) != 1 || keys[0].ID != "current" || !keys[0].RetiredAt.IsZero() {
		t.Errorf("after rolling back a rotation: %+v; want only the untouched current key", keys)
	}
}

func testSigningKeyConcurrentRotate(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateSigningKey(ctx, testKey("initial")); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  [n]error
	)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.RotateSigningKeys(ctx, testKey(fmt.Sprintf("rotated-%d", i)), keyTime, keyTime.Add(time.Hour))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("rotation %d: %v", i, err)
		}
	}
	keys := listKeys(t, s, keyTime)
	if len(keys) != n+1 {
		t.Errorf("%d keys after %d rotations, want %d", len(keys), n, n+1)
	}
	var current []string
	for _, k := range keys {
		if k.RetiredAt.IsZero() {
			current = append(current, k.ID)
		} else if k.ExpiresAt.IsZero() {
			t.Errorf("retired key %s has no expiry", k.ID)
		}
	}
	if len(current) != 1 {
		t.Errorf("current keys after concurrent rotations: %v, want exactly one", current)
	}
}

func testSigningKeyPurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, tc := range []struct {
		id      string
		expires time.Duration // 0: none
	}{
		{"current", 0},
		{"expired-long-ago", -time.Hour},
		{"expired-just-now", -time.Microsecond},
		{"expires-at-cutoff", 0}, // expires exactly at the cut-off: kept
		{"expires-later", time.Hour},
	} {
		k := testKey(tc.id)
		if tc.id != "current" {
			k.RetiredAt = keyTime.Add(-2 * time.Hour)
			k.ExpiresAt = keyTime.Add(tc.expires)
		}
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PurgeSigningKeys(ctx, keyTime)
	if err != nil {
		t.Fatalf("PurgeSigningKeys: %v", err)
	}
	if n != 2 {
		t.Errorf("PurgeSigningKeys removed %d keys, want 2", n)
	}
	// List as of long ago, so that no key is filtered as expired.
	ids := keyIDs(listKeys(t, s, keyTime.Add(-24*time.Hour)))
	want := map[string]bool{"current": true, "expires-at-cutoff": true, "expires-later": true}
	if len(ids) != len(want) {
		t.Errorf("keys after purge = %v, want %v", ids, want)
	}
	for _, id := range ids {
		if !want[id] {
			t.Errorf("key %s survived the purge", id)
		}
	}
}
