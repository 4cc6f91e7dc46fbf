package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// api is a keep-alive HTTP/1.1 client for the Gatehouse public API. It
// is deliberately lean: a request is written and its answer read by the
// calling goroutine on a pooled connection, with none of net/http's
// per-connection reader and writer goroutines. On this 2-core machine the
// load generator shares the CPU with the server, PostgreSQL and Redis, so
// every microsecond and wake-up it spends is taken from what it measures.
type api struct {
	base  string // scheme://host:port
	host  string // host:port, also the Host header
	idle  chan *conn
	dials atomic.Int64 // TCP connections opened, to show keep-alive works
}

// conn is one keep-alive connection.
type conn struct {
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

const requestTimeout = 30 * time.Second

func newAPI(base string, clients int) *api {
	base = strings.TrimRight(base, "/")
	return &api{base: base, host: strings.TrimPrefix(base, "http://"), idle: make(chan *conn, 2*clients)}
}

func (a *api) dial(ctx context.Context) (*conn, error) {
	if !strings.HasPrefix(a.base, "http://") {
		return nil, fmt.Errorf("only http:// URLs are supported, not %s", a.base)
	}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", a.host)
	if err != nil {
		return nil, err
	}
	a.dials.Add(1)
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 4<<10)}, nil
}

// get returns an idle connection (reused true) or a new one.
func (a *api) get(ctx context.Context) (c *conn, reused bool, err error) {
	select {
	case c := <-a.idle:
		return c, true, nil
	default:
	}
	c, err = a.dial(ctx)
	return c, false, err
}

func (a *api) put(c *conn) {
	select {
	case a.idle <- c:
	default:
		c.nc.Close()
	}
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

// do makes one request; headers are extra "Name", "value" pairs. A
// request that fails on a reused connection before any answer arrived
// (the server closed it while it was idle) is sent once more on a new one.
func (a *api) do(ctx context.Context, method, path, contentType, body string, headers ...string) response {
	res := response{method: method, path: path}
	for attempt := 0; ; attempt++ {
		c, reused, err := a.get(ctx)
		if err != nil {
			res.err = err
			return res
		}
		status, respBody, keep, answered, err := c.roundTrip(ctx, a.host, method, path, contentType, body, headers)
		if err != nil {
			c.nc.Close()
			if reused && !answered && attempt == 0 && ctx.Err() == nil {
				continue
			}
			res.err = err
			return res
		}
		if keep {
			a.put(c)
		} else {
			c.nc.Close()
		}
		res.status, res.body = status, respBody
		return res
	}
}

// roundTrip writes one request and reads its answer. answered reports
// whether any of the answer arrived.
func (c *conn) roundTrip(ctx context.Context, host, method, path, contentType, body string, headers []string) (status int, respBody []byte, keep, answered bool, err error) {
	deadline := time.Now().Add(requestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return 0, nil, false, false, err
	}
	w := c.bw
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(path)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\nUser-Agent: gatehouse-loadgen/1\r\nAccept: application/json\r\n")
	if contentType != "" {
		w.WriteString("Content-Type: ")
		w.WriteString(contentType)
		w.WriteString("\r\n")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		w.WriteString(headers[i])
		w.WriteString(": ")
		w.WriteString(headers[i+1])
		w.WriteString("\r\n")
	}
	if body != "" || method == http.MethodPost {
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.Itoa(len(body)))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	w.WriteString(body)
	if err := w.Flush(); err != nil {
		return 0, nil, false, false, err
	}
	if _, err := c.br.Peek(1); err != nil {
		return 0, nil, false, false, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, nil, false, true, err
	}
	// Read the whole body so that the connection can carry the next request.
	respBody, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return 0, nil, false, true, err
	}
	return resp.StatusCode, respBody, !resp.Close, true, nil
}

// close closes the idle connections.
func (a *api) close() {
	for {
		select {
		case c := <-a.idle:
			c.nc.Close()
		default:
			return
		}
	}
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
	r := a.do(ctx, http.MethodPost, "/v1/auth/login", "application/json", string(b))
	return decodeTokens(r)
}

// loginFrom signs in as a client at ip behind a proxy the server trusts.
func (a *api) loginFrom(ctx context.Context, email, pw, ip string) response {
	b, _ := json.Marshal(map[string]string{"email": email, "password": pw})
	return a.do(ctx, http.MethodPost, "/v1/auth/login", "application/json", string(b), "X-Forwarded-For", ip)
}

func (a *api) refresh(ctx context.Context, refreshToken string) (tokens, response) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}.Encode()
	r := a.do(ctx, http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form)
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
	r := a.do(ctx, http.MethodGet, "/v1/me", "", "", "Authorization", "Bearer "+accessToken)
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
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+sec))
	r := a.do(ctx, http.MethodPost, "/oauth2/introspect", "application/x-www-form-urlencoded", form.Encode(), "Authorization", basic)
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

// checkBody is the authz-check scenario's check: a permission setup
// grants every user, on a resource of no organisation.
const checkBody = `{"permission":"bench:read","resource":{"type":"doc","id":"doc-1"}}`

// check calls POST /v1/authz/check for the token's own user and checks
// the answer allows.
func (a *api) check(ctx context.Context, accessToken string) (response, string) {
	r := a.do(ctx, http.MethodPost, "/v1/authz/check", "application/json", checkBody, "Authorization", "Bearer "+accessToken)
	if !r.ok() {
		return r, "status"
	}
	var v struct {
		Allowed bool `json:"allowed"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || !v.Allowed {
		return r, `answer is not {"allowed":true,…}`
	}
	return r, ""
}

// createKey makes a personal API key (bench:read, which setup grants) with
// the user's access token.
func (a *api) createKey(ctx context.Context, accessToken string) (string, error) {
	r := a.do(ctx, http.MethodPost, "/v1/me/api-keys", "application/json", `{"name":"bench","permissions":["bench:read"]}`, "Authorization", "Bearer "+accessToken)
	if !r.ok() {
		return "", fmt.Errorf("create an API key: %s", describe(r))
	}
	var v struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || v.Key == "" {
		return "", fmt.Errorf("create an API key: no key in %q", r.body)
	}
	return v.Key, nil
}

// meWithKey is me with an API key.
func (a *api) meWithKey(ctx context.Context, key, userID string) (response, string) {
	r := a.do(ctx, http.MethodGet, "/v1/me", "", "", "X-API-Key", key)
	if !r.ok() {
		return r, "status"
	}
	var p struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.ID != userID {
		return r, "profile is not the key's owner"
	}
	return r, ""
}
