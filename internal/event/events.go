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

// RefreshTokenReused: a rotated refresh token came back after its grace
// period; its session was revoked.
type RefreshTokenReused struct {
	Session store.Session
	Meta    httpapi.Meta
}

// AccountLocked: too many wrong passwords (Action
// "security.account_locked") or second-factor codes
// ("security.mfa_locked") locked the user's sign-in for Lock.
type AccountLocked struct {
	UserID string
	Action string
	Lock   time.Duration
	Meta   httpapi.Meta
}

// SecondFactorEnrolled: a second factor (Method: totp, sms, email) was
// confirmed.
type SecondFactorEnrolled struct {
	UserID   string
	Method   string
	DeviceID string
}

// SecondFactorRemoved: a second factor was removed by its user.
type SecondFactorRemoved struct {
	UserID   string
	Method   string
	DeviceID string
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
	UserID   string
	Provider string
	Meta     httpapi.Meta
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
func (PasswordChanged) EventName() string { return "user.password_changed" }

// EventName implements Event.
func (SessionStarted) EventName() string { return "session.started" }

// EventName implements Event.
func (RefreshTokenReused) EventName() string { return "session.refresh_token_reused" }

// EventName implements Event.
func (AccountLocked) EventName() string { return "security.account_locked" }

// EventName implements Event.
func (SecondFactorEnrolled) EventName() string { return "mfa.enrolled" }

// EventName implements Event.
func (SecondFactorRemoved) EventName() string { return "mfa.removed" }

// EventName implements Event.
func (SecondFactorVerified) EventName() string { return "mfa.verified" }

// EventName implements Event.
func (IdentityLinked) EventName() string { return "identity.linked" }

// EventName implements Event.
func (SMSDeliveryFailed) EventName() string { return "sms.delivery_failed" }
