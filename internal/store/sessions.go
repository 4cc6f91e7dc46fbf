package store

import (
	"context"
	"time"
)

// Session is one sign-in: the family that its refresh tokens descend in.
type Session struct {
	ID                string // UUIDv7, generated when empty
	UserID            string
	ClientID          string // the client the user signed in through; empty for Gatehouse's own API
	CreatedAt         time.Time
	LastSeenAt        time.Time
	ExpiresAt         time.Time // absolute end (refresh token lifetime)
	IP                string
	UserAgent         string
	Browser           string
	OS                string
	DeviceType        string // desktop, mobile, tablet, bot, unknown
	DeviceFingerprint string // hash of device_id and user-agent family; empty when not bound
	AMR               []string
	AuthTime          time.Time
	RevokedAt         time.Time
	RevokedReason     string
	// Audience is what the sign-in was granted (RFC 8707 resources): the
	// aud of its access tokens, which a refresh may narrow. Empty: the
	// default audience in force when a token is issued.
	Audience []string
	// Scope is the space-separated scope the sign-in was granted (its
	// refresh tokens carry it too, for narrowing).
	Scope string
	// Country (ISO 3166-1 alpha-2), City and ASN locate the sign-in's
	// address (network intelligence); empty or 0 when unknown.
	Country string
	City    string
	ASN     uint32
	// Risk is the sign-in's risk assessment (internal/risk); nil when it
	// was not scored.
	Risk *SessionRisk
}

// SessionRisk is the risk assessment of a session's sign-in.
type SessionRisk struct {
	Score   int      // 0–100
	Reasons []string // reason codes ("impossible_travel"), strongest first; nil when none
}

// RefreshToken is one link of a session's refresh token chain. Only the
// SHA-256 hash of the token is stored.
type RefreshToken struct {
	ID        string // UUIDv7, generated when empty
	SessionID string
	UserID    string
	ClientID  string
	Scope     string
	TokenHash string // hex SHA-256; unique
	ParentID  string // the token this one replaced; empty for the first
	CreatedAt time.Time
	ExpiresAt time.Time // absolute: the session's ExpiresAt
	// IdleExpiresAt is when the token dies unused (idle timeout).
	IdleExpiresAt time.Time
	RotatedAt     time.Time // when it was exchanged for its successor; zero while live
	SuccessorID   string
	// SealedSuccessor is the successor's token sealed with the keyring,
	// kept only for the grace window so that a predecessor presented again
	// right away (two tabs refreshing at once) gets the same successor.
	SealedSuccessor string
	RevokedAt       time.Time
	// UserEmail is the owner's email address, read in the same query by
	// GetRefreshTokenByHash only (introspection answers with it).
	UserEmail string
}

// RotateOutcome says what RotateRefreshToken did.
type RotateOutcome int

// Outcomes of a rotation.
const (
	// Rotated: the presented token was live; it is now rotated and Issued
	// is its successor.
	Rotated RotateOutcome = iota + 1
	// GraceReplay: the presented token is the immediate predecessor of a
	// live token and was rotated within the grace window; Previous holds
	// it, with SealedSuccessor to hand out the same successor again.
	GraceReplay
	// ReuseDetected: an already-rotated token was presented outside the
	// grace window (or is not the immediate predecessor); the whole family
	// and its session have been revoked.
	ReuseDetected
	// Invalid: the token is revoked, expired (absolute or idle), or its
	// session is revoked or expired. Nothing changed.
	Invalid
	// ClientMismatch: with RotateRequest.CheckClient, a live token, or one
	// that would have been a GraceReplay, was presented by another client
	// than the one it was issued to. It has leaked: the whole family and
	// its session have been revoked (reason "client_mismatch") in the
	// same transaction, and Session is the session as revoked.
	ClientMismatch
	// ScopeNotGranted: RotateRequest.Scopes asks for a scope the token was
	// not granted (RFC 6749 §6: a refresh may narrow the grant, never
	// widen it). Nothing changed: the token stays as it was.
	ScopeNotGranted
)

// RotateResult is the result of RotateRefreshToken.
type RotateResult struct {
	Outcome  RotateOutcome
	Previous RefreshToken // the presented token as it was found (after marking, for Rotated)
	Issued   RefreshToken // the new token (Rotated only)
	Session  Session      // the session after the step
	// PreviousIP and PreviousSeenAt are the session's IP and LastSeenAt
	// as the step found them, before a rotation recorded this refresh in
	// Session: where and when the session was last seen before this
	// refresh (risk scoring compares the two). They come from the read
	// that locks the session, at no extra cost, for every outcome that
	// found the session.
	PreviousIP     string
	PreviousSeenAt time.Time
}

// RotateRequest describes one refresh.
type RotateRequest struct {
	PresentedHash string
	Next          RefreshToken // successor to store if the presented token is live (SessionID etc. filled in by the store)
	// SealedNext is Next's token sealed with the keyring, stored on the
	// presented token for the grace window.
	SealedNext string
	Now        time.Time
	Grace      time.Duration // 0 disables the grace window
	// IdleTimeout, when > 0, sets Next.IdleExpiresAt = Now + IdleTimeout
	// (capped at the session's ExpiresAt).
	IdleTimeout time.Duration
	// Session updates applied on rotation.
	LastSeenIP string
	// CheckClient binds the presented token to Client, the client that
	// presents it: "" for Gatehouse's own tokens used without client
	// authentication. A token issued to another client (compared with
	// its ClientID, "" for a first-party token) is ClientMismatch.
	// Without CheckClient any client may present it.
	CheckClient bool
	Client      string
	// Scopes, when not empty, is the scope the refresh asks for: each
	// must be one of the presented token's space-separated Scope, or the
	// outcome is ScopeNotGranted. The successor keeps the token's Scope
	// either way; narrowing is for the access token. Elements must be
	// non-empty and hold no white space.
	Scopes []string
}

