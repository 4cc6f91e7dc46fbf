package passkey

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Handlers serves the passkey endpoints.
type Handlers struct {
	Service *Service
	// Auth authenticates the account's routes (access tokens); Enroll
	// also accepts the enrollment_token of a login that must enrol a
	// factor (mfa.EnrollAuthenticator), on registration only.
	Auth, Enroll auth.Authenticator
	// FinishEnrollment completes a login that had to enrol a factor once
	// it registered the passkey pk (mfa.Service.FinishEnrollmentWith, with
	// pk's amr).
	FinishEnrollment func(r *http.Request, enrollmentToken string, pk store.Passkey) (session.Result, error)
	// CheckEnrollable refuses a registration the user's MFA policy
	// forbids (mfa.Service.CheckEnrollable with method webauthn); nil
	// allows every one.
	CheckEnrollable func(ctx context.Context, userID string) error
	Sessions        *session.Handlers // writes token responses
	// Demo serves /passkeys-demo (development only).
	Demo bool
}

// Routes mounts the endpoints. Without a Service (passkeys off) each
// answers ErrDisabled.
func (h *Handlers) Routes(rt *httpapi.Router) {
	on := func(f httpapi.HandlerFunc) httpapi.HandlerFunc {
		if h.Service == nil {
			return func(http.ResponseWriter, *http.Request) error { return ErrDisabled }
		}
		return f
	}
	rt.Handle("POST /v1/me/passkeys/register/begin", auth.Require(h.Enroll, on(h.registerBegin)))
	rt.Handle("POST /v1/me/passkeys/register/finish", auth.Require(h.Enroll, on(h.registerFinish)))
	rt.Handle("GET /v1/me/passkeys", auth.Require(h.Auth, on(h.list)))
	rt.Handle("PATCH /v1/me/passkeys/{id}", auth.Require(h.Auth, on(h.rename)))
	rt.Handle("DELETE /v1/me/passkeys/{id}", auth.Require(h.Auth, on(h.remove)))
	rt.Handle("POST /v1/auth/passkey/begin", on(h.loginBegin))
	rt.Handle("POST /v1/auth/passkey/finish", on(h.loginFinish))
	if h.Demo {
		// An HTML page for trying passkeys by hand, not part of the API.
		for _, p := range []string{"/passkeys-demo", "/passkeys-demo/app.js", "/passkeys-demo/style.css"} {
			rt.HandleUndocumented("GET "+p, http.HandlerFunc(demo))
		}
	}
}

func (h *Handlers) registerBegin(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	if err := httpapi.DecodeOptionalJSON(r, &struct{}{}); err != nil {
		return err
	}
	if h.CheckEnrollable != nil {
		if err := h.CheckEnrollable(r.Context(), p.UserID); err != nil {
			return err
		}
	}
	b, err := h.Service.BeginRegistration(r.Context(), p)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"registration_token": b.Token, "options": b.Options, "expires_in": int(CeremonyTTL.Seconds())})
}

func (h *Handlers) registerFinish(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	var in struct {
		RegistrationToken string          `json:"registration_token"`
		Credential        json.RawMessage `json:"credential"`
		Name              string          `json:"name"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	pk, err := h.Service.FinishRegistration(r.Context(), p, in.RegistrationToken, in.Credential, in.Name, httpapi.MetaOf(r, ""))
	if err != nil {
		return err
	}
	if p.HasScope(ScopeEnroll) && h.FinishEnrollment != nil {
		res, err := h.FinishEnrollment(r, p.TokenID, pk)
		if err != nil {
			return err
		}
		return h.Sessions.WriteTokens(w, res)
	}
	return httpapi.WriteJSON(w, http.StatusCreated, ViewOf(pk))
}

func (h *Handlers) list(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	ps, err := h.Service.List(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	out := make([]View, 0, len(ps))
	for _, pk := range ps {
		out = append(out, ViewOf(pk))
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"passkeys": out})
}

func (h *Handlers) rename(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	var in struct {
		Name string `json:"name"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	pk, err := h.Service.Rename(r.Context(), p, r.PathValue("id"), in.Name, httpapi.MetaOf(r, ""))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, ViewOf(pk))
}

func (h *Handlers) remove(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	if err := h.Service.Remove(r.Context(), p, r.PathValue("id"), httpapi.MetaOf(r, "")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) loginBegin(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Email string `json:"email"`
	}
	if err := httpapi.DecodeOptionalJSON(r, &in); err != nil {
		return err
	}
	b, err := h.Service.BeginLogin(r.Context(), in.Email)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"passkey_token": b.Token, "options": b.Options, "expires_in": int(CeremonyTTL.Seconds())})
}

func (h *Handlers) loginFinish(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		PasskeyToken string          `json:"passkey_token"`
		Credential   json.RawMessage `json:"credential"`
		DeviceID     string          `json:"device_id"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	res, err := h.Service.FinishLogin(r.Context(), in.PasskeyToken, in.Credential, httpapi.MetaOf(r, in.DeviceID))
	if err != nil {
		return err
	}
	return h.Sessions.WriteResult(w, res)
}
