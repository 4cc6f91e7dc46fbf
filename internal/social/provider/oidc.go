package provider

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oidcProvider is an OpenID Connect relying party. Google and Microsoft
// are OpenID Connect providers with a few hooks of their own.
type oidcProvider struct {
	s      Settings
	client *http.Client
	now    func() time.Time
	meta   *lazy[*oidcEndpoints]

	// acceptIssuer checks the discovery document's issuer; nil means it
	// must equal s.Issuer exactly.
	acceptIssuer func(discovered string) error
	// multiIssuer disables go-oidc's issuer check; check must then verify
	// the issuer itself (Microsoft's multi-tenant endpoints).
	multiIssuer bool
	// issuerAlias is another spelling of the issuer the provider uses in
	// tokens (Google's "accounts.google.com"), for error diagnosis only:
	// go-oidc accepts it.
	issuerAlias string
	// authParams adds authorisation request parameters.
	authParams []oauth2.AuthCodeOption
	// check runs after the ID token and nonce are verified.
	check func(ep *oidcEndpoints, claims map[string]any) error
	// complete fills the profile in (user info, Graph …).
	complete func(ctx context.Context, ep *oidcEndpoints, tok *oauth2.Token, claims map[string]any, p *Profile) error
}

// oidcEndpoints is what discovery yields.
type oidcEndpoints struct {
	issuer      string // as discovered (Microsoft: may be a {tenantid} template)
	oauth       *oauth2.Config
	verifier    *oidc.IDTokenVerifier // the gate: every check enabled (but see multiIssuer)
	diagnose    *oidc.IDTokenVerifier // signature only, to name a failed check
	userInfoURL string
}

// metadata is the part of a discovery document used here.
type metadata struct {
	Issuer      string   `json:"issuer"`
	AuthURL     string   `json:"authorization_endpoint"`
	TokenURL    string   `json:"token_endpoint"`
	JWKSURL     string   `json:"jwks_uri"`
	UserInfoURL string   `json:"userinfo_endpoint"`
	Algorithms  []string `json:"id_token_signing_alg_values_supported"`
	AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
}

// signingAlgs are the ID token algorithms accepted: asymmetric only, so a
// discovery document cannot opt into HS256 or none.
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA,
}

func newOIDCProvider(s Settings, client *http.Client) *oidcProvider {
	p := &oidcProvider{s: s, client: client, now: time.Now}
	p.meta = &lazy[*oidcEndpoints]{load: p.load, timeout: DiscoveryTimeout, retry: DiscoveryRetry, now: func() time.Time { return p.now() }}
	return p
}

// newOIDC is the generic OpenID Connect provider.
func newOIDC(s Settings, client *http.Client) *oidcProvider {
	p := newOIDCProvider(s, client)
	p.complete = p.userInfo
	return p
}

func (p *oidcProvider) ID() string     { return p.s.ID }
func (p *oidcProvider) Type() string   { return p.s.Type }
func (p *oidcProvider) AutoLink() bool { return p.s.AutoLink }

func (p *oidcProvider) discover(ctx context.Context) error {
	_, err := p.meta.get(ctx)
	return err
}

