package webhook_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/webhook"
	"github.com/gatehouse/gatehouse/internal/webhook/delivery"
)

func TestNewNamesWhatIsMissing(t *testing.T) {
	_, err := webhook.New(webhook.Deps{})
	if err == nil || err.Error() != "webhook: missing CheckDestination, Jobs, Keyring, NewSecret, Store" {
		t.Errorf("New(no deps) = %v", err)
	}
}

// open returns the signing secret sealed in sealed for endpoint id.
func (e *env) open(t *testing.T, sealed, id string) string {
	t.Helper()
	b, err := e.keys.Open(sealed, delivery.SecretAD(id))
	if err != nil {
		t.Fatalf("open the secret of %s: %v", id, err)
	}
	return string(b)
}

func TestEndpointLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		org, err := e.store.CreateOrganization(ctx, store.Organization{Name: "Acme", Slug: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		ep, secret, err := e.svc.CreateEndpoint(ctx, admin, webhook.EndpointInput{
			URL: "https://hooks.example.com/in?team=7", Events: []string{"user.*", "session.created", "user.*"},
			Description: "  CRM sync  ", OrganizationID: strings.ToUpper(org.ID),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ep.ID, "whep_") || len(ep.ID) != len("whep_")+32 {
			t.Errorf("ID = %q, want whep_ and 32 hex digits", ep.ID)
		}
		want := store.WebhookEndpoint{
			ID: ep.ID, URL: "https://hooks.example.com/in?team=7", Events: []string{"user.*", "session.created"},
			Description: "CRM sync", OrganizationID: org.ID, Enabled: true, Secret: ep.Secret, CreatedAt: start, UpdatedAt: start,
		}
		if diff := gocmp.Diff(want, ep); diff != "" {
			t.Errorf("created (-want +got):\n%s", diff)
		}
		if !strings.HasPrefix(secret, "whsec_") || ep.Secret == secret || strings.Contains(ep.Secret, secret) {
			t.Errorf("secret %q stored as %q: want a whsec_ secret stored sealed", secret, ep.Secret)
		}
		if got := e.open(t, ep.Secret, ep.ID); got != secret {
			t.Errorf("sealed secret opens to %q, want %q", got, secret)
		}
		// Sealed for this endpoint only.
		if _, err := e.keys.Open(ep.Secret, delivery.SecretAD("whep_other")); err == nil {
			t.Error("the sealed secret opens for another endpoint")
		}
		if got, err := e.svc.GetEndpoint(ctx, ep.ID); err != nil || !gocmp.Equal(got, ep) {
			t.Errorf("GetEndpoint = %+v, %v", got, err)
		}

		// Created disabled: the reason is the administrator.
		e.clock.Advance(time.Minute)
		off := e.mustCreate(t, webhook.EndpointInput{Events: []string{"*"}, Enabled: ptr(false)})
		if off.Enabled || off.DisabledReason != store.EndpointDisabledByAdmin {
			t.Errorf("created disabled: enabled %v, reason %q", off.Enabled, off.DisabledReason)
		}
		list, err := e.svc.ListEndpoints(ctx)
		if err != nil || len(list) != 2 || list[0].ID != ep.ID || list[1].ID != off.ID {
			t.Errorf("ListEndpoints = %v, %v; want both, oldest first", list, err)
		}

		// PATCH: the fields given, nothing else.
		e.clock.Advance(time.Minute)
		up, err := e.svc.UpdateEndpoint(ctx, admin, ep.ID, webhook.EndpointPatch{
			URL: ptr("https://hooks.example.com/v2"), Events: ptr([]string{"user.created"}), Description: ptr(""),
		})
		if err != nil {
			t.Fatal(err)
		}
		want.URL, want.Events, want.Description, want.UpdatedAt = "https://hooks.example.com/v2", []string{"user.created"}, "", e.clock.Now()
		if diff := gocmp.Diff(want, up); diff != "" {
			t.Errorf("updated (-want +got):\n%s", diff)
		}
		// A patch that changes nothing writes nothing.
		e.clock.Advance(time.Minute)
		if same, err := e.svc.UpdateEndpoint(ctx, admin, ep.ID, webhook.EndpointPatch{Enabled: ptr(true), URL: ptr(up.URL)}); err != nil || !gocmp.Equal(same, up) {
			t.Errorf("no-op patch = %+v, %v", same, err)
		}

		// Disabling sets the reason admin; enabling clears the reason and
		// since when the endpoint fails.
		if _, err := e.store.MarkWebhookEndpointResult(ctx, ep.ID, false, start); err != nil {
			t.Fatal(err)
		}
		down, err := e.svc.UpdateEndpoint(ctx, admin, ep.ID, webhook.EndpointPatch{Enabled: ptr(false)})
		if err != nil || down.Enabled || down.DisabledReason != store.EndpointDisabledByAdmin || !down.FailingSince.Equal(start) {
			t.Errorf("disabled = %+v, %v", down, err)
		}
		gone := down
		gone.DisabledReason = store.EndpointGone
		if _, err := e.store.UpdateWebhookEndpoint(ctx, gone); err != nil {
			t.Fatal(err)
		}
		// Disabling a disabled endpoint keeps why it was.
		if still, err := e.svc.UpdateEndpoint(ctx, admin, ep.ID, webhook.EndpointPatch{Enabled: ptr(false)}); err != nil || still.DisabledReason != store.EndpointGone {
			t.Errorf("disabled again = %+v, %v; want the reason gone kept", still, err)
		}
		back, err := e.svc.UpdateEndpoint(ctx, admin, ep.ID, webhook.EndpointPatch{Enabled: ptr(true)})
		if err != nil || !back.Enabled || back.DisabledReason != "" || !back.FailingSince.IsZero() {
			t.Errorf("enabled = %+v, %v; want no reason and no failing time", back, err)
		}

		// Rotation: a new secret; the old one signs for the overlap.
		e.clock.Advance(time.Hour)
		rotated, err := e.svc.RotateSecret(ctx, admin, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(rotated, "whsec_") || rotated == secret {
			t.Errorf("rotated secret %q", rotated)
		}
		got, _ := e.svc.GetEndpoint(ctx, ep.ID)
		if e.open(t, got.Secret, ep.ID) != rotated || e.open(t, got.PreviousSecret, ep.ID) != secret ||
			!got.PreviousSecretExpiresAt.Equal(e.clock.Now().Add(overlap)) {
			t.Errorf("after rotation: previous expires %v, want %v; secrets must be the new and the old", got.PreviousSecretExpiresAt, e.clock.Now().Add(overlap))
		}
		// A second rotation within the overlap: the first secret stops.
		e.clock.Advance(time.Hour)
		third, err := e.svc.RotateSecret(ctx, admin, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ = e.svc.GetEndpoint(ctx, ep.ID)
		if e.open(t, got.Secret, ep.ID) != third || e.open(t, got.PreviousSecret, ep.ID) != rotated {
			t.Error("second rotation: want the third secret, and the second as previous")
		}

		e.clock.Advance(time.Minute)
		if err := e.svc.DeleteEndpoint(ctx, admin, ep.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.GetEndpoint(ctx, ep.ID); !errors.Is(err, webhook.ErrEndpointNotFound) {
			t.Errorf("GetEndpoint(deleted) = %v", err)
		}
		for _, err := range []error{
			e.svc.DeleteEndpoint(ctx, admin, ep.ID),
			func() error { _, err := e.svc.UpdateEndpoint(ctx, admin, ep.ID, webhook.EndpointPatch{}); return err }(),
			func() error { _, err := e.svc.RotateSecret(ctx, admin, ep.ID); return err }(),
		} {
			if !errors.Is(err, webhook.ErrEndpointNotFound) {
				t.Errorf("on a deleted endpoint: %v, want ErrEndpointNotFound", err)
			}
		}

		// Every change is in the audit log, without a secret.
		wantAudit := []string{"webhook.endpoint_created", "webhook.endpoint_updated", "webhook.endpoint_updated",
			"webhook.endpoint_updated", "webhook.secret_rotated", "webhook.secret_rotated", "webhook.endpoint_deleted"}
		if got := e.audit(t, ep.ID, secret, rotated, third); !slices.Equal(got, wantAudit) {
			t.Errorf("audit = %v, want %v", got, wantAudit)
		}
		// The URL is kept without its query, which may hold a token.
		events, _, err := e.store.ListAuditEvents(ctx, store.AuditFilter{SubjectID: ep.ID, Limit: store.MaxAuditLimit})
		if err != nil {
			t.Fatal(err)
		}
		created, updated := events[len(events)-1].Data, events[len(events)-2].Data
		if created["url"] != "https://hooks.example.com/in?…" || !gocmp.Equal(updated["url"], map[string]any{"old": "https://hooks.example.com/in?…", "new": "https://hooks.example.com/v2"}) {
			t.Errorf("audited URLs: created %v, updated %v", created["url"], updated["url"])
		}
	})
}

func TestRotateWithoutOverlap(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	svc, err := webhook.New(webhook.Deps{
		Store: store.Narrow(e.store, func(tx store.Store) webhook.Tx { return tx }), Jobs: e.queue, Keyring: e.keys,
		NewSecret: delivery.NewSecret, CheckDestination: checkDestination, Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ep := e.mustCreate(t, webhook.EndpointInput{Events: []string{"*"}})
	s, err := svc.RotateSecret(t.Context(), admin, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := svc.GetEndpoint(t.Context(), ep.ID)
	if e.open(t, got.Secret, ep.ID) != s || got.PreviousSecret != "" || !got.PreviousSecretExpiresAt.IsZero() {
		t.Errorf("rotation without overlap kept a previous secret (expires %v)", got.PreviousSecretExpiresAt)
	}
}

// fields returns the fields named by a validation problem.
func fields(t *testing.T, err error) []string {
	t.Helper()
	var p *httpapi.Problem
	if !errors.As(err, &p) || p.Status != 422 || p.Code != "validation_failed" {
		t.Fatalf("err = %v, want a 422 validation problem", err)
	}
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Field+":"+f.Rule)
	}
	return out
}

func TestInvalidInputChangesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		ok := webhook.EndpointInput{URL: "https://hooks.example.com/in", Events: []string{"user.created"}}
		for _, c := range []struct {
			name string
			edit func(*webhook.EndpointInput)
			want []string
		}{
			{"no URL", func(in *webhook.EndpointInput) { in.URL = "" }, []string{"url:required"}},
			{"relative URL", func(in *webhook.EndpointInput) { in.URL = "/hooks" }, []string{"url:url"}},
			{"ftp", func(in *webhook.EndpointInput) { in.URL = "ftp://hooks.example.com/" }, []string{"url:url"}},
			{"no host", func(in *webhook.EndpointInput) { in.URL = "https:///x" }, []string{"url:url"}},
			{"credentials", func(in *webhook.EndpointInput) { in.URL = "https://u:p@hooks.example.com/" }, []string{"url:url"}},
			{"fragment", func(in *webhook.EndpointInput) { in.URL = "https://hooks.example.com/#x" }, []string{"url:url"}},
			{"space", func(in *webhook.EndpointInput) { in.URL = "https://hooks.example.com/a b" }, []string{"url:url"}},
			{"too long", func(in *webhook.EndpointInput) { in.URL = "https://hooks.example.com/" + strings.Repeat("a", 2048) }, []string{"url:url"}},
			{"loopback", func(in *webhook.EndpointInput) { in.URL = "http://127.0.0.1:8080/hook" }, []string{"url:destination"}},
			{"no events", func(in *webhook.EndpointInput) { in.Events = nil }, []string{"events:required"}},
			{"unknown type", func(in *webhook.EndpointInput) { in.Events = []string{"user.created", "user.exploded"} }, []string{"events:event_type"}},
			{"unknown family", func(in *webhook.EndpointInput) { in.Events = []string{"billing.*"} }, []string{"events:event_type"}},
			{"bare pattern", func(in *webhook.EndpointInput) { in.Events = []string{".*"} }, []string{"events:event_type"}},
			{"inner star", func(in *webhook.EndpointInput) { in.Events = []string{"user.*.x"} }, []string{"events:event_type"}},
			{"prefix only", func(in *webhook.EndpointInput) { in.Events = []string{"use*"} }, []string{"events:event_type"}},
			{"long description", func(in *webhook.EndpointInput) { in.Description = strings.Repeat("é", 501) }, []string{"description:max"}},
			{"unknown organisation", func(in *webhook.EndpointInput) { in.OrganizationID = "0190d5c4-7a6b-7c3e-9f00-000000000001" }, []string{"organization_id:exists"}},
			{"organisation not an ID", func(in *webhook.EndpointInput) { in.OrganizationID = "acme" }, []string{"organization_id:exists"}},
			{"several", func(in *webhook.EndpointInput) { in.URL, in.Events = "", nil }, []string{"url:required", "events:required"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				in := ok
				c.edit(&in)
				_, secret, err := e.svc.CreateEndpoint(ctx, admin, in)
				if got := fields(t, err); !slices.Equal(got, c.want) {
					t.Errorf("fields = %v, want %v", got, c.want)
				}
				if secret != "" {
					t.Errorf("a refused endpoint got a secret")
				}
			})
		}
		// The destination's reason is named: a name that resolves to a
		// private address, one that does not resolve.
		for u, why := range map[string]string{
			"https://internal.example.com/hook": "the host internal.example.com resolves to a private address",
			"https://nowhere.example.com/hook":  "the host nowhere.example.com does not resolve",
		} {
			_, _, err := e.svc.CreateEndpoint(ctx, admin, webhook.EndpointInput{URL: u, Events: []string{"*"}})
			var p *httpapi.Problem
			if !errors.As(err, &p) || len(p.Errors) != 1 || p.Errors[0].Message != "Webhooks cannot be sent to this URL: "+why+"." {
				t.Errorf("%s: %v, want the reason %q", u, err, why)
			}
		}
		if list, _ := e.svc.ListEndpoints(ctx); len(list) != 0 {
			t.Fatalf("refused input created %d endpoints", len(list))
		}
		if n := e.count(t, "SELECT COUNT(*) FROM audit_events"); n != 0 {
			t.Errorf("refused input wrote %d audit events", n)
		}

		// A refused patch changes nothing.
		ep := e.mustCreate(t, ok)
		for _, p := range []webhook.EndpointPatch{
			{URL: ptr("http://localhost/x"), Description: ptr("changed")},
			{Events: ptr([]string{})},
			{Events: ptr([]string{"nope"}), Enabled: ptr(false)},
			{Description: ptr(strings.Repeat("x", 501))},
		} {
			if _, err := e.svc.UpdateEndpoint(ctx, admin, ep.ID, p); err == nil {
				t.Errorf("UpdateEndpoint(%+v) succeeded", p)
			} else {
				fields(t, err)
			}
		}
		if got, _ := e.svc.GetEndpoint(ctx, ep.ID); !gocmp.Equal(got, ep) {
			t.Errorf("after refused patches: %+v, want %+v", got, ep)
		}
		if got := e.audit(t, ep.ID); !slices.Equal(got, []string{"webhook.endpoint_created"}) {
			t.Errorf("audit after refused patches = %v", got)
		}
	})
}

// A destination check cut short by the caller going away is that, not
// a refused URL.
func TestCheckDestinationCancelled(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	svc, err := webhook.New(webhook.Deps{
		Store: store.Narrow(e.store, func(tx store.Store) webhook.Tx { return tx }), Jobs: e.queue, Keyring: e.keys,
		NewSecret: delivery.NewSecret, Now: e.clock.Now,
		CheckDestination: func(ctx context.Context, _ string) error { <-ctx.Done(); return ctx.Err() },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := svc.CreateEndpoint(ctx, admin, webhook.EndpointInput{URL: "https://x.example", Events: []string{"*"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled check: %v, want context.Canceled", err)
	}
}

func TestSubscribes(t *testing.T) {
	for _, c := range []struct {
		subs []string
		typ  string
		want bool
	}{
		{[]string{"*"}, "user.created", true},
		{[]string{"user.created"}, "user.created", true},
		{[]string{"user.created"}, "user.deleted", false},
		{[]string{"user.*"}, "user.email_verified", true},
		{[]string{"user.*"}, "session.created", false},
		{[]string{"user.*"}, "users.created", false},
		{[]string{"security.*", "mfa.enrolled"}, "security.lockout", true},
		{[]string{"security.*", "mfa.enrolled"}, "mfa.removed", false},
		{nil, "user.created", false},
	} {
		if got := webhook.Subscribes(c.subs, c.typ); got != c.want {
			t.Errorf("Subscribes(%v, %s) = %v, want %v", c.subs, c.typ, got, c.want)
		}
	}
}
