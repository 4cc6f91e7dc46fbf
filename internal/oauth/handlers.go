package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/token"
	"github.com/gatehouse/gatehouse/internal/ttlcache"
)

// Tokens is what the endpoints need from the access token manager.
type Tokens interface {
	Issue(ctx context.Context, ac token.AccessClaims) (string, time.Time, error)
	// VerifyIssued verifies a token of any audience: introspection and
	// revocation serve every API's tokens.
	VerifyIssued(ctx context.Context, raw string) (token.Claims, error)
	DenySession(ctx context.Context, sessionID string, until time.Time) error
	DenyToken(ctx context.Context, jti string, expiresAt time.Time) error
	// SigningAlgorithms lists the algorithms of the published keys.
	SigningAlgorithms() []string
}

// APIs is what the endpoints need of the registered APIs (apis.Registry).
type APIs interface {
	Resolve(ctx context.Context, resources []string) (apis.Targets, error)
	ScopesSupported(ctx context.Context) ([]string, error)
}

// Server serves the OAuth endpoints. It parses RFC 6749, 7009 and 7662
// requests and answers in their terms; what they do with refresh tokens
// and sessions (rotation, client binding, scope narrowing, revocation,
// audit) is the session service's.
type Server struct {
	Issuer   string
	Clients  *Clients
	Sessions *session.Service
	Tokens   Tokens
	// APIs resolves the resource parameter (RFC 8707) and lists the
	// scopes the registered APIs define.
	APIs APIs
	// Cookie reads the refresh token from the refresh cookie when the
	// request has none, and sets the rotated one there.
	Cookie bool
	// AllowedOrigins are the browser origins allowed to call the API (the
	// CORS allowlist, GATEHOUSE_CORS_ALLOWED_ORIGINS). A refresh with the
	// token from the cookie needs one of them as its Origin, or a JSON
	// body.
	AllowedOrigins []string
	Log            *slog.Logger
	// Errors is the error table; an error it maps to service_unavailable
	// is answered 503 temporarily_unavailable (see fail). Nil knows the
	// storage outages only.
	Errors *httpapi.ErrorTable
	// UsernameTTL, when positive, keeps the email address introspection
	// reports as an access token's username this long, so a call costs no
	// database query; an address change shows there after at most this
	// long on each node. (Revocation is checked on every call regardless.)
	UsernameTTL time.Duration
	Now         func() time.Time // default time.Now
	// APIKeys introspects an API key (RFC 7662 for Gatehouse's own
	// long-lived credentials): the active answer's members, or nil when
	// raw is not a live key; nil: API keys are not introspected.
	APIKeys func(ctx context.Context, raw string) (map[string]any, error)

	usernames ttlcache.Cache[string]
}

func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// Routes mounts the endpoints.
func (s *Server) Routes(rt *httpapi.Router) {
	rt.HandleHTTP("POST /oauth2/token", http.HandlerFunc(s.token))
	rt.HandleHTTP("POST /oauth2/introspect", http.HandlerFunc(s.introspect))
	rt.HandleHTTP("POST /oauth2/revoke", http.HandlerFunc(s.revoke))
	rt.Handle("GET /.well-known/openid-configuration", s.discovery)
	rt.Handle("GET /.well-known/oauth-authorization-server", s.discovery)
}

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	status      int
	code        string
	description string
	retryAfter  int // seconds; sent as Retry-After when positive
}

