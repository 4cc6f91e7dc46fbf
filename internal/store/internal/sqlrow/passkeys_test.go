package sqlrow

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

func TestPreparePasskey(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	user := "0192f000-0000-7000-8000-0000000000AA"
	valid := func() store.Passkey {
		return store.Passkey{UserID: user, CredentialID: []byte{1, 2, 3}, PublicKey: []byte{4}}
	}
	p, err := PreparePasskey(valid(), now)
	if err != nil {
		t.Fatal(err)
	}
	if p.UserID != "0192f000-0000-7000-8000-0000000000aa" || p.ID == "" || !p.CreatedAt.Equal(Micro(now)) ||
		!bytes.Equal(p.AAGUID, make([]byte, AAGUIDLen)) || p.Transports == nil || !p.LastUsedAt.IsZero() || !p.ClonedAt.IsZero() {
		t.Errorf("PreparePasskey = %+v", p)
	}
	notUUID := valid()
	notUUID.UserID = "x"
	if _, err := PreparePasskey(notUUID, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("user not a UUID: err = %v, want ErrNotFound", err)
	}
	for name, f := range map[string]func(*store.Passkey){
		"no credential ID":       func(p *store.Passkey) { p.CredentialID = nil },
		"credential ID too long": func(p *store.Passkey) { p.CredentialID = make([]byte, MaxCredentialIDLen+1) },
		"no public key":          func(p *store.Passkey) { p.PublicKey = nil },
		"AAGUID of 8 bytes":      func(p *store.Passkey) { p.AAGUID = make([]byte, 8) },
		"empty transport":        func(p *store.Passkey) { p.Transports = []string{""} },
		"NUL in name":            func(p *store.Passkey) { p.Name = "\x00" },
	} {
		p := valid()
		f(&p)
		if _, err := PreparePasskey(p, now); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want a validation error", name, err)
		}
	}
}

// passkeyRow scans fixed values into ScanPasskey's destinations.
type passkeyRow struct{ count int64 }

func (r passkeyRow) Scan(dest ...any) error {
	*dest[0].(*string) = "id"
	*dest[6].(*int64) = r.count
	*dest[7].(*[]string) = []string{}
	return nil
}

func TestScanPasskeySignCountRange(t *testing.T) {
	td := func(t *time.Time) any { return t }
	ld := func(l *[]string) any { return l }
	for _, c := range []struct {
		count int64
		ok    bool
	}{{0, true}, {math.MaxUint32, true}, {-1, false}, {math.MaxUint32 + 1, false}} {
		p, err := ScanPasskey(passkeyRow{c.count}, td, td, ld)
		if (err == nil) != c.ok || (c.ok && int64(p.SignCount) != c.count) {
			t.Errorf("ScanPasskey(sign count %d) = %d, %v", c.count, p.SignCount, err)
		}
		if c.ok && p.Transports != nil {
			t.Errorf("ScanPasskey: empty transports read back as %#v, want nil", p.Transports)
		}
	}
}
