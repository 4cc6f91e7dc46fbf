package app

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/passkey/passkeytest"
)

// TestPasskeys runs the passkey issue's "Done when" list black-box
// through the running server with a software authenticator (the browser
// half is TestPasskeysDemoInChromium).
func TestPasskeysEmbedded(t *testing.T) { runPasskeys(t, newAccountEnv(t, nil)) }

func TestPasskeysPostgresRedis(t *testing.T) {
	runPasskeys(t, newAccountEnv(t, postgresRedisEnv(t)))
}

// The relying party the server is by default: the issuer's host and
// origin (GATEHOUSE_ISSUER is http://localhost:8080 in tests).
var testRP = virtualwebauthn.RelyingParty{ID: "localhost", Name: "Gatehouse", Origin: "http://localhost:8080"}

// passkeyDevice is a software authenticator with one credential.
type passkeyDevice struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newPasskeyDevice(t *testing.T, userID string) *passkeyDevice {
	t.Helper()
	id, err := uuid.Parse(userID)
	if err != nil {
		t.Fatal(err)
	}
	return &passkeyDevice{
		auth: virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: id[:]}),
		cred: passkeytest.NewCredential(t),
	}
}

// answer answers assertion options with the device's credential.
func (d *passkeyDevice) answer(t *testing.T, options any) json.RawMessage {
	t.Helper()
	raw, _ := json.Marshal(options)
	opts, err := virtualwebauthn.ParseAssertionOptions(string(raw))
	if err != nil {
		t.Fatalf("assertion options %s: %v", raw, err)
	}
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(testRP, d.auth, d.cred, *opts))
}

// registerPasskey registers d for the holder of the access token at.
func registerPasskey(t *testing.T, e *accountEnv, at string, d *passkeyDevice, name string) map[string]any {
	t.Helper()
	c, begun, _ := call(t, "POST", e.url("/v1/me/passkeys/register/begin"), nil, bearer(at)...)
	if c != 200 || begun["registration_token"] == nil {
		t.Fatalf("register/begin = %d %v", c, begun)
	}
	raw, _ := json.Marshal(begun["options"])
	opts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
	if err != nil {
		t.Fatalf("creation options %s: %v", raw, err)
	}
	cred := json.RawMessage(virtualwebauthn.CreateAttestationResponse(testRP, d.auth, d.cred, *opts))
	c, pk, _ := call(t, "POST", e.url("/v1/me/passkeys/register/finish"), map[string]any{
		"registration_token": begun["registration_token"], "credential": cred, "name": name,
	}, bearer(at)...)
	if c != 201 {
		t.Fatalf("register/finish = %d %v", c, pk)
	}
	d.auth.AddCredential(d.cred)
	return pk
}

// passkeySignIn signs in without a password; it returns the status and
// body of the finish.
func passkeySignIn(t *testing.T, e *accountEnv, d *passkeyDevice, email string) (int, map[string]any) {
	t.Helper()
	var body any
	if email != "" {
		body = map[string]string{"email": email}
	}
	c, begun, _ := call(t, "POST", e.url("/v1/auth/passkey/begin"), body)
	if c != 200 || begun["passkey_token"] == nil {
		t.Fatalf("passkey/begin = %d %v", c, begun)
	}
	c, out, _ := call(t, "POST", e.url("/v1/auth/passkey/finish"), map[string]any{
		"passkey_token": begun["passkey_token"], "credential": d.answer(t, begun["options"]),
	})
	return c, out
}

