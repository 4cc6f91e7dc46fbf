package delivery

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/gatehouse/gatehouse/internal/secret"
)

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		s, err := NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		raw, ok := strings.CutPrefix(s, "whsec_")
		if !ok {
			t.Fatalf("secret %q lacks the whsec_ prefix", s)
		}
		key, err := base64.StdEncoding.DecodeString(raw)
		if err != nil || len(key) != 32 {
			t.Fatalf("secret decodes to %d bytes (%v), want 32", len(key), err)
		}
		if seen[s] {
			t.Fatal("NewSecret repeated itself")
		}
		seen[s] = true
		// The official library takes it as it is.
		if _, err := standardwebhooks.NewWebhook(s); err != nil {
			t.Fatalf("official library refuses the secret: %v", err)
		}
	}
}

func TestHeadersVerifyWithOfficialLibrary(t *testing.T) {
	current, _ := NewSecret()
	previous, _ := NewSecret()
	other, _ := NewSecret()
	body := []byte(`{"id":"msg_1","type":"user.created","timestamp":"2026-01-02T03:04:05.123456Z","data":{"user_id":"u1"}}`)
	ts := time.Now()

	h, err := Headers([]string{current, previous}, "msg_1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get("webhook-id"); got != "msg_1" {
		t.Errorf("webhook-id = %q", got)
	}
	if got := h.Get("webhook-timestamp"); got != strconv.FormatInt(ts.Unix(), 10) {
		t.Errorf("webhook-timestamp = %q, want %d", got, ts.Unix())
	}
	sigs := strings.Split(h.Get("webhook-signature"), " ")
	if len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1,") {
		t.Fatalf("webhook-signature = %q, want two v1 signatures", h.Get("webhook-signature"))
	}
	for _, s := range []string{current, previous} {
		if strings.Contains(h.Get("webhook-signature"), strings.TrimPrefix(s, "whsec_")) {
			t.Fatal("a secret appears in the headers")
		}
	}

	verify := func(s string, body []byte, h http.Header) error {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		return wh.Verify(body, h)
	}
	// Each secret alone verifies (a receiver knows one of them).
	for name, s := range map[string]string{"current": current, "previous": previous} {
		if err := verify(s, body, h); err != nil {
			t.Errorf("%s secret does not verify: %v", name, err)
		}
	}
	if err := verify(other, body, h); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("an unrelated secret: %v, want no matching signature", err)
	}

	// The current secret's signature comes first.
	one, err := Headers([]string{current}, "msg_1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if got := one.Get("webhook-signature"); got != sigs[0] {
		t.Errorf("current secret's signature %q is not first in %q", got, h.Get("webhook-signature"))
	}

	tamper := map[string]func() (http.Header, []byte){
		"body": func() (http.Header, []byte) {
			return h.Clone(), []byte(strings.Replace(string(body), "u1", "u2", 1))
		},
		"id": func() (http.Header, []byte) {
			c := h.Clone()
			c.Set("webhook-id", "msg_2")
			return c, body
		},
		"timestamp": func() (http.Header, []byte) {
			c := h.Clone()
			c.Set("webhook-timestamp", strconv.FormatInt(ts.Unix()-1, 10))
			return c, body
		},
		"signature": func() (http.Header, []byte) {
			c := h.Clone()
			c.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
			return c, body
		},
	}
	for name, f := range tamper {
		th, tb := f()
		for _, s := range []string{current, previous} {
			if err := verify(s, tb, th); err == nil {
				t.Errorf("tampered %s verifies", name)
			}
		}
	}
}

func TestHeadersWithoutPrefix(t *testing.T) {
	s, _ := NewSecret()
	body := []byte(`{}`)
	ts := time.Now()
	a, err := Headers([]string{s}, "msg_x", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Headers([]string{strings.TrimPrefix(s, "whsec_")}, "msg_x", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if a.Get("webhook-signature") != b.Get("webhook-signature") {
		t.Error("the whsec_ prefix changes the signature")
	}
}

func TestHeadersErrors(t *testing.T) {
	good, _ := NewSecret()
	bad := "whsec_not*base64!"
	for name, tc := range map[string]struct {
		secrets []string
		id      string
	}{
		"no secret":  {nil, "msg_1"},
		"empty id":   {[]string{good}, ""},
		"bad secret": {[]string{good, bad}, "msg_1"},
		"empty key":  {[]string{"whsec_"}, "msg_1"},
	} {
		_, err := Headers(tc.secrets, tc.id, time.Now(), []byte("{}"))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if strings.Contains(err.Error(), "base64!") || strings.Contains(err.Error(), strings.TrimPrefix(good, "whsec_")) {
			t.Errorf("%s: error %q quotes a secret", name, err)
		}
	}
}

func TestSealSecretBindsEndpoint(t *testing.T) {
	ks, err := secret.GenerateKeyString("t1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secret.ParseKeys(ks)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewSecret()
	sealed, err := SealSecret(kr, "whep_a", s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, strings.TrimPrefix(s, "whsec_")) {
		t.Fatal("sealed secret holds the secret in clear")
	}
	got, err := OpenSecret(kr, "whep_a", sealed)
	if err != nil || got != s {
		t.Fatalf("OpenSecret = %v, want the secret back", err)
	}
	if _, err := OpenSecret(kr, "whep_b", sealed); err == nil {
		t.Error("a secret sealed for one endpoint opens for another")
	}
}
