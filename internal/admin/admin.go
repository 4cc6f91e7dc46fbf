// Package admin is the administration API: users, their sessions, OAuth
// clients and the incident kill switch. Every action lands in the audit
// log. Who counts as an administrator is decided in one place
// (Authenticator) so that full RBAC can replace it later.
package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/logging"
	"github.com/gatehouse/gatehouse/internal/oauth"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
)

// Authenticator wraps another one for the administration API: the
// caller's user must still exist (401 otherwise) and be active (403
// otherwise). It reads the user from the database: admin calls are rare
// and must see a disabled account at once. Whether the caller may do
// what the route does is RBAC's decision (auth.Admin). A client's own
// token (no user) passes through; it holds no permission.
type Authenticator struct {
	Inner auth.Authenticator
	Users interface {
		GetUser(ctx context.Context, id string) (store.User, error)
	}
}

// Authenticate implements auth.Authenticator.
func (a Authenticator) Authenticate(r *http.Request) (auth.Principal, error) {
	p, err := a.Inner.Authenticate(r)
	if err != nil || p.UserID == "" {
		return p, err
	}
	u, err := a.Users.GetUser(r.Context(), p.UserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return auth.Principal{}, auth.ErrInvalidToken
	case err != nil:
		return auth.Principal{}, err
	case u.Status != store.UserActive:
		return auth.Principal{}, httpapi.NewProblem(http.StatusForbidden, "forbidden", "This account is not active.")
	}
	return p, nil
}

// Handlers serves /v1/admin.
type Handlers struct {
	Admin   auth.Admin // each route needs the permission named in Routes
	Service *Service
	Clients *oauth.Clients
	// KillSwitch reports the current cut-off of the incident kill switch
	// (zero when none), so that it can only move forward.
	KillSwitch interface{ RevokedBefore() time.Time }
	Now        func() time.Time
	// RateLimitTiers lists the tiers of the rate-limit policy in force, the
	// only ones a client may be put in.
	RateLimitTiers func() []string
}

// Routes mounts the admin endpoints, each behind the admin check.
func (h *Handlers) Routes(rt *httpapi.Router) {
	h.Admin.Handle(rt, "GET /v1/admin/audit-events", "audit:read", h.listAudit)
	h.Admin.Handle(rt, "GET /v1/admin/users", "users:read", h.listUsers)
	h.Admin.Handle(rt, "GET /v1/admin/users/{id}", "users:read", h.getUser)
	h.Admin.Handle(rt, "DELETE /v1/admin/users/{id}", "users:write", h.deleteUser)
	h.Admin.Handle(rt, "POST /v1/admin/users/{id}/disable", "users:write", h.setStatus(store.UserDisabled))
	h.Admin.Handle(rt, "POST /v1/admin/users/{id}/enable", "users:write", h.setStatus(store.UserActive))
	h.Admin.Handle(rt, "POST /v1/admin/users/{id}/unlock", "users:write", h.unlock)
	h.Admin.Handle(rt, "GET /v1/admin/users/{id}/sessions", "sessions:read", h.userSessions)
	h.Admin.Handle(rt, "DELETE /v1/admin/users/{id}/sessions", "sessions:write", h.revokeUserSessions)
	h.Admin.Handle(rt, "POST /v1/admin/tokens/revoke-before", "tokens:revoke", h.revokeBefore)
	h.Admin.Handle(rt, "GET /v1/admin/clients", "clients:read", h.listClients)
	h.Admin.Handle(rt, "POST /v1/admin/clients", "clients:write", h.createClient)
	h.Admin.Handle(rt, "DELETE /v1/admin/clients/{id}", "clients:write", h.deleteClient)
	h.Admin.Handle(rt, "PATCH /v1/admin/clients/{id}", "clients:write", h.updateClient)
}

// meta is the request as the audit log records it: the administrator
// and where the call came from.
func meta(r *http.Request) httpapi.Meta {
	p, _ := auth.FromContext(r.Context())
	return httpapi.Meta{
		ActorID: p.UserID, IP: httpapi.ClientIP(r.Context()), UserAgent: r.UserAgent(), RequestID: logging.RequestID(r.Context()),
	}
}

// AdminUser is a user as an administrator sees it.
type AdminUser struct {
	user.Profile
	IsAdmin bool `json:"is_admin"`
}

func adminView(u store.User) AdminUser {
	return AdminUser{Profile: user.ProfileOf(u), IsAdmin: u.IsAdmin}
}

