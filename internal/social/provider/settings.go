package provider

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Provider types.
const (
	TypeGoogle    = "google"
	TypeGitHub    = "github"
	TypeMicrosoft = "microsoft"
	TypeOIDC      = "oidc"
)

// EnvPrefix starts every provider setting: GATEHOUSE_SOCIAL_<ID>_<KEY>.
const EnvPrefix = "GATEHOUSE_SOCIAL_"

// Settings configure one provider: the block GATEHOUSE_SOCIAL_<ID>_<KEY>.
type Settings struct {
	ID           string   // the name in URLs: [a-z0-9-]
	Type         string   // google, github, microsoft or oidc; defaults to ID for the first three
	ClientID     string   // _CLIENT_ID
	ClientSecret string   // _CLIENT_SECRET or the file named by _CLIENT_SECRET_FILE
	Scopes       []string // _SCOPES, comma- or space-separated; defaults per type
	// Issuer is the OpenID Connect issuer (_ISSUER): required for oidc;
	// for google and microsoft it defaults to the public issuer.
	Issuer string
	// Tenant is Microsoft's common, organizations, consumers or a tenant
	// ID (_TENANT, default common).
	Tenant         string
	AllowedDomains []string // Google Workspace domains (hd claim), _ALLOWED_DOMAINS
	AllowedOrgs    []string // GitHub organisation logins, _ALLOWED_ORGS
	// AutoLink trusts this provider's verified emails for linking to an
	// existing account (_AUTO_LINK).
	AutoLink bool
	// AuthURL and TokenURL are GitHub's OAuth endpoints and APIURL its
	// REST API, all three for GitHub Enterprise Server; APIURL is also
	// Microsoft Graph's base (default https://graph.microsoft.com/v1.0).
	AuthURL, TokenURL, APIURL string
}

// settingKeys are the known <KEY>s.
var settingKeys = []string{
	"TYPE", "CLIENT_ID", "CLIENT_SECRET", "CLIENT_SECRET_FILE", "SCOPES", "ISSUER", "TENANT",
	"ALLOWED_DOMAINS", "ALLOWED_ORGS", "AUTO_LINK", "AUTH_URL", "TOKEN_URL", "API_URL",
}

// FromEnv reads every provider block from the environment. environ (as
// os.Environ) tells which GATEHOUSE_SOCIAL_ variables exist; getenv (nil:
// the value in environ) reads them. See [FromMap].
func FromEnv(environ []string, getenv func(string) string) ([]Settings, []string) {
	vars := map[string]string{}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		if getenv != nil {
			value = getenv(name)
		}
		vars[name] = value
	}
	return FromMap(vars)
}

// FromMap reads every provider block from settings by name: environment
// names GATEHOUSE_SOCIAL_<ID>_<KEY>, or config file keys
// social_<id>_<key>; other names are ignored. The ID is lower-cased and may
// hold letters, digits and '-'. Empty values count as unset. It returns
// the blocks (defaults applied, sorted by ID) and every problem, one per
// bad setting, each naming its variable.
func FromMap(vars map[string]string) ([]Settings, []string) {
	var problems []string
	blocks := map[string]map[string]string{}
	spelled := map[string]string{} // id+key → the name used, to spot duplicates
	names := slices.Sorted(maps.Keys(vars))
	for _, name := range names {
		value := vars[name]
		full := name
		if len(name) > len("social_") && strings.EqualFold(name[:len("social_")], "social_") {
			full = "GATEHOUSE_" + strings.ToUpper(name)
		}
		if !strings.HasPrefix(full, EnvPrefix) || strings.TrimSpace(value) == "" {
			continue
		}
		rawID, key, ok := strings.Cut(full[len(EnvPrefix):], "_")
		if !ok || rawID == "" || key == "" {
			problems = append(problems, fmt.Sprintf("%s: not a provider setting (want %s<ID>_<SETTING>)", name, EnvPrefix))
			continue
		}
		id := strings.ToLower(rawID)
		if !validID(id) {
			problems = append(problems, fmt.Sprintf("%s: provider ID %q may only hold letters, digits and '-'", name, rawID))
			continue
		}
		if !slices.Contains(settingKeys, key) {
			problems = append(problems, fmt.Sprintf("%s: unknown setting %s (known: %s)", name, key, strings.Join(settingKeys, ", ")))
			continue
		}
		if prev, dup := spelled[id+"\x00"+key]; dup {
			problems = append(problems, fmt.Sprintf("%s: set twice (also as %s)", name, prev))
			continue
		}
		spelled[id+"\x00"+key] = name
		if blocks[id] == nil {
			blocks[id] = map[string]string{}
		}
		blocks[id][key] = strings.TrimSpace(value)
	}
	var out []Settings
	for _, id := range slices.Sorted(maps.Keys(blocks)) {
		s, ps := parseBlock(id, blocks[id])
		problems = append(problems, ps...)
		out = append(out, s)
	}
	return out, problems
}