func runPasskeys(t *testing.T, e *accountEnv) {
	if _, code := e.cli(t, "users", "create", "--email", "pk-admin@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
		t.Fatal("users create --admin failed")
	}
	admin := e.login(t, "pk-admin@example.com", strongPassword)

	const email = "passkey-user@example.com"
	at := e.signUp(t, email)
	id := userID(t, e, at)
	d := newPasskeyDevice(t, id)

	t.Run("RegisterAndSignInWithoutPassword", func(t *testing.T) {
		pk := registerPasskey(t, e, at, d, "Laptop")
		if pk["name"] != "Laptop" || pk["device_bound"] != true || pk["id"] == nil {
			t.Fatalf("registered %v", pk)
		}
		e.mail.wait(t, email, "Security settings")
		c, out := passkeySignIn(t, e, d, "")
		if c != 200 || out["access_token"] == nil {
			t.Fatalf("passkey sign-in = %d %v", c, out)
		}
		if amr := amrOf(t, out["access_token"].(string)); !slices.Equal(amr, []string{"hwk", "user", "mfa"}) {
			t.Errorf("amr %v, want [hwk user mfa]", amr)
		}
		// With the address: the same.
		if c, out := passkeySignIn(t, e, d, email); c != 200 || out["access_token"] == nil {
			t.Errorf("passkey sign-in with the address = %d %v", c, out)
		}
		c, list, _ := call(t, "GET", e.url("/v1/me/passkeys"), nil, bearer(at)...)
		ps, _ := list["passkeys"].([]any)
		if c != 200 || len(ps) != 1 || ps[0].(map[string]any)["last_used_at"] == nil {
			t.Errorf("list = %d %v", c, list)
		}
	})

	t.Run("ReplayAndUnknownRefusedAlike", func(t *testing.T) {
		c, begun, _ := call(t, "POST", e.url("/v1/auth/passkey/begin"), nil)
		if c != 200 {
			t.Fatal(c)
		}
		answer := d.answer(t, begun["options"])
		finish := func(tok any, cred json.RawMessage) (int, map[string]any) {
			c, b, _ := call(t, "POST", e.url("/v1/auth/passkey/finish"), map[string]any{"passkey_token": tok, "credential": cred})
			return c, b
		}
		if c, b := finish(begun["passkey_token"], answer); c != 200 {
			t.Fatalf("first finish = %d %v", c, b)
		}
		if c, b := finish(begun["passkey_token"], answer); c != 400 || b["code"] != "invalid_passkey_token" {
			t.Errorf("the same ceremony again = %d %v", c, b)
		}
		_, again, _ := call(t, "POST", e.url("/v1/auth/passkey/begin"), nil)
		c1, wrong := finish(again["passkey_token"], answer)
		stranger := newPasskeyDevice(t, id)
		stranger.auth.AddCredential(stranger.cred)
		_, third, _ := call(t, "POST", e.url("/v1/auth/passkey/begin"), nil)
		c2, unknown := finish(third["passkey_token"], stranger.answer(t, third["options"]))
		if c1 != 401 || c2 != 401 || wrong["code"] != "invalid_passkey" || unknown["code"] != wrong["code"] || unknown["detail"] != wrong["detail"] {
			t.Errorf("a replayed assertion = %d %v, an unknown credential = %d %v: want the same 401", c1, wrong, c2, unknown)
		}
	})

	t.Run("SecondFactor", func(t *testing.T) {
		// The password sign-in of a user with a passkey asks for it.
		b := loginMFA(t, e, email)
		if b["mfa_required"] != true || !slices.Contains(toStrings(b["methods"]), "webauthn") {
			t.Fatalf("login = %v, want mfa_required with webauthn", b)
		}
		mt := b["mfa_token"].(string)
		c, ch, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "webauthn"})
		if c != 200 || ch["options"] == nil {
			t.Fatalf("challenge webauthn = %d %v", c, ch)
		}
		c, out, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]any{"mfa_token": mt, "method": "webauthn", "credential": d.answer(t, ch["options"])})
		if c != 200 || out["access_token"] == nil {
			t.Fatalf("verify webauthn = %d %v", c, out)
		}
		amr := amrOf(t, out["access_token"].(string))
		for _, want := range []string{"pwd", "mfa", "hwk"} {
			if !slices.Contains(amr, want) {
				t.Errorf("amr %v lacks %s", amr, want)
			}
		}
	})

	t.Run("PhishingResistantPolicy", func(t *testing.T) {
		const email2 = "phish-resistant@example.com"
		at2 := e.signUp(t, email2)
		id2 := userID(t, e, at2)
		secret := enrolTOTP(t, e, at2)
		d2 := newPasskeyDevice(t, id2)
		registerPasskey(t, e, at2, d2, "Key")
		joinOrg(t, e, admin, "webauthn-only", map[string]any{"mfa_required": true, "allowed_methods": []string{"webauthn"}}, id2)
		b := loginMFA(t, e, email2)
		if methods := toStrings(b["methods"]); !slices.Equal(methods, []string{"webauthn"}) {
			t.Fatalf("methods %v under a webauthn-only policy", methods)
		}
		mt := b["mfa_token"].(string)
		code := totpAt(t, secret, time.Now())
		if c, r, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "totp", "code": code}); c != 400 || r["code"] != "method_unavailable" {
			t.Errorf("TOTP under a webauthn-only policy = %d %v, want 400 method_unavailable", c, r)
		}
		_, ch, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "webauthn"})
		if c, r, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]any{"mfa_token": mt, "method": "webauthn", "credential": d2.answer(t, ch["options"])}); c != 200 || r["access_token"] == nil {
			t.Errorf("webauthn under the policy = %d %v", c, r)
		}
		// A passwordless sign-in with the passkey passes the policy.
		if c, r := passkeySignIn(t, e, d2, ""); c != 200 || r["access_token"] == nil {
			t.Errorf("passkey sign-in under the policy = %d %v", c, r)
		}
	})

	t.Run("ReauthenticateAndDelete", func(t *testing.T) {
		// A session signed in with the passkey (a factor the session had
		// when it signed in proves the user again; one added since would
		// not).
		c, signed := passkeySignIn(t, e, d, "")
		if c != 200 {
			t.Fatalf("passkey sign-in = %d %v", c, signed)
		}
		at := signed["access_token"].(string)
		pkID := func() string {
			_, list, _ := call(t, "GET", e.url("/v1/me/passkeys"), nil, bearer(at)...)
			return list["passkeys"].([]any)[0].(map[string]any)["id"].(string)
		}()
		if c, r, _ := call(t, "PATCH", e.url("/v1/me/passkeys/"+pkID), map[string]string{"name": "Work laptop"}, bearer(at)...); c != 200 || r["name"] != "Work laptop" {
			t.Errorf("rename = %d %v", c, r)
		}
		// Six minutes on, the sign-in is no longer recent.
		e.s.clock.Advance(6 * time.Minute)
		if c, r, _ := call(t, "DELETE", e.url("/v1/me/passkeys/"+pkID), nil, bearer(at)...); c != 403 || r["code"] != "reauthentication_required" {
			t.Fatalf("delete on an old sign-in = %d %v", c, r)
		}
		c, ch, _ := call(t, "POST", e.url("/v1/auth/reauthenticate/challenge"), map[string]string{"method": "webauthn"}, bearer(at)...)
		if c != 200 || ch["options"] == nil {
			t.Fatalf("reauthenticate/challenge = %d %v", c, ch)
		}
		c, re, _ := call(t, "POST", e.url("/v1/auth/reauthenticate"), map[string]any{"method": "webauthn", "credential": d.answer(t, ch["options"])}, bearer(at)...)
		if c != 200 || re["access_token"] == nil {
			t.Fatalf("reauthenticate with the passkey = %d %v", c, re)
		}
		fresh := re["access_token"].(string)
		if c, r, _ := call(t, "DELETE", e.url("/v1/me/passkeys/"+pkID), nil, bearer(fresh)...); c != 204 {
			t.Fatalf("delete after reauthentication = %d %v", c, r)
		}
		if c, _ := passkeySignIn(t, e, d, ""); c != 401 {
			t.Errorf("a deleted passkey still signs in: %d", c)
		}
	})

	t.Run("BackwardsSignCount", func(t *testing.T) {
		const email3 = "cloned-key@example.com"
		at3 := e.signUp(t, email3)
		d3 := newPasskeyDevice(t, userID(t, e, at3))
		d3.cred.Counter = 7
		registerPasskey(t, e, at3, d3, "Old key")
		d3.cred.Counter = 9
		if c, r := passkeySignIn(t, e, d3, ""); c != 200 {
			t.Fatalf("sign-in = %d %v", c, r)
		}
		d3.cred.Counter = 3
		if c, r := passkeySignIn(t, e, d3, ""); c != 401 || r["code"] != "invalid_passkey" {
			t.Fatalf("a backwards sign count = %d %v, want 401 invalid_passkey", c, r)
		}
		if m := e.mail.wait(t, email3, "Security settings"); !strings.Contains(m.Text, "may have been copied") {
			// the registration notice came first: the next one is the clone's
			if m = e.mail.wait(t, email3, "Security settings"); !strings.Contains(m.Text, "may have been copied") {
				t.Errorf("no clone notice: %s", m.Text)
			}
		}
		_, evs, _ := call(t, "GET", e.url("/v1/admin/security-events?type=passkey_cloned&user_id="+userID(t, e, at3)), nil, bearer(admin)...)
		if events, _ := evs["events"].([]any); len(events) != 1 || events[0].(map[string]any)["severity"] != "high" {
			t.Errorf("passkey_cloned security events = %v, want one, high", evs)
		}
		d3.cred.Counter = 100
		if c, _ := passkeySignIn(t, e, d3, ""); c != 401 {
			t.Errorf("a flagged passkey signs in: %d", c)
		}
	})
}

