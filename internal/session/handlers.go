package session

import (
	"context"
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
)

// RefreshCookie is the name of the refresh token cookie for browser apps.
// The __Host- prefix makes browsers insist on Secure, Path=/ and no Domain.
const RefreshCookie = "__Host-gatehouse_refresh"

// PublicClients finds the public client a sign-in names (oauth.Clients).
type PublicClients interface {
	// Public returns the public client id: ok is false for an unknown,
	// confidential or disabled client.
	Public(ctx context.Context, id string) (cl store.Client, ok bool, err error)
}

// Grants decides what a sign-in is granted (apis.Registry).
type Grants interface {
	// UserGrant checks the resources (RFC 8707) and the space-separated
	// scope a sign-in asks for and returns the audience (nil: the
	// default) and scope it is granted; apis.ErrInvalidTarget or
	// apis.ErrInvalidScope when it asks for what does not exist.
	UserGrant(ctx context.Context, resources []string, scope string) (audience []string, granted string, err error)
}

// Handlers serves sign-in and the user's sessions.
type Handlers struct {
	Service *Service
	Auth    auth.Authenticator
	// Clients checks the client_id of a sign-in.
	Clients PublicClients
	// Grants checks the resource and scope of a sign-in; without it a
	// sign-in may ask for neither.
	Grants Grants
	// Cookie delivers the refresh token as an HttpOnly, Secure,
	// SameSite=Strict cookie instead of in the response body.
	Cookie bool
}

// Routes mounts the endpoints.
func (h *Handlers) Routes(rt *httpapi.Router) {
	rt.Handle("POST /v1/auth/login", h.login)
	rt.Handle("POST /v1/auth/logout", auth.Require(h.Auth, h.logout))
	rt.Handle("POST /v1/auth/logout-all", auth.Require(h.Auth, h.logoutAll))
	rt.Handle("POST /v1/auth/not-me", h.notMe)
	rt.Handle("GET /v1/me/sessions", auth.Require(h.Auth, h.list))
	rt.Handle("DELETE /v1/me/sessions/{id}", auth.Require(h.Auth, h.delete))
}

// LoginResponse is the body of a successful sign-in.
type LoginResponse struct {
	AccessToken  string       `json:"access_token"`
	TokenType    string       `json:"token_type"`
	ExpiresIn    int          `json:"expires_in"`
	RefreshToken string       `json:"refresh_token,omitempty"`
	SessionID    string       `json:"session_id"`
	User         user.Profile `json:"user"`
}