// parseBlock turns one provider's values into Settings with defaults.
func parseBlock(id string, kv map[string]string) (Settings, []string) {
	name := envName(id)
	var problems []string
	s := Settings{
		ID:             id,
		Type:           strings.ToLower(kv["TYPE"]),
		ClientID:       kv["CLIENT_ID"],
		ClientSecret:   kv["CLIENT_SECRET"],
		Scopes:         splitScopes(kv["SCOPES"]),
		Issuer:         kv["ISSUER"],
		Tenant:         kv["TENANT"],
		AllowedDomains: splitList(kv["ALLOWED_DOMAINS"]),
		AllowedOrgs:    splitList(kv["ALLOWED_ORGS"]),
		AuthURL:        kv["AUTH_URL"],
		TokenURL:       kv["TOKEN_URL"],
		APIURL:         kv["API_URL"],
	}
	if file := kv["CLIENT_SECRET_FILE"]; file != "" {
		switch b, err := os.ReadFile(file); {
		case s.ClientSecret != "":
			problems = append(problems, fmt.Sprintf("%s: set either %s or %s, not both", name("CLIENT_SECRET_FILE"), name("CLIENT_SECRET"), name("CLIENT_SECRET_FILE")))
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: cannot read %s: %v", name("CLIENT_SECRET_FILE"), file, unwrapPathError(err)))
		default:
			if s.ClientSecret = strings.TrimRight(string(b), "\r\n"); s.ClientSecret == "" {
				problems = append(problems, fmt.Sprintf("%s: %s is empty", name("CLIENT_SECRET_FILE"), file))
			}
		}
	}
	if v := kv["AUTO_LINK"]; v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %q is not a boolean (want true or false)", name("AUTO_LINK"), v))
		}
		s.AutoLink = b
	}
	s = s.withDefaults()
	for _, p := range s.problems() {
		if p.key == "CLIENT_SECRET" && kv["CLIENT_SECRET_FILE"] != "" {
			continue // the file's problem is reported above
		}
		problems = append(problems, format([]problem{p}, name)...)
	}
	return s, problems
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// envName returns a function naming the variable of one of id's keys.
func envName(id string) func(key string) string {
	prefix := EnvPrefix + strings.ToUpper(id) + "_"
	return func(key string) string { return prefix + key }
}

func validID(id string) bool {
	return idPattern.MatchString(id)
}

