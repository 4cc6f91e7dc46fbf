// Package provider signs users in with external identity providers: Google,
// GitHub, Microsoft Entra ID and any OpenID Connect provider (Okta,
// Keycloak, Auth0, GitLab …).
//
// Every provider implements [Provider]: it builds the authorisation URL
// for a state, a PKCE verifier (always S256) and a nonce, exchanges the
// returned code, and yields a normalised [Profile]. Providers come from
// configuration blocks GATEHOUSE_SOCIAL_<ID>_<SETTING> (see [FromEnv]),
// are built by [New] and kept in a [Registry] by ID. Adding a provider
// type is one file with a constructor plus a case in [New].
//
// OpenID Connect providers are discovered lazily, on first use, and the
// result is cached, so that start-up does not fail while a provider is
// briefly down; configuration mistakes still fail at start-up. ID tokens
// are verified with github.com/coreos/go-oidc/v3 (signature against the
// provider's JWKS, issuer, audience, expiry); this package adds the nonce
// (compared in constant time), azp, at_hash when present, and each type's
// own rules (Google's hd, Microsoft's tenant-specific issuers).
//
// Failures are *[Error] values with stable codes (CodeAccessDenied …);
// [IsUnavailable] picks out the ones a circuit breaker should count.
package provider
