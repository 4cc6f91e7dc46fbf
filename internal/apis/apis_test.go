package apis_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
)

const issuer = "https://auth.example.test"

func newRegistry(t *testing.T, defaultAudience string, now func() time.Time) (*apis.Registry, *sqlite.Store) {
	t.Helper()
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrator().Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	r, err := apis.New(apis.Deps{
		Store: store.Narrow(s, func(tx store.Store) apis.Tx { return tx }), Issuer: issuer,
		DefaultAudience: defaultAudience, CacheTTL: time.Minute, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, s
}

func TestValidateIdentifier(t *testing.T) {
	for _, ok := range []string{"https://api.example.com", "https://api.example.com/v1?x=1", "urn:example:invoices", "http://localhost:9000"} {
		if err := apis.ValidateIdentifier(ok); err != nil {
			t.Errorf("ValidateIdentifier(%q) = %v, want ok", ok, err)
		}
	}
	for _, bad := range []string{"", "api.example.com", "/v1", "https://api.example.com#x", "https://api.example.com/#", "https:///path", "https://a b.example", "https://a.example/\x00", "https://a.example/\xff", "https://" + string(make([]byte, 2050))} {
		if err := apis.ValidateIdentifier(bad); err == nil {
			t.Errorf("ValidateIdentifier(%q) = nil, want an error", bad)
		}
	}
}

func TestGrants(t *testing.T) {
	ctx := t.Context()
	r, _ := newRegistry(t, "", time.Now)
	a, err := r.Create(ctx, apis.Input{Identifier: "https://api.example.test", Name: " Invoices ", Scopes: []string{"read", "write", "read"}}, httpapi.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "Invoices" || !slices.Equal(a.Scopes, []string{"read", "write"}) {
		t.Errorf("created %+v, want the name trimmed and repeats dropped", a)
	}

	aud, scope, err := r.UserGrant(ctx, nil, "")
	if err != nil || aud != nil || scope != "openid profile email offline_access" {
		t.Errorf("UserGrant(none) = %v %q %v", aud, scope, err)
	}
	aud, scope, err = r.UserGrant(ctx, []string{"https://api.example.test", issuer, "https://api.example.test"}, "read openid read")
	if err != nil || !slices.Equal(aud, []string{"https://api.example.test", issuer}) || scope != "read openid" {
		t.Errorf("UserGrant(api, issuer) = %v %q %v", aud, scope, err)
	}
	if _, _, err := r.UserGrant(ctx, []string{"https://other.example.test"}, ""); !errors.Is(err, apis.ErrInvalidTarget) {
		t.Errorf("unknown resource: %v", err)
	}
	if _, _, err := r.UserGrant(ctx, nil, "read"); !errors.Is(err, apis.ErrInvalidScope) {
		t.Errorf("an API's scope without the API: %v", err)
	}

	// Narrow: within the grant only; nil is the default audience.
	if got, err := r.Narrow(ctx, nil, nil); err != nil || got != nil {
		t.Errorf("Narrow(default) = %v %v", got, err)
	}
	if got, err := r.Narrow(ctx, nil, []string{issuer}); err != nil || !slices.Equal(got, []string{issuer}) {
		t.Errorf("Narrow(default, issuer) = %v %v", got, err)
	}
	granted := []string{"https://api.example.test", issuer}
	if got, err := r.Narrow(ctx, granted, []string{issuer}); err != nil || !slices.Equal(got, []string{issuer}) {
		t.Errorf("Narrow to the issuer = %v %v", got, err)
	}
	// The same resource twice is asked for once.
	if got, err := r.Narrow(ctx, granted, []string{issuer, issuer}); err != nil || !slices.Equal(got, []string{issuer}) {
		t.Errorf("Narrow to the issuer twice = %v %v", got, err)
	}
	if _, err := r.Narrow(ctx, []string{issuer}, []string{"https://api.example.test"}); !errors.Is(err, apis.ErrInvalidTarget) {
		t.Errorf("widening: %v, want ErrInvalidTarget", err)
	}

	// Deleted: dropped from a refresh's audience at once on this node;
	// asking for it is invalid_target.
	if err := r.Delete(ctx, a.ID, httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Narrow(ctx, granted, nil); err != nil || !slices.Equal(got, []string{issuer}) {
		t.Errorf("Narrow after delete = %v %v, want the issuer only", got, err)
	}
	if _, err := r.Narrow(ctx, []string{"https://api.example.test"}, nil); !errors.Is(err, apis.ErrInvalidTarget) {
		t.Errorf("Narrow of a grant whose only API is gone: %v", err)
	}
	if _, err := r.Narrow(ctx, granted, []string{"https://api.example.test"}); !errors.Is(err, apis.ErrInvalidTarget) {
		t.Errorf("Narrow to a deleted API: %v", err)
	}
}

// TestCacheKeepsHitsOnly: another node's new API is usable at once (a
// miss is never cached); its deletion shows after CacheTTL.
func TestCacheKeepsHitsOnly(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r, s := newRegistry(t, "", clock)
	other, err := apis.New(apis.Deps{Store: store.Narrow(s, func(tx store.Store) apis.Tx { return tx }), Issuer: issuer, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(ctx, []string{"https://new.example.test"}); !errors.Is(err, apis.ErrInvalidTarget) {
		t.Fatalf("before: %v", err)
	}
	a, err := other.Create(ctx, apis.Input{Identifier: "https://new.example.test", Name: "New"}, httpapi.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(ctx, []string{"https://new.example.test"}); err != nil {
		t.Fatalf("created on another node: %v", err)
	}
	if err := other.Delete(ctx, a.ID, httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(ctx, []string{"https://new.example.test"}); err != nil {
		t.Errorf("deleted on another node, within the cache's lifetime: %v", err)
	}
	now = now.Add(time.Minute)
	if _, err := r.Resolve(ctx, []string{"https://new.example.test"}); !errors.Is(err, apis.ErrInvalidTarget) {
		t.Errorf("after the cache's lifetime: %v, want ErrInvalidTarget", err)
	}
}

func TestCreateAndUpdateRefuseBadInput(t *testing.T) {
	ctx := t.Context()
	r, s := newRegistry(t, "", time.Now)
	for _, in := range []apis.Input{
		{Identifier: issuer, Name: "Gatehouse"},
		{Identifier: "https://a.example.test", Name: ""},
		{Identifier: "https://a.example.test", Name: "A", Scopes: []string{"introspect"}},
		{Identifier: "https://a.example.test", Name: "A", Scopes: []string{"has space"}},
	} {
		_, err := r.Create(ctx, in, httpapi.Meta{})
		var p *httpapi.Problem
		if !errors.As(err, &p) || p.Status != 422 {
			t.Errorf("Create(%+v) = %v, want a 422 validation problem", in, err)
		}
	}
	a, err := r.Create(ctx, apis.Input{Identifier: "https://a.example.test", Name: "A", Scopes: []string{"x"}}, httpapi.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Create(ctx, apis.Input{Identifier: "https://a.example.test", Name: "B"}, httpapi.Meta{}); !errors.Is(err, apis.ErrIdentifierTaken) {
		t.Errorf("duplicate: %v", err)
	}
	bad := []string{"openid"}
	if _, err := r.Update(ctx, a.ID, nil, &bad, httpapi.Meta{}); err == nil {
		t.Error("Update with a reserved scope succeeded")
	}
	if got, _ := r.Get(ctx, a.ID); !slices.Equal(got.Scopes, []string{"x"}) {
		t.Errorf("scopes after a refused update = %v", got.Scopes)
	}
	if _, err := r.Update(ctx, "api_none", nil, nil, httpapi.Meta{}); !errors.Is(err, apis.ErrNotFound) {
		t.Errorf("update unknown: %v", err)
	}
	// Every change is in the audit log, in the same transaction.
	events, _, err := s.ListAuditEvents(ctx, store.AuditFilter{SubjectID: a.ID})
	if err != nil || len(events) != 1 || events[0].Action != "api.created" {
		t.Errorf("audit events = %+v, %v; want one api.created", events, err)
	}
}
