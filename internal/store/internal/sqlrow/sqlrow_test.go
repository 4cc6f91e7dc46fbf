package sqlrow

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
	} {
		id := uuid.NewString()
		gotAt, gotID, err := DecodeCursor(EncodeCursor(at, id))
		if err != nil || !gotAt.Equal(at) || gotAt.Location() != time.UTC || gotID != id {
			t.Errorf("round trip of %v, %s = %v, %s, %v", at, id, gotAt, gotID, err)
		}
	}
}

func TestAuditLimit(t *testing.T) {
	for in, want := range map[int]int{-5: 50, 0: 50, 1: 1, 50: 50, 200: 200, 201: 200, 1 << 40: 200} {
		if got := AuditLimit(in); got != want {
			t.Errorf("AuditLimit(%d) = %d, want %d", in, got, want)
		}
	}
}

// The cursor comes from clients: whatever they send, DecodeCursor either
// fails with ErrInvalidCursor or returns a position that encodes back to the
// same cursor.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(EncodeCursor(time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), uuid.NewString()))
	f.Add("")
	f.Add("MS4xMi4z")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		at, id, err := DecodeCursor(s)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidCursor) {
				t.Fatalf("DecodeCursor(%q) error %v does not wrap ErrInvalidCursor", s, err)
			}
			return
		}
		if again := EncodeCursor(at, id); again != s {
			t.Fatalf("DecodeCursor(%q) = %v, %s, which encodes to %q", s, at, id, again)
		}
	})
}

func TestDecodeCursorIsCanonical(t *testing.T) {
	id := uuid.NewString()
	for _, payload := range []string{"1.012345." + id, "1.+12345." + id, "1.12345." + id + " "} {
		if _, _, err := DecodeCursor(base64.RawURLEncoding.EncodeToString([]byte(payload))); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("payload %q: err = %v, want ErrInvalidCursor", payload, err)
		}
	}
}
