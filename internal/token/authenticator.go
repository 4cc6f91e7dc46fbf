package token

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// Verifier verifies access tokens; *Manager is one.
type Verifier interface {
	Verify(ctx context.Context, raw string) (Claims, error)
}

// Authenticator is the auth.Authenticator for Gatehouse's own API: it turns
// the request's bearer access token into an auth.Principal.
type Authenticator struct {
	Tokens Verifier
}

var _ auth.Authenticator = Authenticator{}

// Errors is how this package's errors answer, a list for
// httpapi.NewErrorTable.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		// A revocation state that cannot be read refuses the request, as a
		// retryable server error rather than a 401 that would make clients
		// throw their tokens away.
		httpapi.MapUnavailable(ErrUnavailable, "Token revocation state cannot be read right now; try again."),
	}
}

// Authenticate implements auth.Authenticator. A request without a bearer
// token is auth.ErrNoCredentials; a malformed, expired or revoked token is
// auth.ErrInvalidToken (wrapping the reason);
// an unreadable revocation state is returned as it is (ErrUnavailable),
// which auth.Require turns into a server error: the request is refused
// either way. IsAdmin is left false; a token does not carry it.
func (a Authenticator) Authenticate(r *http.Request) (auth.Principal, error) {
	if p, err, ok := auth.Recall(r); ok {
		return p, err // verified already for this request (auth.Remember)
	}
	raw, ok := auth.BearerToken(r)
	if !ok {
		return auth.Principal{}, auth.ErrNoCredentials
	}
	c, err := a.Tokens.Verify(r.Context(), raw)
	if errors.Is(err, ErrInvalid) {
		return auth.Principal{}, fmt.Errorf("%w: %w", auth.ErrInvalidToken, err)
	}
	if err != nil {
		return auth.Principal{}, err
	}
	return Principal(c), nil
}

// Principal returns the caller described by verified claims.
func Principal(c Claims) auth.Principal {
	return auth.Principal{
		UserID:    c.Subject,
		SessionID: c.SessionID,
		ClientID:  c.ClientID,
		TokenID:   c.ID,
		Scopes:    c.Scopes(),
		AMR:       c.AMR,
		AuthTime:  c.AuthTime,
		ExpiresAt: c.ExpiresAt,
	}
}
