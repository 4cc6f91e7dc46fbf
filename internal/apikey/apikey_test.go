package apikey

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/authzcheck"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/rbac"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// TestPersonalKey covers a personal key from creation to refusal: the
// permissions must be held, the key acts as its owner limited to them,
// and expired, revoked and out-of-network keys all get the same 401.
func TestPersonalKey(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice")
		e.grant(alice, e.role("billing", "invoices:read"))

		// Bad input changes nothing.
		r := e.do("POST", "/v1/me/api-keys", alice, map[string]any{"name": "ci", "permissions": []string{"invoices:write"}}).want(t, 422)
		if !bytes.Contains(r.body, []byte(`"not_held"`)) {
			t.Fatalf("not_held missing: %s", r.body)
		}
		for _, body := range []map[string]any{
			{"name": "ci", "permissions": []string{"invoices:*"}},
			{"name": "", "permissions": []string{"invoices:read"}},
			{"name": "ci", "permissions": []string{}},
			{"name": "ci", "permissions": []string{"invoices:read"}, "expires_at": t0.Add(400 * 24 * time.Hour)},
			{"name": "ci", "permissions": []string{"invoices:read"}, "expires_at": t0.Add(-time.Hour)},
			{"name": "ci", "permissions": []string{"invoices:read"}, "allowed_cidrs": []string{"nope"}},
		} {
			e.do("POST", "/v1/me/api-keys", alice, body).want(t, 422)
		}
		var list KeyList
		e.do("GET", "/v1/me/api-keys", alice, nil).want(t, 200).json(t, &list)
		if len(list.APIKeys) != 0 {
			t.Fatalf("refused requests created keys: %+v", list)
		}

		c := e.createKey(alice, map[string]any{"name": "ci", "permissions": []string{"invoices:read"}})
		if _, err := Parse(c.Key); err != nil || c.Prefix != c.Key[:12] || c.ExpiresAt == nil || !c.ExpiresAt.Equal(t0.Add(DefaultMaxTTL)) {
			t.Fatalf("created %+v", c)
		}
		var p auth.Principal
		e.do("GET", "/test/whoami", c.Key, nil).want(t, 200).json(t, &p)
		if p.UserID != alice || p.APIKeyID != c.ID || len(p.KeyPermissions) != 1 || p.KeyPermissions[0] != "invoices:read" || p.AMR != nil {
			t.Fatalf("principal %+v", p)
		}
		// The key lists its owner's keys but may not make new ones.
		e.do("GET", "/v1/me/api-keys", c.Key, nil).want(t, 200).json(t, &list)
		if len(list.APIKeys) != 1 || list.APIKeys[0].ID != c.ID || bytes.Contains(e.do("GET", "/v1/me/api-keys", alice, nil).body, []byte(c.Key)) {
			t.Fatalf("list %+v", list)
		}
		e.do("POST", "/v1/me/api-keys", c.Key, map[string]any{"name": "x", "permissions": []string{"invoices:read"}}).want(t, 403)
		e.do("POST", "/v1/me/api-keys/"+c.ID+"/rotate", c.Key, nil).want(t, 403)
		// Another user sees nothing of it.
		bob := e.user("bob")
		e.do("DELETE", "/v1/me/api-keys/"+c.ID, bob, nil).want(t, 404)

		// Every refusal is the same 401.
		garbled := []byte(c.Key)
		garbled[20] ^= 1
		bad := e.do("GET", "/test/whoami", string(garbled), nil).want(t, 401)
		unknown, _ := Generate(KindPersonal)
		same := func(what string, r response) {
			t.Helper()
			r.want(t, 401)
			if !bytes.Equal(r.body, bad.body) || r.header.Get("WWW-Authenticate") != bad.header.Get("WWW-Authenticate") {
				t.Fatalf("%s: %s / %s, want %s", what, r.body, r.header, bad.body)
			}
		}
		same("unknown", e.do("GET", "/test/whoami", unknown, nil))

		net := e.createKey(alice, map[string]any{"name": "net", "permissions": []string{"invoices:read"}, "allowed_cidrs": []string{"10.1.2.3/8"}})
		if len(net.AllowedCIDRs) != 1 || net.AllowedCIDRs[0] != "10.0.0.0/8" {
			t.Fatalf("cidrs %v", net.AllowedCIDRs)
		}
		same("out of network", e.do("GET", "/test/whoami", net.Key, nil))
		if _, err := authenticate(e.authn, net.Key, "10.9.9.9"); err != nil {
			t.Fatalf("in network: %v", err)
		}

		short := e.createKey(alice, map[string]any{"name": "short", "permissions": []string{"invoices:read"}, "expires_at": t0.Add(time.Hour)})
		e.do("GET", "/test/whoami", short.Key, nil).want(t, 200) // now cached
		e.clock.Advance(time.Hour)
		same("expired while cached", e.do("GET", "/test/whoami", short.Key, nil))

		e.do("DELETE", "/v1/me/api-keys/"+c.ID, alice, nil).want(t, 204)
		e.do("DELETE", "/v1/me/api-keys/"+c.ID, alice, nil).want(t, 204) // idempotent
		same("revoked", e.do("GET", "/test/whoami", c.Key, nil))

		// The owner disabled: the key dies with them.
		live := e.createKey(alice, map[string]any{"name": "live", "permissions": []string{"invoices:read"}})
		e.do("GET", "/test/whoami", live.Key, nil).want(t, 200)
		u, _ := st.GetUser(t.Context(), alice)
		u.Status = store.UserDisabled
		if _, err := st.UpdateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
		if err := e.authn.InvalidateOwners(t.Context(), alice); err != nil {
			t.Fatal(err)
		}
		same("owner disabled", e.do("GET", "/test/whoami", live.Key, nil))
	})
}

