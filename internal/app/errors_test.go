package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/mfa"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/sms"
	"github.com/gatehouse/gatehouse/internal/social"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/token"
	"github.com/gatehouse/gatehouse/internal/user"
)

// TestErrorTableAnswers pins the answer of every mapped error: status,
// code, detail and Retry-After, exactly as clients see them. The rows were
// written when the table was a global filled by init() functions and
// checked against that code; building the table in the wiring must not
// change one byte of them.
func TestErrorTableAnswers(t *testing.T) {
	const (
		reauthDetail = "Sign in again (password or a second factor) within the last 5 minutes to do this."
		outage       = "The service is temporarily unavailable; try again shortly."
	)
	cases := []struct {
		err        error
		status     int
		code       string
		detail     string
		retryAfter string
	}{
		{store.ErrUnavailable, 503, "service_unavailable", outage, "5"},
		{kv.ErrUnavailable, 503, "service_unavailable", outage, "5"},
		{store.ErrNotFound, 404, "not_found", "The resource was not found.", ""},
		{store.ErrConflict, 409, "conflict", "The resource conflicts with an existing one.", ""},
		{store.ErrInvalidCursor, 400, "invalid_cursor", "The pagination cursor is not valid.", ""},
		{store.ErrInvalidText, 422, "validation_failed", "The request holds text that is not valid UTF-8 or contains a NUL character.", ""},
		// An outage wrapped together with "not found" is an outage.
		{fmt.Errorf("%w: %w", store.ErrNotFound, kv.ErrUnavailable), 503, "service_unavailable", outage, "5"},
		// The revocation state is read from kv: its outage detail is the
		// generic one when the kv error is wrapped inside.
		{fmt.Errorf("%w: %w", token.ErrUnavailable, kv.ErrUnavailable), 503, "service_unavailable", outage, "5"},

		{sms.ErrInvalidPhone, 422, "invalid_phone_number", "The phone number is not valid; give it in international form, starting with + and the country code.", ""},
		{sms.ErrCountryNotAllowed, 422, "phone_country_not_allowed", "Text messages to this country are not enabled.", ""},
		{sms.ErrNotMobile, 422, "phone_not_mobile", "The phone number cannot receive text messages.", ""},

		{token.ErrUnavailable, 503, "service_unavailable", "Token revocation state cannot be read right now; try again.", "5"},

		{user.ErrInvalidToken, 400, "invalid_token", "The link is invalid, expired or was already used.", ""},
		{user.ErrInvalidCurrentPassword, 403, "invalid_current_password", "The current password is wrong.", ""},
		{user.ErrEmailTaken, 409, "email_taken", "The email address is already in use by another account.", ""},
		{user.ErrEmailChangeNeedsReauth, 403, "reauthentication_required", "Sign in again (password or a second factor) within the last 5 minutes, or give current_password, to change the email address.", ""},

		{session.ErrInvalidCredentials, 401, "invalid_credentials", "The email address or password is wrong.", ""},
		{session.ErrEmailNotVerified, 403, "email_not_verified", "Verify your email address before signing in.", ""},
		{session.ErrAccountDisabled, 403, "account_disabled", "This account is disabled.", ""},
		{session.ErrTooManySessions, 409, "too_many_sessions", "The account has reached its limit of concurrent sessions.", ""},
		{session.ErrInvalidGrant, 401, "invalid_grant", "The refresh token is invalid, expired or revoked.", ""},

		{mfa.ErrInvalidMFAToken, 401, "invalid_mfa_token", "The MFA token is invalid, expired or was used up; sign in again.", ""},
		{mfa.ErrInvalidCode, 401, "invalid_code", "The code is wrong, expired or was already used.", ""},
		{mfa.ErrMethodUnavailable, 400, "method_unavailable", "This method is not set up for the account or not allowed.", ""},
		// MFA's removal of a factor and social's linking of an identity
		// return the shared error.
		{auth.ErrReauthRequired, 403, "reauthentication_required", reauthDetail, ""},
		{mfa.ErrAlreadyConfirmed, 409, "already_confirmed", "The device is already confirmed.", ""},
		{mfa.ErrSecondFactorNeedsPassword, 403, "password_sign_in_required", "Your only second factor is the one this sign-in already used (an email code after a link to the same mailbox, or the same passkey); sign in with your password.", ""},
		{mfa.ErrPolicyConflict, 403, "mfa_policy_conflict", "The MFA policies of your organisations have no second factor in common, so you cannot sign in; ask an administrator.", ""},

		{social.ErrUnknownProvider, 404, "unknown_provider", "No such sign-in provider is configured.", ""},
		{social.ErrRedirectNotAllowed, 400, "redirect_not_allowed", "redirect_to is not on the allowlist (GATEHOUSE_REDIRECT_ALLOWLIST).", ""},
		{social.ErrInvalidState, 400, "invalid_state", "The sign-in attempt is unknown, expired, already used or from another browser; start again.", ""},
		{social.ErrInvalidCode, 400, "invalid_code", "The code is invalid, expired or was already used.", ""},
		{social.ErrLastSignInMethod, 409, "last_sign_in_method", "This is the account's last way to sign in; add a password, a passkey or another identity first.", ""},
		{social.ErrIdentityInUse, 409, "identity_in_use", "This external account is linked to another account.", ""},
		{social.ErrInvalidChallenge, 400, "invalid_code_challenge", "code_challenge must be the S256 challenge (43 base64url characters) with code_challenge_method S256.", ""},

		{errors.New("something else"), 500, "internal_error", "An unexpected error occurred. Quote the request ID when reporting it.", ""},
	}
	errs, err := errorTable()
	if err != nil {
		t.Fatal(err)
	}
	ew := httpapi.ErrorWriter{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Errors: errs}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			w := httptest.NewRecorder()
			// Wrapped, as services return them.
			ew.Write(w, httptest.NewRequest(http.MethodGet, "/", nil), fmt.Errorf("doing something: %w", c.err))
			var p httpapi.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if w.Code != c.status || p.Status != c.status || p.Code != c.code || p.Detail != c.detail || p.Type != httpapi.ProblemTypePrefix+c.code {
				t.Errorf("answer = %d %+v\nwant %d %s %q", w.Code, p, c.status, c.code, c.detail)
			}
			if got := w.Header().Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, c.retryAfter)
			}
		})
	}
}

