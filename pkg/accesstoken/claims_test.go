package accesstoken_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/pkg/accesstoken"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestClaimsJSON(t *testing.T) {
	full := accesstoken.Claims{
		Issuer:    "https://auth.example.test",
		Subject:   "user-1",
		Audience:  []string{"https://api.example.test"},
		ClientID:  "client-1",
		ExpiresAt: t0.Add(15 * time.Minute),
		IssuedAt:  t0,
		NotBefore: t0,
		ID:        "jti-1",
		SessionID: "sid-1",
		AuthTime:  t0.Add(-time.Hour),
		AMR:       []string{"pwd"},
		Scope:     "openid email",
		Extra:     map[string]any{"tenant": "acme", "n": float64(3)},
	}
	b, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var members map[string]any
	if err := json.Unmarshal(b, &members); err != nil {
		t.Fatal(err)
	}
	wantMembers := map[string]any{
		"iss": "https://auth.example.test", "sub": "user-1", "aud": "https://api.example.test",
		"client_id": "client-1", "exp": float64(t0.Unix() + 900), "iat": float64(t0.Unix()), "nbf": float64(t0.Unix()),
		"jti": "jti-1", "sid": "sid-1", "auth_time": float64(t0.Unix() - 3600), "amr": []any{"pwd"},
		"scope": "openid email", "tenant": "acme", "n": float64(3),
	}
	if diff := cmp.Diff(wantMembers, members); diff != "" {
		t.Errorf("payload members (-want +got):\n%s", diff)
	}
	var back accesstoken.Claims
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(full, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	// Several audiences are an array; empty fields are left out.
	b, err = json.Marshal(accesstoken.Claims{Audience: []string{"a", "b"}})
	if err != nil || string(b) != `{"aud":["a","b"]}` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
	if _, err := json.Marshal(accesstoken.Claims{Extra: map[string]any{"exp": 1}}); err == nil {
		t.Error("Marshal accepted a registered name in Extra")
	}
	if !full.HasScope("email") || full.HasScope("mail") || !cmp.Equal(full.Scopes(), []string{"openid", "email"}) {
		t.Errorf("Scopes() = %v", full.Scopes())
	}
}

func TestClaimsUnmarshal(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    accesstoken.Claims
		wantErr bool
	}{
		{name: "array audience", in: `{"aud":["a","b"]}`, want: accesstoken.Claims{Audience: []string{"a", "b"}}},
		{name: "fractional time", in: `{"exp":1893553445.9}`, want: accesstoken.Claims{ExpiresAt: time.Unix(1893553445, 0).UTC()}},
		{name: "null is absent", in: `{"iss":null,"exp":null}`, want: accesstoken.Claims{}},
		// encoding/json would put "ISS" into Issuer; claim names are exact.
		{name: "names are case-sensitive", in: `{"ISS":"x","Sub":"y"}`, want: accesstoken.Claims{Extra: map[string]any{"ISS": "x", "Sub": "y"}}},
		{name: "not an object", in: `[]`, wantErr: true},
		{name: "null payload", in: `null`, wantErr: true},
		{name: "iss not a string", in: `{"iss":1}`, wantErr: true},
		{name: "aud of numbers", in: `{"aud":[1]}`, wantErr: true},
		{name: "exp as string", in: `{"exp":"1"}`, wantErr: true},
		{name: "exp negative", in: `{"exp":-1}`, wantErr: true},
		{name: "exp huge", in: `{"exp":1e300}`, wantErr: true},
		{name: "amr not a list", in: `{"amr":"pwd"}`, wantErr: true},
		{name: "bad JSON", in: `{"iss":`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c accesstoken.Claims
			err := json.Unmarshal([]byte(tc.in), &c)
			if tc.wantErr {
				if err == nil {
					t.Errorf("Unmarshal(%s) = %+v, want an error", tc.in, c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	const leeway = 30 * time.Second
	valid := accesstoken.Claims{
		Issuer: "iss", Subject: "sub", Audience: []string{"x", "aud"}, ClientID: "c", ID: "j",
		IssuedAt: t0, NotBefore: t0, ExpiresAt: t0.Add(15 * time.Minute),
	}
	exp := valid.ExpiresAt
	expect := accesstoken.Expected{Issuer: "iss", Audience: []string{"aud", "other"}, Time: t0, Leeway: leeway}
	for _, tc := range []struct {
		name   string
		modify func(c *accesstoken.Claims, e *accesstoken.Expected)
		ok     bool
	}{
		{"valid", func(*accesstoken.Claims, *accesstoken.Expected) {}, true},
		{"just before exp+leeway", func(_ *accesstoken.Claims, e *accesstoken.Expected) { e.Time = exp.Add(leeway - time.Nanosecond) }, true},
		{"at exp+leeway", func(_ *accesstoken.Claims, e *accesstoken.Expected) { e.Time = exp.Add(leeway) }, false},
		{"nbf within leeway", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.NotBefore = t0.Add(leeway) }, true},
		{"nbf beyond leeway", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.NotBefore = t0.Add(leeway + time.Second) }, false},
		{"no nbf", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.NotBefore = time.Time{} }, true},
		{"iat beyond leeway", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.IssuedAt = t0.Add(leeway + time.Second) }, false},
		{"wrong issuer", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.Issuer = "ISS" }, false},
		{"no audience match", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.Audience = []string{"x"} }, false},
		{"no audience", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.Audience = nil }, false},
		{"no sub", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.Subject = "" }, false},
		{"no client_id", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.ClientID = "" }, false},
		{"no jti", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.ID = "" }, false},
		{"no exp", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.ExpiresAt = time.Time{} }, false},
		{"no iat", func(c *accesstoken.Claims, _ *accesstoken.Expected) { c.IssuedAt = time.Time{} }, false},
		{"nothing expected", func(_ *accesstoken.Claims, e *accesstoken.Expected) { e.Issuer, e.Audience = "", nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, e := valid, expect
			tc.modify(&c, &e)
			err := c.Validate(e)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, accesstoken.ErrInvalid)) {
				t.Errorf("Validate = %v, want ok=%v (errors wrapping ErrInvalid)", err, tc.ok)
			}
		})
	}
}