var (
	idPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	domainPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)
	loginPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,38}$`)
	// scopePattern is RFC 6749's scope-token.
	scopePattern = regexp.MustCompile(`^[\x21\x23-\x5b\x5d-\x7e]+$`)
)

// splitScopes splits on commas and white space, dropping duplicates.
func splitScopes(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// splitList splits a comma-separated list, trimmed and lower-cased.
func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.ToLower(strings.TrimSpace(f)); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// withDefaults fills in what the type implies. It is idempotent.
func (s Settings) withDefaults() Settings {
	s.ID = strings.ToLower(s.ID)
	if s.Type == "" && (s.ID == TypeGoogle || s.ID == TypeGitHub || s.ID == TypeMicrosoft) {
		s.Type = s.ID
	}
	s.AllowedDomains = lowerAll(s.AllowedDomains)
	s.AllowedOrgs = lowerAll(s.AllowedOrgs)
	switch s.Type {
	case TypeGoogle:
		if s.Issuer == "" {
			s.Issuer = googleIssuer
		}
		if len(s.Scopes) == 0 {
			s.Scopes = []string{"openid", "email", "profile"}
		}
	case TypeMicrosoft:
		if s.Tenant == "" {
			s.Tenant = "common"
		}
		s.Tenant = strings.ToLower(s.Tenant)
		if s.Issuer == "" {
			s.Issuer = microsoftLogin + "/" + s.Tenant + "/v2.0"
		}
		if s.APIURL == "" {
			s.APIURL = microsoftGraph
		}
		if len(s.Scopes) == 0 {
			s.Scopes = []string{"openid", "email", "profile", "User.Read"}
		}
	case TypeOIDC:
		if len(s.Scopes) == 0 {
			s.Scopes = []string{"openid", "email", "profile"}
		}
	case TypeGitHub:
		if s.AuthURL == "" && s.TokenURL == "" && s.APIURL == "" {
			s.AuthURL, s.TokenURL, s.APIURL = githubAuthURL, githubTokenURL, githubAPIURL
		}
		if len(s.Scopes) == 0 {
			s.Scopes = []string{"read:user", "user:email"}
			if len(s.AllowedOrgs) > 0 {
				s.Scopes = append(s.Scopes, "read:org")
			}
		}
	}
	return s
}

func lowerAll(list []string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = strings.ToLower(v)
	}
	return out
}

// problem is one bad setting: the key and what is wrong.
type problem struct{ key, msg string }

// format names the key's variable.
func format(ps []problem, name func(key string) string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, name(p.key)+": "+p.msg)
	}
	return out
}

// problems validates defaulted settings, in settingKeys order per check.
func (s Settings) problems() []problem {
	var out []problem
	add := func(key, format string, args ...any) {
		out = append(out, problem{key, fmt.Sprintf(format, args...)})
	}
	switch s.Type {
	case "":
		add("TYPE", "required for provider %q (google, github, microsoft or oidc)", s.ID)
		return out
	case TypeGoogle, TypeGitHub, TypeMicrosoft, TypeOIDC:
	default:
		add("TYPE", "unknown type %q (want google, github, microsoft or oidc)", s.Type)
		return out
	}
	if s.ClientID == "" {
		add("CLIENT_ID", "required")
	}
	if s.ClientSecret == "" {
		add("CLIENT_SECRET", "required (or %sCLIENT_SECRET_FILE)", envName(s.ID)(""))
	}
	for _, sc := range s.Scopes {
		if !scopePattern.MatchString(sc) {
			add("SCOPES", "%q is not a valid scope", sc)
		}
	}

	// Settings that do not apply to the type are mistakes, not no-ops.
	applies := map[string][]string{
		TypeGoogle:    {"ISSUER", "ALLOWED_DOMAINS"},
		TypeMicrosoft: {"ISSUER", "TENANT", "API_URL"},
		TypeOIDC:      {"ISSUER"},
		TypeGitHub:    {"ALLOWED_ORGS", "AUTH_URL", "TOKEN_URL", "API_URL"},
	}[s.Type]
	for _, f := range []struct {
		key string
		set bool
	}{
		{"ISSUER", s.Issuer != ""}, {"TENANT", s.Tenant != ""}, {"ALLOWED_DOMAINS", len(s.AllowedDomains) > 0},
		{"ALLOWED_ORGS", len(s.AllowedOrgs) > 0}, {"AUTH_URL", s.AuthURL != ""}, {"TOKEN_URL", s.TokenURL != ""}, {"API_URL", s.APIURL != ""},
	} {
		if f.set && !slices.Contains(applies, f.key) {
			add(f.key, "not used by %s providers", s.Type)
		}
	}

	if s.Type == TypeGitHub {
		if !hasAnyScope(s.Scopes, "user:email", "user") {
			add("SCOPES", "must include user:email (to read the verified email)")
		}
		if len(s.AllowedOrgs) > 0 && !hasAnyScope(s.Scopes, githubOrgScopes...) {
			add("SCOPES", "must include read:org when ALLOWED_ORGS is set")
		}
		for _, o := range s.AllowedOrgs {
			if !loginPattern.MatchString(o) {
				add("ALLOWED_ORGS", "%q is not a GitHub organisation login", o)
			}
		}
		for _, f := range []struct{ key, url string }{{"AUTH_URL", s.AuthURL}, {"TOKEN_URL", s.TokenURL}, {"API_URL", s.APIURL}} {
			if f.url == "" {
				add(f.key, "required with the other GitHub Enterprise Server URLs (set all of AUTH_URL, TOKEN_URL and API_URL, or none)")
			} else if err := checkURL(f.url); err != nil {
				add(f.key, "%v", err)
			}
		}
		return out
	}

	// OpenID Connect types.
	if !slices.Contains(s.Scopes, "openid") {
		add("SCOPES", "must include openid")
	}
	if s.Issuer == "" {
		add("ISSUER", "required for oidc providers (the issuer URL, whose /.well-known/openid-configuration is read)")
	} else if err := checkURL(s.Issuer); err != nil {
		add("ISSUER", "%v", err)
	} else if u := mustParse(s.Issuer); u.RawQuery != "" || u.Fragment != "" {
		add("ISSUER", "an issuer has no query or fragment")
	}
	for _, d := range s.AllowedDomains {
		if !domainPattern.MatchString(d) {
			add("ALLOWED_DOMAINS", "%q is not a domain name", d)
		}
	}
	if s.Type == TypeMicrosoft {
		if !multiTenant(s.Tenant) && !guidPattern.MatchString(s.Tenant) {
			add("TENANT", "%q is not common, organizations, consumers or a tenant ID (a GUID)", s.Tenant)
		}
		if err := checkURL(s.APIURL); err != nil {
			add("API_URL", "%v", err)
		}
		if !hasAnyScope(s.Scopes, "User.Read", "https://graph.microsoft.com/User.Read", "https://graph.microsoft.com/.default") {
			add("SCOPES", "must include User.Read (for Microsoft Graph /me)")
		}
	}
	return out
}

// hasAnyScope reports whether scopes holds any of want (case-insensitive).
func hasAnyScope(scopes []string, want ...string) bool {
	return slices.ContainsFunc(scopes, func(s string) bool {
		return slices.ContainsFunc(want, func(w string) bool { return strings.EqualFold(s, w) })
	})
}

// checkURL accepts absolute https URLs, and http ones on localhost.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.Scheme == "http" && !isLocalhost(u.Hostname()) {
		return fmt.Errorf("%q must use https (http only for localhost)", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not hold credentials", raw)
	}
	return nil
}

// checkEndpoint checks an endpoint named in a discovery document.
func checkEndpoint(raw string, secure bool) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return fmt.Errorf("missing")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	case secure && u.Scheme != "https":
		return fmt.Errorf("%q is not https", raw)
	}
	return nil
}

// mustParse parses a URL checked before, or returns nil.
func mustParse(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	return u
}

func isLocalhost(h string) bool {
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
