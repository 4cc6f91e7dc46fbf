package provider

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// gitHub emulates github.com's OAuth app flow and the REST API calls the
// provider makes, as GitHub Enterprise Server lays them out (/api/v3).
type gitHub struct {
	*httptest.Server
	clientID, clientSecret string

	mu     sync.Mutex
	next   ghUser            // who signs in at the next authorisation
	grants map[string]ghCode // code → grant
	tokens map[string]ghUser // access token → user
	status map[string]int    // API path → forced status
	header map[string]string // API path → extra response header
	n      int
}

type ghUser struct {
	ID     int64
	Login  string
	Name   string
	Emails []githubEmail
	Orgs   []string
	Teams  []string // org/slug
}

type ghCode struct {
	user                             ghUser
	challenge, method, redirect, cid string
}

func startGitHub(t *testing.T) *gitHub {
	g := &gitHub{
		clientID: "Iv1.testclient", clientSecret: "test-client-secret",
		grants: map[string]ghCode{}, tokens: map[string]ghUser{}, status: map[string]int{}, header: map[string]string{},
	}
	g.next = octocat()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", g.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", g.accessToken)
	mux.HandleFunc("GET /api/v3/user", g.api(func(u ghUser, _ *http.Request) any {
		return map[string]any{"id": u.ID, "login": u.Login, "name": u.Name, "avatar_url": "https://avatars.example/u/" + strconv.FormatInt(u.ID, 10), "email": nil}
	}))
	mux.HandleFunc("GET /api/v3/user/emails", g.api(func(u ghUser, _ *http.Request) any { return u.Emails }))
	mux.HandleFunc("GET /api/v3/user/orgs", g.api(func(u ghUser, r *http.Request) any {
		var out []map[string]any
		for _, o := range u.Orgs {
			out = append(out, map[string]any{"login": o, "id": len(o)})
		}
		return out
	}))
	mux.HandleFunc("GET /api/v3/user/teams", g.api(func(u ghUser, r *http.Request) any {
		out := []map[string]any{}
		for _, t := range u.Teams {
			org, slug, _ := strings.Cut(t, "/")
			out = append(out, map[string]any{"slug": slug, "organization": map[string]any{"login": org}})
		}
		return out
	}))
	g.Server = httptest.NewServer(mux)
	t.Cleanup(g.Close)
	return g
}

func octocat() ghUser {
	return ghUser{
		ID: 583231, Login: "octocat", Name: "The Octocat",
		Emails: []githubEmail{
			{Email: "old@example.com", Primary: false, Verified: true},
			{Email: "octocat@github.example", Primary: true, Verified: true},
		},
		Orgs:  []string{"github", "Acme"},
		Teams: []string{"acme/platform"},
	}
}

func (g *gitHub) settings() Settings {
	return Settings{
		ID: "github", ClientID: g.clientID, ClientSecret: g.clientSecret,
		AuthURL: g.URL + "/login/oauth/authorize", TokenURL: g.URL + "/login/oauth/access_token", APIURL: g.URL + "/api/v3",
	}
}

func (g *gitHub) signInAs(u ghUser) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.next = u
}

func (g *gitHub) fail(path string, status int, header string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status[path], g.header[path] = status, header
}