// TestPasskeyLastSignInMethod: an account made by a social sign-in (no
// password) may unlink its identity once it has a passkey, and may then
// not delete that passkey, its last way in.
func TestPasskeyLastSignInMethod(t *testing.T) {
	e, m := newSocialEnv(t)
	const email = "social-passkey@example.com"
	at := socialSignIn(t, e, m, "okta", "okta-passkey-1", email)["access_token"].(string)
	d := newPasskeyDevice(t, userID(t, e, at))
	pk := registerPasskey(t, e, at, d, "Phone")
	c, ids, _ := call(t, "GET", e.url("/v1/me/identities"), nil, bearer(at)...)
	list, _ := ids["identities"].([]any)
	if c != 200 || len(list) != 1 {
		t.Fatalf("identities = %d %v", c, ids)
	}
	if c, b, _ := call(t, "DELETE", e.url("/v1/me/identities/"+list[0].(map[string]any)["id"].(string)), nil, bearer(at)...); c != 204 {
		t.Fatalf("unlinking the identity of an account with a passkey = %d %v, want 204", c, b)
	}
	if c, b, _ := call(t, "DELETE", e.url("/v1/me/passkeys/"+pk["id"].(string)), nil, bearer(at)...); c != 409 || b["code"] != "last_sign_in_method" {
		t.Fatalf("deleting the last passkey of an account without password or identity = %d %v, want 409 last_sign_in_method", c, b)
	}
	if c, out := passkeySignIn(t, e, d, email); c != 200 || out["access_token"] == nil {
		t.Errorf("the passkey no longer signs in: %d %v", c, out)
	}
}

// TestPasskeysOffForIPIssuer: an issuer whose host is an IP address has
// no WebAuthn relying party ID; the server starts, and the passkey routes
// say passkeys are off.
func TestPasskeysOffForIPIssuer(t *testing.T) {
	e := newIssuerEnv(t, nil) // issuer http://127.0.0.1:<port>
	if c, b, _ := call(t, "POST", e.url("/v1/auth/passkey/begin"), nil); c != 404 || b["code"] != "passkeys_disabled" {
		t.Errorf("passkey/begin = %d %v, want 404 passkeys_disabled", c, b)
	}
	at := e.signUp(t, "no-passkeys@example.com")
	if c, b, _ := call(t, "GET", e.url("/v1/me/passkeys"), nil, bearer(at)...); c != 404 || b["code"] != "passkeys_disabled" {
		t.Errorf("GET /v1/me/passkeys = %d %v, want 404 passkeys_disabled", c, b)
	}
}
