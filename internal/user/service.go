// Package user is the account domain: registration, email verification,
// password reset and change, the profile and the account's activity trail.
// It owns its rules and its HTTP handlers; storage is reached through the
// store contract and work that must happen (email) goes through durable
// jobs enqueued in the same transaction as the change that causes it.
package user

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/require"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Errors mapped to problems by the HTTP layer.
var (
	ErrInvalidToken           = errors.New("user: invalid or expired token")
	ErrInvalidCurrentPassword = errors.New("user: current password is wrong")
	ErrEmailTaken             = errors.New("user: email address already in use")
	// ErrEmailChangeNeedsReauth is an email change by a caller who signed
	// in too long ago and did not confirm it with the current password.
	// It is an auth.ErrReauthRequired (errors.Is holds) and answers with
	// its code and status; its detail names current_password, so Errors
	// must come before auth.Errors in the table.
	ErrEmailChangeNeedsReauth = fmt.Errorf("user: %w to change the email address", auth.ErrReauthRequired)
)

// Errors is how this package's errors answer, a list for
// httpapi.NewErrorTable.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrInvalidToken, http.StatusBadRequest, "invalid_token", "The link is invalid, expired or was already used."),
		httpapi.MapError(ErrInvalidCurrentPassword, http.StatusForbidden, "invalid_current_password", "The current password is wrong."),
		httpapi.MapError(ErrEmailTaken, http.StatusConflict, "email_taken", "The email address is already in use by another account."),
		httpapi.MapError(ErrEmailChangeNeedsReauth, http.StatusForbidden, "reauthentication_required", "Sign in again (password or a second factor) within the last 5 minutes, or give current_password, to change the email address."),
	}
}

// JobInserter enqueues a job in the caller's database transaction.
type JobInserter interface {
	InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error)
}

// SessionRevoker ends a user's sessions and refresh tokens. except, when
// set, names a session to keep (the caller's own).
type SessionRevoker interface {
	RevokeUserSessions(ctx context.Context, userID, except, reason string) error
}

// PasswordVerifier checks a signed-in user's password through the sign-in
// lockout (wrong guesses count towards locking the account). A wrong
// password is ErrInvalidCurrentPassword.
type PasswordVerifier interface {
	VerifyPassword(ctx context.Context, userID, password string, m httpapi.Meta) error
}

// Config holds the account rules that operators tune.
type Config struct {
	// AppURL is the base of links in emails: AppURL+"/verify-email?token=…".
	AppURL          string
	VerificationTTL time.Duration // default 24h
	ResetTTL        time.Duration // default 1h
	// Throttles. Email sends are limited per address and per client IP;
	// requests over the limit are answered like the others but send nothing.
	EmailPerAddress ratelimit.Limit
	EmailPerIP      ratelimit.Limit
	RegisterPerIP   ratelimit.Limit
	// PasswordChangePerUser limits current-password guesses through
	// POST /v1/me/password.
	PasswordChangePerUser ratelimit.Limit
	// EmailChangePerUser limits email change requests (each sends two
	// messages); the new address also counts against EmailPerAddress.
	EmailChangePerUser ratelimit.Limit
	// ReauthWindow is how recent a sign-in must be for an email change
	// without current_password (default 5 min, as for MFA devices).
	ReauthWindow time.Duration
}

// DefaultConfig returns the defaults for the given application URL.
func DefaultConfig(appURL string) Config {
	return Config{
		AppURL:                appURL,
		VerificationTTL:       24 * time.Hour,
		ResetTTL:              time.Hour,
		EmailPerAddress:       ratelimit.Limit{Rate: 5, Burst: 5, Period: time.Hour},
		EmailPerIP:            ratelimit.Limit{Rate: 50, Burst: 50, Period: time.Hour},
		RegisterPerIP:         ratelimit.Limit{Rate: 100, Burst: 100, Period: time.Hour},
		PasswordChangePerUser: ratelimit.Limit{Rate: 10, Burst: 10, Period: time.Hour},
		EmailChangePerUser:    ratelimit.Limit{Rate: 5, Burst: 5, Period: time.Hour},
		ReauthWindow:          5 * time.Minute,
	}
}