func (g *gitHub) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != g.clientID {
		http.Error(w, "unknown client", http.StatusNotFound)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Host == "" {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.n++
	code := fmt.Sprintf("code-%d", g.n)
	g.grants[code] = ghCode{user: g.next, challenge: q.Get("code_challenge"), method: q.Get("code_challenge_method"), redirect: q.Get("redirect_uri"), cid: g.clientID}
	g.mu.Unlock()
	rq := redirect.Query()
	rq.Set("code", code)
	rq.Set("state", q.Get("state"))
	redirect.RawQuery = rq.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// accessToken answers like GitHub: 200 even for errors, form-encoded
// unless JSON is asked for.
func (g *gitHub) accessToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	reply := func(v url.Values) {
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			m := map[string]string{}
			for k := range v {
				m[k] = v.Get(k)
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(m)
			return
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		_, _ = w.Write([]byte(v.Encode()))
	}
	fail := func(code, desc string) {
		reply(url.Values{"error": {code}, "error_description": {desc}, "error_uri": {"https://docs.github.com/apps/troubleshooting"}})
	}
	if r.PostForm.Get("client_id") != g.clientID || r.PostForm.Get("client_secret") != g.clientSecret {
		fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
		return
	}
	g.mu.Lock()
	grant, ok := g.grants[r.PostForm.Get("code")]
	delete(g.grants, r.PostForm.Get("code")) // single use
	g.mu.Unlock()
	if !ok {
		fail("bad_verification_code", "The code passed is incorrect or expired.")
		return
	}
	if r.PostForm.Get("redirect_uri") != grant.redirect {
		fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if grant.method != "S256" || base64.RawURLEncoding.EncodeToString(sum[:]) != grant.challenge {
		fail("bad_verification_code", "The code_verifier does not match the code_challenge.")
		return
	}
	g.mu.Lock()
	g.n++
	tok := fmt.Sprintf("gho_%032d", g.n)
	g.tokens[tok] = grant.user
	g.mu.Unlock()
	reply(url.Values{"access_token": {tok}, "scope": {"read:org,read:user,user:email"}, "token_type": {"bearer"}})
}

// api serves a JSON API call for the token's user, one item per page for
// lists (to exercise pagination).
func (g *gitHub) api(body func(ghUser, *http.Request) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		u, ok := g.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		status, header := g.status[r.URL.Path], g.header[r.URL.Path]
		g.mu.Unlock()
		if !ok || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Header.Get("X-GitHub-Api-Version") == "" || !strings.Contains(r.Header.Get("Accept"), "application/vnd.github+json") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if header != "" {
			k, v, _ := strings.Cut(header, ": ")
			w.Header().Set(k, v)
		}
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		v := body(u, r)
		if list, ok := v.([]map[string]any); ok && len(list) > 1 {
			page, _ := strconv.Atoi(r.URL.Query().Get("page"))
			page = max(page, 1)
			if page < len(list) {
				next := *r.URL
				q := next.Query()
				q.Set("page", strconv.Itoa(page+1))
				next.RawQuery = q.Encode()
				w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next", <%s/x?page=%d>; rel="last"`, g.URL, next.RequestURI(), g.URL, len(list)))
			}
			v = list[page-1 : page]
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(v)
	}
}

func TestGitHubSignIn(t *testing.T) {
	g := startGitHub(t)
	s := g.settings()
	s.Scopes = []string{"read:user", "user:email", "read:org"}
	p := mustNew(t, s)

	a := newAttempt()
	q := mustParse(p.AuthCodeURL(a.state, a.verifier, a.nonce, callback)).Query()
	for k, want := range map[string]string{"client_id": g.clientID, "redirect_uri": callback, "state": a.state, "scope": "read:user user:email read:org", "code_challenge_method": "S256"} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	if q.Has("nonce") {
		t.Error("nonce sent to GitHub")
	}
	code := signIn(t, p, a)
	prof, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
	if err != nil {
		t.Fatal(err)
	}
	want := Profile{
		Provider: "github", Subject: "583231", Email: "octocat@github.example", EmailVerified: true,
		Name: "The Octocat", AvatarURL: "https://avatars.example/u/583231", Orgs: []string{"github", "Acme"},
	}
	if diff := cmp.Diff(want, prof, cmpopts.IgnoreFields(Profile{}, "Raw")); diff != "" {
		t.Errorf("profile (-want +got):\n%s", diff)
	}
	if prof.Raw["login"] != "octocat" || !cmp.Equal(prof.Raw["teams"], []string{"acme/platform"}) {
		t.Errorf("raw %v", prof.Raw)
	}
}

func TestGitHubEmails(t *testing.T) {
	g := startGitHub(t)
	p := mustNew(t, g.settings())
	for _, tc := range []struct {
		name     string
		emails   []githubEmail
		email    string
		verified bool
	}{
		{"primary verified", []githubEmail{{"a@example.com", true, true}}, "a@example.com", true},
		{"primary unverified", []githubEmail{{"a@example.com", true, false}, {"b@example.com", false, true}}, "", false},
		{"none", nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := octocat()
			u.Emails = tc.emails
			g.signInAs(u)
			a := newAttempt()
			prof, err := p.Exchange(context.Background(), signIn(t, p, a), a.verifier, a.nonce, callback)
			if err != nil {
				t.Fatal(err)
			}
			if prof.Email != tc.email || prof.EmailVerified != tc.verified {
				t.Errorf("email %q verified %v, want %q %v", prof.Email, prof.EmailVerified, tc.email, tc.verified)
			}
			if prof.Orgs != nil {
				t.Errorf("orgs %v read without read:org", prof.Orgs)
			}
		})
	}
}

func TestGitHubAllowedOrgs(t *testing.T) {
	g := startGitHub(t)
	s := g.settings()
	s.AllowedOrgs = []string{"acme", "initech"}
	p := mustNew(t, s)
	if scope := mustParse(p.AuthCodeURL("s", "v", "n", callback)).Query().Get("scope"); scope != "read:user user:email read:org" {
		t.Errorf("scope %q: ALLOWED_ORGS implies read:org", scope)
	}
	for _, tc := range []struct {
		name string
		orgs []string
		want string
	}{
		{"member, other case", []string{"github", "Acme"}, ""},
		{"member on a later page", []string{"a", "b", "c", "initech"}, ""},
		{"not a member", []string{"github"}, CodeOrgNotAllowed},
		{"no organisations", nil, CodeOrgNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := octocat()
			u.Orgs = tc.orgs
			g.signInAs(u)
			a := newAttempt()
			prof, err := p.Exchange(context.Background(), signIn(t, p, a), a.verifier, a.nonce, callback)
			if tc.want != "" {
				wantCode(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(prof.Orgs, tc.orgs) {
				t.Errorf("orgs %v, want %v", prof.Orgs, tc.orgs)
			}
		})
	}
}

func TestGitHubFailures(t *testing.T) {
	g := startGitHub(t)
	p := mustNew(t, g.settings())
	t.Run("bad code", func(t *testing.T) {
		_, err := p.Exchange(context.Background(), "made-up", newAttempt().verifier, "", callback)
		wantCode(t, err, CodeInvalidGrant)
	})
	t.Run("code reused", func(t *testing.T) {
		a := newAttempt()
		code := signIn(t, p, a)
		if _, err := p.Exchange(context.Background(), code, a.verifier, "", callback); err != nil {
			t.Fatal(err)
		}
		_, err := p.Exchange(context.Background(), code, a.verifier, "", callback)
		wantCode(t, err, CodeInvalidGrant)
	})
	t.Run("PKCE verifier of another attempt", func(t *testing.T) {
		code := signIn(t, p, newAttempt())
		_, err := p.Exchange(context.Background(), code, newAttempt().verifier, "", callback)
		wantCode(t, err, CodeInvalidGrant)
	})
	t.Run("wrong client secret", func(t *testing.T) {
		s := g.settings()
		s.ClientSecret = "wrong-secret"
		p := mustNew(t, s)
		a := newAttempt()
		_, err := p.Exchange(context.Background(), signIn(t, p, a), a.verifier, "", callback)
		wantCode(t, err, CodeProviderError)
		if strings.Contains(err.Error(), "wrong-secret") {
			t.Errorf("error %q shows the secret", err)
		}
	})
	for _, tc := range []struct {
		path   string
		status int
		header string
		want   string
	}{
		{"/api/v3/user", http.StatusBadGateway, "", CodeProviderUnavailable},
		{"/api/v3/user", http.StatusForbidden, "X-RateLimit-Remaining: 0", CodeProviderUnavailable},
		{"/api/v3/user", http.StatusUnauthorized, "", CodeProviderError},
		{"/api/v3/user/emails", http.StatusNotFound, "", CodeProviderError},
		{"/api/v3/user/emails", http.StatusServiceUnavailable, "", CodeProviderUnavailable},
	} {
		t.Run(fmt.Sprintf("%s %d", tc.path, tc.status), func(t *testing.T) {
			g.fail(tc.path, tc.status, tc.header)
			defer g.fail(tc.path, 0, "")
			a := newAttempt()
			_, err := p.Exchange(context.Background(), signIn(t, p, a), a.verifier, "", callback)
			wantCode(t, err, tc.want)
			if strings.Contains(err.Error(), "gho_") {
				t.Errorf("error %q shows the access token", err)
			}
		})
	}
	t.Run("token endpoint down", func(t *testing.T) {
		s := g.settings()
		s.TokenURL = "http://127.0.0.1:1/login/oauth/access_token"
		p := mustNew(t, s)
		a := newAttempt()
		_, err := p.Exchange(context.Background(), signIn(t, p, a), a.verifier, "", callback)
		wantCode(t, err, CodeProviderUnavailable)
	})
}

func TestNextLink(t *testing.T) {
	for h, want := range map[string]string{
		`<https://api.github.com/user/orgs?page=2>; rel="next", <https://api.github.com/user/orgs?page=5>; rel="last"`: "https://api.github.com/user/orgs?page=2",
		`<https://api.github.com/user/orgs?page=1>; rel="prev"`:                                                        "",
		``: "",
	} {
		if got := nextLink(h); got != want {
			t.Errorf("nextLink(%q) = %q, want %q", h, got, want)
		}
	}
}

// TestGitHubPaginationStaysOnTheAPI: a next link to another host is not
// followed, so the token is not sent there.
func TestGitHubPaginationStaysOnTheAPI(t *testing.T) {
	var leaked atomic.Bool
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { leaked.Store(true) }))
	defer evil.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<`+evil.URL+`/user/orgs?page=2>; rel="next"`)
		_, _ = w.Write([]byte(`[{"login":"acme"}]`))
	}))
	defer api.Close()
	p := newGitHub(Settings{APIURL: api.URL}, api.Client())
	orgs, err := p.orgs(context.Background(), "token")
	if err != nil || !slices.Equal(orgs, []string{"acme"}) || leaked.Load() {
		t.Errorf("orgs %v, %v, leaked %v", orgs, err, leaked.Load())
	}
}
