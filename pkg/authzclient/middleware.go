package authzclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/gatehouse/gatehouse/pkg/accesstoken"
)

// Extractor tells Require whom and what a request is about: the subject
// (a user ID), the resource and the request context of the check. An
// error refuses the request with 401 (no identifiable subject).
type Extractor func(r *http.Request) (subject string, res Resource, ctx Context, err error)

// ErrNoSubject is an Extractor's error for a request without an
// authenticated user.
var ErrNoSubject = errors.New("authzclient: the request has no authenticated user")

// AccessTokenSubject is an Extractor for services that verify Gatehouse
// access tokens with accesstoken.Middleware (which must run first): the
// subject is the token's user (sub) and request.mfa whether its amr holds
// "mfa". resource, when not nil, describes the resource of the request.
// The client IP is left out: only the service knows which proxies to
// trust; wrap the Extractor to add it. A token without a user (a client's
// own token) is ErrNoSubject.
func AccessTokenSubject(resource func(r *http.Request) Resource) Extractor {
	return func(r *http.Request) (string, Resource, Context, error) {
		claims, ok := accesstoken.ClaimsFrom(r.Context())
		if !ok || claims.Subject == "" || claims.Subject == claims.ClientID {
			return "", Resource{}, Context{}, ErrNoSubject
		}
		var res Resource
		if resource != nil {
			res = resource(r)
		}
		return claims.Subject, res, Context{MFA: slices.Contains(claims.AMR, "mfa")}, nil
	}
}

type resultKey struct{}

// ResultFrom returns the decision Require made for the request.
func ResultFrom(ctx context.Context) (Result, bool) {
	r, ok := ctx.Value(resultKey{}).(Result)
	return r, ok
}

// Require returns middleware that lets a request through only when
// Gatehouse allows permission for what extract finds in it; the decision
// is in the request context (ResultFrom). It fails closed, answering in
// problem+json (RFC 9457) with a stable code:
//
//   - 401 unauthorized: extract failed (no subject);
//   - 403 forbidden: the check denied (the reason code is in "reason");
//   - 503 authz_unavailable: Gatehouse could not be reached;
//   - 502 authz_failed: Gatehouse refused the check itself (this service's
//     client token is invalid or lacks authz:check, or the permission is
//     not valid).
func (c *Client) Require(permission string, extract Extractor) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			subject, res, rctx, err := extract(r)
			if err != nil {
				w.Header().Set("WWW-Authenticate", "Bearer")
				writeProblem(w, http.StatusUnauthorized, "unauthorized", "A user's access token is required.", "")
				return
			}
			chk := Check{Subject: subject, Permission: permission, Resource: &res, Context: &rctx}
			if isZeroResource(res) {
				chk.Resource = nil
			}
			if rctx.IP == "" && rctx.Time.IsZero() && !rctx.MFA && rctx.Country == "" {
				chk.Context = nil
			}
			result, err := c.Check(r.Context(), chk)
			switch {
			case errors.Is(err, ErrUnavailable):
				w.Header().Set("Retry-After", "1")
				writeProblem(w, http.StatusServiceUnavailable, "authz_unavailable", "The authorization service cannot be reached.", "")
				return
			case err != nil:
				writeProblem(w, http.StatusBadGateway, "authz_failed", "The authorization service refused the check.", "")
				return
			case !result.Allowed:
				writeProblem(w, http.StatusForbidden, "forbidden", "This operation needs the permission "+permission+".", result.Reason)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), resultKey{}, result)))
		})
	}
}

func isZeroResource(r Resource) bool {
	return r.Type == "" && r.ID == "" && r.OrganizationID == "" && r.OwnerID == "" && len(r.Attributes) == 0
}

func writeProblem(w http.ResponseWriter, status int, code, detail, reason string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
		Code   string `json:"code"`
		Reason string `json:"reason,omitempty"`
	}{"urn:gatehouse:problem:" + code, http.StatusText(status), status, detail, code, reason})
}
