package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runAPIs(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("CRUD", func(t *testing.T) { testAPICRUD(t, migrated(t)) })
	t.Run("Invalid", func(t *testing.T) { testAPIInvalid(t, migrated(t)) })
}

func testAPICRUD(t *testing.T, s store.Store) {
	ctx := context.Background()
	full := store.API{
		ID: "api_full", Identifier: "https://api.example.com", Name: "Invoices",
		Scopes:    []string{"read:invoices", "write:invoices"},
		CreatedAt: sessAt.In(time.FixedZone("X", 3600)), UpdatedAt: sessAt.Add(time.Minute),
	}
	got, err := s.CreateAPI(ctx, full)
	if err != nil {
		t.Fatalf("CreateAPI: %v", err)
	}
	want := full
	want.CreatedAt, want.UpdatedAt = micro(full.CreatedAt), micro(full.UpdatedAt)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CreateAPI returned (-want +got):\n%s", diff)
	}
	if g, err := s.GetAPI(ctx, "api_full"); err != nil {
		t.Errorf("GetAPI: %v", err)
	} else if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("GetAPI (-want +got):\n%s", diff)
	}
	if g, err := s.GetAPIByIdentifier(ctx, "https://api.example.com"); err != nil {
		t.Errorf("GetAPIByIdentifier: %v", err)
	} else if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("GetAPIByIdentifier (-want +got):\n%s", diff)
	}

	// Defaults: CreatedAt now, UpdatedAt = CreatedAt, no scopes.
	minimal, err := s.CreateAPI(ctx, store.API{ID: "api_min", Identifier: "urn:example:min", Name: "Min"})
	if err != nil {
		t.Fatalf("CreateAPI(minimal): %v", err)
	}
	checkNow(t, "CreatedAt", minimal.CreatedAt)
	if !minimal.UpdatedAt.Equal(minimal.CreatedAt) || minimal.Scopes != nil {
		t.Errorf("minimal API = %+v, want UpdatedAt = CreatedAt and nil scopes", minimal)
	}

	// A duplicate ID or identifier is a conflict and changes nothing.
	for _, dup := range []store.API{
		{ID: "api_full", Identifier: "https://other.example.com", Name: "X"},
		{ID: "api_other", Identifier: "https://api.example.com", Name: "X"},
	} {
		if _, err := s.CreateAPI(ctx, dup); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateAPI(duplicate %+v): err = %v, want ErrConflict", dup, err)
		}
	}
	// Identifiers compare exactly: another case or a trailing slash is
	// another API.
	for _, id := range []string{"https://API.example.com", "https://api.example.com/", "", "\xff"} {
		if _, err := s.GetAPIByIdentifier(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetAPIByIdentifier(%q): err = %v, want ErrNotFound", id, err)
		}
	}

	list, err := s.ListAPIs(ctx)
	if err != nil {
		t.Fatalf("ListAPIs: %v", err)
	}
	// minimal was created now, years before sessAt.
	if diff := cmp.Diff([]store.API{minimal, want}, list); diff != "" {
		t.Errorf("ListAPIs, oldest first (-want +got):\n%s", diff)
	}

	// Update: name and scopes, never the identifier.
	at := sessAt.Add(time.Hour)
	up, err := s.UpdateAPI(ctx, store.API{ID: "api_full", Identifier: "https://ignored.example", Name: "Invoices v2", Scopes: []string{"read:invoices"}, UpdatedAt: at})
	if err != nil {
		t.Fatalf("UpdateAPI: %v", err)
	}
	wantUp := want
	wantUp.Name, wantUp.Scopes, wantUp.UpdatedAt = "Invoices v2", []string{"read:invoices"}, micro(at)
	if diff := cmp.Diff(wantUp, up); diff != "" {
		t.Errorf("UpdateAPI returned (-want +got):\n%s", diff)
	}
	if g, _ := s.GetAPI(ctx, "api_full"); !cmp.Equal(wantUp, g) {
		t.Errorf("GetAPI after update = %+v, want %+v", g, wantUp)
	}
	up, err = s.UpdateAPI(ctx, store.API{ID: "api_full", Name: "No scopes"})
	if err != nil || up.Scopes != nil || up.Name != "No scopes" {
		t.Errorf("UpdateAPI clearing scopes = %+v, %v", up, err)
	}
	checkNow(t, "UpdatedAt", up.UpdatedAt)
	if _, err := s.UpdateAPI(ctx, store.API{ID: "api_unknown", Name: "X"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateAPI(unknown): err = %v, want ErrNotFound", err)
	}

	if err := s.DeleteAPI(ctx, "api_full"); err != nil {
		t.Fatalf("DeleteAPI: %v", err)
	}
	for _, id := range []string{"api_full", "api_unknown", "", "API_MIN", "\xff"} {
		if _, err := s.GetAPI(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetAPI(%q): err = %v, want ErrNotFound", id, err)
		}
		if err := s.DeleteAPI(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteAPI(%q): err = %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s.GetAPIByIdentifier(ctx, "https://api.example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAPIByIdentifier after delete: err = %v, want ErrNotFound", err)
	}
	// The identifier is free again.
	if _, err := s.CreateAPI(ctx, store.API{ID: "api_again", Identifier: "https://api.example.com", Name: "Again"}); err != nil {
		t.Errorf("CreateAPI with a deleted API's identifier: %v", err)
	}
}

func testAPIInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, a := range []store.API{
		{Identifier: "https://a.example", Name: "No ID"},
		{ID: "api_x", Name: "No identifier"},
		{ID: "api_x", Identifier: "https://a.example"},
		{ID: "api_x", Identifier: "https://a.example/\x00", Name: "NUL"},
		{ID: "api_x", Identifier: "https://a.example", Name: "Bad scope", Scopes: []string{""}},
	} {
		if _, err := s.CreateAPI(ctx, a); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateAPI(%+v): err = %v, want a validation error", a, err)
		}
	}
	if list, err := s.ListAPIs(ctx); err != nil || len(list) != 0 {
		t.Errorf("ListAPIs after invalid creates = %v, %v; want none", list, err)
	}
}
