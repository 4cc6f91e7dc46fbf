package event

import (
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/sms"
	"github.com/gatehouse/gatehouse/internal/store"
)

// The events Gatehouse publishes. Each is published inside the transaction
// of its change. Meta is the request that caused it (empty for a job).

// UserRegistered: an account was created by sign-up.
type UserRegistered struct {
	User store.User
	Meta httpapi.Meta
}

// How an account was created other than by sign-up (UserCreated.Via).
const (
	CreatedByAdmin  = "admin"  // an operator (gatehouse users create)
	CreatedByImport = "import" // a line of an import (gatehouse users import)
	CreatedBySocial = "social" // a sign-in with an external identity, which signed up
)

// UserCreated: an account was created other than by sign-up (Via, one of
// the CreatedBy… values; Provider is the external identity's provider of
// a social sign-up).
type UserCreated struct {
	User     store.User
	Via      string
	Provider string
	Meta     httpapi.Meta
}

// UserUpdated: fields of an account's profile changed. Fields names them
// as GET /v1/me does (name, email, pending_email, …); User is the account
// after the change.
type UserUpdated struct {
	User   store.User
	Fields []string
	Meta   httpapi.Meta
}

// UserDeleted: an administrator deleted an account (whose address was
// Email).
type UserDeleted struct {
	UserID string
	Email  string
	Meta   httpapi.Meta
}

// How an address was proven (EmailVerified.Via).
const (
	VerifiedByLink          = "verification_link" // the link sent at sign-up (or resent)
	VerifiedByEmailChange   = "email_change"      // the link sent to a new address: it is now the account's
	VerifiedByPasswordReset = "password_reset"    // a reset link reached the mailbox
	VerifiedByMagicLink     = "magic_link"        // a magic link reached the mailbox
	VerifiedByProvider      = "provider"          // a provider trusted for linking vouched for it
)

// EmailVerified: the account's address Email, unverified until then,
// was proven by its owner (Via, one of the VerifiedBy… values).
type EmailVerified struct {
	UserID string
	Email  string
	Via    string
	Meta   httpapi.Meta
}

// UserStatusChanged: an administrator disabled or enabled an account
// (Status, from Previous). Only a real change is published.
type UserStatusChanged struct {
	UserID   string
	Status   store.UserStatus
	Previous store.UserStatus
	Meta     httpapi.Meta
}

// Locks on an account's sign-in (UserUnlocked.Locks).
const (
	LockSignIn = "sign_in" // wrong passwords (security.account_locked)
	LockMFA    = "mfa"     // wrong second-factor codes (security.mfa_locked)
)

// UserUnlocked: an administrator lifted the locks in force on an
// account's sign-in (Locks, LockSignIn and LockMFA values). A lock that
// simply expires publishes nothing.
type UserUnlocked struct {
	UserID string
	Locks  []string
	Meta   httpapi.Meta
}

// PasswordChanged: a user changed their password, or reset it by email
// (Reset).
type PasswordChanged struct {
	UserID string
	Reset  bool
	Meta   httpapi.Meta
}

// SessionStarted: a sign-in finished and its session started.
type SessionStarted struct {
	Session store.Session
	Meta    httpapi.Meta
}

// SessionsRevoked: sessions of the user ended before their time
// (SessionIDs, each revoked now, not before), for Reason as the sessions
// record it: logout, logout_all, revoked_by_admin, account_disabled,
// account_deleted, password_changed, password_reset, session_limit,
// revoked_by_client, client_mismatch, superseded,
// unverified_credentials_cleared, not_me. A session ended by a refresh
// token's reuse is told by RefreshTokenReused instead, and one ended by
// the risk score of a refresh (risk_anomaly) by SessionAnomaly.
type SessionsRevoked struct {
	UserID     string
	SessionIDs []string
	Reason     string
	Meta       httpapi.Meta
}

// RefreshTokenReused: a rotated refresh token came back after its grace
// period; its session was revoked.
type RefreshTokenReused struct {
	Session store.Session
	Meta    httpapi.Meta
}

// APIKeyLeaked: a leak report named a live API key, which was revoked
// (Key, as revoked); URL and Source say where it was found (as the
// scanning service reported, truncated).
type APIKeyLeaked struct {
	Key    store.APIKey
	URL    string
	Source string
	Meta   httpapi.Meta
}