// Deps are what the account service is built from (see New).
type Deps struct {
	Store    Store
	Hasher   *password.Hasher
	Policy   password.Policy
	Jobs     JobInserter
	Keys     *secret.Keyring
	Limiter  ratelimit.Limiter
	Sessions SessionRevoker // nil: no sessions to end (the CLI, tests)
	// Passwords confirms sensitive changes by password; without it they
	// need a recent sign-in.
	Passwords PasswordVerifier
	Now       func() time.Time
	Log       *slog.Logger
	Config    Config
}

// Service implements the account use cases. Build it with New; it is not
// changed afterwards.
type Service struct{ Deps }

// New checks d and builds the service. Now defaults to time.Now, Log to a
// logger that discards.
func New(d Deps) (*Service, error) {
	if err := require.Deps("user", map[string]bool{
		"Store": d.Store != nil, "Hasher": d.Hasher != nil, "Jobs": d.Jobs != nil,
		"Keys": d.Keys != nil, "Limiter": d.Limiter != nil,
	}); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{Deps: d}, nil
}

func (s *Service) now() time.Time { return s.Now().UTC() }

// audit appends an account event in the transaction tx.
func (s *Service) audit(ctx context.Context, tx Tx, m httpapi.Meta, subject, action string, data map[string]any) error {
	actor := m.ActorID
	return tx.AppendAuditEvent(ctx, store.AuditEvent{
		OccurredAt: s.now(), ActorID: actor, SubjectID: subject, Action: action,
		IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, Data: data,
	})
}

// sendMail enqueues a message in tx.
func (s *Service) sendMail(ctx context.Context, tx Tx, template, to string, data mail.Data, link string) error {
	args, err := mail.NewSendArgs(s.Keys, template, to, data, link)
	if err != nil {
		return err
	}
	_, err = s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
	return err
}

// link builds an emailed link carrying a one-time token.
func (s *Service) link(path, token string) string {
	return strings.TrimRight(s.Config.AppURL, "/") + path + "?token=" + token
}

// addrKey names the send throttle of a normalized email address by its
// pseudonym: no rate-limit key holds an address.
func (s *Service) addrKey(norm string) string {
	return "email:addr:" + s.Keys.Pseudonym(secret.RateLimitPurpose, norm)
}

// allow takes one unit from a throttle and reports whether there was room
// (and, if not, when to retry). A limiter failure is returned as an error:
// throttles fail closed.
func (s *Service) allow(ctx context.Context, key string, l ratelimit.Limit) (bool, time.Duration, error) {
	res, err := s.Limiter.AllowN(ctx, key, l, 1)
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", strings.SplitN(key, ":", 2)[0], err)
	}
	return res.Allowed > 0, res.RetryAfter, nil
}

func rateLimited(retry time.Duration) error {
	p := httpapi.NewProblem(http.StatusTooManyRequests, "rate_limited", "Too many requests; try again later.")
	p.RetryAfter = max(1, int(retry.Round(time.Second)/time.Second))
	return p
}

// checkPassword runs the policy and turns violations into field errors.
func (s *Service) checkPassword(ctx context.Context, errs *fieldErrors, field, pw string, u store.User) {
	if pw == "" {
		errs.add(field, "required", "A password is required.")
		return
	}
	violations, err := s.Policy.Check(ctx, pw, password.UserContext{
		Email: u.Email, Name: u.Name, GivenName: u.GivenName, FamilyName: u.FamilyName,
	})
	if err != nil {
		// A breach service that is down does not block the user.
		s.Log.WarnContext(ctx, "breached-password check failed; continuing without it", "error", err.Error())
	}
	for _, v := range violations {
		errs.add(field, v.Rule, v.Message)
	}
}