// TestChecksumRefusalMakesNoLookup: a key with one character changed is
// refused before any store call; a hot key costs none either.
func TestChecksumRefusalMakesNoLookup(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice")
		e.grant(alice, e.role("billing", "invoices:read"))
		c := e.createKey(alice, map[string]any{"name": "ci", "permissions": []string{"invoices:read"}})
		before := e.cs.lookups.Load()
		for i := 6; i < len(c.Key); i++ {
			b := []byte(c.Key)
			b[i] = map[bool]byte{true: 'A', false: 'B'}[b[i] != 'A']
			if _, err := authenticate(e.authn, string(b), "192.0.2.1"); !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("changed at %d: %v", i, err)
			}
		}
		if n := e.cs.lookups.Load() - before; n != 0 {
			t.Fatalf("%d lookups for malformed keys", n)
		}
		for range 5 {
			if _, err := authenticate(e.authn, c.Key, "192.0.2.1"); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.cs.lookups.Load() - before; n != 1 {
			t.Fatalf("%d lookups for a hot key, want 1", n)
		}
		// Past the cache TTL the key is read again (the safety net).
		e.clock.Advance(DefaultCacheTTL)
		if _, err := authenticate(e.authn, c.Key, "192.0.2.1"); err != nil || e.cs.lookups.Load()-before != 2 {
			t.Fatalf("after TTL: %v, %d lookups", err, e.cs.lookups.Load()-before)
		}
	})
}

