package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
)

// pending is a login waiting for its second factor (or for enrolment).
type pending struct {
	UserID string   `json:"user_id"`
	AMR    []string `json:"amr"`
	Enroll bool     `json:"enroll"`
	// UA binds the token to the client that passed the password step.
	UA string `json:"ua"`
	// PasswordStamp is the session.PasswordStamp of the hash the password
	// step checked (empty when the login had no password step): a password
	// changed before the second factor voids the login.
	PasswordStamp string `json:"password_stamp,omitempty"`
	// EnrollAfter marks a login that must enrol an allowed factor because
	// the policy allows none of the user's: it first passes one of the
	// factors the user has, and only then gets its enrollment_token.
	EnrollAfter bool `json:"enroll_after,omitempty"`
	// Origin, on the enrolment that follows an EnrollAfter login, is that
	// login's mfa_token (already consumed): the token the sign-in started
	// with, under which subscribers of event.SecondFactorVerified find
	// deferred work.
	Origin string `json:"origin,omitempty"`
	// Client is the public client the sign-in was made through
	// (httpapi.Meta.ClientID of its first step): the session started at
	// the end is bound to it, whatever the later requests say.
	Client string `json:"client,omitempty"`
	// Audience and Scope are what the first step was granted
	// (httpapi.Meta.Audience and Scope), kept for the session likewise.
	Audience []string `json:"aud,omitempty"`
	Scope    string   `json:"scope,omitempty"`
	// Risk is the first step's risk assessment, for the session started
	// at the end (nil when it was not scored).
	Risk *store.SessionRisk `json:"risk,omitempty"`
	// StepUp marks a login its risk score asked a second factor of: a
	// user without any may pass it with a code emailed to the account's
	// address (see methodsFor).
	StepUp bool `json:"step_up,omitempty"`
}

// tokenRef names a pending login without holding its token: the hash its
// ephemeral keys are made of, and the reference its SMS jobs carry
// (sms.SendArgs.Ref) so that a failure reaches this login.
func tokenRef(tok string) string { return secret.HashToken(tok) }

func pendingKey(tok string) string { return pendingRefKey(tokenRef(tok)) }

func pendingRefKey(ref string) string { return "mfa:pending:" + ref }

func attemptsKey(tok string) string { return "mfa:attempts:" + tokenRef(tok) }

func claimKey(ref string) string { return "mfa:claim:" + ref }

func smsFailedKey(ref string) string { return "mfa:sms-failed:" + ref }

func uaHash(ua string) string { return secret.HashToken("ua\x00" + ua) }

// Begin implements session.SecondFactor: after a correct password it asks
// for a second factor when the user has one, or for enrolment when a
// policy requires one and the grace period is over.
//
// A user whose every factor the policy disallows must enrol an allowed
// one, but not on the strength of the password alone, or whoever has the
// password could enrol their own phone: such a login answers
// mfa_required like any other, with the factors the user has, and only
// once one of them passed does Verify hand out the enrollment_token.
func (s *Service) Begin(ctx context.Context, u store.User, amr []string, m httpapi.Meta) (*session.Challenge, error) {
	return s.BeginScored(ctx, u, amr, m, nil, false)
}

