package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
)

// Stable error codes. Callers show them to users and count them in
// metrics; they do not change between releases.
const (
	CodeAccessDenied        = "access_denied"        // the user (or the provider) refused
	CodeInvalidGrant        = "invalid_grant"        // bad, expired, reused code or PKCE verifier
	CodeInvalidIDToken      = "invalid_id_token"     // signature, format or missing ID token
	CodeNonceMismatch       = "nonce_mismatch"       // ID token not minted for this attempt
	CodeAudienceMismatch    = "audience_mismatch"    // ID token minted for another client
	CodeTokenExpired        = "token_expired"        // ID token past its exp
	CodeIssuerMismatch      = "issuer_mismatch"      // ID token from another issuer or tenant
	CodeDomainNotAllowed    = "domain_not_allowed"   // Google Workspace domain (hd) not allowed
	CodeOrgNotAllowed       = "org_not_allowed"      // no allowed GitHub organisation
	CodeProviderUnavailable = "provider_unavailable" // timeouts, network, 5xx: counts for circuit breakers
	CodeProviderError       = "provider_error"       // anything else
)

// descriptions are the user-facing texts. They are fixed so that nothing
// from the provider (let alone a token or secret) reaches a user or a URL.
var descriptions = map[string]string{
	CodeAccessDenied:        "The sign-in was cancelled or refused at the provider.",
	CodeInvalidGrant:        "The sign-in code is invalid or has expired; start again.",
	CodeInvalidIDToken:      "The provider's identity token could not be verified.",
	CodeNonceMismatch:       "The provider's identity token does not belong to this sign-in attempt.",
	CodeAudienceMismatch:    "The provider's identity token was issued to another application.",
	CodeTokenExpired:        "The provider's identity token has expired; start again.",
	CodeIssuerMismatch:      "The provider's identity token was issued by an unexpected party.",
	CodeDomainNotAllowed:    "Accounts from this domain may not sign in here.",
	CodeOrgNotAllowed:       "This account is not a member of an organisation allowed to sign in here.",
	CodeProviderUnavailable: "The provider is unavailable right now; try again later.",
	CodeProviderError:       "Sign-in with the provider failed.",
}

// Error is a provider failure with a stable Code and a fixed, user-safe
// Description. Err is the cause, for logs; it never holds tokens or
// secrets either, but may name URLs and provider error codes.
type Error struct {
	Code        string
	Description string
	Err         error
}

func (e *Error) Error() string {
	s := "provider: " + e.Code
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// newError returns an *Error with the standard description for code.
func newError(code string, cause error) *Error {
	d, ok := descriptions[code]
	if !ok {
		d = descriptions[CodeProviderError]
	}
	return &Error{Code: code, Description: d, Err: cause}
}

func errorf(code, format string, args ...any) *Error {
	return newError(code, fmt.Errorf(format, args...))
}

// IsUnavailable reports whether err means the provider is down or slow
// (timeouts, network errors, 5xx): the failures a circuit breaker counts.
func IsUnavailable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeProviderUnavailable
}

// FromCallbackError turns the error parameters of an authorisation
// response (RFC 6749 §4.1.2.1) into an *Error. The provider's description
// is kept in Err for logs only (shortened), never in Description, because
// anyone can put text into a callback URL.
func FromCallbackError(errParam, description string) error {
	code := CodeProviderError
	switch errParam {
	case "access_denied", "consent_required", "interaction_required", "login_required", "account_selection_required":
		code = CodeAccessDenied
	case "temporarily_unavailable", "server_error":
		// server_error is how RFC 6749 says "500" through a redirect.
		code = CodeProviderUnavailable
	}
	return errorf(code, "authorisation response error %q: %q", clip(errParam, 64), clip(description, 200))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// classify maps a failure of an outgoing call to an *Error. Errors that
// are already an *Error keep their code.
func classify(err error) *Error {
	var pe *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, context.Canceled):
		// The caller gave up (the browser went away): not the provider's
		// fault, so not provider_unavailable.
		return newError(CodeProviderError, err)
	case errors.Is(err, context.DeadlineExceeded):
		return newError(CodeProviderUnavailable, err)
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return classifyTokenError(re)
	}
	var ne net.Error // *url.Error, *net.OpError, DNS errors, timeouts
	if errors.As(err, &ne) {
		return newError(CodeProviderUnavailable, err)
	}
	return newError(CodeProviderError, err)
}

// classifyTokenError maps a token endpoint error response. The cause
// keeps the status and the RFC 6749 error code, not the body.
func classifyTokenError(re *oauth2.RetrieveError) *Error {
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	cause := fmt.Errorf("token endpoint: HTTP %d, error %q", status, clip(re.ErrorCode, 64))
	switch {
	case status >= 500 || status == http.StatusTooManyRequests:
		return newError(CodeProviderUnavailable, cause)
	}
	switch re.ErrorCode {
	case "invalid_grant", "bad_verification_code": // the latter is GitHub's
		return newError(CodeInvalidGrant, cause)
	case "temporarily_unavailable", "server_error", "slow_down":
		return newError(CodeProviderUnavailable, cause)
	case "access_denied":
		return newError(CodeAccessDenied, cause)
	}
	return newError(CodeProviderError, cause)
}

// statusError classifies an unexpected HTTP status from an API call
// (discovery, user info, GitHub, Microsoft Graph).
func statusError(what string, resp *http.Response) *Error {
	cause := fmt.Errorf("%s: HTTP %d", what, resp.StatusCode)
	switch {
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests:
		return newError(CodeProviderUnavailable, cause)
	case resp.StatusCode == http.StatusForbidden && resp.Header.Get("X-RateLimit-Remaining") == "0":
		// GitHub's primary rate limit: transient.
		return newError(CodeProviderUnavailable, cause)
	}
	return newError(CodeProviderError, cause)
}

// isKeyFetchFailure reports whether a go-oidc verification error came
// from fetching the JWKS (network, 5xx, bad document) rather than from the
// token itself. go-oidc wraps every such failure as "fetching keys …" and
// has no typed error for it; TestJWKSUnavailable pins the wording.
func isKeyFetchFailure(err error) bool {
	return strings.Contains(err.Error(), "fetching keys")
}