// TestRotation: both keys work during the overlap, then only the new one;
// an overlap of 0 ends the old key at once.
func TestRotation(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice")
		e.grant(alice, e.role("billing", "invoices:read"))
		old := e.createKey(alice, map[string]any{"name": "ci", "permissions": []string{"invoices:read"}, "allowed_cidrs": []string{"127.0.0.0/8"}})
		e.do("GET", "/test/whoami", old.Key, nil).want(t, 200)

		e.do("POST", "/v1/me/api-keys/"+old.ID+"/rotate", alice, map[string]any{"overlap": "forever"}).want(t, 422)
		e.do("POST", "/v1/me/api-keys/"+old.ID+"/rotate", alice, map[string]any{"overlap": "800h"}).want(t, 422)
		var nw CreatedView
		e.do("POST", "/v1/me/api-keys/"+old.ID+"/rotate", alice, map[string]any{"overlap": "2h"}).want(t, 201).json(t, &nw)
		if nw.RotatedFrom != old.ID || nw.Name != "ci" || len(nw.Permissions) != 1 || len(nw.AllowedCIDRs) != 1 || nw.Key == old.Key {
			t.Fatalf("rotated %+v", nw)
		}
		var list KeyList
		e.do("GET", "/v1/me/api-keys", alice, nil).want(t, 200).json(t, &list)
		if len(list.APIKeys) != 2 {
			t.Fatalf("list %+v", list)
		}
		e.clock.Advance(time.Hour)
		e.do("GET", "/test/whoami", old.Key, nil).want(t, 200)
		e.do("GET", "/test/whoami", nw.Key, nil).want(t, 200)
		e.clock.Advance(time.Hour)
		e.do("GET", "/test/whoami", old.Key, nil).want(t, 401)
		e.do("GET", "/test/whoami", nw.Key, nil).want(t, 200)
		e.do("POST", "/v1/me/api-keys/"+old.ID+"/rotate", alice, nil).want(t, 409)

		var third CreatedView
		e.do("POST", "/v1/me/api-keys/"+nw.ID+"/rotate", alice, map[string]any{"overlap": "0s"}).want(t, 201).json(t, &third)
		e.do("GET", "/test/whoami", nw.Key, nil).want(t, 401)
		e.do("GET", "/test/whoami", third.Key, nil).want(t, 200)
		e.do("DELETE", "/v1/me/api-keys/"+third.ID, alice, nil).want(t, 204)

		events, _, err := st.ListAuditEvents(t.Context(), store.AuditFilter{SubjectID: alice})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, ev := range events {
			count[ev.Action]++
			for _, k := range []string{old.Key, nw.Key, third.Key} {
				if bytes.Contains(mustJSON(ev), []byte(k)) {
					t.Fatalf("audit event %s holds a secret", ev.Action)
				}
			}
		}
		if count["api_key.created"] != 1 || count["api_key.rotated"] != 2 || count["api_key.revoked"] != 1 {
			t.Fatalf("audit events %v", count)
		}
	})
}

// TestRevocationReachesOtherNodes: a key cached on node B fails there
// within a second of its revocation on node A, on both kv backends.
func TestRevocationReachesOtherNodes(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		testenv.EachKV(t, func(t *testing.T, kvs kv.Store) {
			e := &env{t: t, st: st, cs: &countingStore{Store: st}, jobs: &capturedJobs{}}
			e.clock = newClock()
			if err := st.InTx(t.Context(), func(tx store.Store) error { return rbac.EnsureBuiltins(t.Context(), tx) }); err != nil {
				t.Fatal(err)
			}
			e.build(kvs)
			b := e.node(kvs)
			alice := e.user("alice")
			e.grant(alice, e.role("billing-"+alice[len(alice)-12:], "invoices:read"))
			c := e.createKey(alice, map[string]any{"name": "ci", "permissions": []string{"invoices:read"}})
			if _, err := authenticate(b, c.Key, "192.0.2.1"); err != nil {
				t.Fatal(err)
			}
			if in, err := b.Introspect(t.Context(), c.Key); err != nil || !in.Active || in.Sub != alice || in.Permissions[0] != "invoices:read" {
				t.Fatalf("introspect %+v, %v", in, err)
			}
			e.do("DELETE", "/v1/me/api-keys/"+c.ID, alice, nil).want(t, 204)
			deadline := time.Now().Add(time.Second)
			for {
				_, err := authenticate(b, c.Key, "192.0.2.1")
				if errors.Is(err, auth.ErrInvalidToken) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node B still accepts the revoked key after 1 s: %v", err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if in, err := b.Introspect(t.Context(), c.Key); err != nil || in.Active {
				t.Fatalf("introspect after revocation %+v, %v", in, err)
			}
		})
	})
}

// TestUsage: uses and refusals are counted in memory and written by Flush.
func TestUsage(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice")
		e.grant(alice, e.role("billing", "invoices:read"))
		c := e.createKey(alice, map[string]any{"name": "ci", "permissions": []string{"invoices:read"}})
		for range 3 {
			e.do("GET", "/test/whoami", c.Key, nil).want(t, 200)
		}
		refuse := func(a *Authenticator) {
			r := httptest.NewRequest("GET", "/test/whoami", nil)
			r.RemoteAddr = "203.0.113.9:4000"
			a.Refused(r, auth.Principal{UserID: alice, APIKeyID: c.ID}, "api")
		}
		refuse(e.authn)
		if err := e.authn.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := e.authn.Flush(t.Context()); err != nil { // nothing new: nothing doubled
			t.Fatal(err)
		}
		var u UsageView
		e.do("GET", "/v1/me/api-keys/"+c.ID+"/usage", alice, nil).want(t, 200).json(t, &u)
		if u.KeyID != c.ID || len(u.Days) != 1 || u.Days[0].Requests != 3 || u.Days[0].Refusals != 1 || u.Days[0].Day != "2026-06-01" || u.Days[0].LastIP != "127.0.0.1" {
			t.Fatalf("usage %+v", u)
		}
		var list KeyList
		e.do("GET", "/v1/me/api-keys", alice, nil).want(t, 200).json(t, &list)
		if list.APIKeys[0].LastUsedAt == nil || list.APIKeys[0].LastUsedIP != "127.0.0.1" {
			t.Fatalf("last use %+v", list.APIKeys[0])
		}
		e.do("GET", "/v1/me/api-keys/"+c.ID+"/usage", e.user("bob"), nil).want(t, 404)
	})
}