// SignIn is a completed sign-in, for StartSession.
type SignIn struct {
	Session Session
	First   RefreshToken
	// PasswordHash, when set, replaces the user's password hash (a hash
	// upgraded at login).
	PasswordHash string
	// CheckedPasswordHash, when set, is the password hash the sign-in's
	// password was checked against: the sign-in is recorded only if the
	// user's hash is still this one, so a password changed or reset while
	// the sign-in was under way ends it (ErrNotFound, nothing written).
	// Such a password sign-in is refused the same way when the user's
	// PasswordResetRequiredAt is set, so that a sign-in disowned while
	// another was under way cannot be followed by that one's session.
	CheckedPasswordHash string
	Event               AuditEvent
	// RiskProfile, when set, is the user's risk profile after this
	// sign-in, stored as PutRiskProfile would in the same step (its
	// UserID is the session's user): learning a sign-in costs no round
	// trip of its own. Written only if the sign-in is.
	RiskProfile *RiskProfile
}

// SessionStore keeps sessions and their refresh token families.
type SessionStore interface {
	// CreateSession stores s and its first refresh token in one step.
	CreateSession(ctx context.Context, s Session, first RefreshToken) (Session, error)
	// StartSession records a sign-in in one transaction: the user's
	// LastLoginAt becomes the session's CreatedAt (and PasswordHash is
	// replaced when in.PasswordHash is set), the session and its first
	// refresh token are created as by CreateSession, and in.Event is
	// appended with Data["session_id"] set to the new session's ID. It
	// returns the session and the updated user; ErrNotFound if the user
	// does not exist, was deleted or disabled, or no longer has
	// in.CheckedPasswordHash, or has PasswordResetRequiredAt set while
	// in.CheckedPasswordHash is (and then nothing is written).
	StartSession(ctx context.Context, in SignIn) (Session, User, error)
	// GetSession returns the session (revoked or not), or ErrNotFound.
	GetSession(ctx context.Context, id string) (Session, error)
	// ListUserSessions returns the user's sessions that are neither revoked
	// nor expired at now, newest first.
	ListUserSessions(ctx context.Context, userID string, now time.Time) ([]Session, error)
	// RevokeSession revokes the session and every refresh token of its
	// family and returns the session. Revoking a revoked session is a no-op
	// that still returns it. ErrNotFound if absent.
	RevokeSession(ctx context.Context, id, reason string, now time.Time) (Session, error)
	// RevokeUserSessions revokes every live session of the user except
	// except (when set) and returns the IDs it revoked.
	RevokeUserSessions(ctx context.Context, userID, except, reason string, now time.Time) ([]string, error)
	// RevokeSessionsCreatedBefore revokes every live session created before
	// t (the kill switch) and returns how many.
	RevokeSessionsCreatedBefore(ctx context.Context, t time.Time, reason string, now time.Time) (int64, error)
	// GetRefreshTokenByHash returns a refresh token by the hash of its
	// value, with its owner's UserEmail, in one query on the unique index;
	// ErrNotFound if absent.
	GetRefreshTokenByHash(ctx context.Context, hash string) (RefreshToken, error)
	// RotateRefreshToken performs one refresh as a single atomic step (one
	// transaction holding the presented token's row lock): see
	// RotateOutcome. N parallel calls with one token yield one successor.
	// ErrNotFound when no token has that hash.
	RotateRefreshToken(ctx context.Context, r RotateRequest) (RotateResult, error)
	// PurgeSessions deletes sessions (with their tokens) that ended — expired
	// or revoked — before before, and refresh tokens expired before before;
	// it returns how many sessions it deleted.
	PurgeSessions(ctx context.Context, before time.Time) (int64, error)
}

// Client is a registered OAuth client (a service that calls the token,
// introspection or revocation endpoints).
type Client struct {
	ID         string // client_id
	Name       string
	SecretHash string // hash of the client secret (never the secret); "" for a public client
	// Public marks a public client (RFC 6749 §2.1: a mobile or single-page
	// app, which cannot keep a secret): it has no secret, identifies
	// itself by its ID at the token endpoint, and may only refresh the
	// tokens of the sessions started through it.
	Public     bool
	Scopes     []string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	DisabledAt time.Time
	// RateLimitTier names the tier of the rate-limit policy the client's
	// requests are counted under ("": none, the rules' own limits).
	RateLimitTier string
	// RateLimitExempt skips every rate limit for requests authenticated
	// as this client (a trusted internal service).
	RateLimitExempt bool
}

// ClientStore keeps OAuth clients.
type ClientStore interface {
	// CreateClient stores c; ErrConflict on a duplicate ID.
	CreateClient(ctx context.Context, c Client) (Client, error)
	// GetClient returns the client, or ErrNotFound.
	GetClient(ctx context.Context, id string) (Client, error)
	// ListClients returns every client, oldest first.
	ListClients(ctx context.Context) ([]Client, error)
	// DeleteClient removes the client; ErrNotFound if absent.
	DeleteClient(ctx context.Context, id string) error
	// SetClientRateLimits sets the client's RateLimitTier and
	// RateLimitExempt and its UpdatedAt to at; ErrNotFound if absent.
	SetClientRateLimits(ctx context.Context, id, tier string, exempt bool, at time.Time) (Client, error)
}
