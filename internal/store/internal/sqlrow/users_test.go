package sqlrow

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func TestUserCursorRoundTrip(t *testing.T) {
	for _, us := range []UserSort{{}, {Desc: true}, {ByEmail: true}, {ByEmail: true, Desc: true}} {
		u := store.User{
			ID:              uuid.NewString(),
			EmailNormalized: "a.b.c+tag@example.com",
			CreatedAt:       time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		}
		c, err := DecodeUserCursor(EncodeUserCursor(us, u), us)
		if err != nil {
			t.Fatalf("sort %s: %v", us, err)
		}
		want := UserCursor{ID: u.ID, CreatedAt: u.CreatedAt}
		if us.ByEmail {
			want = UserCursor{ID: u.ID, Email: u.EmailNormalized}
		}
		if c != want {
			t.Errorf("sort %s: round trip = %+v, want %+v", us, c, want)
		}
	}
}

func TestParseUserSort(t *testing.T) {
	for in, want := range map[string]string{"": "created_at", "created_at": "created_at", "-created_at": "-created_at", "email": "email", "-email": "-email"} {
		us, err := ParseUserSort(in)
		if err != nil || us.String() != want {
			t.Errorf("ParseUserSort(%q) = %s, %v; want %s", in, us, err, want)
		}
	}
	for _, in := range []string{"-", "--email", "+email", "name", "EMAIL", " email"} {
		if _, err := ParseUserSort(in); err == nil {
			t.Errorf("ParseUserSort(%q) succeeded", in)
		}
	}
}

func TestEmailPattern(t *testing.T) {
	for in, want := range map[string]string{
		"Ada":     "%ada%",
		"100%":    `%100\%%`,
		"a_b":     `%a\_b%`,
		`back\sl`: `%back\\sl%`,
		"ÉMILE":   "%émile%",
	} {
		if got := EmailPattern(in); got != want {
			t.Errorf("EmailPattern(%q) = %q, want %q", in, got, want)
		}
	}
}

// User cursors come from clients: whatever they send, DecodeUserCursor
// either fails with ErrInvalidCursor or returns a position that encodes
// back to the same cursor.
func FuzzDecodeUserCursor(f *testing.F) {
	id := uuid.NewString()
	f.Add(EncodeUserCursor(UserSort{}, store.User{ID: id, CreatedAt: time.Now()}), false, false)
	f.Add(EncodeUserCursor(UserSort{ByEmail: true, Desc: true}, store.User{ID: id, EmailNormalized: "x@y.z"}), true, true)
	f.Add(EncodeCursor(time.Now(), id), false, true)
	f.Add("", false, false)
	f.Fuzz(func(t *testing.T, s string, byEmail, desc bool) {
		us := UserSort{ByEmail: byEmail, Desc: desc}
		c, err := DecodeUserCursor(s, us)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidCursor) {
				t.Fatalf("DecodeUserCursor(%q) error %v does not wrap ErrInvalidCursor", s, err)
			}
			return
		}
		again := EncodeUserCursor(us, store.User{ID: c.ID, EmailNormalized: c.Email, CreatedAt: c.CreatedAt})
		if again != s {
			t.Fatalf("DecodeUserCursor(%q) = %+v, which encodes to %q", s, c, again)
		}
	})
}