// TestRefusalEvents: a key's rate-limited uses are audit events, one per
// key and RefusalWindow however many refusals and nodes; every refusal
// is counted in the usage.
func TestRefusalEvents(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice")
		e.grant(alice, e.role("billing", "invoices:read"))
		c := e.createKey(alice, map[string]any{"name": "ci", "permissions": []string{"invoices:read"}})
		other := e.node(e.kv)
		refuse := func(a *Authenticator, n int) {
			for range n {
				r := httptest.NewRequest("GET", "/v1/me", nil)
				r.RemoteAddr = "203.0.113.9:4000"
				a.Refused(r, auth.Principal{UserID: alice, APIKeyID: c.ID}, "api-key")
			}
			if err := a.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		events := func() []store.AuditEvent {
			t.Helper()
			all, _, err := st.ListAuditEvents(t.Context(), store.AuditFilter{SubjectID: alice, Limit: store.MaxAuditLimit})
			if err != nil {
				t.Fatal(err)
			}
			var out []store.AuditEvent
			for _, ev := range all {
				if ev.Action == AuditRateLimited {
					out = append(out, ev)
				}
			}
			return out
		}
		// Refusals on two nodes in one window, flushed apart: one event.
		refuse(e.authn, 3)
		refuse(other, 2)
		refuse(e.authn, 1)
		got := events()
		if len(got) != 1 {
			t.Fatalf("%d events in one window, want 1: %+v", len(got), got)
		}
		ev := got[0]
		if ev.IP != "203.0.113.9" || ev.Data["key_id"] != c.ID || ev.Data["rule"] != "api-key" || ev.Data["path"] != "/v1/me" ||
			ev.Data["refusals_seen"] != float64(3) || ev.Data["window_start"] != t0.Format(time.RFC3339) {
			t.Errorf("event %+v", ev)
		}
		// The next window: a second event.
		e.clock.Advance(RefusalWindow)
		refuse(other, 1)
		if got := events(); len(got) != 2 {
			t.Fatalf("%d events after the next window's refusal, want 2", len(got))
		}
		var u UsageView
		e.do("GET", "/v1/me/api-keys/"+c.ID+"/usage", alice, nil).want(t, 200).json(t, &u)
		if len(u.Days) != 1 || u.Days[0].Refusals != 7 {
			t.Fatalf("usage %+v, want 7 refusals", u)
		}
	})
}

func sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// TestLeakReport: only a signed report is read; a live key it names is
// revoked and its owner emailed; unknown keys are acknowledged alike.
func TestLeakReport(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice")
		e.grant(alice, e.role("billing", "invoices:read"))
		c := e.createKey(alice, map[string]any{"name": "ci", "permissions": []string{"invoices:read"}})
		e.do("GET", "/test/whoami", c.Key, nil).want(t, 200)
		unknown, _ := Generate(KindService)
		body, _ := json.Marshal([]LeakReport{
			{Token: c.Key, Type: "gatehouse_api_key", URL: "https://github.com/x/y/blob/main/.env", Source: "content"},
			{Token: unknown, URL: "https://gist.github.com/z", Source: "gist"},
		})
		post := func(sig string) response {
			req, _ := http.NewRequestWithContext(t.Context(), "POST", e.srv.URL+"/v1/api-keys/leaked", bytes.NewReader(body))
			if sig != "" {
				req.Header.Set(HeaderSignature, sig)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var b bytes.Buffer
			b.ReadFrom(res.Body)
			return response{status: res.StatusCode, body: b.Bytes()}
		}
		post("").want(t, 401)
		post(sign(body, "wrong")).want(t, 401)
		post("sha256=zz").want(t, 401)
		e.do("GET", "/test/whoami", c.Key, nil).want(t, 200) // nothing changed
		if len(e.jobs.sent()) != 0 {
			t.Fatal("mail sent for an unsigned report")
		}

		var ack LeakAck
		post(sign(body, leakSecret)).want(t, 200).json(t, &ack)
		if ack.Received != 2 {
			t.Fatalf("ack %+v", ack)
		}
		e.do("GET", "/test/whoami", c.Key, nil).want(t, 401)
		k, err := st.GetAPIKey(t.Context(), c.ID)
		if err != nil || k.RevokedReason != "leaked" {
			t.Fatalf("key %+v, %v", k, err)
		}
		sent := e.jobs.sent()
		u, _ := st.GetUser(t.Context(), alice)
		if len(sent) != 1 || sent[0].Template != mail.APIKeyLeaked || sent[0].To != u.Email {
			t.Fatalf("mail %+v", sent)
		}
		// Reported again: acknowledged alike, no second mail.
		post(sign(body, leakSecret)).want(t, 200).json(t, &ack)
		if ack.Received != 2 || len(e.jobs.sent()) != 1 {
			t.Fatalf("second report: %+v, %d mails", ack, len(e.jobs.sent()))
		}
		events, _, err := st.ListAuditEvents(t.Context(), store.AuditFilter{SubjectID: alice})
		if err != nil {
			t.Fatal(err)
		}
		var leaked int
		for _, ev := range events {
			if ev.Action == "api_key.leaked" {
				leaked++
			}
			if bytes.Contains(mustJSON(ev.Data), []byte(c.Key)) {
				t.Fatal("an audit event holds the secret")
			}
		}
		if leaked != 1 {
			t.Fatalf("%d api_key.leaked events", leaked)
		}
		// The security domain hears of it once (the wiring records the
		// security event; TestAPIKeys in internal/app checks it).
		if l := e.leaks(); len(l) != 1 || l[0].Key.ID != c.ID || l[0].Key.RevokedAt.IsZero() || l[0].Source != "content" ||
			l[0].URL != "https://github.com/x/y/blob/main/.env" || bytes.Contains(mustJSON(l[0]), []byte(c.Key)) {
			t.Fatalf("published leaks %+v", l)
		}
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestServiceAccount: an administrator creates a service account with a
// role; its key acts with that role's permissions.
func TestServiceAccount(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice")
		e.do("POST", "/v1/admin/service-accounts", alice, map[string]any{"name": "ci", "roles": []string{"user-admin"}}).want(t, 403)
		e.do("POST", "/v1/admin/service-accounts", e.root, map[string]any{"name": "ci", "roles": []string{"no-such-role"}}).want(t, 422)
		e.do("POST", "/v1/admin/service-accounts", e.root, map[string]any{"name": "ci", "organization_id": "0192f000-0000-7000-8000-0000000000ff"}).want(t, 422)
		var sa ServiceAccountView
		e.do("POST", "/v1/admin/service-accounts", e.root, map[string]any{"name": "ci", "roles": []string{"user-admin"}}).want(t, 201).json(t, &sa)
		if sa.ID == "" || len(sa.Roles) != 1 || sa.Roles[0].ID != rbac.UserAdminRoleID {
			t.Fatalf("service account %+v", sa)
		}
		var list ServiceAccountList
		e.do("GET", "/v1/admin/service-accounts", e.root, nil).want(t, 200).json(t, &list)
		if len(list.ServiceAccounts) != 1 {
			t.Fatalf("list %+v", list)
		}
		e.do("POST", "/v1/admin/service-accounts/"+sa.ID+"/keys", e.root, map[string]any{"name": "k", "permissions": []string{"users:read"}}).want(t, 422)
		var c CreatedView
		e.do("POST", "/v1/admin/service-accounts/"+sa.ID+"/keys", e.root, map[string]any{"name": "k", "rate_limit_tier": "gold"}).want(t, 201).json(t, &c)
		if c.Key[:6] != "gh_sk_" || c.RateLimitTier != "gold" {
			t.Fatalf("key %+v", c)
		}
		p, err := authenticate(e.authn, c.Key, "192.0.2.1")
		if err != nil || p.UserID != sa.ID || p.KeyPermissions != nil || p.RateLimitTier != "gold" {
			t.Fatalf("principal %+v, %v", p, err)
		}
		d, err := e.chk.Check(t.Context(), authzcheck.Query{Subject: p.UserID, Permission: "users:read"})
		if err != nil || !d.Allowed {
			t.Fatalf("users:read %+v, %v", d, err)
		}
		// The key reaches the admin API as its account, within its role.
		e.do("GET", "/v1/admin/service-accounts", c.Key, nil).want(t, 403)
		e.do("POST", "/v1/admin/service-accounts/"+sa.ID+"/keys/"+c.ID+"/rotate", e.root, map[string]any{"overlap": "0s"}).want(t, 201)
		if _, err := authenticate(e.authn, c.Key, "192.0.2.1"); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("rotated-out key: %v", err)
		}
		var keys KeyList
		e.do("GET", "/v1/admin/service-accounts/"+sa.ID+"/keys", e.root, nil).want(t, 200).json(t, &keys)
		if len(keys.APIKeys) != 2 {
			t.Fatalf("keys %+v", keys)
		}
		e.do("DELETE", "/v1/admin/service-accounts/"+sa.ID+"/keys/"+keys.APIKeys[0].ID, e.root, nil).want(t, 204)
		e.do("GET", "/v1/admin/service-accounts/"+sa.ID+"/keys/"+keys.APIKeys[0].ID+"/usage", e.root, nil).want(t, 200)
	})
}