// Register creates an account and sends the verification email. For an
// address that already has an account it creates nothing and tells that
// address someone tried to sign up; the caller answers both alike.
func (s *Service) Register(ctx context.Context, email, pw, name string, m httpapi.Meta) (string, error) {
	var errs fieldErrors
	email = checkEmail(&errs, "email", email)
	name = cleanText(&errs, "name", name, maxNameLength)
	s.checkPassword(ctx, &errs, "password", pw, store.User{Email: email, Name: name})
	if err := errs.err(); err != nil {
		return "", err
	}
	if ok, retry, err := s.allow(ctx, "register:ip:"+httpapi.LimitKey(m.IP), s.Config.RegisterPerIP); err != nil {
		return "", err
	} else if !ok {
		return "", rateLimited(retry)
	}
	// Hash first, whether or not the address is taken, so both answers take
	// the same time.
	hash, err := s.Hasher.Hash(ctx, pw)
	if err != nil {
		return "", err
	}
	norm := NormalizeEmail(email)
	existing, err := s.Store.GetUserByEmail(ctx, norm)
	switch {
	case err == nil:
		return email, s.signupAttempt(ctx, existing, m)
	case !errors.Is(err, store.ErrNotFound):
		return "", err
	}

	token, err := secret.NewToken(32)
	if err != nil {
		return "", err
	}
	err = s.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.CreateUser(ctx, store.User{
			Email: email, EmailNormalized: norm, PasswordHash: hash, Name: name, Status: store.UserActive,
		})
		if err != nil {
			return err
		}
		if err := s.issueToken(ctx, tx, u, store.PurposeVerifyEmail, u.Email, token, s.Config.VerificationTTL); err != nil {
			return err
		}
		if err := s.audit(ctx, tx, m, u.ID, "user.registered", map[string]any{"email": u.Email}); err != nil {
			return err
		}
		if err := s.sendMail(ctx, tx, mail.VerifyEmail, u.Email, mail.Data{RecipientName: u.Name, ExpiresIn: s.Config.VerificationTTL}, s.link("/verify-email", token)); err != nil {
			return err
		}
		return tx.Publish(ctx, event.UserRegistered{User: u, Meta: m})
	})
	if errors.Is(err, store.ErrConflict) {
		// Someone registered the same address a moment ago.
		existing, gerr := s.Store.GetUserByEmail(ctx, norm)
		if gerr != nil {
			return "", gerr
		}
		return email, s.signupAttempt(ctx, existing, m)
	}
	return email, err
}

// signupAttempt tells the owner of an existing account that someone tried
// to register their address (throttled per address).
func (s *Service) signupAttempt(ctx context.Context, u store.User, m httpapi.Meta) error {
	if ok, _, err := s.allow(ctx, s.addrKey(u.EmailNormalized), s.Config.EmailPerAddress); err != nil || !ok {
		return err
	}
	return s.Store.InTx(ctx, func(tx Tx) error {
		if err := s.audit(ctx, tx, m, u.ID, "user.signup_attempted", nil); err != nil {
			return err
		}
		return s.sendMail(ctx, tx, mail.SignupAttempt, u.Email, mail.Data{
			RecipientName: u.Name, Time: s.now(), IP: m.IP, UserAgent: m.UserAgent,
		}, strings.TrimRight(s.Config.AppURL, "/")+"/forgot-password")
	})
}

// issueToken stores the hash of a new one-time token (superseding older
// ones of the same purpose).
func (s *Service) issueToken(ctx context.Context, tx Tx, u store.User, purpose store.TokenPurpose, email, token string, ttl time.Duration) error {
	now := s.now()
	return tx.CreateOneTimeToken(ctx, store.OneTimeToken{
		UserID: u.ID, Purpose: purpose, TokenHash: secret.HashToken(token), Email: email,
		ExpiresAt: now.Add(ttl), CreatedAt: now,
	})
}

func checkToken(token string) error {
	var errs fieldErrors
	switch {
	case token == "":
		errs.add("token", "required", "The token is required.")
	case len(token) > 512:
		errs.add("token", "max_length", "The token is too long.")
	}
	return errs.err()
}