func (h *Handlers) listUsers(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.UserFilter{Email: q.Get("email"), Status: store.UserStatus(q.Get("status")), Sort: q.Get("sort"), Cursor: q.Get("cursor")}
	// Text no backend can take (NUL, invalid UTF-8) never gets here: the
	// router refuses it in any query parameter (422, rule text).
	var errs []httpapi.FieldError
	switch f.Status {
	case "", store.UserActive, store.UserDisabled, store.UserLocked:
	default:
		errs = append(errs, httpapi.FieldError{Field: "status", Rule: "enum", Message: "status must be active, disabled or locked."})
	}
	switch f.Sort {
	case "", "created_at", "-created_at", "email", "-email":
	default:
		errs = append(errs, httpapi.FieldError{Field: "sort", Rule: "enum", Message: "sort must be created_at, -created_at, email or -email."})
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			errs = append(errs, httpapi.FieldError{Field: "limit", Rule: "range", Message: "limit must be between 1 and 200."})
		}
		f.Limit = n
	}
	if len(errs) > 0 {
		return httpapi.Validation(errs...)
	}
	users, next, err := h.Service.ListUsers(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]AdminUser, 0, len(users))
	for _, u := range users {
		out = append(out, adminView(u))
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"users": out, "next_cursor": next})
}

func (h *Handlers) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := h.Service.GetUser(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, adminView(u))
}

func (h *Handlers) setStatus(status store.UserStatus) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		out, err := h.Service.SetStatus(r.Context(), meta(r), r.PathValue("id"), status)
		if err != nil {
			return err
		}
		return httpapi.WriteJSON(w, http.StatusOK, adminView(out))
	}
}

// UnlockResult is the answer of POST /v1/admin/users/{id}/unlock.
type UnlockResult struct {
	ID string `json:"id"`
	// LocksLifted names the locks that were in force and were lifted:
	// sign_in (wrong passwords), mfa (wrong second-factor codes); empty
	// when the account was not locked.
	LocksLifted []string `json:"locks_lifted"`
}

func (h *Handlers) unlock(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	lifted, err := h.Service.Unlock(r.Context(), meta(r), id)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, UnlockResult{ID: id, LocksLifted: lifted})
}