// load fetches and checks the discovery document. It is fetched here
// rather than by oidc.NewProvider so that a 5xx is told from a 404 (go-oidc
// reports both as plain text) and so that Microsoft's multi-tenant
// documents, whose issuer is a template, need no InsecureIssuerURLContext;
// go-oidc then keeps the JWKS and verifies ID tokens.
func (p *oidcProvider) load(ctx context.Context) (*oidcEndpoints, error) {
	var md metadata
	if _, err := getJSON(ctx, p.client, "discovery", wellKnown(p.s.Issuer), "", nil, &md); err != nil {
		return nil, err
	}
	if p.acceptIssuer != nil {
		if err := p.acceptIssuer(md.Issuer); err != nil {
			return nil, err
		}
	} else if md.Issuer != p.s.Issuer {
		return nil, errorf(CodeProviderError, "discovery: issuer is %q, want %q (ISSUER must match exactly)", md.Issuer, p.s.Issuer)
	}
	// Endpoints must be https when the issuer is (http is for localhost
	// issuers in development and tests).
	secure := mustParse(p.s.Issuer).Scheme == "https"
	for _, e := range []struct{ name, url string }{
		{"authorization_endpoint", md.AuthURL}, {"token_endpoint", md.TokenURL}, {"jwks_uri", md.JWKSURL},
	} {
		if err := checkEndpoint(e.url, secure); err != nil {
			return nil, errorf(CodeProviderError, "discovery: %s: %v", e.name, err)
		}
	}
	if md.UserInfoURL != "" && checkEndpoint(md.UserInfoURL, secure) != nil {
		md.UserInfoURL = ""
	}
	var algs []string
	for _, a := range md.Algorithms {
		if slices.Contains(signingAlgs, a) {
			algs = append(algs, a)
		}
	}
	keys := (&oidc.ProviderConfig{
		IssuerURL: md.Issuer, AuthURL: md.AuthURL, TokenURL: md.TokenURL, JWKSURL: md.JWKSURL, Algorithms: algs,
	}).NewProvider(oidc.ClientContext(context.Background(), p.client))
	now := func() time.Time { return p.now() }
	gate := &oidc.Config{ClientID: p.s.ClientID, SkipIssuerCheck: p.multiIssuer, Now: now}
	diag := &oidc.Config{SkipClientIDCheck: true, SkipIssuerCheck: true, SkipExpiryCheck: true}
	return &oidcEndpoints{
		issuer: md.Issuer,
		oauth: &oauth2.Config{
			ClientID: p.s.ClientID, ClientSecret: p.s.ClientSecret, Scopes: p.s.Scopes,
			Endpoint: oauth2.Endpoint{AuthURL: md.AuthURL, TokenURL: md.TokenURL, AuthStyle: authStyle(md.AuthMethods)},
		},
		verifier:    keys.Verifier(gate),
		diagnose:    keys.Verifier(diag),
		userInfoURL: md.UserInfoURL,
	}, nil
}

func wellKnown(issuer string) string {
	if len(issuer) > 0 && issuer[len(issuer)-1] == '/' {
		issuer = issuer[:len(issuer)-1]
	}
	return issuer + "/.well-known/openid-configuration"
}

// authStyle picks how the client authenticates at the token endpoint from
// token_endpoint_auth_methods_supported; when both or neither are listed,
// oauth2 tries the header (the OpenID default) and then the form, and
// remembers what worked.
func authStyle(methods []string) oauth2.AuthStyle {
	basic, post := slices.Contains(methods, "client_secret_basic"), slices.Contains(methods, "client_secret_post")
	switch {
	case basic && !post:
		return oauth2.AuthStyleInHeader
	case post && !basic:
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleAutoDetect
}

func (p *oidcProvider) AuthCodeURL(state, pkceVerifier, nonce, redirectURL string) string {
	ep, err := p.meta.get(context.Background())
	if err != nil {
		return callbackError(redirectURL, state, err)
	}
	opts := append([]oauth2.AuthCodeOption{
		oauth2.S256ChallengeOption(pkceVerifier),
		oauth2.SetAuthURLParam("redirect_uri", redirectURL),
		oidc.Nonce(nonce),
	}, p.authParams...)
	return ep.oauth.AuthCodeURL(state, opts...)
}

// callbackError is the authorisation error response the provider would
// have sent had it been reachable: temporarily_unavailable (RFC 6749)
// when it is down, otherwise provider_error, which [FromCallbackError]
// keeps as provider_error so that a misconfiguration does not count as
// an outage.
func callbackError(redirectURL, state string, err error) string {
	code := CodeProviderError
	if IsUnavailable(err) {
		code = "temporarily_unavailable"
	}
	u, perr := url.Parse(redirectURL)
	if perr != nil {
		return redirectURL
	}
	q := u.Query()
	q.Set("error", code)
	q.Set("error_description", "The provider's OpenID Connect discovery document could not be loaded.")
	q.Set("state", state)
	u.RawQuery = q.Encode()
	return u.String()
}

func (p *oidcProvider) Exchange(ctx context.Context, code, pkceVerifier, nonce, redirectURL string) (Profile, error) {
	ctx, cancel := context.WithTimeout(ctx, ExchangeTimeout)
	defer cancel()
	ep, err := p.meta.get(ctx)
	if err != nil {
		return Profile{}, err
	}
	tok, err := ep.oauth.Exchange(oidc.ClientContext(ctx, p.client), code,
		oauth2.VerifierOption(pkceVerifier), oauth2.SetAuthURLParam("redirect_uri", redirectURL))
	if err != nil {
		return Profile{}, classify(err)
	}
	rawIDToken, _ := tok.Extra("id_token").(string)
	if rawIDToken == "" {
		return Profile{}, errorf(CodeInvalidIDToken, "the token response has no id_token")
	}
	idt, err := p.verify(ctx, ep, rawIDToken)
	if err != nil {
		return Profile{}, err
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return Profile{}, errorf(CodeNonceMismatch, "the ID token's nonce is not this attempt's")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Profile{}, errorf(CodeInvalidIDToken, "at_hash: %v", err)
		}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Profile{}, errorf(CodeInvalidIDToken, "claims: %v", err)
	}
	if idt.Subject == "" {
		return Profile{}, errorf(CodeInvalidIDToken, "the ID token has no sub")
	}
	if err := checkAuthorizedParty(claims, p.s.ClientID); err != nil {
		return Profile{}, err
	}
	if p.check != nil {
		if err := p.check(ep, claims); err != nil {
			return Profile{}, err
		}
	}
	prof := Profile{
		Provider:      p.s.ID,
		Subject:       idt.Subject,
		Email:         claimString(claims, "email"),
		EmailVerified: claimBool(claims, "email_verified"),
		Name:          claimString(claims, "name"),
		GivenName:     claimString(claims, "given_name"),
		FamilyName:    claimString(claims, "family_name"),
		AvatarURL:     claimString(claims, "picture"),
		Raw:           claims,
	}
	if p.complete != nil {
		if err := p.complete(ctx, ep, tok, claims, &prof); err != nil {
			return Profile{}, err
		}
	}
	if prof.Email == "" {
		prof.EmailVerified = false
	}
	return prof, nil
}

