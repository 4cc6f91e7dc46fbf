package provider

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

const (
	githubAuthURL  = "https://github.com/login/oauth/authorize"
	githubTokenURL = "https://github.com/login/oauth/access_token"
	githubAPIURL   = "https://api.github.com"
	// githubMaxPages caps pagination of organisations and teams.
	githubMaxPages = 10
)

// githubProvider is GitHub (or GitHub Enterprise Server) through OAuth 2
// and the REST API. The subject is the numeric user id (logins can be
// renamed). Email is the primary address only when GitHub marks it
// verified; organisations and teams are read when the read:org scope is
// requested, which ALLOWED_ORGS implies. Note that /user/orgs only lists
// organisations that allow this OAuth app (third-party access policy).
type githubProvider struct {
	s        Settings
	client   *http.Client
	oauth    *oauth2.Config
	api      string
	readOrgs bool
}

func newGitHub(s Settings, client *http.Client) *githubProvider {
	return &githubProvider{
		s:      s,
		client: client,
		oauth: &oauth2.Config{
			ClientID: s.ClientID, ClientSecret: s.ClientSecret, Scopes: s.Scopes,
			Endpoint: oauth2.Endpoint{AuthURL: s.AuthURL, TokenURL: s.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
		},
		api:      strings.TrimRight(s.APIURL, "/"),
		readOrgs: hasAnyScope(s.Scopes, githubOrgScopes...),
	}
}

var githubOrgScopes = []string{"read:org", "write:org", "admin:org"}

func (p *githubProvider) ID() string     { return p.s.ID }
func (p *githubProvider) Type() string   { return p.s.Type }
func (p *githubProvider) AutoLink() bool { return p.s.AutoLink }

// AuthCodeURL ignores the nonce: GitHub does not issue ID tokens; state
// and PKCE bind the response to the attempt.
func (p *githubProvider) AuthCodeURL(state, pkceVerifier, _, redirectURL string) string {
	return p.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(pkceVerifier), oauth2.SetAuthURLParam("redirect_uri", redirectURL))
}

type githubUser struct {
	ID        int64  `json:"id"`
	Login     string `json:"login"`
	Name      string `json:"name"`
	AvatarURL string `json:"avatar_url"`
}

type githubEmail struct {
	Email    string `json:"email"`
	Primary  bool   `json:"primary"`
	Verified bool   `json:"verified"`
}

func (p *githubProvider) Exchange(ctx context.Context, code, pkceVerifier, _, redirectURL string) (Profile, error) {
	ctx, cancel := context.WithTimeout(ctx, ExchangeTimeout)
	defer cancel()
	tok, err := p.oauth.Exchange(context.WithValue(ctx, oauth2.HTTPClient, p.client), code,
		oauth2.VerifierOption(pkceVerifier), oauth2.SetAuthURLParam("redirect_uri", redirectURL))
	if err != nil {
		return Profile{}, classify(err)
	}
	bearer := tok.AccessToken

	var body json.RawMessage
	if _, err := p.get(ctx, "/user", bearer, &body); err != nil {
		return Profile{}, err
	}
	var u githubUser
	var raw map[string]any
	if json.Unmarshal(body, &u) != nil || json.Unmarshal(body, &raw) != nil || u.ID <= 0 {
		return Profile{}, errorf(CodeProviderError, "github /user: no user id")
	}
	prof := Profile{
		Provider:  p.s.ID,
		Subject:   strconv.FormatInt(u.ID, 10),
		Name:      u.Name,
		AvatarURL: u.AvatarURL,
		Raw:       raw,
	}

	var emails []githubEmail
	if _, err := p.get(ctx, "/user/emails?per_page=100", bearer, &emails); err != nil {
		return Profile{}, err
	}
	for _, e := range emails {
		if e.Primary && e.Verified {
			prof.Email, prof.EmailVerified = e.Email, true
		}
	}

	if p.readOrgs {
		if prof.Orgs, err = p.orgs(ctx, bearer); err != nil {
			return Profile{}, err
		}
		teams, err := p.teams(ctx, bearer)
		if err != nil {
			return Profile{}, err
		}
		raw["teams"] = teams
	}
	if len(p.s.AllowedOrgs) > 0 && !slices.ContainsFunc(prof.Orgs, func(o string) bool {
		return slices.Contains(p.s.AllowedOrgs, strings.ToLower(o))
	}) {
		return Profile{}, errorf(CodeOrgNotAllowed, "%s is in none of the allowed organisations", u.Login)
	}
	return prof, nil
}

// orgs lists the user's organisation logins.
func (p *githubProvider) orgs(ctx context.Context, bearer string) ([]string, error) {
	var out []string
	err := p.pages(ctx, "/user/orgs?per_page=100", bearer, func(page []map[string]any) {
		for _, o := range page {
			if l := claimString(o, "login"); l != "" {
				out = append(out, l)
			}
		}
	})
	return out, err
}

// teams lists the user's teams as "org/team-slug".
func (p *githubProvider) teams(ctx context.Context, bearer string) ([]string, error) {
	out := []string{}
	err := p.pages(ctx, "/user/teams?per_page=100", bearer, func(page []map[string]any) {
		for _, t := range page {
			org, _ := t["organization"].(map[string]any)
			if o, s := claimString(org, "login"), claimString(t, "slug"); o != "" && s != "" {
				out = append(out, o+"/"+s)
			}
		}
	})
	return out, err
}

// pages follows rel="next" links, only within the API base URL so the
// token never goes elsewhere.
func (p *githubProvider) pages(ctx context.Context, path, bearer string, each func([]map[string]any)) error {
	next := p.api + path
	for range githubMaxPages {
		var page []map[string]any
		h, err := getJSON(ctx, p.client, "github "+pathOnly(next, p.api), next, bearer, githubHeaders, &page)
		if err != nil {
			return err
		}
		each(page)
		next = nextLink(h.Get("Link"))
		if next == "" || !strings.HasPrefix(next, p.api+"/") {
			return nil
		}
	}
	return nil
}

var githubHeaders = http.Header{
	"Accept":               {"application/vnd.github+json"},
	"X-Github-Api-Version": {"2022-11-28"},
}

func (p *githubProvider) get(ctx context.Context, path, bearer string, out any) (http.Header, error) {
	return getJSON(ctx, p.client, "github "+pathOnly(path, ""), p.api+path, bearer, githubHeaders, out)
}

// pathOnly names an API call in errors without its query.
func pathOnly(u, base string) string {
	u = strings.TrimPrefix(u, base)
	path, _, _ := strings.Cut(u, "?")
	return path
}

var linkNext = regexp.MustCompile(`<([^>]+)>\s*;\s*rel="?next"?`)

// nextLink returns the rel="next" URL of a Link header, or "".
func nextLink(h string) string {
	m := linkNext.FindStringSubmatch(h)
	if m == nil {
		return ""
	}
	if _, err := url.Parse(m[1]); err != nil {
		return ""
	}
	return m[1]
}