// BeginScored implements session.SecondFactor: Begin for a sign-in whose
// risk was scored (r, kept for the session), which with stepUp asks for a
// second factor even when Begin would not. A user with factors passes one
// of them as with Begin; a user without any passes a code emailed to the
// account's address (method email, sent by Challenge), and must then
// enrol a factor if a policy requires one and the grace period is over:
// enrolling on the strength of the password alone is what the step-up
// stops.
func (s *Service) BeginScored(ctx context.Context, u store.User, amr []string, m httpapi.Meta, r *store.SessionRisk, stepUp bool) (*session.Challenge, error) {
	f, err := s.factors(ctx, u)
	if err != nil {
		return nil, err
	}
	mustEnrol := f.pol.Required && s.now().Sub(u.CreatedAt) >= f.pol.Grace
	if slices.Contains(amr, "mfa") && allowed(f.pol, MethodWebAuthn) {
		// The first step was two factors already (a passkey that verified
		// the user, a phishing-resistant method): nothing more to ask,
		// even of a risky sign-in.
		return nil, nil
	}
	switch {
	case len(f.active) == 0 && stepUp:
		p := pending{
			UserID: u.ID, AMR: amr, UA: uaHash(m.UserAgent), PasswordStamp: passwordStamp(u, amr), Client: m.ClientID, Audience: m.Audience, Scope: m.Scope,
			Risk: r, StepUp: true, EnrollAfter: mustEnrol && len(s.enrollable(f.pol)) > 0,
		}
		methods := f.methodsFor(p)
		if len(methods) == 0 {
			// The first step proved the mailbox already.
			return nil, ErrSecondFactorNeedsPassword
		}
		tok, err := s.newPending(ctx, p)
		if err != nil {
			return nil, err
		}
		return &session.Challenge{MFAToken: tok, Methods: methods}, nil
	case len(f.active) > 0:
		p := pending{UserID: u.ID, AMR: amr, UA: uaHash(m.UserAgent), PasswordStamp: passwordStamp(u, amr), Client: m.ClientID, Audience: m.Audience, Scope: m.Scope, Risk: r, StepUp: stepUp}
		if len(f.allowed) == 0 {
			if len(s.enrollable(f.pol)) == 0 {
				return nil, ErrPolicyConflict
			}
			p.EnrollAfter = true
		}
		methods := f.methodsFor(p)
		if len(methods) == 0 {
			// Only an email code is left, and the first step proved the
			// mailbox already.
			return nil, ErrSecondFactorNeedsPassword
		}
		tok, err := s.newPending(ctx, p)
		if err != nil {
			return nil, err
		}
		return &session.Challenge{MFAToken: tok, Methods: methods}, nil
	case mustEnrol:
		return s.open(ctx, pending{UserID: u.ID, AMR: amr, Enroll: true, UA: uaHash(m.UserAgent), PasswordStamp: passwordStamp(u, amr), Client: m.ClientID, Audience: m.Audience, Scope: m.Scope, Risk: r}, f.pol)
	}
	return nil, nil
}

// open stores p, a login that must enrol a factor, and returns its
// enrollment_token.
func (s *Service) open(ctx context.Context, p pending, pol Policy) (*session.Challenge, error) {
	methods := s.enrollable(pol)
	if len(methods) == 0 {
		// Nothing could be enrolled: an enrollment_token would open a
		// dead end.
		return nil, ErrPolicyConflict
	}
	tok, err := s.newPending(ctx, p)
	if err != nil {
		return nil, err
	}
	return &session.Challenge{EnrollmentToken: tok, Methods: methods}, nil
}

// passwordStamp is what a pending login keeps of the password its first
// step checked (see session.SecondFactor): nothing when amr has no "pwd".
func passwordStamp(u store.User, amr []string) string {
	if !slices.Contains(amr, "pwd") {
		return ""
	}
	return session.PasswordStamp(u.PasswordHash)
}

func (s *Service) newPending(ctx context.Context, p pending) (string, error) {
	tok, err := secret.NewToken(32)
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(p)
	if err := s.KV.Set(ctx, pendingKey(tok), b, s.Config.TokenTTL); err != nil {
		return "", err
	}
	return tok, nil
}

// wellFormed reports whether tok could be a pending login's token at all.
func wellFormed(tok string) bool { return tok != "" && len(tok) <= 256 }