func (h *Handlers) login(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Email    string         `json:"email"`
		Password string         `json:"password"`
		DeviceID string         `json:"device_id"`
		ClientID string         `json:"client_id"`
		Resource apis.Resources `json:"resource"`
		Scope    string         `json:"scope"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	m := httpapi.MetaOf(r, in.DeviceID)
	// What is asked for is checked before the password, so that a request
	// for an unknown API changes nothing (no failed attempt counted).
	if h.Grants != nil {
		var err error
		if m.Audience, m.Scope, err = h.Grants.UserGrant(r.Context(), in.Resource, in.Scope); err != nil {
			return err
		}
	} else if len(in.Resource) > 0 || in.Scope != "" {
		return apis.ErrInvalidTarget
	}
	if in.ClientID != "" {
		cl, ok, err := h.Clients.Public(r.Context(), in.ClientID)
		if err != nil {
			return err
		}
		if !ok {
			return ErrUnknownPublicClient
		}
		// The first-party client's sessions have no client (see
		// store.Session.ClientID).
		if cl.ID != FirstPartyClientID {
			m.ClientID = cl.ID
		}
	}
	res, err := h.Service.Login(r.Context(), in.Email, in.Password, m)
	if err != nil {
		return err
	}
	return h.WriteResult(w, res)
}

// WriteResult answers a first sign-in step: the token response, or the
// second step it needs (mfa_required, mfa_enrollment_required).
func (h *Handlers) WriteResult(w http.ResponseWriter, res Result) error {
	w.Header().Set("Cache-Control", "no-store")
	if ch := res.Challenge; ch != nil {
		if ch.EnrollmentToken != "" {
			return httpapi.WriteJSON(w, http.StatusOK, map[string]any{
				"mfa_enrollment_required": true, "enrollment_token": ch.EnrollmentToken, "methods": ch.Methods,
			})
		}
		return httpapi.WriteJSON(w, http.StatusOK, map[string]any{
			"mfa_required": true, "mfa_token": ch.MFAToken, "methods": ch.Methods,
		})
	}
	return h.WriteTokens(w, res)
}

// WriteTokens answers a completed sign-in with the token response (and the
// refresh cookie in cookie mode).
func (h *Handlers) WriteTokens(w http.ResponseWriter, res Result) error {
	out := LoginResponse{
		AccessToken: res.AccessToken, TokenType: "Bearer", ExpiresIn: res.ExpiresIn,
		RefreshToken: res.RefreshToken, SessionID: res.Session.ID, User: user.ProfileOf(res.User),
	}
	if h.Cookie {
		SetRefreshCookie(w, res.RefreshToken, res.Session.ExpiresAt)
		out.RefreshToken = ""
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

// SetRefreshCookie sets (or, with an empty token, clears) the refresh
// token cookie.
func SetRefreshCookie(w http.ResponseWriter, token string, expires time.Time) {
	c := &http.Cookie{Name: RefreshCookie, Value: token, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode}
	if token == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires
	}
	http.SetCookie(w, c)
}

func (h *Handlers) logout(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	if p.SessionID == "" {
		return httpapi.NewProblem(http.StatusBadRequest, "no_session", "This access token does not belong to a session.")
	}
	if err := h.Service.Logout(r.Context(), p.UserID, p.SessionID, httpapi.MetaOf(r, "")); err != nil {
		return err
	}
	if h.Cookie {
		SetRefreshCookie(w, "", time.Time{})
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) logoutAll(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	m := httpapi.MetaOf(r, "")
	m.ActorID = p.UserID
	if err := h.Service.revokeUserSessions(r.Context(), p.UserID, "", "logout_all", m); err != nil {
		return err
	}
	h.Service.securityEvent(r.Context(), p.UserID, p.UserID, "user.logged_out_everywhere", m, nil)
	if h.Cookie {
		SetRefreshCookie(w, "", time.Time{})
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// SessionView is a session as its owner (or an admin) sees it.
type SessionView struct {
	ID         string    `json:"id"`
	Current    bool      `json:"current"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	Browser    string    `json:"browser"`
	OS         string    `json:"os"`
	DeviceType string    `json:"device_type"`
	AMR        []string  `json:"amr"`
	// Location and ASN are where the session started, when the GeoIP
	// databases know (GATEHOUSE_GEOIP_CITY_DB, GATEHOUSE_GEOIP_ASN_DB).
	Location *LocationView `json:"location,omitempty"`
	ASN      uint32        `json:"asn,omitempty"`
	// Risk is the sign-in's risk assessment, when it was scored.
	Risk *RiskView `json:"risk,omitempty"`
}

// LocationView is an approximate place.
type LocationView struct {
	Country string `json:"country"`
	City    string `json:"city,omitempty"`
}

// RiskView is a risk score and the codes of its reasons.
type RiskView struct {
	Score   int      `json:"score"`
	Reasons []string `json:"reasons"`
}

// ViewOf renders a session; current marks the caller's own.
func ViewOf(s store.Session, current string) SessionView {
	amr := s.AMR
	if amr == nil {
		amr = []string{}
	}
	v := SessionView{
		ID: s.ID, Current: s.ID == current, CreatedAt: s.CreatedAt.UTC(), LastSeenAt: s.LastSeenAt.UTC(), ExpiresAt: s.ExpiresAt.UTC(),
		IP: s.IP, UserAgent: s.UserAgent, Browser: s.Browser, OS: s.OS, DeviceType: s.DeviceType, AMR: amr, ASN: s.ASN,
	}
	if s.Country != "" {
		v.Location = &LocationView{Country: s.Country, City: s.City}
	}
	if s.Risk != nil {
		v.Risk = &RiskView{Score: s.Risk.Score, Reasons: append([]string{}, s.Risk.Reasons...)}
	}
	return v
}

func (h *Handlers) list(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	sessions, err := h.Service.List(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	out := make([]SessionView, 0, len(sessions))
	for _, s := range sessions {
		out = append(out, ViewOf(s, p.SessionID))
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (h *Handlers) delete(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	if err := h.Service.Logout(r.Context(), p.UserID, r.PathValue("id"), httpapi.MetaOf(r, "")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// notMe redeems the token of a "this wasn't me" link (see Service.NotMe):
// 200 {"sessions_ended": n}.
func (h *Handlers) notMe(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Token string `json:"token"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	n, err := h.Service.NotMe(r.Context(), in.Token, httpapi.MetaOf(r, ""))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusOK, map[string]int{"sessions_ended": n})
}
