package app

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Black-box tests of webhooks (issue 16): a running server, receivers on
// loopback (GATEHOUSE_WEBHOOK_ALLOW_PRIVATE), signatures checked with the
// official Standard Webhooks library, retries on a short schedule, dead
// letters, retry and replay, 410, secret rotation, organisation scope and
// refused destinations.

// delivered is one request a receiver got.
type delivered struct {
	ID        string // webhook-id
	Header    http.Header
	Body      []byte
	Type      string
	Data      map[string]any
	Signature []string // the v1 signatures of webhook-signature
}

// receiver is a webhook receiver: it answers each request with the next
// status of its script (then 200), and keeps what it got.
type receiver struct {
	srv *httptest.Server

	mu     sync.Mutex
	script []int
	got    []delivered
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var env struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		_ = json.Unmarshal(body, &env)
		d := delivered{ID: req.Header.Get("webhook-id"), Header: req.Header.Clone(), Body: body, Type: env.Type, Data: env.Data,
			Signature: strings.Fields(req.Header.Get("webhook-signature"))}
		r.mu.Lock()
		r.got = append(r.got, d)
		status := 200
		if len(r.script) > 0 {
			status, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/hooks?token=abc" }

// setScript replaces what the receiver answers next.
func (r *receiver) setScript(script ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = script
}

func (r *receiver) all() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// wait waits until the receiver got a request matching ok, and returns
// every request so far.
func (r *receiver) wait(t *testing.T, what string, within time.Duration, ok func([]delivered) bool) []delivered {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := r.all()
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			types := make([]string, len(got))
			for i, d := range got {
				types[i] = d.ID + " " + d.Type
			}
			t.Fatalf("receiver: no %s within %v; got %v", what, within, types)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ofType(got []delivered, typ string) []delivered {
	var out []delivered
	for _, d := range got {
		if d.Type == typ {
			out = append(out, d)
		}
	}
	return out
}

// verify checks a delivery with the official library and secret alone.
func verify(t *testing.T, secret string, d delivered) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(d.Body, d.Header); err != nil {
		t.Fatalf("delivery %s (%s) does not verify with the secret: %v", d.ID, d.Type, err)
	}
}

type webhookEnv struct {
	*accountEnv
	admin string
}

func newWebhookEnv(t *testing.T, base map[string]string) *webhookEnv {
	env := map[string]string{
		"GATEHOUSE_WEBHOOK_ALLOW_PRIVATE":  "true",
		"GATEHOUSE_WEBHOOK_RETRY_SCHEDULE": "1s,1s",
		"GATEHOUSE_WEBHOOK_TIMEOUT":        "2s",
	}
	for k, v := range base {
		env[k] = v
	}
	e := newAccountEnv(t, env)
	if _, code := e.cli(t, "users", "create", "--email", "hook-admin@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
		t.Fatal("create admin")
	}
	return &webhookEnv{accountEnv: e, admin: e.login(t, "hook-admin@example.com", strongPassword)}
}

// endpoint creates an endpoint and returns its id and secret.
func (e *webhookEnv) endpoint(t *testing.T, in map[string]any) (string, string) {
	t.Helper()
	code, body, _ := call(t, "POST", e.url("/v1/admin/webhooks"), in, bearer(e.admin)...)
	if code != 201 {
		t.Fatalf("create endpoint %v = %d %v", in, code, body)
	}
	secret, _ := body["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q, want whsec_…", secret)
	}
	return body["id"].(string), secret
}

// deliveries lists an endpoint's deliveries (newest first).
func (e *webhookEnv) deliveries(t *testing.T, id, query string) []map[string]any {
	t.Helper()
	code, body, _ := call(t, "GET", e.url("/v1/admin/webhooks/"+id+"/deliveries"+query), nil, bearer(e.admin)...)
	if code != 200 {
		t.Fatalf("deliveries = %d %v", code, body)
	}
	var out []map[string]any
	for _, d := range body["deliveries"].([]any) {
		out = append(out, d.(map[string]any))
	}
	return out
}

// waitDelivery waits until the endpoint's delivery of the event has the
// status.
func (e *webhookEnv) waitDelivery(t *testing.T, endpoint, eventID, status string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, d := range e.deliveries(t, endpoint, "") {
			if d["event_id"] == eventID && d["status"] == status {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery of %s to %s not %s within %v: %v", eventID, endpoint, status, within, e.deliveries(t, endpoint, ""))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The webhook tests mostly wait for River's scheduler: they run in
// parallel with each other.

func TestWebhooksEmbedded(t *testing.T) {
	t.Parallel()
	runWebhooks(t, newWebhookEnv(t, nil))
}

func TestWebhooksPostgresRedis(t *testing.T) {
	t.Parallel()
	runWebhooks(t, newWebhookEnv(t, postgresRedisEnv(t)))
}

func runWebhooks(t *testing.T, e *webhookEnv) {
	// A retry waits for River's scheduler (every 5 s) on top of the
	// schedule: allow for it.
	const slow = 45 * time.Second

	t.Run("SignupAndVerification", func(t *testing.T) {
		rcv := newReceiver(t)
		_, secret := e.endpoint(t, map[string]any{"url": rcv.url(), "events": []string{"user.*"}, "description": "users"})
		e.signUp(t, "hooked@example.com")
		got := rcv.wait(t, "user.created and user.email_verified", slow, func(got []delivered) bool {
			return len(ofType(got, "user.created")) > 0 && len(ofType(got, "user.email_verified")) > 0
		})
		for _, d := range got {
			if !strings.HasPrefix(d.Type, "user.") {
				t.Errorf("an endpoint subscribed to user.* got %s", d.Type)
			}
			verify(t, secret, d)
			if !strings.HasPrefix(d.ID, "msg_") || len(d.Signature) != 1 {
				t.Errorf("delivery headers %v", d.Header)
			}
			var env map[string]any
			if err := json.Unmarshal(d.Body, &env); err != nil || env["id"] != d.ID || env["timestamp"] == nil {
				t.Errorf("envelope %s: want {id, type, timestamp, data} with id = webhook-id", d.Body)
			}
		}
		created := ofType(got, "user.created")[0]
		if created.Data["email"] != "hooked@example.com" || created.Data["user_id"] == nil {
			t.Errorf("user.created data %v", created.Data)
		}
		// No payload carries a password, its hash or a token.
		for _, d := range got {
			for _, secretish := range []string{strongPassword, "$argon2id$", "password_hash", "token"} {
				if strings.Contains(string(d.Body), secretish) {
					t.Errorf("%s payload contains %q: %s", d.Type, secretish, d.Body)
				}
			}
		}
	})

	t.Run("RetriesKeepTheWebhookID", func(t *testing.T) {
		rcv := newReceiver(t, 500, 500, 200)
		id, secret := e.endpoint(t, map[string]any{"url": rcv.url(), "events": []string{"webhook.test"}})
		code, body, _ := call(t, "POST", e.url("/v1/admin/webhooks/"+id+"/test"), nil, bearer(e.admin)...)
		if code != 202 {
			t.Fatalf("test = %d %v", code, body)
		}
		got := rcv.wait(t, "three attempts", 2*slow, func(got []delivered) bool { return len(got) >= 3 })
		if len(got) != 3 || got[0].ID != got[1].ID || got[1].ID != got[2].ID {
			t.Fatalf("got %d requests with ids %v, want 3 with the same webhook-id", len(got), []string{got[0].ID, got[1].ID, got[2].ID})
		}
		for _, d := range got {
			verify(t, secret, d)
			if string(d.Body) != string(got[0].Body) {
				t.Errorf("the body changed between attempts")
			}
		}
		d := e.waitDelivery(t, id, got[0].ID, "delivered", slow)
		attempts := d["attempts"].([]any)
		if len(attempts) != 3 {
			t.Fatalf("delivery log has %d attempts, want 3: %v", len(attempts), d)
		}
		for i, want := range []float64{500, 500, 200} {
			if a := attempts[i].(map[string]any); a["status_code"] != want || a["latency_ms"] == nil || a["at"] == nil {
				t.Errorf("attempt %d = %v, want status %v", i+1, a, want)
			}
		}
	})

	t.Run("DeadLetterRetryAndReplay", func(t *testing.T) {
		rcv := newReceiver(t, 503, 503, 503)
		id, _ := e.endpoint(t, map[string]any{"url": rcv.url(), "events": []string{"webhook.test"}})
		since := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
		if code, body, _ := call(t, "POST", e.url("/v1/admin/webhooks/"+id+"/test"), nil, bearer(e.admin)...); code != 202 {
			t.Fatalf("test = %d %v", code, body)
		}
		got := rcv.wait(t, "three attempts", 2*slow, func(got []delivered) bool { return len(got) >= 3 })
		eventID := got[0].ID
		d := e.waitDelivery(t, id, eventID, "failed", slow)
		if n := len(d["attempts"].([]any)); n != 3 {
			t.Fatalf("failed after %d attempts, want 3 (1 + the schedule's 2)", n)
		}
		if failed := e.deliveries(t, id, "?status=failed"); len(failed) != 1 {
			t.Fatalf("status=failed lists %d deliveries, want 1", len(failed))
		}

		// The receiver recovers: retry sends it once more.
		if code, body, _ := call(t, "POST", e.url("/v1/admin/webhooks/deliveries/"+d["id"].(string)+"/retry"), nil, bearer(e.admin)...); code != 202 {
			t.Fatalf("retry = %d %v", code, body)
		}
		rcv.wait(t, "the retried delivery", slow, func(got []delivered) bool { return len(got) >= 4 })
		e.waitDelivery(t, id, eventID, "delivered", slow)

		// A second dead letter, sent again by replay.
		rcv.setScript(503, 503, 503)
		if code, body, _ := call(t, "POST", e.url("/v1/admin/webhooks/"+id+"/test"), nil, bearer(e.admin)...); code != 202 {
			t.Fatalf("test = %d %v", code, body)
		}
		got = rcv.wait(t, "three more attempts", 2*slow, func(got []delivered) bool { return len(got) >= 7 })
		second := got[4].ID
		e.waitDelivery(t, id, second, "failed", slow)
		code, body, _ := call(t, "POST", e.url("/v1/admin/webhooks/"+id+"/replay"), map[string]any{"since": since, "status": "failed"}, bearer(e.admin)...)
		if code != 202 || body["replayed"] != float64(1) {
			t.Fatalf("replay = %d %v, want 1 replayed", code, body)
		}
		rcv.wait(t, "the replayed delivery", slow, func(got []delivered) bool { return len(got) >= 8 && got[7].ID == second })
		e.waitDelivery(t, id, second, "delivered", slow)

		// Stats count them.
		code, stats, _ := call(t, "GET", e.url("/v1/admin/webhooks/"+id+"/stats"), nil, bearer(e.admin)...)
		if code != 200 || stats["24h"] == nil || stats["7d"] == nil {
			t.Fatalf("stats = %d %v", code, stats)
		}
	})

	t.Run("GoneDisables", func(t *testing.T) {
		rcv := newReceiver(t, 410)
		id, _ := e.endpoint(t, map[string]any{"url": rcv.url(), "events": []string{"webhook.test"}})
		call(t, "POST", e.url("/v1/admin/webhooks/"+id+"/test"), nil, bearer(e.admin)...)
		rcv.wait(t, "the 410", slow, func(got []delivered) bool { return len(got) == 1 })
		deadline := time.Now().Add(slow)
		for {
			_, ep, _ := call(t, "GET", e.url("/v1/admin/webhooks/"+id), nil, bearer(e.admin)...)
			if ep["enabled"] == false && ep["disabled_reason"] == "gone" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("endpoint after 410: %v, want disabled (gone)", ep)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The administrators are told.
		e.mail.wait(t, "hook-admin@example.com", "webhook endpoint was disabled")
	})

	t.Run("RotatedSecretsBothSign", func(t *testing.T) {
		rcv := newReceiver(t)
		id, old := e.endpoint(t, map[string]any{"url": rcv.url(), "events": []string{"webhook.test"}})
		code, body, _ := call(t, "POST", e.url("/v1/admin/webhooks/"+id+"/rotate-secret"), nil, bearer(e.admin)...)
		fresh, _ := body["secret"].(string)
		if code != 200 || !strings.HasPrefix(fresh, "whsec_") || fresh == old {
			t.Fatalf("rotate-secret = %d %v", code, body)
		}
		call(t, "POST", e.url("/v1/admin/webhooks/"+id+"/test"), nil, bearer(e.admin)...)
		d := rcv.wait(t, "a delivery", slow, func(got []delivered) bool { return len(got) == 1 })[0]
		if len(d.Signature) != 2 {
			t.Fatalf("webhook-signature %q, want two v1 signatures", d.Header.Get("webhook-signature"))
		}
		verify(t, fresh, d)
		verify(t, old, d)
	})

	t.Run("OrganizationScope", func(t *testing.T) {
		rcv := newReceiver(t)
		inside := e.signUp(t, "org-member@example.com")
		_, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(inside)...)
		memberID := me["id"].(string)
		code, org, _ := call(t, "POST", e.url("/v1/admin/organizations"), map[string]any{"name": "Hooked", "slug": "hooked"}, bearer(e.admin)...)
		if code != 201 {
			t.Fatalf("create org = %d %v", code, org)
		}
		orgID := org["id"].(string)
		if c, b, _ := call(t, "PUT", e.url("/v1/admin/organizations/"+orgID+"/members/"+memberID), map[string]string{"role": "member"}, bearer(e.admin)...); c != 200 {
			t.Fatalf("add member = %d %v", c, b)
		}
		e.endpoint(t, map[string]any{"url": rcv.url(), "events": []string{"user.updated"}, "organization_id": orgID})
		outside := e.signUp(t, "org-outsider@example.com")
		for _, tok := range []string{outside, inside} {
			if c, b, _ := call(t, "PATCH", e.url("/v1/me"), map[string]any{"name": "Renamed"}, bearer(tok)...); c != 200 {
				t.Fatalf("PATCH /v1/me = %d %v", c, b)
			}
		}
		got := rcv.wait(t, "the member's update", slow, func(got []delivered) bool { return len(got) >= 1 })
		time.Sleep(2 * time.Second) // room for a wrong delivery to arrive
		got = rcv.all()
		if len(got) != 1 || got[0].Data["user_id"] != memberID {
			t.Fatalf("an endpoint of the organisation got %d deliveries (%v), want only its member's", len(got), got)
		}
	})

	t.Run("RefusedDestinations", func(t *testing.T) {
		strict := newAccountEnv(t, map[string]string{})
		if _, code := strict.cli(t, "users", "create", "--email", "strict-admin@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
			t.Fatal("create admin")
		}
		admin := strict.login(t, "strict-admin@example.com", strongPassword)
		for _, u := range []string{"http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::1]:9/hook", "http://169.254.169.254/latest", "http://10.1.2.3/hook"} {
			code, body, _ := call(t, "POST", strict.url("/v1/admin/webhooks"), map[string]any{"url": u, "events": []string{"user.created"}}, bearer(admin)...)
			if code != 422 || body["code"] == nil {
				t.Errorf("endpoint %s = %d %v, want 422", u, code, body)
			}
		}
		code, list, _ := call(t, "GET", strict.url("/v1/admin/webhooks"), nil, bearer(admin)...)
		if code != 200 || len(list["webhooks"].([]any)) != 0 {
			t.Errorf("after refusals, endpoints = %d %v, want none", code, list)
		}
	})

	t.Run("RedirectNotFollowed", func(t *testing.T) {
		target := newReceiver(t)
		redirect := httptest.NewServer(http.RedirectHandler(target.url(), http.StatusTemporaryRedirect))
		t.Cleanup(redirect.Close)
		id, _ := e.endpoint(t, map[string]any{"url": redirect.URL + "/hook", "events": []string{"webhook.test"}})
		_, sent, _ := call(t, "POST", e.url("/v1/admin/webhooks/"+id+"/test"), nil, bearer(e.admin)...)
		e.waitDelivery(t, id, sent["event_id"].(string), "failed", slow)
		if n := len(target.all()); n != 0 {
			t.Fatalf("the redirect's target got %d requests, want none", n)
		}
	})

	t.Run("AccountsMadeByTheCLI", func(t *testing.T) {
		rcv := newReceiver(t)
		_, secret := e.endpoint(t, map[string]any{"url": rcv.url(), "events": []string{"user.created"}})
		if _, code := e.cli(t, "users", "create", "--email", "cli-made@example.com", "--password-stdin", "--verified"); code != 0 {
			t.Fatal("users create")
		}
		d := rcv.wait(t, "user.created", slow, func(got []delivered) bool { return len(got) > 0 })[0]
		verify(t, secret, d)
		if d.Type != "user.created" || d.Data["email"] != "cli-made@example.com" {
			t.Fatalf("got %s %v", d.Type, d.Data)
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		_, raw := get(t, e.s.admin+"/metrics")
		for _, want := range []string{
			`gatehouse_webhook_deliveries_total{outcome="delivered"}`, `gatehouse_webhook_deliveries_total{outcome="retry"}`,
			`gatehouse_webhook_deliveries_total{outcome="failed"}`, `gatehouse_webhook_deliveries_total{outcome="gone"}`,
			"gatehouse_webhook_delivery_seconds_bucket", "gatehouse_webhook_queue_depth", "gatehouse_webhook_oldest_pending_seconds",
		} {
			if !strings.Contains(string(raw), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("EventTypes", func(t *testing.T) {
		code, body, _ := call(t, "GET", e.url("/v1/webhooks/event-types"), nil)
		if code != 200 {
			t.Fatalf("event-types = %d", code)
		}
		var names []string
		for _, et := range body["event_types"].([]any) {
			m := et.(map[string]any)
			names = append(names, m["type"].(string))
			if m["description"] == "" || m["schema"] == nil {
				t.Errorf("event type %v lacks a description or schema", m)
			}
		}
		for _, want := range []string{"user.created", "user.email_verified", "session.revoked", "security.lockout", "organization.member_added"} {
			if !slices.Contains(names, want) {
				t.Errorf("event types %v lack %s", names, want)
			}
		}
	})
}

// TestWebhooksVerifyInNode: a real delivery verifies with the official
// JavaScript library, as the README shows (testdata/node/webhookverify.mjs).
func TestWebhooksVerifyInNode(t *testing.T) {
	t.Parallel()
	node, nodeModules, missing := findNode()
	if missing != "" {
		clientLibMissing(t, "%s", missing)
	}
	e := newWebhookEnv(t, nil)
	rcv := newReceiver(t)
	id, secret := e.endpoint(t, map[string]any{"url": rcv.url(), "events": []string{"webhook.test"}})
	if code, body, _ := call(t, "POST", e.url("/v1/admin/webhooks/"+id+"/test"), nil, bearer(e.admin)...); code != 202 {
		t.Fatalf("test = %d %v", code, body)
	}
	d := rcv.wait(t, "the test event", 45*time.Second, func(got []delivered) bool { return len(got) > 0 })[0]
	headers := map[string]string{}
	for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		headers[h] = d.Header.Get(h)
	}
	raw, err := json.Marshal(map[string]any{"secret": secret, "body": string(d.Body), "headers": headers})
	if err != nil {
		t.Fatal(err)
	}
	dir := nodeScriptDir(t, nodeModules)
	if err := os.WriteFile(filepath.Join(dir, "delivery.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	results := runClientLib(t, node, dir, []string{"webhookverify.mjs", "delivery.json"})
	if r := results["standardwebhooks verify"]; r["type"] != "webhook.test" || r["id"] != d.ID {
		t.Errorf("verified event %v, want the webhook.test %s", r, d.ID)
	}
	if _, ok := results["standardwebhooks verify tampered body"]; !ok {
		t.Error("the tampered body was not checked")
	}
}