func writeOAuthError(w http.ResponseWriter, e oauthError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="gatehouse", charset="UTF-8"`)
	}
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": e.code, "error_description": e.description})
}

func writeTokenJSON(w http.ResponseWriter, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	_ = json.NewEncoder(w).Encode(v)
}

var (
	errInvalidRequest = oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "The request is missing a parameter or is malformed."}
	errInvalidClient  = oauthError{status: http.StatusUnauthorized, code: "invalid_client", description: "Client authentication failed."}
	errServer         = oauthError{status: http.StatusInternalServerError, code: "server_error", description: "An unexpected error occurred."}
	// errUnavailable answers an outage (database, Redis, revocation state)
	// with RFC 6749's retryable error code, as 503 with Retry-After.
	errUnavailable = oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
		description: "The service is temporarily unavailable; try again shortly.", retryAfter: httpapi.RetryAfterUnavailable}
)

// errRepeated is a parameter given more than once (RFC 6749 §3.1: "Request
// and response parameters MUST NOT be included more than once").
var errRepeated = errors.New("oauth: repeated parameter")

// repeatable are the parameters an extension allows more than once:
// resource (RFC 8707 §2, one per API asked for). In a JSON body it is a
// string or an array of strings.
var repeatable = map[string]bool{"resource": true}

// params reads an application/x-www-form-urlencoded body (RFC 6749) or,
// as a convenience, a flat JSON object of strings. A parameter given twice,
// in either form, makes the request invalid rather than letting one of the
// values win silently.
//
// A parameter (name or value) that is not valid text (invalid UTF-8, NUL;
// see httpapi.ValidText) makes the request invalid too: no client ID,
// token or grant can hold one, and PostgreSQL refuses it in a query.
func params(r *http.Request) (url.Values, error) {
	p, err := rawParams(r)
	if err != nil {
		return nil, err
	}
	if !httpapi.ValidValues(p) {
		return nil, errInvalidText
	}
	return p, nil
}

// errInvalidText is a parameter that is not valid text.
var errInvalidText = errors.New("oauth: parameter is not valid UTF-8 text without NUL")

func rawParams(r *http.Request) (url.Values, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		return jsonParams(r.Body)
	}
	if mt != "application/x-www-form-urlencoded" {
		return nil, errors.New("unsupported content type")
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	// Only the body counts; parameters in the query string are ignored
	// (credentials must not travel in URLs).
	for k, vs := range r.PostForm {
		if len(vs) > 1 && !repeatable[k] {
			return nil, errRepeated
		}
	}
	return r.PostForm, nil
}

// jsonStrings reads the rest of a JSON array of strings (its '[' read),
// at least one.
func jsonStrings(dec *json.Decoder) ([]string, error) {
	var out []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		s, ok := tok.(string)
		if !ok {
			return nil, errors.New("array parameters must hold strings")
		}
		out = append(out, s)
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("an array parameter must not be empty")
	}
	return out, nil
}

// jsonParams reads one JSON object whose members are all strings. It walks
// the tokens itself because decoding into a map keeps the last of two
// equal keys; nothing may follow the object.
func jsonParams(body io.Reader) (url.Values, error) {
	dec := json.NewDecoder(body)
	if tok, err := dec.Token(); err != nil {
		return nil, err
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("parameters must be a JSON object")
	}
	v := url.Values{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string) // inside an object the decoder yields string keys
		if _, dup := v[key]; dup {
			return nil, errRepeated
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, err
		}
		if d, ok := tok.(json.Delim); ok && d == '[' && repeatable[key] {
			vals, err := jsonStrings(dec)
			if err != nil {
				return nil, err
			}
			v[key] = vals
			continue
		}
		val, ok := tok.(string)
		if !ok {
			return nil, errors.New("parameters must be strings")
		}
		v.Set(key, val)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return v, nil
}

// clientFrom authenticates the client by client_secret_basic or
// client_secret_post, or identifies a public client (RFC 6749 §2.1) by its
// client_id alone ("none"): in HTTP Basic with an empty secret, as
// libraries send it (x/oauth2's AuthStyleInHeader sends "gatehouse:"), or
// as client_id in the body without client_secret (§3.2.1). A public
// client's ID must name one: the first-party client (FirstPartyClient) or
// a client registered as public; a confidential client without its secret
// is errBadClient. present is false when the request carries no client
// credentials nor client_id at all.
func (s *Server) clientFrom(r *http.Request, p url.Values) (cl store.Client, present bool, err error) {
	id, sec, basic := r.BasicAuth()
	if basic {
		var e1, e2 error
		id, e1 = url.QueryUnescape(id)
		sec, e2 = url.QueryUnescape(sec)
		if e1 != nil || e2 != nil || !httpapi.ValidText(id) || !httpapi.ValidText(sec) {
			return store.Client{}, true, errBadClient
		}
		if p.Get("client_secret") != "" {
			return store.Client{}, true, errBadClient // two methods at once (RFC 6749 §2.3)
		}
		// A client_id in the body may repeat the authenticated one, never
		// name another: which of the two would the request be for?
		if bodyID := p.Get("client_id"); bodyID != "" && bodyID != id {
			return store.Client{}, true, errClientMismatch
		}
	} else if p.Get("client_secret") != "" {
		id, sec = p.Get("client_id"), p.Get("client_secret")
	} else if id = p.Get("client_id"); id == "" {
		return store.Client{}, false, nil
	}
	if sec == "" {
		cl, ok, err := s.Clients.Public(r.Context(), id)
		if err != nil {
			return store.Client{}, true, err
		}
		if !ok {
			return store.Client{}, true, errBadClient
		}
		return cl, true, nil
	}
	cl, ok, err := s.Clients.Authenticate(r.Context(), id, sec)
	if err != nil {
		return store.Client{}, true, err
	}
	if !ok {
		return store.Client{}, true, errBadClient
	}
	return cl, true, nil
}

var (
	errBadClient = errors.New("oauth: bad client credentials")
	// errClientMismatch is a body client_id other than the HTTP Basic one.
	errClientMismatch = errors.New("oauth: client_id differs from the authenticated client")
)

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	p, err := params(r)
	if err != nil {
		writeOAuthError(w, errInvalidRequest)
		return
	}
	cl, present, err := s.clientFrom(r, p)
	if errors.Is(err, errClientMismatch) {
		writeOAuthError(w, errInvalidRequest)
		return
	}
	if errors.Is(err, errBadClient) {
		writeOAuthError(w, errInvalidClient)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	switch p.Get("grant_type") {
	case "refresh_token":
		s.refresh(w, r, p, cl, present)
	case "client_credentials":
		if !present {
			writeOAuthError(w, errInvalidClient)
			return
		}
		if cl.Public {
			// RFC 6749 §4.4: only confidential clients; a public client
			// has no credentials to prove it is itself.
			writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "unauthorized_client", description: "A public client may not use the client_credentials grant."})
			return
		}
		s.clientCredentials(w, r, p, cl)
	case "":
		writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "grant_type is required."})
	default:
		writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", description: "Supported grant types: refresh_token, client_credentials."})
	}
}

// fail logs err and answers it: an outage (what s.Errors maps to
// service_unavailable) as 503 temporarily_unavailable with Retry-After,
// anything else as 500 server_error. Neither body says more.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.Log.ErrorContext(r.Context(), "oauth endpoint failed", "path", r.URL.Path, "error", err.Error())
	if retryAfter, ok := s.Errors.Unavailable(err); ok {
		e := errUnavailable
		e.retryAfter = max(retryAfter, 1)
		writeOAuthError(w, e)
		return
	}
	writeOAuthError(w, errServer)
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request, p url.Values, cl store.Client, present bool) {
	raw := p.Get("refresh_token")
	fromCookie := false
	if raw == "" && s.Cookie {
		if c, err := r.Cookie(session.RefreshCookie); err == nil {
			raw, fromCookie = c.Value, true
		}
	}
	if raw == "" {
		writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "refresh_token is required."})
		return
	}
	// The browser attaches the cookie to any request, a form another site
	// posts included. Only one a cross-site page cannot make uses it: a
	// JSON body (which needs a CORS preflight) or an allowed Origin. The
	// cookie is left alone: a forged request must not log the user out.
	if fromCookie && !s.notCrossSite(r) {
		writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "A refresh token from the cookie needs a JSON body or an allowed Origin."})
		return
	}
	// RFC 6749 §6: a requested scope may narrow the grant, never widen it;
	// the session service decides, in the rotation.
	var asked []string
	if req := p.Get("scope"); req != "" {
		var err error
		if asked, err = parseScopeParam(req); err != nil {
			writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "invalid_scope", description: "The scope is malformed."})
			return
		}
	}
	// A refresh token is bound to the client it was issued to; first-party
	// tokens (from /v1/auth/login) are used without client authentication
	// or as the public client "gatehouse", which is the same client (its
	// sessions have no client: ""). A registered public client presents
	// itself by its client_id.
	client := ""
	if present && cl.ID != session.FirstPartyClientID {
		client = cl.ID
	}
	resources, ok := resourceParam(w, p)
	if !ok {
		return
	}
	res, err := s.Sessions.Refresh(r.Context(), session.RefreshRequest{
		Token: raw, Client: client, Scopes: asked, Resources: resources, Meta: httpapi.MetaOf(r, p.Get("device_id")),
	})
	switch {
	case errors.Is(err, apis.ErrInvalidTarget):
		writeOAuthError(w, errInvalidTarget)
		return
	case errors.Is(err, session.ErrInvalidGrant):
		if fromCookie {
			session.SetRefreshCookie(w, "", time.Time{})
		}
		writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "invalid_grant", description: "The refresh token is invalid, expired or revoked."})
		return
	case errors.Is(err, session.ErrClientMismatch):
		writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "invalid_grant", description: "The refresh token was not issued to this client."})
		return
	case errors.Is(err, session.ErrScopeNotGranted):
		writeOAuthError(w, errScopeNotGranted)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	out := map[string]any{
		"access_token": res.AccessToken, "token_type": "Bearer", "expires_in": res.ExpiresIn,
		"refresh_token": res.RefreshToken, "session_id": res.Session.ID,
	}
	if res.Scope != "" {
		// §5.1: scope is required when it differs from the request; the
		// issued one drops repeats, so always say it.
		out["scope"] = res.Scope
	}
	if fromCookie {
		session.SetRefreshCookie(w, res.RefreshToken, res.Session.ExpiresAt)
		delete(out, "refresh_token")
	}
	writeTokenJSON(w, out)
}

// notCrossSite reports whether r cannot be a cross-site form post: its
// body is JSON, the browser says it comes from Gatehouse's own origin
// (Sec-Fetch-Site, which pages cannot set, or an Origin equal to the
// issuer's), or its Origin is one of AllowedOrigins (compared as the CORS
// middleware compares them).
func (s *Server) notCrossSite(r *http.Request) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		return true
	}
	if r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	if u, err := url.Parse(s.Issuer); err == nil && u.Scheme+"://"+u.Host == origin {
		return true
	}
	return slices.ContainsFunc(s.AllowedOrigins, func(o string) bool { return strings.TrimRight(o, "/") == origin })
}

var errInvalidTarget = oauthError{status: http.StatusBadRequest, code: "invalid_target", description: "A resource is not a registered API, or was not granted."}

// resourceParam returns the resource parameters (RFC 8707 §2, repeatable):
// each must be an absolute URI without a fragment, or the answer is
// invalid_target (written; ok false).
func resourceParam(w http.ResponseWriter, p url.Values) (resources []string, ok bool) {
	for _, res := range p["resource"] {
		if apis.ValidateIdentifier(res) != nil {
			writeOAuthError(w, errInvalidTarget)
			return nil, false
		}
		resources = append(resources, res)
	}
	return resources, true
}

var errScopeNotGranted = oauthError{status: http.StatusBadRequest, code: "invalid_scope", description: "The requested scope exceeds the scope originally granted."}

// clientCredentials issues a token to the client itself (RFC 6749 §4.4),
// for the APIs asked for with resource (RFC 8707; none: the default
// audience). Its scope is what the client asks for, each of which must be
// one of the client's scopes and, for registered APIs, one they define;
// or, asking for none, every scope of the client's that applies.
func (s *Server) clientCredentials(w http.ResponseWriter, r *http.Request, p url.Values, cl store.Client) {
	resources, ok := resourceParam(w, p)
	if !ok {
		return
	}
	targets, err := s.APIs.Resolve(r.Context(), resources)
	if errors.Is(err, apis.ErrInvalidTarget) {
		writeOAuthError(w, errInvalidTarget)
		return
	} else if err != nil {
		s.fail(w, r, err)
		return
	}
	applies := func(sc string) bool { return targets.Unrestricted() || targets.Defines(sc) }
	var scopes []string
	if req := p.Get("scope"); req != "" {
		asked, err := parseScopeParam(req)
		if err != nil {
			writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "invalid_scope", description: "The scope is malformed."})
			return
		}
		for _, sc := range asked {
			if !slices.Contains(cl.Scopes, sc) {
				writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "invalid_scope", description: "The client may not request scope " + sc + "."})
				return
			}
			if !applies(sc) {
				writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "invalid_scope", description: "No resource asked for defines scope " + sc + "."})
				return
			}
		}
		scopes = asked
	} else {
		for _, sc := range cl.Scopes {
			if applies(sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	at, exp, err := s.Tokens.Issue(r.Context(), token.AccessClaims{
		Subject: cl.ID, ClientID: cl.ID, Scope: strings.Join(scopes, " "), Audience: targets.Audience,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(time.Until(exp).Round(time.Second) / time.Second)}
	if len(scopes) > 0 {
		out["scope"] = strings.Join(scopes, " ")
	}
	writeTokenJSON(w, out)
}

// requireClient authenticates the caller of introspection and revocation.
func (s *Server) requireClient(w http.ResponseWriter, r *http.Request) (store.Client, url.Values, bool) {
	p, err := params(r)
	if err != nil {
		writeOAuthError(w, errInvalidRequest)
		return store.Client{}, nil, false
	}
	cl, present, err := s.clientFrom(r, p)
	switch {
	case errors.Is(err, errClientMismatch):
		writeOAuthError(w, errInvalidRequest)
		return store.Client{}, nil, false
	case err != nil && !errors.Is(err, errBadClient):
		s.fail(w, r, err)
		return store.Client{}, nil, false
	case err != nil || !present || cl.Public:
		// A public client proves nothing about itself: it has neither
		// privileges here nor tokens it could revoke as their owner
		// (the user revokes through logout).
		writeOAuthError(w, errInvalidClient)
		return store.Client{}, nil, false
	}
	return cl, p, true
}

func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	cl, p, ok := s.requireClient(w, r)
	if !ok {
		return
	}
	if !slices.Contains(cl.Scopes, ScopeIntrospect) {
		writeOAuthError(w, oauthError{status: http.StatusForbidden, code: "insufficient_scope", description: "The client lacks the introspect scope."})
		return
	}
	raw := p.Get("token")
	if raw == "" {
		writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "token is required."})
		return
	}
	inactive := map[string]any{"active": false}
	if s.APIKeys != nil && strings.HasPrefix(raw, "gh_") {
		out, err := s.APIKeys(r.Context(), raw)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if out == nil {
			out = inactive
		}
		writeTokenJSON(w, out)
		return
	}
	// Try the hinted type first, then the other.
	order := []string{"access_token", "refresh_token"}
	if p.Get("token_type_hint") == "refresh_token" {
		order = []string{"refresh_token", "access_token"}
	}
	for _, kind := range order {
		var out map[string]any
		var err error
		if kind == "access_token" {
			out, err = s.introspectAccess(r.Context(), raw)
		} else {
			out, err = s.introspectRefresh(r.Context(), raw)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if out != nil {
			writeTokenJSON(w, out)
			return
		}
	}
	writeTokenJSON(w, inactive)
}

// looksLikeJWT avoids a signature check on opaque refresh tokens.
func looksLikeJWT(raw string) bool { return strings.Count(raw, ".") == 2 }

func (s *Server) introspectAccess(ctx context.Context, raw string) (map[string]any, error) {
	if !looksLikeJWT(raw) {
		return nil, nil
	}
	c, err := s.Tokens.VerifyIssued(ctx, raw)
	if errors.Is(err, token.ErrUnavailable) {
		return nil, err // the token may be live or revoked: say neither
	}
	if err != nil {
		return nil, nil // invalid, expired or revoked: inactive
	}
	out := map[string]any{
		// RFC 7662 §2.2: token_type as in RFC 6749 §7.1, i.e. how the
		// token is used: every access token Gatehouse issues is a bearer
		// token. (Refresh tokens have no such type; they keep
		// "refresh_token", the name token_type_hint uses.)
		"active": true, "token_type": "Bearer", "client_id": c.ClientID, "sub": c.Subject,
		"exp": c.ExpiresAt.Unix(), "iat": c.IssuedAt.Unix(), "nbf": c.NotBefore.Unix(),
		"aud": c.Audience, "iss": c.Issuer, "jti": c.ID,
	}
	if c.Scope != "" {
		out["scope"] = c.Scope
	}
	if c.SessionID != "" {
		out["sid"] = c.SessionID
	}
	if c.Subject != c.ClientID {
		if name, err := s.username(ctx, c.Subject); err != nil {
			return nil, err
		} else if name != "" {
			out["username"] = name
		}
	}
	return out, nil
}

func (s *Server) username(ctx context.Context, userID string) (string, error) {
	if s.UsernameTTL > 0 {
		if name, ok := s.usernames.Get(userID, s.now()); ok {
			return name, nil
		}
	}
	name, err := s.Sessions.Username(ctx, userID)
	if err != nil {
		return "", err
	}
	if name == "" {
		return "", nil // no such user: nothing to keep
	}
	if s.UsernameTTL > 0 {
		s.usernames.Put(userID, name, s.now().Add(s.UsernameTTL))
	}
	return name, nil
}

func (s *Server) introspectRefresh(ctx context.Context, raw string) (map[string]any, error) {
	if looksLikeJWT(raw) || len(raw) > 512 {
		return nil, nil
	}
	rt, err := s.Sessions.FindRefreshToken(ctx, raw)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !rt.RotatedAt.IsZero() || !rt.RevokedAt.IsZero() || !rt.ExpiresAt.After(now) || (!rt.IdleExpiresAt.IsZero() && !rt.IdleExpiresAt.After(now)) {
		return nil, nil
	}
	clientID := rt.ClientID
	if clientID == "" {
		clientID = session.FirstPartyClientID
	}
	exp := rt.ExpiresAt
	if !rt.IdleExpiresAt.IsZero() && rt.IdleExpiresAt.Before(exp) {
		exp = rt.IdleExpiresAt
	}
	out := map[string]any{
		"active": true, "token_type": "refresh_token", "client_id": clientID, "sub": rt.UserID,
		"exp": exp.Unix(), "iat": rt.CreatedAt.Unix(), "nbf": rt.CreatedAt.Unix(), "iss": s.Issuer,
		"sid": rt.SessionID, "jti": rt.ID,
	}
	if rt.Scope != "" {
		out["scope"] = rt.Scope
	}
	if rt.UserEmail != "" {
		out["username"] = rt.UserEmail // read in the same query as the token
	}
	return out, nil
}

// revoke implements RFC 7009. A client may revoke the tokens issued to it,
// and a client with the revoke scope any token. Every other case (an
// unknown, expired or already revoked token, or another client's token)
// gets the same empty 200 as a revocation (§2.2): who may revoke is
// decided before anything depends on the kind of token, so the answer
// says nothing about tokens that are not the caller's.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	cl, p, ok := s.requireClient(w, r)
	if !ok {
		return
	}
	raw := p.Get("token")
	if raw == "" {
		writeOAuthError(w, oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "token is required."})
		return
	}
	t, found, err := s.findRevocable(r.Context(), raw)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if found && mayRevoke(cl, t.owner) {
		if err := s.revokeToken(r, cl, t); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeTokenJSON(w, struct{}{})
}

// revocable is a live token as revocation sees it.
type revocable struct {
	owner     string // the client it was issued to; "" for Gatehouse's own API
	sessionID string // its session, ended as a whole; "" for none
	jti       string // an access token without a session is denied by jti
	expiresAt time.Time
}

// findRevocable looks raw up as an access token (offline) or a refresh
// token (one indexed lookup). found is false for an access token that does
// not verify (invalid, expired or revoked) and an unknown refresh token.
func (s *Server) findRevocable(ctx context.Context, raw string) (t revocable, found bool, err error) {
	if looksLikeJWT(raw) {
		c, err := s.Tokens.VerifyIssued(ctx, raw)
		if errors.Is(err, token.ErrUnavailable) {
			return revocable{}, false, err // the token may be live: do not claim it was revoked
		}
		if err != nil {
			return revocable{}, false, nil
		}
		owner := c.ClientID
		if owner == session.FirstPartyClientID {
			owner = ""
		}
		return revocable{owner: owner, sessionID: c.SessionID, jti: c.ID, expiresAt: c.ExpiresAt}, true, nil
	}
	if len(raw) > 512 {
		return revocable{}, false, nil
	}
	rt, err := s.Sessions.FindRefreshToken(ctx, raw)
	if errors.Is(err, store.ErrNotFound) {
		return revocable{}, false, nil
	}
	if err != nil {
		return revocable{}, false, err
	}
	return revocable{owner: rt.ClientID, sessionID: rt.SessionID}, true, nil
}

// mayRevoke reports whether cl may revoke a token issued to owner.
func mayRevoke(cl store.Client, owner string) bool {
	return (owner != "" && owner == cl.ID) || slices.Contains(cl.Scopes, ScopeRevoke)
}

// revokeToken ends t's session (its refresh family and, through the deny
// list, its access tokens) or, for an access token without a session,
// puts that token on the deny list.
func (s *Server) revokeToken(r *http.Request, cl store.Client, t revocable) error {
	ctx := r.Context()
	m := httpapi.MetaOf(r, "")
	now := time.Now().UTC()
	if t.sessionID == "" {
		if err := s.Tokens.DenyToken(ctx, t.jti, t.expiresAt); err != nil {
			return err
		}
		s.audit(ctx, store.AuditEvent{
			OccurredAt: now, ActorID: cl.ID, SubjectID: t.owner, Action: "token.revoked_by_client",
			IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
			Data: map[string]any{"jti": t.jti, "client_id": cl.ID},
		})
		return nil
	}
	sess, err := s.Sessions.Revoke(ctx, t.sessionID, "revoked_by_client")
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	s.audit(ctx, store.AuditEvent{
		OccurredAt: now, ActorID: cl.ID, SubjectID: sess.UserID, Action: "session.revoked_by_client",
		IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
		Data: map[string]any{"session_id": sess.ID, "client_id": cl.ID},
	})
	return nil
}

// audit records e; the revocation it describes has happened already, so a
// failure is logged rather than returned.
func (s *Server) audit(ctx context.Context, e store.AuditEvent) {
	if err := s.Sessions.RecordEvent(ctx, e); err != nil {
		s.Log.ErrorContext(ctx, "oauth: could not record an audit event", "action", e.Action, "error", err.Error())
	}
}

// discovery serves the authorization server metadata (RFC 8414) at both
// paths clients look at: the OpenID Connect discovery path (the "oidc"
// algorithm of client libraries) and RFC 8414's own (the "oauth2" one).
// One document for both, so they cannot disagree.
func (s *Server) discovery(w http.ResponseWriter, r *http.Request) error {
	scopes, err := s.APIs.ScopesSupported(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	return httpapi.WriteJSON(w, http.StatusOK, s.metadata(scopes))
}

// metadata is the authorization server metadata (RFC 8414 §2). It lists
// only what is served: no authorization endpoint (so no response types)
// and no ID tokens.
func (s *Server) metadata(scopes []string) map[string]any {
	iss := strings.TrimRight(s.Issuer, "/")
	// From the keys published, not the configured algorithm: after a
	// rotation to another algorithm, tokens of both are alive.
	algs := s.Tokens.SigningAlgorithms()
	if algs == nil {
		algs = []string{}
	}
	// Confidential clients authenticate with their secret (RFC 6749
	// §2.3.1); public ones (the first-party client and those registered
	// with --public) identify themselves by client_id alone at the token
	// endpoint ("none", RFC 7591 §2), which introspection and revocation
	// do not accept.
	clientAuth := []string{"client_secret_basic", "client_secret_post"}
	return map[string]any{
		"issuer":                 iss,
		"jwks_uri":               iss + "/.well-known/jwks.json",
		"token_endpoint":         iss + "/oauth2/token",
		"introspection_endpoint": iss + "/oauth2/introspect",
		"revocation_endpoint":    iss + "/oauth2/revoke",
		"grant_types_supported":  []string{"refresh_token", "client_credentials"},
		// REQUIRED by RFC 8414 §2, and empty: both grants use the token
		// endpoint only; there is no authorization endpoint to send a
		// response_type to ("token" would promise the implicit flow).
		"response_types_supported": []string{},
		"subject_types_supported":  []string{"public"},
		// Gatehouse's own scopes (a user's: openid, profile, email,
		// offline_access; a client's privileges: introspect, revoke) and
		// those the registered APIs define (apis.Registry.ScopesSupported).
		"scopes_supported":                              scopes,
		"token_endpoint_auth_methods_supported":         append(slices.Clone(clientAuth), "none"),
		"introspection_endpoint_auth_methods_supported": clientAuth,
		"revocation_endpoint_auth_methods_supported":    clientAuth,
		"access_token_signing_alg_values_supported":     algs,
		"claims_supported":                              []string{"iss", "sub", "aud", "client_id", "exp", "iat", "nbf", "jti", "sid", "auth_time", "amr", "scope"},
	}
}
