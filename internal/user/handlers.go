package user

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Handlers serves the account endpoints.
type Handlers struct {
	Service *Service
	Auth    auth.Authenticator
}

// Routes mounts the account endpoints.
func (h *Handlers) Routes(rt *httpapi.Router) {
	rt.Handle("POST /v1/auth/register", h.register)
	rt.Handle("POST /v1/auth/verify-email", h.verifyEmail)
	rt.Handle("POST /v1/auth/verify-email/resend", h.resend)
	rt.Handle("POST /v1/auth/password/forgot", h.forgot)
	rt.Handle("POST /v1/auth/password/reset", h.reset)
	rt.Handle("GET /v1/me", auth.Require(h.Auth, h.me))
	rt.Handle("PATCH /v1/me", auth.Require(h.Auth, h.patchMe))
	rt.Handle("POST /v1/me/password", auth.Require(h.Auth, h.changePassword))
	rt.Handle("GET /v1/me/activity", auth.Require(h.Auth, h.activity))
}

func meta(r *http.Request) httpapi.Meta { return auth.RequestMeta(r) }

// RegisterResponse is the same whether or not the address had an account.
type RegisterResponse struct {
	Email   string `json:"email"`
	Message string `json:"message"`
}

func (h *Handlers) register(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Name     string `json:"name"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	email, err := h.Service.Register(r.Context(), in.Email, in.Password, in.Name, meta(r))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, RegisterResponse{
		Email:   email,
		Message: "Check your inbox: we sent a message to this address.",
	})
}

func (h *Handlers) verifyEmail(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Token string `json:"token"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	u, err := h.Service.VerifyEmail(r.Context(), in.Token, meta(r))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"email": u.Email, "email_verified": true, "email_verified_at": timePtr(u.EmailVerifiedAt),
	})
}

// accepted is the answer of the endpoints that must not tell whether an
// account exists.
func accepted(w http.ResponseWriter) error {
	return httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{
		"message": "If an account exists for this address, we sent it a message.",
	})
}

func (h *Handlers) resend(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Email string `json:"email"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	if err := h.Service.ResendVerification(r.Context(), in.Email, meta(r)); err != nil {
		return err
	}
	return accepted(w)
}

func (h *Handlers) forgot(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Email string `json:"email"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	if err := h.Service.ForgotPassword(r.Context(), in.Email, meta(r)); err != nil {
		return err
	}
	return accepted(w)
}

func (h *Handlers) reset(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Token    string `json:"token"`
		Password string `json:"password"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	if err := h.Service.ResetPassword(r.Context(), in.Token, in.Password, meta(r)); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "Your password was changed. Sign in with the new password."})
}

func (h *Handlers) me(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	u, err := h.Service.GetProfile(r.Context(), p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return auth.Unauthorized() // the account was deleted after the token was issued
	}
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, ProfileOf(u))
}

func (h *Handlers) patchMe(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	var in ProfilePatch
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	u, err := h.Service.UpdateProfile(r.Context(), p.UserID, in, meta(r))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, ProfileOf(u))
}

func (h *Handlers) changePassword(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	var in struct {
		CurrentPassword string `json:"current_password"`
		NewPassword     string `json:"new_password"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	if err := h.Service.ChangePassword(r.Context(), p.UserID, p.SessionID, in.CurrentPassword, in.NewPassword, meta(r)); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "Your password was changed; your other sessions were signed out."})
}

func (h *Handlers) activity(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			return httpapi.Validation(httpapi.FieldError{Field: "limit", Rule: "range", Message: "limit must be between 1 and 200."})
		}
		limit = n
	}
	events, next, err := h.Service.Activity(r.Context(), p.UserID, q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"events": events, "next_cursor": next})
}
