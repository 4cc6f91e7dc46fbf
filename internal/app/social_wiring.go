package app

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/mfa"
	"github.com/gatehouse/gatehouse/internal/social"
	"github.com/gatehouse/gatehouse/internal/social/provider"
)

// socialProviders builds the provider registry from the
// GATEHOUSE_SOCIAL_<ID>_<KEY> settings; a bad block stops start-up with
// one line per problem, naming the variable.
func socialProviders(cfg *config.Config) (*provider.Registry, error) {
	settings, problems := provider.FromMap(cfg.Social.Providers)
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return provider.Build(settings, &http.Client{Timeout: 10 * time.Second})
}

// newSocialService builds social sign-in and the magic-link fallback.
func newSocialService(d *deps, registry *provider.Registry) *social.Service {
	return &social.Service{
		Store: socialStore(d.db.store), Providers: registry, KV: d.state.kv, Limiter: d.state.limiter, Keys: d.keys,
		Jobs: d.queue, Sessions: d.sessions, MFA: d.mfa, Now: time.Now, Log: d.log,
		Config:  social.DefaultConfig(d.cfg.Server.Issuer, d.cfg.AppBaseURL(), d.cfg.Social.RedirectAllowlist),
		Metrics: social.NewMetrics(d.reg),
	}
}

// linkAfterSecondFactor makes a social link confirmed with the password
// of an account with MFA wait for the second factor: social keeps it as
// long as the MFA token lives, and MFA hands it back once that login has
// fully succeeded. Starting a link from a session needs an authentication
// as recent as removing a second factor does.
func linkAfterSecondFactor(m *mfa.Service, s *social.Service) {
	if m == nil || s == nil {
		return
	}
	s.Config.DeferredLinkTTL = m.Config.TokenTTL
	s.Config.ReauthWindow = m.Config.ReauthWindow
	m.AfterSecondFactor = s.CompleteDeferredLink
}