// VerifyEmail consumes a verification (or email change) token and marks the
// address verified (or switches the account to the new address).
func (s *Service) VerifyEmail(ctx context.Context, token string, m httpapi.Meta) (store.User, error) {
	if err := checkToken(token); err != nil {
		return store.User{}, err
	}
	hash := secret.HashToken(token)
	var out store.User
	err := s.Store.InTx(ctx, func(tx Tx) error {
		now := s.now()
		t, err := tx.ConsumeOneTimeToken(ctx, store.PurposeVerifyEmail, hash, now)
		if errors.Is(err, store.ErrNotFound) {
			t, err = tx.ConsumeOneTimeToken(ctx, store.PurposeEmailChange, hash, now)
		}
		if errors.Is(err, store.ErrNotFound) {
			return ErrInvalidToken
		}
		if err != nil {
			return err
		}
		u, err := tx.GetUserForUpdate(ctx, t.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return ErrInvalidToken
		}
		if err != nil {
			return err
		}
		mm := m
		mm.ActorID = u.ID
		switch t.Purpose {
		case store.PurposeVerifyEmail:
			if NormalizeEmail(t.Email) != u.EmailNormalized {
				return ErrInvalidToken // the address changed since the link was sent
			}
			verified := u.EmailVerifiedAt.IsZero()
			if verified {
				u.EmailVerifiedAt = now
			}
			if out, err = tx.UpdateUser(ctx, u); err != nil {
				return err
			}
			if err := s.audit(ctx, tx, mm, u.ID, "user.email_verified", map[string]any{"email": u.Email}); err != nil {
				return err
			}
			if !verified {
				return nil // verified already: nothing changed
			}
			return tx.Publish(ctx, event.EmailVerified{UserID: u.ID, Email: u.Email, Via: event.VerifiedByLink, Meta: mm})
		default: // email change
			if u.PendingEmail == "" || NormalizeEmail(u.PendingEmail) != NormalizeEmail(t.Email) {
				return ErrInvalidToken // superseded or cancelled
			}
			old := u.Email
			u.Email, u.EmailNormalized, u.EmailVerifiedAt, u.PendingEmail = u.PendingEmail, NormalizeEmail(u.PendingEmail), now, ""
			out, err = tx.UpdateUser(ctx, u)
			if errors.Is(err, store.ErrConflict) {
				return ErrEmailTaken
			}
			if err != nil {
				return err
			}
			// Reset links went to the old address, which no longer
			// speaks for the account.
			if err := tx.DeleteUserOneTimeTokens(ctx, u.ID, store.PurposePasswordReset); err != nil {
				return err
			}
			if err := s.audit(ctx, tx, mm, u.ID, "user.email_changed", map[string]any{"email": map[string]any{"old": old, "new": u.Email}}); err != nil {
				return err
			}
			if err := tx.Publish(ctx, event.UserUpdated{User: out, Fields: []string{"email", "pending_email"}, Meta: mm}); err != nil {
				return err
			}
			return tx.Publish(ctx, event.EmailVerified{UserID: u.ID, Email: out.Email, Via: event.VerifiedByEmailChange, Meta: mm})
		}
	})
	return out, err
}

// ResendVerification asks for a new verification link for the address.
// The request only enqueues a job (see EmailRequestArgs); the job sends
// the link if the address belongs to an unverified account, and does
// nothing otherwise. Requests over the throttles are dropped silently.
func (s *Service) ResendVerification(ctx context.Context, email string, m httpapi.Meta) error {
	return s.enqueueEmailRequest(ctx, RequestVerification, email, m)
}

// ForgotPassword asks for a reset link for the address. The request only
// enqueues a job (see EmailRequestArgs); the job emails a reset link if
// the address belongs to an existing, enabled account, and does nothing
// otherwise. Requests over the throttles are dropped silently.
func (s *Service) ForgotPassword(ctx context.Context, email string, m httpapi.Meta) error {
	return s.enqueueEmailRequest(ctx, RequestPasswordReset, email, m)
}

// allowEmail applies the per-IP and per-address send throttles to a
// request that would email norm, counted whether or not the address has
// an account; ok is false (and logged) when the request is over one.
func (s *Service) allowEmail(ctx context.Context, norm string, m httpapi.Meta) (bool, error) {
	for _, k := range []struct {
		key string
		l   ratelimit.Limit
	}{{"email:ip:" + httpapi.LimitKey(m.IP), s.Config.EmailPerIP}, {s.addrKey(norm), s.Config.EmailPerAddress}} {
		ok, _, err := s.allow(ctx, k.key, k.l)
		if err != nil {
			return false, err
		}
		if !ok {
			s.Log.InfoContext(ctx, "email send throttled", "throttle", strings.SplitN(k.key, ":", 3)[1])
			return false, nil
		}
	}
	return true, nil
}