// PasskeyCloned: an assertion of a passkey came with a sign count below
// the one stored (PresentedCount < StoredCount): the credential may have
// been cloned. It was flagged and is refused from then on; the user was
// emailed.
type PasskeyCloned struct {
	UserID         string
	PasskeyID      string
	Name           string
	StoredCount    uint32
	PresentedCount uint32
	Meta           httpapi.Meta
}

// AccountLocked: too many wrong passwords (Action
// "security.account_locked") or second-factor codes
// ("security.mfa_locked") locked the user's sign-in for Lock, until
// Until.
type AccountLocked struct {
	UserID string
	Action string
	Lock   time.Duration
	Until  time.Time
	Meta   httpapi.Meta
}

// SignInRisk: the risk score of a password sign-in asked for a second
// factor (Decision "step_up") or refused the sign-in ("block"); Score and
// Reasons explain it, Country, City and ASN place the address.
type SignInRisk struct {
	UserID   string
	Decision string
	Score    int
	Reasons  []store.SecurityReason
	Country  string
	City     string
	ASN      uint32
	Meta     httpapi.Meta
}

// SignInFailed: a password sign-in failed (a wrong password, or an
// address with no account). UserID is the account's, "" when there is
// none; Account is what correlation counts: the user's ID, or a keyed
// hash of the login name tried.
type SignInFailed struct {
	UserID  string
	Account string
	Meta    httpapi.Meta
}

// SecondFactorFailed: a wrong second-factor code was given for UserID.
type SecondFactorFailed struct {
	UserID string
	Meta   httpapi.Meta
}

// SecurityIncidentNotified: administrators are told of a security
// incident, as it opened at or above the alert severity or, Escalated,
// because it stayed open.
type SecurityIncidentNotified struct {
	Incident  store.SecurityIncident
	Escalated bool
}

// SecurityIncidentResolved: an administrator resolved a security
// incident.
type SecurityIncidentResolved struct {
	Incident store.SecurityIncident
	Meta     httpapi.Meta
}

// SecurityAlerted: a security event at or above the alert severity was
// recorded (one that opened or extended no incident already notified).
type SecurityAlerted struct {
	Event store.SecurityEvent
}

// SessionAnomaly: a refresh of session SessionID did not fit where and
// how the session was last seen: another country or network with another
// user agent, or impossible travel (one session used from two distant
// networks too), or its risk score reached the block threshold. Score and
// Reasons explain it; Country, City and ASN place the refresh's address.
// Revoked: the session was ended for it (reason risk_anomaly, which no
// SessionsRevoked tells), its access tokens denied and the refresh
// refused; otherwise the refresh was allowed.
type SessionAnomaly struct {
	UserID    string
	SessionID string
	Score     int
	Reasons   []store.SecurityReason
	Country   string
	City      string
	ASN       uint32
	Revoked   bool
	Meta      httpapi.Meta
}

// SignInDisowned: the user followed the "this wasn't me" link of a
// new-sign-in email: every session of theirs ended (SessionIDs, also
// published as SessionsRevoked with reason not_me), and password sign-in
// is refused until the password is reset.
type SignInDisowned struct {
	UserID     string
	SessionIDs []string
	Meta       httpapi.Meta
}

// SecondFactorEnrolled: a second factor (Method: totp, sms, email) was
// confirmed.
type SecondFactorEnrolled struct {
	UserID   string
	Method   string
	DeviceID string
}

// SecondFactorRemoved: a confirmed second factor was removed, by its
// user or when the owner of the address claimed an account set up by
// someone else.
type SecondFactorRemoved struct {
	UserID   string
	Method   string
	DeviceID string
}

// BackupCodesRegenerated: the user replaced their backup codes with Count
// new ones.
type BackupCodesRegenerated struct {
	UserID string
	Count  int
	Meta   httpapi.Meta
}

// SecondFactorVerified: a login waiting for its second factor (or a forced
// enrolment) fully succeeded and its session started. PendingToken is
// the mfa_token or enrollment_token the login started with, under which
// features keep work deferred until then. It is published in a
// transaction of its own after the session started: a handler's error
// does not undo the sign-in.
type SecondFactorVerified struct {
	UserID       string
	PendingToken string
	Meta         httpapi.Meta
}

// IdentityLinked: an external identity was linked to an account.
type IdentityLinked struct {
	UserID     string
	IdentityID string
	Provider   string
	Meta       httpapi.Meta
}

