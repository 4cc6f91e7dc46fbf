package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/internal/logging"
)

// Meta describes the client behind a request, for what a change records
// (audit events, sessions, notification emails): where the request came
// from and, for an authenticated caller, who it is. Every domain takes
// this one type.
type Meta struct {
	IP        string
	UserAgent string
	RequestID string
	DeviceID  string    // the client's own device identifier, when it sends one
	ActorID   string    // the authenticated caller, if any
	AuthTime  time.Time // when the caller last authenticated (auth_time)
	// ClientID is the registered public client a sign-in is made through
	// (POST /v1/auth/login's client_id), checked by the handler: the
	// session it starts is bound to that client. "" for Gatehouse's own
	// first-party client.
	ClientID string
	// Audience and Scope are what a sign-in is granted (RFC 8707
	// resources and the scope asked for at POST /v1/auth/login, checked by
	// the handler): the session's audience and scope. A nil Audience is
	// the default audience; an empty Scope every user scope.
	Audience []string
	Scope    string
}

// MetaOf describes the client of r; deviceID is the one the client sent,
// if any. The free-text fields are cut without splitting a character: half
// a character is invalid UTF-8, which PostgreSQL refuses to store.
func MetaOf(r *http.Request, deviceID string) Meta {
	return Meta{
		IP:        ClientIP(r.Context()),
		UserAgent: CleanText(r.UserAgent(), 512),
		RequestID: logging.RequestID(r.Context()),
		DeviceID:  CleanText(deviceID, 256),
	}
}

type suppressedKey struct{}

// WithSuppressed marks a request that a silent rate limit refused (the
// sends of an email address): the route answers as it always does and
// sends nothing, so that the answer does not tell whether the address has
// an account.
func WithSuppressed(ctx context.Context) context.Context {
	return context.WithValue(ctx, suppressedKey{}, true)
}

// Suppressed reports whether a silent rate limit refused the request (see
// WithSuppressed).
func Suppressed(ctx context.Context) bool {
	v, _ := ctx.Value(suppressedKey{}).(bool)
	return v
}
