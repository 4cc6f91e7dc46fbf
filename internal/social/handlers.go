package social

import (
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/session"
)

// Handlers serves the social sign-in and magic-link endpoints.
type Handlers struct {
	Service  *Service
	Auth     auth.Authenticator
	Sessions *session.Handlers // writes token and MFA responses
}

// Routes mounts the endpoints.
func (h *Handlers) Routes(rt *httpapi.Router) {
	rt.Handle("GET /v1/auth/oauth/{provider}/start", h.start)
	rt.Handle("GET /v1/auth/oauth/{provider}/callback", h.callback)
	rt.Handle("POST /v1/auth/oauth/exchange", h.exchange)
	rt.Handle("POST /v1/auth/oauth/link/confirm", h.confirmLink)
	rt.Handle("POST /v1/me/identities/{provider}/link", auth.Require(h.Auth, h.linkStart))
	rt.Handle("GET /v1/me/identities", auth.Require(h.Auth, h.identities))
	rt.Handle("DELETE /v1/me/identities/{id}", auth.Require(h.Auth, h.unlink))
	rt.Handle("POST /v1/auth/magic-link", h.magicLink)
	rt.Handle("POST /v1/auth/magic-link/verify", h.magicVerify)
}

func meta(r *http.Request) httpapi.Meta { return auth.RequestMeta(r) }

// setBrowserCookie binds the flow to this browser. SameSite=Lax lets it
// travel on the provider's top-level redirect back to the callback.
func (h *Handlers) setBrowserCookie(w http.ResponseWriter, value string) {
	http.SetCookie(w, &http.Cookie{
		Name: h.Service.Config.Cookie, Value: value, Path: "/v1/", HttpOnly: true,
		Secure: h.Service.Config.SecureCookie, SameSite: http.SameSiteLaxMode,
		MaxAge: int(h.Service.Config.StateTTL / time.Second),
	})
}

func (h *Handlers) start(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := CheckCodeChallenge(q.Get("code_challenge"), q.Get("code_challenge_method")); err != nil {
		return err
	}
	u, browser, err := h.Service.Start(r.Context(), r.PathValue("provider"), q.Get("redirect_to"), q.Get("code_challenge"), "")
	if err != nil {
		return err
	}
	h.setBrowserCookie(w, browser)
	http.Redirect(w, r, u, http.StatusFound)
	return nil
}

func (h *Handlers) callback(w http.ResponseWriter, r *http.Request) error {
	var browser string
	if c, err := r.Cookie(h.Service.Config.Cookie); err == nil {
		browser = c.Value
	}
	out, err := h.Service.Callback(r.Context(), r.PathValue("provider"), r.URL.Query(), browser, meta(r))
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: h.Service.Config.Cookie, Value: "", Path: "/v1/", MaxAge: -1, HttpOnly: true, Secure: h.Service.Config.SecureCookie, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, out.URL(), http.StatusFound)
	return nil
}

func (h *Handlers) respond(w http.ResponseWriter, res session.Result) error {
	w.Header().Set("Cache-Control", "no-store")
	if ch := res.Challenge; ch != nil {
		if ch.EnrollmentToken != "" {
			return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"mfa_enrollment_required": true, "enrollment_token": ch.EnrollmentToken, "methods": ch.Methods})
		}
		return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"mfa_required": true, "mfa_token": ch.MFAToken, "methods": ch.Methods})
	}
	return h.Sessions.WriteTokens(w, res)
}

func (h *Handlers) exchange(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Code         string `json:"code"`
		CodeVerifier string `json:"code_verifier"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	res, err := h.Service.Exchange(r.Context(), in.Code, in.CodeVerifier, httpapi.MetaOf(r, ""))
	if err != nil {
		return err
	}
	return h.respond(w, res)
}

func (h *Handlers) confirmLink(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		LinkToken string `json:"link_token"`
		Password  string `json:"password"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	res, err := h.Service.ConfirmLink(r.Context(), in.LinkToken, in.Password, httpapi.MetaOf(r, ""), meta(r))
	if err != nil {
		return err
	}
	return h.respond(w, res)
}

func (h *Handlers) linkStart(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	u, browser, err := h.Service.StartLink(r.Context(), p, r.PathValue("provider"), r.URL.Query().Get("redirect_to"))
	if err != nil {
		return err
	}
	h.setBrowserCookie(w, browser)
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"authorization_url": u})
}

// IdentityView is a linked identity.
type IdentityView struct {
	ID       string    `json:"id"`
	Provider string    `json:"provider"`
	Email    string    `json:"email,omitempty"`
	LinkedAt time.Time `json:"linked_at"`
}

func (h *Handlers) identities(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	ids, err := h.Service.Identities(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	out := make([]IdentityView, 0, len(ids))
	for _, i := range ids {
		out = append(out, IdentityView{ID: i.ID, Provider: i.Provider, Email: i.Email, LinkedAt: i.LinkedAt.UTC()})
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"identities": out})
}

func (h *Handlers) unlink(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	if err := h.Service.Unlink(r.Context(), p.UserID, r.PathValue("id"), meta(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) magicLink(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Email string `json:"email"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	if err := h.Service.RequestMagicLink(r.Context(), in.Email, meta(r)); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"message": "If an account exists for this address, we sent it a sign-in link."})
}

func (h *Handlers) magicVerify(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Token string `json:"token"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	res, err := h.Service.VerifyMagicLink(r.Context(), in.Token, httpapi.MetaOf(r, ""))
	if err != nil {
		return err
	}
	return h.respond(w, res)
}