// TestRememberCountsOnce: a request authenticated by auth.Remember (the
// rate limiter) and again by its route is looked up and counted once.
func TestRememberCountsOnce(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice")
		e.grant(alice, e.role("billing", "invoices:read"))
		c := e.createKey(alice, map[string]any{"name": "ci", "permissions": []string{"invoices:read"}})
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set(HeaderAPIKey, c.Key)
		r, p, err := auth.Remember(r, e.authn)
		if err != nil || p.APIKeyID != c.ID {
			t.Fatalf("Remember: %+v, %v", p, err)
		}
		if p2, err := e.authn.Authenticate(r); err != nil || p2.APIKeyID != c.ID {
			t.Fatalf("Authenticate: %+v, %v", p2, err)
		}
		if err := e.authn.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		rows, err := st.ListAPIKeyUsage(t.Context(), c.ID, t0.Truncate(24*time.Hour), t0)
		if err != nil || len(rows) != 1 || rows[0].Requests != 1 {
			t.Fatalf("usage %+v, %v", rows, err)
		}
		// A failure remembered by another authenticator (the JWT one) does
		// not stand for the key's own check.
		r = httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+c.Key)
		r, _, err = auth.Remember(r, bearerIsUser{})
		if !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("the JWT stand-in accepted a key: %v", err)
		}
		if p, err := e.authn.Authenticate(r); err != nil || p.APIKeyID != c.ID {
			t.Fatalf("Authenticate after a foreign failure: %+v, %v", p, err)
		}
	})
}

// TestKeyPermissionsFollowTheOwner: a personal key allows only what it
// lists and its owner still holds (KeyAllows and the owner's check, as
// the wiring's authorizer asks them).
func TestKeyPermissionsFollowTheOwner(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice")
		e.grant(alice, e.role("billing", "invoices:read", "invoices:write"))
		c := e.createKey(alice, map[string]any{"name": "ci", "permissions": []string{"invoices:read"}})
		p, err := authenticate(e.authn, c.Key, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		az := checkerAuthz{e.chk}
		allowed := func(perm string) bool {
			ok, err := az.Authorize(t.Context(), p, perm, "")
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !allowed("invoices:read") || allowed("invoices:write") {
			t.Fatal("the key is not limited to its permissions")
		}
		grants, _ := st.ListUserGrants(t.Context(), alice)
		for _, g := range grants {
			if _, err := st.DeleteGrant(t.Context(), g.ID); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.chk.Invalidate(t.Context(), alice); err != nil {
			t.Fatal(err)
		}
		if allowed("invoices:read") {
			t.Fatal("the key outlived its owner's permission")
		}
		if !KeyAllows(auth.Principal{}, "x:y") || KeyAllows(auth.Principal{KeyPermissions: []string{}}, "x:y") {
			t.Fatal("KeyAllows")
		}
	})
}
