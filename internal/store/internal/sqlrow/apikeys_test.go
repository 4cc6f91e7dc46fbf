package sqlrow

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

func TestUsageDay(t *testing.T) {
	for _, c := range []struct {
		in   time.Time
		want time.Time
	}{
		{time.Date(2026, 8, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 8, 10, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 8, 10, 23, 59, 59, 999999999, time.UTC), time.Date(2026, 8, 10, 0, 0, 0, 0, time.UTC)},
		// 23:30 at UTC−2 is 01:30 the next day in UTC.
		{time.Date(2026, 8, 10, 23, 30, 0, 0, time.FixedZone("X", -7200)), time.Date(2026, 8, 11, 0, 0, 0, 0, time.UTC)},
		// 00:30 at UTC+2 is 22:30 the day before in UTC.
		{time.Date(2026, 8, 10, 0, 30, 0, 0, time.FixedZone("Y", 7200)), time.Date(2026, 8, 9, 0, 0, 0, 0, time.UTC)},
	} {
		if got := UsageDay(c.in); !got.Equal(c.want) || got.Location() != time.UTC {
			t.Errorf("UsageDay(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPrepareAPIKey(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	owner := "0192f000-0000-7000-8000-0000000000AA"
	k, err := PrepareAPIKey(store.APIKey{OwnerID: owner, Kind: store.APIKeyService, Hash: []byte{1}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if k.OwnerID != "0192f000-0000-7000-8000-0000000000aa" || k.ID == "" || !k.CreatedAt.Equal(Micro(now)) ||
		k.Permissions == nil || k.AllowedCIDRs == nil {
		t.Errorf("PrepareAPIKey = %+v", k)
	}
	if _, err := PrepareAPIKey(store.APIKey{OwnerID: "x", Kind: store.APIKeyService, Hash: []byte{1}}, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("owner not a UUID: err = %v, want ErrNotFound", err)
	}
	if _, err := PrepareAPIKey(store.APIKey{OwnerID: owner, Kind: "x", Hash: []byte{1}}, now); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown kind: err = %v, want a validation error", err)
	}
}