// verify runs go-oidc's verification (signature, issuer, audience,
// expiry). On failure it names the failed check: a second verification of
// the signature alone tells a forged or garbled token (invalid_id_token)
// from an authentic one that fails a claim check, whose claims are then
// safe to inspect.
func (p *oidcProvider) verify(ctx context.Context, ep *oidcEndpoints, raw string) (*oidc.IDToken, error) {
	idt, err := ep.verifier.Verify(ctx, raw)
	if err == nil {
		return idt, nil
	}
	var expired *oidc.TokenExpiredError
	switch {
	case errors.As(err, &expired):
		return nil, newError(CodeTokenExpired, err)
	case ctx.Err() != nil:
		return nil, classify(fmt.Errorf("verifying the ID token: %w", ctx.Err()))
	case isKeyFetchFailure(err):
		return nil, errorf(CodeProviderUnavailable, "verifying the ID token: %v", err)
	}
	authentic, derr := ep.diagnose.Verify(ctx, raw)
	if derr != nil {
		return nil, newError(CodeInvalidIDToken, err)
	}
	if !p.multiIssuer && authentic.Issuer != ep.issuer && authentic.Issuer != p.issuerAlias {
		return nil, newError(CodeIssuerMismatch, err)
	}
	if !slices.Contains(authentic.Audience, p.s.ClientID) {
		return nil, newError(CodeAudienceMismatch, err)
	}
	return nil, newError(CodeInvalidIDToken, err)
}

// checkAuthorizedParty applies OpenID Connect Core §3.1.3.7 (4, 5): with
// several audiences azp must be present, and when present it must be us.
func checkAuthorizedParty(claims map[string]any, clientID string) error {
	azp := claimString(claims, "azp")
	if azp != "" && azp != clientID {
		return errorf(CodeAudienceMismatch, "azp is %q, not this client", azp)
	}
	if aud, ok := claims["aud"].([]any); ok && len(aud) > 1 && azp == "" {
		return errorf(CodeAudienceMismatch, "several audiences and no azp")
	}
	return nil
}

// userInfo completes a generic provider's profile from the UserInfo
// endpoint when the ID token carries no email (some providers put only
// sub in ID tokens). The response must be about the same sub (OpenID
// Connect Core §5.3.4); email_verified then comes from it too.
func (p *oidcProvider) userInfo(ctx context.Context, ep *oidcEndpoints, tok *oauth2.Token, _ map[string]any, prof *Profile) error {
	if prof.Email != "" || ep.userInfoURL == "" {
		return nil
	}
	var info map[string]any
	if _, err := getJSON(ctx, p.client, "userinfo", ep.userInfoURL, tok.AccessToken, nil, &info); err != nil {
		return err
	}
	if sub := claimString(info, "sub"); sub != prof.Subject {
		return errorf(CodeProviderError, "userinfo: sub %q is not the ID token's", sub)
	}
	prof.Email = claimString(info, "email")
	prof.EmailVerified = claimBool(info, "email_verified")
	for _, f := range []struct {
		dst   *string
		claim string
	}{{&prof.Name, "name"}, {&prof.GivenName, "given_name"}, {&prof.FamilyName, "family_name"}, {&prof.AvatarURL, "picture"}} {
		if *f.dst == "" {
			*f.dst = claimString(info, f.claim)
		}
	}
	prof.Raw["userinfo"] = info
	return nil
}
