package mfa

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/session"
)

// ScopeEnroll marks a principal authenticated by an enrollment_token: it
// may only enrol a factor.
const ScopeEnroll = "mfa:enroll"

// EnrollAuthenticator accepts a normal access token, or an
// enrollment_token from a login that must enrol a factor first (only on
// the enrolment endpoints it guards).
type EnrollAuthenticator struct {
	Inner   auth.Authenticator
	Service *Service
}

// Authenticate implements auth.Authenticator.
func (a EnrollAuthenticator) Authenticate(r *http.Request) (auth.Principal, error) {
	raw, ok := auth.BearerToken(r)
	if !ok || strings.Count(raw, ".") == 2 {
		return a.Inner.Authenticate(r)
	}
	p, err := a.Service.lookup(r.Context(), raw, httpapi.MetaOf(r, ""), true)
	if errors.Is(err, ErrInvalidMFAToken) {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	if err != nil {
		return auth.Principal{}, err
	}
	return auth.Principal{UserID: p.UserID, Scopes: []string{ScopeEnroll}, AMR: p.AMR, TokenID: raw}, nil
}

// Handlers serves the MFA endpoints.
type Handlers struct {
	Service  *Service
	Auth     auth.Authenticator // normal access tokens
	Sessions *session.Handlers  // writes token responses
}

// Routes mounts the endpoints.
func (h *Handlers) Routes(rt *httpapi.Router) {
	enroll := EnrollAuthenticator{Inner: h.Auth, Service: h.Service}
	rt.Handle("POST /v1/auth/mfa/challenge", h.challenge)
	rt.Handle("POST /v1/auth/mfa/verify", h.verify)
	rt.Handle("POST /v1/auth/reauthenticate", auth.Require(h.Auth, h.reauthenticate))
	rt.Handle("POST /v1/auth/reauthenticate/challenge", auth.Require(h.Auth, h.reauthChallenge))
	rt.Handle("GET /v1/me/mfa/devices", auth.Require(enroll, h.devices))
	rt.Handle("POST /v1/me/mfa/totp", auth.Require(enroll, h.enrollTOTP))
	rt.Handle("POST /v1/me/mfa/sms", auth.Require(enroll, h.enrollSMS))
	rt.Handle("POST /v1/me/mfa/email", auth.Require(enroll, h.enrollEmail))
	rt.Handle("POST /v1/me/mfa/devices/{id}/confirm", auth.Require(enroll, h.confirm))
	rt.Handle("PATCH /v1/me/mfa/devices/{id}", auth.Require(h.Auth, h.update))
	rt.Handle("DELETE /v1/me/mfa/devices/{id}", auth.Require(h.Auth, h.remove))
	rt.Handle("POST /v1/me/mfa/backup-codes", auth.Require(h.Auth, h.backupCodes))
}

func (h *Handlers) challenge(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		MFAToken string `json:"mfa_token"`
		Method   string `json:"method"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	ttl, options, err := h.Service.Challenge(r.Context(), in.MFAToken, in.Method, httpapi.MetaOf(r, ""))
	if err != nil {
		return err
	}
	out := map[string]any{"method": in.Method, "expires_in": int(ttl.Seconds())}
	if options != nil {
		out["options"] = options
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

func (h *Handlers) verify(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		MFAToken   string          `json:"mfa_token"`
		Method     string          `json:"method"`
		Code       string          `json:"code"`
		Credential json.RawMessage `json:"credential"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	res, err := h.Service.Verify(r.Context(), in.MFAToken, in.Method, Answer{Code: in.Code, Credential: in.Credential}, httpapi.MetaOf(r, ""))
	if err != nil {
		return err
	}
	if ch := res.Challenge; ch != nil {
		// The factor passed, and the login must now enrol one the policy
		// allows: answered as a login that must enrol.
		w.Header().Set("Cache-Control", "no-store")
		return httpapi.WriteJSON(w, http.StatusOK, map[string]any{
			"mfa_enrollment_required": true, "enrollment_token": ch.EnrollmentToken, "methods": ch.Methods,
		})
	}
	return h.Sessions.WriteTokens(w, res)
}

func (h *Handlers) reauthenticate(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	var in struct {
		Password   string          `json:"password"`
		Method     string          `json:"method"`
		Code       string          `json:"code"`
		Credential json.RawMessage `json:"credential"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	at, exp, err := h.Service.Reauthenticate(r.Context(), p, in.Password, in.Method, Answer{Code: in.Code, Credential: in.Credential}, httpapi.MetaOf(r, ""))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": exp})
}

// reauthChallenge begins a reauthentication by passkey: the assertion
// options, bound to the caller's session.
func (h *Handlers) reauthChallenge(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	var in struct {
		Method string `json:"method"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	options, err := h.Service.ReauthChallenge(r.Context(), p, in.Method)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"method": in.Method, "options": options, "expires_in": int(passkeyTTL.Seconds())})
}

func (h *Handlers) devices(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	ds, n, err := h.Service.Devices(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"devices": ds, "backup_codes_remaining": n})
}

func (h *Handlers) enrollTOTP(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	e, err := h.Service.EnrollTOTP(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusCreated, e)
}

func (h *Handlers) enrollSMS(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	var in struct {
		PhoneNumber string `json:"phone_number"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	id, err := h.Service.EnrollSMS(r.Context(), p.UserID, in.PhoneNumber, httpapi.MetaOf(r, ""))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (h *Handlers) enrollEmail(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	id, err := h.Service.EnrollEmail(r.Context(), p.UserID, httpapi.MetaOf(r, ""))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, map[string]string{"id": id})
}

// confirm activates a device; for a login that had to enrol first
// (enrollment_token), it also finishes that login with a token response.
func (h *Handlers) confirm(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	var in struct {
		Code string `json:"code"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	d, err := h.Service.ConfirmDevice(r.Context(), p.UserID, r.PathValue("id"), in.Code)
	if err != nil {
		return err
	}
	if p.HasScope(ScopeEnroll) {
		res, err := h.Service.FinishEnrollment(r.Context(), p.TokenID, d.Type, httpapi.MetaOf(r, ""))
		if err != nil {
			return err
		}
		return h.Sessions.WriteTokens(w, res)
	}
	return httpapi.WriteJSON(w, http.StatusOK, viewOf(d))
}

func (h *Handlers) update(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	var in struct {
		Name      *string `json:"name"`
		IsDefault *bool   `json:"is_default"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	d, err := h.Service.UpdateDevice(r.Context(), p.UserID, r.PathValue("id"), in.Name, in.IsDefault)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, viewOf(d))
}

func (h *Handlers) remove(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	if err := h.Service.RemoveDevice(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) backupCodes(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	codes, err := h.Service.RegenerateBackupCodes(r.Context(), p)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"codes": codes})
}
