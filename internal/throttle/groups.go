package throttle

import (
	"net/http"
	"strings"
)

// groupOf names the route group (see ratepolicy.Groups) of a request that
// matched the route pattern: the routes each group covers are listed here
// and nowhere else. Every other authenticated /v1 call is "api"; a
// request that is none of these has no group (rules by method and path
// still apply).
func groupOf(pattern string, r *http.Request) string {
	if g, ok := groups[pattern]; ok {
		return g
	}
	_, path, _ := strings.Cut(pattern, " ")
	switch {
	case strings.HasPrefix(path, "/v1/admin/"):
		return "admin"
	case strings.HasPrefix(path, "/v1/") && r.Header.Get("Authorization") != "":
		return "api"
	}
	return ""
}

var groups = map[string]string{
	"POST /v1/auth/login":                    "login",
	"POST /v1/auth/register":                 "register",
	"POST /v1/auth/verify-email/resend":      "email_request",
	"POST /v1/auth/password/forgot":          "email_request",
	"POST /v1/auth/mfa/verify":               "mfa_verify",
	"POST /v1/auth/mfa/challenge":            "mfa_verify",
	"POST /oauth2/token":                     "token",
	"POST /oauth2/introspect":                "introspect",
	"POST /oauth2/revoke":                    "introspect",
	"GET /v1/auth/oauth/{provider}/start":    "oauth_start",
	"GET /v1/auth/oauth/{provider}/callback": "oauth_start",
	"POST /v1/auth/magic-link":               "magic_link",
	"POST /v1/auth/magic-link/verify":        "magic_link",
}