// IdentityUnlinked: an external identity was removed from an account, by
// its user or when the owner of the address claimed an account set up by
// someone else.
type IdentityUnlinked struct {
	UserID     string
	IdentityID string
	Provider   string
	Meta       httpapi.Meta
}

// OrganizationMemberAdded: an administrator made a user a member of an
// organisation (with Role). A change of a member's role publishes
// nothing.
type OrganizationMemberAdded struct {
	OrganizationID string
	UserID         string
	Role           string
	Meta           httpapi.Meta
}

// OrganizationMemberRemoved: an administrator took a user out of an
// organisation.
type OrganizationMemberRemoved struct {
	OrganizationID string
	UserID         string
	Meta           httpapi.Meta
}

// OrganizationDeleted: an administrator deleted an organisation, with
// its memberships, roles and grants.
type OrganizationDeleted struct {
	OrganizationID string
	Meta           httpapi.Meta
}

// SMSDeliveryFailed: the SMS worker gave up on a text message. Published
// by the worker in a transaction of its own.
type SMSDeliveryFailed struct {
	Args  sms.SendArgs
	Cause error
}

// EventName implements Event.
func (UserRegistered) EventName() string { return "user.registered" }

// EventName implements Event.
func (UserCreated) EventName() string { return "user.created" }

// EventName implements Event.
func (UserUpdated) EventName() string { return "user.updated" }

// EventName implements Event.
func (UserDeleted) EventName() string { return "user.deleted" }

// EventName implements Event.
func (EmailVerified) EventName() string { return "user.email_verified" }

// EventName implements Event.
func (UserStatusChanged) EventName() string { return "user.status_changed" }

// EventName implements Event.
func (UserUnlocked) EventName() string { return "user.unlocked" }

// EventName implements Event.
func (PasswordChanged) EventName() string { return "user.password_changed" }

// EventName implements Event.
func (SessionStarted) EventName() string { return "session.started" }

// EventName implements Event.
func (SessionsRevoked) EventName() string { return "session.revoked" }

// EventName implements Event.
func (RefreshTokenReused) EventName() string { return "session.refresh_token_reused" }

// EventName implements Event.
func (AccountLocked) EventName() string { return "security.account_locked" }

// EventName implements Event.
func (APIKeyLeaked) EventName() string { return "security.api_key_leaked" }

// EventName implements Event.
func (PasskeyCloned) EventName() string { return "security.passkey_cloned" }

// EventName implements Event.
func (SecondFactorEnrolled) EventName() string { return "mfa.enrolled" }

// EventName implements Event.
func (SignInRisk) EventName() string { return "security.sign_in_risk" }

// EventName implements Event.
func (SignInFailed) EventName() string { return "security.sign_in_failed" }

// EventName implements Event.
func (SecondFactorFailed) EventName() string { return "mfa.failed" }

// EventName implements Event.
func (SecurityIncidentNotified) EventName() string { return "security.incident_notified" }

// EventName implements Event.
func (SecurityIncidentResolved) EventName() string { return "security.incident_resolved" }

// EventName implements Event.
func (SecurityAlerted) EventName() string { return "security.alerted" }

// EventName implements Event.
func (SessionAnomaly) EventName() string { return "security.session_anomaly" }

// EventName implements Event.
func (SignInDisowned) EventName() string { return "security.sign_in_disowned" }

// EventName implements Event.
func (SecondFactorRemoved) EventName() string { return "mfa.removed" }

// EventName implements Event.
func (BackupCodesRegenerated) EventName() string { return "mfa.backup_codes_regenerated" }

// EventName implements Event.
func (SecondFactorVerified) EventName() string { return "mfa.verified" }

// EventName implements Event.
func (IdentityLinked) EventName() string { return "identity.linked" }

// EventName implements Event.
func (IdentityUnlinked) EventName() string { return "identity.unlinked" }

// EventName implements Event.
func (OrganizationMemberAdded) EventName() string { return "organization.member_added" }

// EventName implements Event.
func (OrganizationMemberRemoved) EventName() string { return "organization.member_removed" }

// EventName implements Event.
func (OrganizationDeleted) EventName() string { return "organization.deleted" }

// EventName implements Event.
func (SMSDeliveryFailed) EventName() string { return "sms.delivery_failed" }