// TestDomainErrorsAreMappedOnlyThroughTheTable: importing a domain package
// registers nothing; an ErrorWriter without the table answers every
// domain error as an unexpected one.
func TestDomainErrorsAreMappedOnlyThroughTheTable(t *testing.T) {
	ew := httpapi.ErrorWriter{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, list := range [][]httpapi.ErrorMapping{sms.Errors(), token.Errors(), user.Errors(), session.Errors(), mfa.Errors(), social.Errors(), auth.Errors()} {
		for _, m := range list {
			w := httptest.NewRecorder()
			ew.Write(w, httptest.NewRequest(http.MethodGet, "/", nil), m.Err)
			if w.Code != http.StatusInternalServerError {
				t.Errorf("%v without the table = %d, want 500", m.Err, w.Code)
			}
		}
	}
}

// TestOneReauthenticationError: MFA, social sign-in and the account share
// auth.ErrReauthRequired; the account's email change wraps it for its own
// detail.
func TestOneReauthenticationError(t *testing.T) {
	if !errors.Is(user.ErrEmailChangeNeedsReauth, auth.ErrReauthRequired) {
		t.Error("user.ErrEmailChangeNeedsReauth is not an auth.ErrReauthRequired")
	}
	// Mapped the other way round, the email change's row could never be
	// used.
	if _, err := httpapi.NewErrorTable(auth.Errors(), user.Errors()); err == nil {
		t.Error("auth's row before user's was accepted")
	}
}
