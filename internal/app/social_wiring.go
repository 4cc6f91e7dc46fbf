package app

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/mfa"
	"github.com/gatehouse/gatehouse/internal/session"
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

// newSocialService builds social sign-in and the magic-link fallback. A
// link confirmed with the password of an account with MFA waits for the
// second factor as long as the MFA token lives, and starting a link from
// a session needs an authentication as recent as removing a second factor
// does: both come from MFA's settings.
func newSocialService(d *deps, registry *provider.Registry, sessions *session.Service, m *mfa.Service) (*social.Service, error) {
	c := social.DefaultConfig(d.cfg.Server.Issuer, d.cfg.AppBaseURL(), d.cfg.Social.RedirectAllowlist)
	c.DeferredLinkTTL, c.ReauthWindow = m.Config.TokenTTL, m.Config.ReauthWindow
	return social.New(social.Deps{
		Store: socialStore(d.db.store, d.bus), Providers: registry, KV: d.state.kv, Limiter: d.state.limiter, Keys: d.keys,
		Jobs: d.queue, Sessions: sessions, Now: d.now, Log: d.log, Config: c,
		Metrics: social.NewMetrics(d.reg),
	})
}
