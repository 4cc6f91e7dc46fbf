package accesstoken

import (
	"context"
	"net/http"
	"strings"
)

type claimsKey struct{}

// WithClaims returns ctx carrying c, as Middleware stores them.
func WithClaims(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFrom returns the claims Middleware put in the request context.
func ClaimsFrom(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(Claims)
	return c, ok
}

// Middleware lets a request through only with a valid access token in its
// "Authorization: Bearer" header, and puts the token's claims in its
// context (ClaimsFrom). Other requests get 401 with a WWW-Authenticate
// challenge as RFC 6750 describes: error="invalid_token" when a token was
// sent but is not valid, no error code when none was sent.
func Middleware(v *Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, ok := bearer(r)
			if !ok {
				unauthorized(w, `Bearer`)
				return
			}
			c, err := v.Verify(r.Context(), raw)
			if err != nil {
				unauthorized(w, `Bearer error="invalid_token"`)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
		})
	}
}

func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func unauthorized(w http.ResponseWriter, challenge string) {
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
}