// lookup reads a pending login without consuming it.
func (s *Service) lookup(ctx context.Context, tok string, m httpapi.Meta, enroll bool) (pending, error) {
	if !wellFormed(tok) {
		return pending{}, ErrInvalidMFAToken
	}
	b, err := s.KV.Get(ctx, pendingKey(tok))
	if errors.Is(err, kv.ErrNotFound) {
		return pending{}, ErrInvalidMFAToken
	}
	if err != nil {
		return pending{}, err
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil || p.Enroll != enroll || !secret.Equal(p.UA, uaHash(m.UserAgent)) {
		return pending{}, ErrInvalidMFAToken
	}
	return p, nil
}

// failAttempt counts a wrong code against an mfa_token and reports whether
// it was the token's last (MaxTokenAttempts): then the token dies, and its
// pending login, which the caller holds (see spend), must not be put back.
func (s *Service) failAttempt(ctx context.Context, tok string) (dead bool, err error) {
	n, err := s.KV.Incr(ctx, attemptsKey(tok), 1, s.Config.TokenTTL)
	if err != nil {
		return false, err
	}
	if n < int64(s.Config.MaxTokenAttempts) {
		return false, nil
	}
	if _, err := s.KV.Delete(ctx, attemptsKey(tok)); err != nil {
		return true, err
	}
	return true, nil
}

// How verifications of one mfa_token take turns (see exclusively).
const (
	// claimTTL bounds how long a claim outlives a node that died holding
	// it. Safety does not depend on it: a verification that outlasts its
	// claim holds its pending login (see spend), and whoever claims next
	// finds none.
	claimTTL = 10 * time.Second
	// claimWait is how long a verification waits for its turn before it
	// is answered 429 (try again).
	claimWait = 3 * time.Second
)

// exclusively runs fn, a verification of the pending login whose token
// has ref (tokenRef), while no other verification of that token runs, on
// any node: parallel requests on one mfa_token take turns, as if they had
// come one after the other. The first with a right code signs in; those
// after it find the token used (invalid_mfa_token) without checking, let
// alone consuming, their codes. A wrong code is counted as it would be
// alone. A verification that waited claimWait in vain is answered 429
// rate_limited. (SMSFailed takes its turn too: it must not find the login
// gone while a verification holds it.)
func (s *Service) exclusively(ctx context.Context, ref string, fn func() error) error {
	key := claimKey(ref)
	deadline := time.NewTimer(claimWait)
	defer deadline.Stop()
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		ok, err := s.KV.SetNX(ctx, key, []byte("1"), claimTTL)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			p := httpapi.NewProblem(http.StatusTooManyRequests, "rate_limited", "Another verification of this sign-in is under way; try again in a moment.")
			p.RetryAfter = 1
			return p
		case <-time.After(pause):
		}
	}
	defer func() {
		// Not under ctx: a client gone must not leave the token blocked.
		if _, err := s.KV.Delete(context.WithoutCancel(ctx), key); err != nil {
			s.Log.ErrorContext(ctx, "could not release the claim on a pending sign-in; it expires by itself", "error", err.Error())
		}
	}()
	return fn()
}

// spend checks a code of the pending login tok (check, which consumes what
// is one-time) holding that login: it is taken out of the store first, so
// that a code is only ever spent by the one request that has it. A right
// code keeps it taken: the login is this request's, to finish. A wrong
// code counts against the token (failAttempt) and returns ErrInvalidCode;
// the login is put back with the lifetime it had left, unless that was the
// token's last attempt. After an error it is put back too.
//
// Callers run it under exclusively, so that parallel requests neither see
// the login missing while it is out nor spend codes in vain.
func (s *Service) spend(ctx context.Context, tok string, check func() (bool, error)) error {
	key := pendingKey(tok)
	ttl, err := s.KV.TTL(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return ErrInvalidMFAToken
	}
	if err != nil {
		return err
	}
	taken := s.now()
	b, err := s.KV.GetDel(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return ErrInvalidMFAToken
	}
	if err != nil {
		return err
	}
	ok, err := check()
	if ok && err == nil {
		return nil
	}
	if err == nil {
		dead, ferr := s.failAttempt(ctx, tok)
		if err = ErrInvalidCode; ferr != nil {
			err = ferr
		}
		if dead {
			return err // the token's last attempt: the login stays out
		}
	}
	if ttl <= 0 || ttl > s.Config.TokenTTL {
		ttl = s.Config.TokenTTL // every pending login expires
	}
	if left := ttl - s.now().Sub(taken); left > 0 {
		if serr := s.KV.Set(context.WithoutCancel(ctx), key, b, left); serr != nil {
			return serr
		}
	}
	return err
}
