package sqlrow

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/internal/store"
)

func TestDeliveryCursorRoundTrip(t *testing.T) {
	for _, c := range []struct {
		at time.Time
		id string
	}{
		{time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC), "whdl_abc"},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "with.dots.in.it"},
		{time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), "é"},
	} {
		at, id, err := DecodeDeliveryCursor(EncodeDeliveryCursor(c.at, c.id))
		if err != nil || !at.Equal(c.at) || at.Location() != time.UTC || id != c.id {
			t.Errorf("round trip of %v, %q = %v, %q, %v", c.at, c.id, at, id, err)
		}
	}
}

// Another listing's cursor, or a payload no encoder makes, is refused.
func TestDeliveryCursorForeign(t *testing.T) {
	for _, s := range []string{
		EncodeCursor(time.Now(), "0190d5c4-7a6b-7c3e-9f00-000000000001"), // the audit log's
		base64.RawURLEncoding.EncodeToString([]byte("d1.0123.x")),
		base64.RawURLEncoding.EncodeToString([]byte("d1.123.")),
		base64.RawURLEncoding.EncodeToString([]byte("d1.123.a\x00")),
		base64.RawURLEncoding.EncodeToString([]byte("d2.123.x")),
		"", "***",
	} {
		if _, _, err := DecodeDeliveryCursor(s); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("DecodeDeliveryCursor(%q): err = %v, want ErrInvalidCursor", s, err)
		}
	}
}

// Whatever a client sends, DecodeDeliveryCursor fails with
// ErrInvalidCursor or returns a position that encodes back to the same
// cursor.
func FuzzDecodeDeliveryCursor(f *testing.F) {
	f.Add(EncodeDeliveryCursor(time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), "whdl_1"))
	f.Add("")
	f.Add("ZDEuMTIzLg")
	f.Fuzz(func(t *testing.T, s string) {
		at, id, err := DecodeDeliveryCursor(s)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidCursor) {
				t.Fatalf("DecodeDeliveryCursor(%q) error %v does not wrap ErrInvalidCursor", s, err)
			}
			return
		}
		if again := EncodeDeliveryCursor(at, id); again != s {
			t.Fatalf("DecodeDeliveryCursor(%q) = %v, %q, which encodes to %q", s, at, id, again)
		}
	})
}

func TestPrepareWebhookAttemptText(t *testing.T) {
	a, err := PrepareWebhookAttempt(store.WebhookAttempt{
		At: time.Now(), Error: "a\x00b\xffc", Response: strings.Repeat("x", store.WebhookResponseLimit-1) + "€",
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.Error != "ab\uFFFDc" {
		t.Errorf("Error = %q, want NUL dropped and U+FFFD", a.Error)
	}
	// The euro sign (3 bytes) straddles the limit: it goes whole.
	if a.Response != strings.Repeat("x", store.WebhookResponseLimit-1) {
		t.Errorf("Response is %d bytes ending %q, want the x's only", len(a.Response), a.Response[len(a.Response)-3:])
	}
}

// Whatever a receiver answers, the stored text is valid UTF-8 without NUL
// and within the limit.
func FuzzPrepareWebhookAttemptText(f *testing.F) {
	f.Add("ok")
	f.Add("\x00\xff\xfe")
	f.Fuzz(func(t *testing.T, s string) {
		body := strings.Repeat(s, store.WebhookResponseLimit/max(1, len(s))+1)
		a, err := PrepareWebhookAttempt(store.WebhookAttempt{At: time.Now(), Error: s, Response: body})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{a.Error, a.Response} {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				t.Fatalf("stored text %q is not storable", v)
			}
		}
		if len(a.Response) > store.WebhookResponseLimit {
			t.Fatalf("Response is %d bytes", len(a.Response))
		}
	})
}
