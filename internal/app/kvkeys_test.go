package app

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestEphemeralKeysHoldNoPersonalData runs every flow that throttles or
// locks by email address or phone number on PostgreSQL and Redis, with
// distinctive addresses and a distinctive number, then reads every key
// of the server's Redis prefix, and every value under them: none may hold
// an address (nor its local part or domain) or the number, so that a dump
// of Redis or a MONITOR of its traffic reveals neither.
func TestEphemeralKeysHoldNoPersonalData(t *testing.T) {
	const sid, token = "AC00000000000000000000000000000002", "twilio-test-token"
	tw := startTwilio(t, sid, token)
	env := postgresRedisEnv(t)
	redisURL, prefix := env["GATEHOUSE_REDIS_URL"], env["GATEHOUSE_REDIS_KEY_PREFIX"]
	env["GATEHOUSE_TWILIO_ACCOUNT_SID"], env["GATEHOUSE_TWILIO_AUTH_TOKEN"] = sid, token
	env["GATEHOUSE_TWILIO_FROM"], env["GATEHOUSE_TWILIO_BASE_URL"] = "+15005550006", tw.URL
	e, idp := newSocialEnv(t, env)

	const (
		local, domain   = "zebulon.quixote", "kvkeys-private.example.org"
		addr            = local + "@" + domain
		local2, domain2 = "yolanda.marchetti", "other-kvkeys.example.net"
		addr2           = local2 + "@" + domain2
		phone           = "+14155552671"
		phoneDigits     = "4155552671"
	)
	post := func(path string, body any, header ...string) (int, map[string]any) {
		t.Helper()
		c, b, _ := call(t, "POST", e.url(path), body, header...)
		return c, b
	}

	// Registration (twice: the second is a sign-up attempt on an existing
	// address, throttled per address) and a resent verification.
	if c, b := post("/v1/auth/register", map[string]string{"email": addr, "password": strongPassword}); c != 201 {
		t.Fatalf("register = %d %v", c, b)
	}
	e.mail.wait(t, addr, "Verify your email")
	post("/v1/auth/register", map[string]string{"email": addr, "password": strongPassword})
	if c, b := post("/v1/auth/verify-email/resend", map[string]string{"email": addr}); c != 202 {
		t.Fatalf("resend verification = %d %v", c, b)
	}
	tok := linkToken(t, e.mail.wait(t, addr, "Verify your email"), "verify-email")
	if c, b := post("/v1/auth/verify-email", map[string]string{"token": tok}); c != 200 {
		t.Fatalf("verify = %d %v", c, b)
	}
	// A social sign-in with the account's address: a pending link.
	accountExists(t, e, idp, "kvkeys-subject", addr)
	// Failed sign-ins (the login lockout), on an account and on an
	// address without one.
	for _, a := range []string{addr, addr2} {
		if c, b := post("/v1/auth/login", map[string]string{"email": a, "password": "not the password at all"}); c != 401 {
			t.Fatalf("wrong password for %s = %d %v", a, c, b)
		}
	}
	at := e.login(t, addr, strongPassword)
	// Password reset and magic link, per address.
	if c, b := post("/v1/auth/password/forgot", map[string]string{"email": addr}); c != 202 {
		t.Fatalf("forgot password = %d %v", c, b)
	}
	if c, b := post("/v1/auth/magic-link", map[string]string{"email": addr}); c != 202 {
		t.Fatalf("magic link = %d %v", c, b)
	}
	e.mail.wait(t, addr, "sign") // the magic link's grant is in Redis now
	// Second factors: an email code and a text message (per phone).
	if c, b := post("/v1/me/mfa/email", nil, bearer(at)...); c != 201 {
		t.Fatalf("enrol email = %d %v", c, b)
	}
	enrolSMS(t, e, tw, at, phone)
	// An email change, throttled per new address.
	if c, me, _ := call(t, "PATCH", e.url("/v1/me"), map[string]any{"email": addr2, "current_password": strongPassword}, bearer(at)...); c != 200 {
		t.Fatalf("email change = %d %v", c, me)
	}

	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	ctx := context.Background()
	forbidden := []string{local, domain, local2, domain2, phoneDigits}
	leaks := func(what, s string) {
		t.Helper()
		for _, f := range forbidden {
			if strings.Contains(strings.ToLower(s), f) {
				t.Errorf("%s holds %q: %q", what, f, s)
			}
		}
	}
	// The kv store's keys start with the prefix; the rate limiter's with
	// "rate:" (which redis_rate adds) and the prefix.
	var keys []string
	for _, p := range []string{prefix, "rate:" + prefix} {
		iter := rc.Scan(ctx, 0, escapeRedisGlob(p)+"*", 100).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The address keys of the built-in rate limits (rule name, then the
	// address's pseudonym).
	want := map[string]bool{"rl:email-address:": false, "rl:magic-link-address:": false, "sms:phone:": false, "login:{email:": false, "social:magic:": false, "social:link:": false}
	for _, k := range keys {
		leaks("key", k)
		for w := range want {
			if strings.HasPrefix(strings.TrimPrefix(strings.TrimPrefix(k, "rate:"), prefix), w) {
				want[w] = true
			}
		}
		switch typ, err := rc.Type(ctx, k).Result(); {
		case err != nil:
			t.Fatal(err)
		case typ == "string":
			v, err := rc.Get(ctx, k).Result()
			if err != nil && err != redis.Nil {
				t.Fatal(err)
			}
			leaks("the value of "+k, v)
		case typ == "set":
			members, err := rc.SMembers(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			leaks("the set "+k, strings.Join(members, " "))
		}
	}
	// The flows did reach Redis: the test looked at the right keys.
	for w, seen := range want {
		if !seen {
			t.Errorf("no key %s%s* among %q", prefix, w, keys)
		}
	}
}

func escapeRedisGlob(s string) string {
	return strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`).Replace(s)
}
