package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// api is a keep-alive HTTP client for the Gatehouse public API.
type api struct {
	base  string
	http  *http.Client
	dials atomic.Int64 // TCP connections opened, to show keep-alive works
}

func newAPI(base string, clients int) *api {
	a := &api{base: strings.TrimRight(base, "/")}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			a.dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        2 * clients,
		MaxIdleConnsPerHost: 2 * clients,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	a.http = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return a
}

// response is what a request returned; err is a transport error.
type response struct {
	method, path string
	status       int
	body         []byte
	err          error
}

// ok reports a 2xx answer.
func (r response) ok() bool { return r.err == nil && r.status >= 200 && r.status < 300 }

// failure describes a request that counted as an error.
func (r response) failure(why string) *sample {
	s := &sample{Request: r.method + " " + r.path, Status: r.status, Reason: why}
	if r.err != nil {
		s.Reason = r.err.Error()
	}
	const maxBody = 400
	s.Body = string(r.body[:min(len(r.body), maxBody)])
	return s
}

// sample is one failed request, printed so a failure can be diagnosed.
type sample struct {
	Request string `json:"request"`
	Status  int    `json:"status,omitempty"`
	Reason  string `json:"reason"`
	Body    string `json:"body,omitempty"`
}

func (a *api) do(ctx context.Context, method, path, contentType string, body string, hdr func(h http.Header, r *http.Request)) response {
	res := response{method: method, path: path}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		res.err = err
		return res
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "gatehouse-loadgen/1")
	if hdr != nil {
		hdr(req.Header, req)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	// Read the whole body so that the connection goes back to the pool.
	res.body, res.err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	res.status = resp.StatusCode
	return res
}

// tokens is the part of a login or refresh answer the scenarios use.
type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	User         struct {
		ID string `json:"id"`
	} `json:"user"` // login only
}

func (a *api) login(ctx context.Context, email, pw string) (tokens, response) {
	b, _ := json.Marshal(map[string]string{"email": email, "password": pw})
	r := a.do(ctx, http.MethodPost, "/v1/auth/login", "application/json", string(b), nil)
	return decodeTokens(r)
}

func (a *api) refresh(ctx context.Context, refreshToken string) (tokens, response) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}.Encode()
	r := a.do(ctx, http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form, nil)
	return decodeTokens(r)
}

// decodeTokens reads a token answer; a 2xx without both tokens becomes an
// error response.
func decodeTokens(r response) (tokens, response) {
	var t tokens
	if !r.ok() {
		return t, r
	}
	if err := json.Unmarshal(r.body, &t); err != nil || t.AccessToken == "" || t.RefreshToken == "" {
		r.err = fmt.Errorf("answer lacks access_token or refresh_token")
	}
	return t, r
}

// me calls GET /v1/me with an access token and checks the profile is the
// user's.
func (a *api) me(ctx context.Context, accessToken, userID string) (response, string) {
	r := a.do(ctx, http.MethodGet, "/v1/me", "", "", func(h http.Header, _ *http.Request) {
		h.Set("Authorization", "Bearer "+accessToken)
	})
	if !r.ok() {
		return r, "status"
	}
	var p struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.ID == "" || (userID != "" && p.ID != userID) {
		return r, "profile is not the token's user"
	}
	return r, ""
}

// introspect calls POST /oauth2/introspect with HTTP Basic client
// credentials (form-url-encoded as RFC 6749 §2.3.1 asks) and checks the
// token is active.
func (a *api) introspect(ctx context.Context, clientID, clientSecret, tok, hint string) (response, string) {
	form := url.Values{"token": {tok}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	id, sec := url.QueryEscape(clientID), url.QueryEscape(clientSecret)
	r := a.do(ctx, http.MethodPost, "/oauth2/introspect", "application/x-www-form-urlencoded", form.Encode(), func(_ http.Header, req *http.Request) {
		req.SetBasicAuth(id, sec)
	})
	if !r.ok() {
		return r, "status"
	}
	var v struct {
		Active bool `json:"active"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || !v.Active {
		return r, `answer is not {"active":true,…}`
	}
	return r, ""
}