func (h *Handlers) deleteUser(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if p, _ := auth.FromContext(r.Context()); p.UserID == id {
		return httpapi.NewProblem(http.StatusConflict, "cannot_delete_self", "An administrator cannot delete their own account.")
	}
	if err := h.Service.DeleteUser(r.Context(), meta(r), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) userSessions(w http.ResponseWriter, r *http.Request) error {
	sessions, err := h.Service.UserSessions(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := make([]session.SessionView, 0, len(sessions))
	for _, s := range sessions {
		out = append(out, session.ViewOf(s, ""))
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (h *Handlers) revokeUserSessions(w http.ResponseWriter, r *http.Request) error {
	if err := h.Service.RevokeUserSessions(r.Context(), meta(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) revokeBefore(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Before string `json:"before"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, in.Before)
	if err != nil {
		return httpapi.Validation(httpapi.FieldError{Field: "before", Rule: "format", Message: "before must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z."})
	}
	if t.After(h.Now().Add(time.Minute)) {
		return httpapi.Validation(httpapi.FieldError{Field: "before", Rule: "not_future", Message: "before must not be in the future."})
	}
	// The cut-off replaces the current one; an earlier time would make
	// valid again every token issued between the two. (The cut-off is
	// kept in microseconds.)
	if h.KillSwitch != nil {
		if cur := h.KillSwitch.RevokedBefore(); !cur.IsZero() && t.Truncate(time.Microsecond).Before(cur) {
			return httpapi.NewProblem(http.StatusConflict, "cutoff_not_later",
				"before is earlier than the current cut-off, "+cur.UTC().Format(time.RFC3339Nano)+": moving the cut-off back would make revoked tokens valid again. Give that time or a later one.")
		}
	}
	n, err := h.Service.RevokeIssuedBefore(r.Context(), meta(r), t.UTC())
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"before": t.UTC(), "sessions_revoked": n})
}

// ClientView is a registered client without its secret hash.
type ClientView struct {
	ClientID  string    `json:"client_id"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	// Public is a public client (no secret; see oauth.Clients.CreatePublic).
	Public bool `json:"public"`
	// RateLimitTier is the client's tier of the rate-limit policy ("":
	// none); RateLimitExempt exempts it from every rate limit.
	RateLimitTier   string `json:"rate_limit_tier"`
	RateLimitExempt bool   `json:"rate_limit_exempt"`
}

func clientView(c store.Client) ClientView {
	sc := c.Scopes
	if sc == nil {
		sc = []string{}
	}
	return ClientView{ClientID: c.ID, Name: c.Name, Scopes: sc, CreatedAt: c.CreatedAt.UTC(), Public: c.Public,
		RateLimitTier: c.RateLimitTier, RateLimitExempt: c.RateLimitExempt}
}

func (h *Handlers) listClients(w http.ResponseWriter, r *http.Request) error {
	cs, err := h.Service.ListClients(r.Context())
	if err != nil {
		return err
	}
	out := make([]ClientView, 0, len(cs))
	for _, c := range cs {
		out = append(out, clientView(c))
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"clients": out})
}

func (h *Handlers) createClient(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name            string   `json:"name"`
		Scopes          []string `json:"scopes"`
		Public          bool     `json:"public"`
		RateLimitTier   string   `json:"rate_limit_tier"`
		RateLimitExempt bool     `json:"rate_limit_exempt"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	scopes, err := oauth.ParseScopes(strings.Join(in.Scopes, " "))
	tierErr := h.checkTier(in.RateLimitTier, in.RateLimitExempt, in.Public)
	if err != nil || in.Name == "" || len(in.Name) > 200 || (in.Public && len(scopes) > 0) || tierErr != nil {
		var fe []httpapi.FieldError
		if tierErr != nil {
			fe = append(fe, *tierErr)
		}
		if in.Name == "" || len(in.Name) > 200 {
			fe = append(fe, httpapi.FieldError{Field: "name", Rule: "required", Message: "A name of 1 to 200 characters is required."})
		}
		if err != nil {
			fe = append(fe, httpapi.FieldError{Field: "scopes", Rule: "format", Message: "Scopes must be printable ASCII without spaces, quotes or backslashes."})
		} else if in.Public && len(scopes) > 0 {
			fe = append(fe, httpapi.FieldError{Field: "scopes", Rule: "public_client", Message: "A public client has no scopes."})
		}
		return httpapi.Validation(fe...)
	}
	p, _ := auth.FromContext(r.Context())
	if in.Public {
		pc, err := h.Clients.CreatePublic(r.Context(), in.Name, oauth.ActorOf(r, p.UserID))
		if err != nil {
			return err
		}
		// No client_secret: a public client has none.
		return httpapi.WriteJSON(w, http.StatusCreated, map[string]any{
			"client_id": pc.ID, "name": pc.Name, "scopes": []string{}, "public": true,
		})
	}
	nc, err := h.Clients.Create(r.Context(), in.Name, scopes, oauth.ActorOf(r, p.UserID), oauth.WithRateLimits(in.RateLimitTier, in.RateLimitExempt))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, map[string]any{
		"client_id": nc.Client.ID, "client_secret": nc.Secret, "name": nc.Client.Name, "scopes": clientView(nc.Client).Scopes, "public": false,
		"rate_limit_tier": nc.Client.RateLimitTier, "rate_limit_exempt": nc.Client.RateLimitExempt,
	})
}

// checkTier checks a client's rate-limit settings: a tier the policy in
// force declares, and neither for a public client (whose requests prove
// nothing about it, so cannot be counted as its own).
func (h *Handlers) checkTier(tier string, exempt, public bool) *httpapi.FieldError {
	if public && (tier != "" || exempt) {
		return &httpapi.FieldError{Field: "rate_limit_tier", Rule: "public_client", Message: "A public client has no rate-limit tier or exemption."}
	}
	if tier == "" {
		return nil
	}
	var tiers []string
	if h.RateLimitTiers != nil {
		tiers = h.RateLimitTiers()
	}
	if !slices.Contains(tiers, tier) {
		return &httpapi.FieldError{Field: "rate_limit_tier", Rule: "enum", Message: "The rate-limit policy declares no tier " + strconv.Quote(tier) + " (its tiers: " + strings.Join(tiers, ", ") + ")."}
	}
	return nil
}

func (h *Handlers) updateClient(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		RateLimitTier   *string `json:"rate_limit_tier"`
		RateLimitExempt *bool   `json:"rate_limit_exempt"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	cur, err := h.Clients.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	tier, exempt := cur.RateLimitTier, cur.RateLimitExempt
	if in.RateLimitTier != nil {
		tier = *in.RateLimitTier
	}
	if in.RateLimitExempt != nil {
		exempt = *in.RateLimitExempt
	}
	if fe := h.checkTier(tier, exempt, cur.Public); fe != nil {
		return httpapi.Validation(*fe)
	}
	c, err := h.Service.SetClientRateLimits(r.Context(), meta(r), cur.ID, tier, exempt)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, clientView(c))
}

func (h *Handlers) deleteClient(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := h.Service.DeleteClient(r.Context(), meta(r), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
