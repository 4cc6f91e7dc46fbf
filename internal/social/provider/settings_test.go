package provider

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFromEnv(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []Settings
		// problems: each must start with its variable, then contain text.
		problems [][2]string
	}{
		{
			name: "google, defaults",
			env:  map[string]string{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_ID": "cid", "GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET": "sec", "GATEHOUSE_SOCIAL_GOOGLE_ALLOWED_DOMAINS": "Example.com, corp.example", "GATEHOUSE_SOCIAL_GOOGLE_AUTO_LINK": "true"},
			want: []Settings{{ID: "google", Type: "google", ClientID: "cid", ClientSecret: "sec", Scopes: []string{"openid", "email", "profile"}, Issuer: "https://accounts.google.com", AllowedDomains: []string{"example.com", "corp.example"}, AutoLink: true}},
		},
		{
			name: "github, allowed orgs imply read:org",
			env:  map[string]string{"GATEHOUSE_SOCIAL_GITHUB_CLIENT_ID": "cid", "GATEHOUSE_SOCIAL_GITHUB_CLIENT_SECRET": "sec", "GATEHOUSE_SOCIAL_GITHUB_ALLOWED_ORGS": "Acme"},
			want: []Settings{{ID: "github", Type: "github", ClientID: "cid", ClientSecret: "sec", Scopes: []string{"read:user", "user:email", "read:org"}, AllowedOrgs: []string{"acme"}, AuthURL: githubAuthURL, TokenURL: githubTokenURL, APIURL: githubAPIURL}},
		},
		{
			name: "github enterprise server",
			env: map[string]string{
				"GATEHOUSE_SOCIAL_GHE_TYPE": "github", "GATEHOUSE_SOCIAL_GHE_CLIENT_ID": "cid", "GATEHOUSE_SOCIAL_GHE_CLIENT_SECRET": "sec",
				"GATEHOUSE_SOCIAL_GHE_AUTH_URL": "https://ghe.example/login/oauth/authorize", "GATEHOUSE_SOCIAL_GHE_TOKEN_URL": "https://ghe.example/login/oauth/access_token",
				"GATEHOUSE_SOCIAL_GHE_API_URL": "https://ghe.example/api/v3", "GATEHOUSE_SOCIAL_GHE_SCOPES": "user:email read:org",
			},
			want: []Settings{{ID: "ghe", Type: "github", ClientID: "cid", ClientSecret: "sec", Scopes: []string{"user:email", "read:org"}, AuthURL: "https://ghe.example/login/oauth/authorize", TokenURL: "https://ghe.example/login/oauth/access_token", APIURL: "https://ghe.example/api/v3"}},
		},
		{
			name: "microsoft, defaults",
			env:  map[string]string{"GATEHOUSE_SOCIAL_MICROSOFT_CLIENT_ID": "cid", "GATEHOUSE_SOCIAL_MICROSOFT_CLIENT_SECRET_FILE": secretFile},
			want: []Settings{{ID: "microsoft", Type: "microsoft", ClientID: "cid", ClientSecret: "from-file", Scopes: []string{"openid", "email", "profile", "User.Read"}, Issuer: "https://login.microsoftonline.com/common/v2.0", Tenant: "common", APIURL: "https://graph.microsoft.com/v1.0"}},
		},
		{
			name: "two oidc providers, scopes with commas or spaces",
			env: map[string]string{
				"GATEHOUSE_SOCIAL_OKTA_TYPE": "OIDC", "GATEHOUSE_SOCIAL_OKTA_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_OKTA_CLIENT_SECRET": "b",
				"GATEHOUSE_SOCIAL_OKTA_ISSUER": "https://acme.okta.com", "GATEHOUSE_SOCIAL_OKTA_SCOPES": "openid, email groups",
				"GATEHOUSE_SOCIAL_DEV-KC_TYPE": "oidc", "GATEHOUSE_SOCIAL_DEV-KC_CLIENT_ID": "c", "GATEHOUSE_SOCIAL_DEV-KC_CLIENT_SECRET": "d",
				"GATEHOUSE_SOCIAL_DEV-KC_ISSUER": "http://localhost:8081/realms/dev",
			},
			want: []Settings{
				{ID: "dev-kc", Type: "oidc", ClientID: "c", ClientSecret: "d", Scopes: []string{"openid", "email", "profile"}, Issuer: "http://localhost:8081/realms/dev"},
				{ID: "okta", Type: "oidc", ClientID: "a", ClientSecret: "b", Scopes: []string{"openid", "email", "groups"}, Issuer: "https://acme.okta.com"},
			},
		},
		{
			name: "empty values are unset",
			env:  map[string]string{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_ID": "", "GATEHOUSE_SOCIAL_GITHUB_CLIENT_SECRET": " "},
		},
		{
			name:     "missing secret",
			env:      map[string]string{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_ID": "cid"},
			want:     []Settings{{ID: "google", Type: "google", ClientID: "cid", Scopes: []string{"openid", "email", "profile"}, Issuer: "https://accounts.google.com"}},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET", "required"}},
		},
		{
			name:     "missing client id",
			env:      map[string]string{"GATEHOUSE_SOCIAL_GITHUB_CLIENT_SECRET": "sec"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_GITHUB_CLIENT_ID", "required"}},
		},
		{
			name:     "unknown key",
			env:      map[string]string{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_ID": "cid", "GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET": "sec", "GATEHOUSE_SOCIAL_GOOGLE_CLIENTSECRET": "x"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_GOOGLE_CLIENTSECRET", "unknown setting CLIENTSECRET"}},
		},
		{
			name:     "no key",
			env:      map[string]string{"GATEHOUSE_SOCIAL_GOOGLE": "x"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_GOOGLE", "not a provider setting"}},
		},
		{
			name:     "bad ID",
			env:      map[string]string{"GATEHOUSE_SOCIAL_MY.IDP_CLIENT_ID": "x"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_MY.IDP_CLIENT_ID", "provider ID"}},
		},
		{
			name:     "bad type",
			env:      map[string]string{"GATEHOUSE_SOCIAL_OKTA_TYPE": "saml", "GATEHOUSE_SOCIAL_OKTA_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_OKTA_CLIENT_SECRET": "b"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_OKTA_TYPE", `unknown type "saml"`}},
		},
		{
			name:     "no type for another ID",
			env:      map[string]string{"GATEHOUSE_SOCIAL_OKTA_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_OKTA_CLIENT_SECRET": "b", "GATEHOUSE_SOCIAL_OKTA_ISSUER": "https://acme.okta.com"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_OKTA_TYPE", "required"}},
		},
		{
			name:     "oidc without issuer",
			env:      map[string]string{"GATEHOUSE_SOCIAL_OKTA_TYPE": "oidc", "GATEHOUSE_SOCIAL_OKTA_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_OKTA_CLIENT_SECRET": "b"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_OKTA_ISSUER", "required"}},
		},
		{
			name:     "plain http issuer",
			env:      map[string]string{"GATEHOUSE_SOCIAL_OKTA_TYPE": "oidc", "GATEHOUSE_SOCIAL_OKTA_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_OKTA_CLIENT_SECRET": "b", "GATEHOUSE_SOCIAL_OKTA_ISSUER": "http://acme.okta.com"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_OKTA_ISSUER", "must use https"}},
		},
		{
			name:     "issuer with a query",
			env:      map[string]string{"GATEHOUSE_SOCIAL_OKTA_TYPE": "oidc", "GATEHOUSE_SOCIAL_OKTA_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_OKTA_CLIENT_SECRET": "b", "GATEHOUSE_SOCIAL_OKTA_ISSUER": "https://acme.okta.com?x=1"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_OKTA_ISSUER", "no query"}},
		},
		{
			name:     "scopes without openid",
			env:      map[string]string{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET": "b", "GATEHOUSE_SOCIAL_GOOGLE_SCOPES": "email profile"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_GOOGLE_SCOPES", "openid"}},
		},
		{
			name:     "bad auto link",
			env:      map[string]string{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET": "b", "GATEHOUSE_SOCIAL_GOOGLE_AUTO_LINK": "sure"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_GOOGLE_AUTO_LINK", "not a boolean"}},
		},
		{
			name: "settings of another type",
			env: map[string]string{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET": "b", "GATEHOUSE_SOCIAL_GOOGLE_TENANT": "common", "GATEHOUSE_SOCIAL_GOOGLE_ALLOWED_ORGS": "acme",
				"GATEHOUSE_SOCIAL_GITHUB_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_GITHUB_CLIENT_SECRET": "b", "GATEHOUSE_SOCIAL_GITHUB_ISSUER": "https://github.com"},
			problems: [][2]string{
				{"GATEHOUSE_SOCIAL_GITHUB_ISSUER", "not used by github"},
				{"GATEHOUSE_SOCIAL_GOOGLE_TENANT", "not used by google"},
				{"GATEHOUSE_SOCIAL_GOOGLE_ALLOWED_ORGS", "not used by google"},
			},
		},
		{
			name:     "microsoft tenant by domain name",
			env:      map[string]string{"GATEHOUSE_SOCIAL_MICROSOFT_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_MICROSOFT_CLIENT_SECRET": "b", "GATEHOUSE_SOCIAL_MICROSOFT_TENANT": "contoso.onmicrosoft.com"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_MICROSOFT_TENANT", "GUID"}},
		},
		{
			name:     "microsoft scopes without User.Read",
			env:      map[string]string{"GATEHOUSE_SOCIAL_MICROSOFT_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_MICROSOFT_CLIENT_SECRET": "b", "GATEHOUSE_SOCIAL_MICROSOFT_SCOPES": "openid email"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_MICROSOFT_SCOPES", "User.Read"}},
		},
		{
			name: "github enterprise server, incomplete",
			env: map[string]string{"GATEHOUSE_SOCIAL_GITHUB_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_GITHUB_CLIENT_SECRET": "b",
				"GATEHOUSE_SOCIAL_GITHUB_API_URL": "https://ghe.example/api/v3", "GATEHOUSE_SOCIAL_GITHUB_TOKEN_URL": "ftp://ghe.example/token"},
			problems: [][2]string{
				{"GATEHOUSE_SOCIAL_GITHUB_AUTH_URL", "required with the other"},
				{"GATEHOUSE_SOCIAL_GITHUB_TOKEN_URL", "not an absolute http(s) URL"},
			},
		},
		{
			name: "github scopes",
			env: map[string]string{"GATEHOUSE_SOCIAL_GITHUB_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_GITHUB_CLIENT_SECRET": "b",
				"GATEHOUSE_SOCIAL_GITHUB_SCOPES": "read:user", "GATEHOUSE_SOCIAL_GITHUB_ALLOWED_ORGS": "acme,not an org"},
			problems: [][2]string{
				{"GATEHOUSE_SOCIAL_GITHUB_SCOPES", "user:email"},
				{"GATEHOUSE_SOCIAL_GITHUB_SCOPES", "read:org"},
				{"GATEHOUSE_SOCIAL_GITHUB_ALLOWED_ORGS", `"not an org"`},
			},
		},
		{
			name:     "secret twice",
			env:      map[string]string{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET": "b", "GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET_FILE": secretFile},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET_FILE", "not both"}},
		},
		{
			name:     "secret file missing",
			env:      map[string]string{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET_FILE": "/nonexistent/secret"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET_FILE", "cannot read /nonexistent/secret"}},
		},
		{
			name:     "same setting spelled twice",
			env:      map[string]string{"GATEHOUSE_SOCIAL_GOOGLE_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_google_CLIENT_ID": "a", "GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET": "b"},
			problems: [][2]string{{"GATEHOUSE_SOCIAL_google_CLIENT_ID", "set twice"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var environ []string
			for k, v := range tc.env {
				environ = append(environ, k+"="+v)
			}
			environ = append(environ, "GATEHOUSE_ISSUER=https://id.example", "HOME=/root")
			got, problems := FromEnv(environ, func(k string) string { return tc.env[k] })
			if tc.want != nil || len(tc.problems) == 0 {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("settings (-want +got):\n%s", diff)
				}
			}
			if len(problems) != len(tc.problems) {
				t.Fatalf("problems:\n%s\nwant %d", strings.Join(problems, "\n"), len(tc.problems))
			}
			for i, want := range tc.problems {
				if !strings.HasPrefix(problems[i], want[0]+": ") || !strings.Contains(problems[i], want[1]) {
					t.Errorf("problem %q, want %s: …%s…", problems[i], want[0], want[1])
				}
			}
			if len(problems) == 0 {
				if _, err := Build(got, nil); err != nil {
					t.Errorf("Build: %v", err)
				}
			}
		})
	}
}

func TestFromMapConfigFileKeys(t *testing.T) {
	got, problems := FromMap(map[string]string{
		"social_okta_type": "oidc", "social_okta_client_id": "a", "social_okta_client_secret": "b",
		"social_okta_issuer": "https://acme.okta.com/oauth2/default", "database_url": "ignored",
		"GATEHOUSE_SOCIAL_OKTA_AUTO_LINK": "1", "social_okta_tenant_id": "x",
	})
	want := []Settings{{ID: "okta", Type: "oidc", ClientID: "a", ClientSecret: "b", Scopes: []string{"openid", "email", "profile"}, Issuer: "https://acme.okta.com/oauth2/default", AutoLink: true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
	if len(problems) != 1 || !strings.HasPrefix(problems[0], "social_okta_tenant_id: unknown setting TENANT_ID") {
		t.Errorf("problems %q", problems)
	}
}

func TestNewValidates(t *testing.T) {
	_, err := New(Settings{ID: "okta", Type: TypeOIDC, ClientID: "a"}, nil)
	if err == nil || !strings.Contains(err.Error(), "GATEHOUSE_SOCIAL_OKTA_CLIENT_SECRET: required") || !strings.Contains(err.Error(), "GATEHOUSE_SOCIAL_OKTA_ISSUER: required") {
		t.Errorf("New = %v", err)
	}
	if _, err := New(Settings{ID: "bad id", Type: TypeGoogle, ClientID: "a", ClientSecret: "b"}, nil); err == nil {
		t.Error("New accepted a bad ID")
	}
}

func TestRegistry(t *testing.T) {
	reg, err := Build([]Settings{
		{ID: "google", ClientID: "a", ClientSecret: "b"},
		{ID: "github", ClientID: "a", ClientSecret: "b", AutoLink: true},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(reg.IDs(), []string{"github", "google"}) {
		t.Errorf("IDs %v", reg.IDs())
	}
	if p, ok := reg.Get("github"); !ok || p.Type() != TypeGitHub || !p.AutoLink() {
		t.Errorf("Get(github) = %v, %v", p, ok)
	}
	if _, ok := reg.Get("gitlab"); ok {
		t.Error("Get(gitlab) found something")
	}
	g, _ := reg.Get("google")
	if _, err := NewRegistry(g, g); err == nil {
		t.Error("duplicate IDs accepted")
	}
	_, err = Build([]Settings{{ID: "google", ClientID: "a"}, {ID: "okta", ClientID: "a", ClientSecret: "b"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "GATEHOUSE_SOCIAL_GOOGLE_CLIENT_SECRET") || !strings.Contains(err.Error(), "GATEHOUSE_SOCIAL_OKTA_TYPE") {
		t.Errorf("Build = %v, want both bad blocks named", err)
	}
	var none *Registry
	if _, ok := none.Get("google"); ok || none.IDs() != nil || len(none.Probe(t.Context())) != 0 {
		t.Error("nil registry is not empty")
	}
}