// ResetPassword sets a new password with a reset token, revokes every
// session of the user and tells them by email. It lifts the password reset
// a disowned sign-in required (store.User.PasswordResetRequiredAt).
func (s *Service) ResetPassword(ctx context.Context, token, pw string, m httpapi.Meta) error {
	if err := checkToken(token); err != nil {
		return err
	}
	hash := secret.HashToken(token)
	t, err := s.Store.GetOneTimeToken(ctx, store.PurposePasswordReset, hash, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return ErrInvalidToken
	}
	if err != nil {
		return err
	}
	u, err := s.Store.GetUser(ctx, t.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !resetFor(t, u)) {
		return ErrInvalidToken
	}
	if err != nil {
		return err
	}
	var errs fieldErrors
	s.checkPassword(ctx, &errs, "password", pw, u)
	if err := errs.err(); err != nil {
		return err
	}
	newHash, err := s.Hasher.Hash(ctx, pw)
	if err != nil {
		return err
	}
	err = s.Store.InTx(ctx, func(tx Tx) error {
		now := s.now()
		t, err := tx.ConsumeOneTimeToken(ctx, store.PurposePasswordReset, hash, now)
		if errors.Is(err, store.ErrNotFound) {
			return ErrInvalidToken
		}
		if err != nil {
			return err
		}
		u, err := tx.GetUserForUpdate(ctx, t.UserID)
		if err != nil {
			return err
		}
		if !resetFor(t, u) {
			return ErrInvalidToken
		}
		u.PasswordHash = newHash
		// A reset is what a disowned sign-in ("this wasn't me") waits
		// for: password sign-in works again.
		u.PasswordResetRequiredAt = time.Time{}
		// The link reached the mailbox: that proves the address.
		verified := u.EmailVerifiedAt.IsZero()
		if verified {
			u.EmailVerifiedAt = now
		}
		if _, err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		if err := tx.DeleteUserOneTimeTokens(ctx, u.ID, store.PurposePasswordReset); err != nil {
			return err
		}
		mm := m
		mm.ActorID = u.ID
		if err := s.audit(ctx, tx, mm, u.ID, "user.password_reset", nil); err != nil {
			return err
		}
		if err := s.sendMail(ctx, tx, mail.PasswordChanged, u.Email, mail.Data{RecipientName: u.Name, Time: now, IP: m.IP, UserAgent: m.UserAgent}, ""); err != nil {
			return err
		}
		if verified {
			if err := tx.Publish(ctx, event.EmailVerified{UserID: u.ID, Email: u.Email, Via: event.VerifiedByPasswordReset, Meta: mm}); err != nil {
				return err
			}
		}
		return tx.Publish(ctx, event.PasswordChanged{UserID: u.ID, Reset: true, Meta: mm})
	})
	if err != nil {
		return err
	}
	return s.revokeSessions(ctx, u.ID, "", "password_reset")
}

// resetFor reports whether the reset token t was sent to u's current
// address. A link sent to an address the account has since left (a reset
// issued while an email change was being confirmed) must not work.
func resetFor(t store.OneTimeToken, u store.User) bool {
	return NormalizeEmail(t.Email) == u.EmailNormalized
}

func (s *Service) revokeSessions(ctx context.Context, userID, except, reason string) error {
	if s.Sessions == nil {
		return nil
	}
	return s.Sessions.RevokeUserSessions(ctx, userID, except, reason)
}

// ChangePassword replaces the password after checking the current one,
// revokes the user's other sessions and tells them by email.
func (s *Service) ChangePassword(ctx context.Context, userID, sessionID, current, next string, m httpapi.Meta) error {
	var errs fieldErrors
	if current == "" {
		errs.add("current_password", "required", "The current password is required.")
	}
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	s.checkPassword(ctx, &errs, "new_password", next, u)
	if err := errs.err(); err != nil {
		return err
	}
	if ok, retry, err := s.allow(ctx, "password-change:user:"+userID, s.Config.PasswordChangePerUser); err != nil {
		return err
	} else if !ok {
		return rateLimited(retry)
	}
	ok, _, err := s.Hasher.Verify(ctx, current, u.PasswordHash)
	if err != nil && !password.Unusable(err) {
		return err
	}
	if !ok {
		return ErrInvalidCurrentPassword
	}
	newHash, err := s.Hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	err = s.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.GetUserForUpdate(ctx, userID)
		if err != nil {
			return err
		}
		u.PasswordHash = newHash
		if _, err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		if err := tx.DeleteUserOneTimeTokens(ctx, u.ID, store.PurposePasswordReset); err != nil {
			return err
		}
		if err := s.audit(ctx, tx, m, u.ID, "user.password_changed", nil); err != nil {
			return err
		}
		if err := s.sendMail(ctx, tx, mail.PasswordChanged, u.Email, mail.Data{RecipientName: u.Name, Time: s.now(), IP: m.IP, UserAgent: m.UserAgent}, ""); err != nil {
			return err
		}
		return tx.Publish(ctx, event.PasswordChanged{UserID: u.ID, Meta: m})
	})
	if err != nil {
		return err
	}
	return s.revokeSessions(ctx, userID, sessionID, "password_changed")
}
