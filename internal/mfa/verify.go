package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/mfa/otp"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
)

// checkCode verifies a code for a method against the user's active
// devices, consuming what is one-time. It returns the device used. With
// fallback, an email code is the one sent in place of a failed text
// message (see emailFallback, which the caller checked).
//
// Callers throttle first and run it under the per-user lockout (guarded).
func (s *Service) checkCode(ctx context.Context, u store.User, active []store.MFADevice, method, code string, fallback bool) (store.MFADevice, bool, error) {
	now := s.now()
	switch method {
	case MethodWebAuthn:
		// Answered by checkAnswer, with a credential, not a code.
		return store.MFADevice{}, false, ErrMethodUnavailable
	case MethodTOTP:
		for _, d := range active {
			if d.Type != MethodTOTP {
				continue
			}
			ok, err := s.checkTOTP(ctx, d, code, now)
			if err != nil || ok {
				return d, ok, err
			}
		}
		return store.MFADevice{}, false, nil
	case MethodSMS, MethodEmail:
		d, ok := pick(active, method)
		if !ok && method == MethodEmail && fallback {
			d, ok = fallbackDevice(u), true
		}
		if !ok {
			return store.MFADevice{}, false, ErrMethodUnavailable
		}
		ok, err := s.checkSentCode(ctx, u.ID, d, code, now)
		return d, ok, err
	case MethodBackup:
		norm := otp.NormalizeBackupCode(code)
		if norm == "" {
			return store.MFADevice{}, false, nil
		}
		var ok bool
		for _, h := range s.Codes.All("backup-code", norm) {
			used, err := s.Store.UseBackupCode(ctx, u.ID, h, now)
			if err != nil {
				return store.MFADevice{}, false, err
			}
			ok = ok || used
			if ok {
				break
			}
		}
		if !ok {
			return store.MFADevice{}, false, nil
		}
		left, err := s.Store.CountBackupCodes(ctx, u.ID)
		if err != nil {
			return store.MFADevice{}, false, err
		}
		s.notice(ctx, u, fmt.Sprintf("A backup code was used to sign in; %d remain", left), "mfa.backup_code_used", map[string]any{"remaining": left}, nil)
		return store.MFADevice{Type: MethodBackup}, true, nil
	}
	return store.MFADevice{}, false, ErrMethodUnavailable
}

// Answer is what a second step answers: a code, or, for a passkey, the
// credential navigator.credentials.get returned (its toJSON()).
type Answer struct {
	Code       string
	Credential json.RawMessage
}

// checkAnswer is checkCode for any method: a passkey's assertion, bound
// to bind, is verified over the passkeys among active, and its amr
// returned; a code's amr is the method's.
func (s *Service) checkAnswer(ctx context.Context, u store.User, f factorSet, active []store.MFADevice, method string, a Answer, fallback bool, bind string, m httpapi.Meta) (amr []string, ok bool, err error) {
	if method != MethodWebAuthn {
		_, ok, err := s.checkCode(ctx, u, active, method, a.Code, fallback)
		return []string{amrOf[method]}, ok, err
	}
	if s.Passkeys == nil {
		return nil, false, ErrMethodUnavailable
	}
	if len(a.Credential) == 0 {
		return nil, false, httpapi.Validation(httpapi.FieldError{Field: "credential", Rule: "required", Message: "Give the credential navigator.credentials.get returned for the challenge's options."})
	}
	return s.Passkeys.VerifyAssertion(ctx, u, f.passkeysOf(active), bind, a.Credential, m)
}

// checkTOTP accepts a code for a time step at most once.
func (s *Service) checkTOTP(ctx context.Context, d store.MFADevice, code string, now time.Time) (bool, error) {
	secretB32, err := s.Keys.Open(d.Secret, totpAD(d.UserID, d.ID))
	if err != nil {
		return false, fmt.Errorf("mfa: open TOTP secret: %w", err)
	}
	step, ok := otp.Validate(string(secretB32), code, now, 1)
	if !ok {
		return false, nil
	}
	return s.Store.AcceptTOTPStep(ctx, d.UserID, d.ID, step, now)
}

func totpAD(userID, deviceID string) []byte {
	return []byte("gatehouse/mfa/totp\x00" + userID + "\x00" + deviceID)
}

// checkSentCode checks an email or SMS code (at most MaxCodeAttempts
// tries per code) and consumes it.
func (s *Service) checkSentCode(ctx context.Context, userID string, d store.MFADevice, code string, now time.Time) (bool, error) {
	c, err := s.Store.AttemptMFACode(ctx, userID, d.Type, d.ID, s.Config.MaxCodeAttempts, now)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !s.Codes.Match(c.CodeHash, "mfa-code", strings.TrimSpace(code)) {
		return false, nil
	}
	return s.Store.ConsumeMFACode(ctx, c.ID, now)
}

// Verify completes a login's second step and starts the session; for a
// login that must then enrol (pending.EnrollAfter) it answers with the
// enrollment_token (Result.Challenge) instead.
//
// Verifications of one mfa_token take turns (exclusively), and each holds
// the pending login while it checks its code (spend): of parallel requests
// with right codes one signs in and consumes its code, the others consume
// nothing.
func (s *Service) Verify(ctx context.Context, tok, method string, answer Answer, m httpapi.Meta) (session.Result, error) {
	if !wellFormed(tok) {
		return session.Result{}, ErrInvalidMFAToken
	}
	var (
		p      pending
		u      store.User
		f      factorSet
		proved []string
	)
	err := s.exclusively(ctx, tokenRef(tok), func() error {
		var err error
		if p, err = s.lookup(ctx, tok, m, false); err != nil {
			return err
		}
		if u, err = s.Store.GetUser(ctx, p.UserID); err != nil {
			return err
		}
		if f, err = s.factors(ctx, u); err != nil {
			return err
		}
		methods, fallback := f.methodsFor(p), false
		if !slices.Contains(methods, method) {
			if method == MethodEmail {
				fallback, err = s.emailFallback(ctx, tokenRef(tok), p, f.pol, methods)
				if err != nil {
					return err
				}
			}
			if !fallback {
				return ErrMethodUnavailable
			}
		}
		if err := s.throttle(ctx, "mfa:verify:"+u.ID, s.Config.VerifyLimit); err != nil {
			return err
		}
		return s.spend(ctx, tok, func() (bool, error) {
			return s.guarded(ctx, u, m, true, func() (bool, error) {
				// A step-up without factors checks the code sent to the
				// account's address, like the fallback.
				amr, ok, err := s.checkAnswer(ctx, u, f, f.active, method, answer, fallback || p.StepUp, passkeyBind(tok), m)
				proved = amr
				return ok, err
			})
		})
	})
	if err != nil {
		return session.Result{}, err
	}
	// The pending login is this request's alone (spend took it).
	_, _ = s.KV.Delete(ctx, attemptsKey(tok), smsFailedKey(tokenRef(tok)))
	if p.EnrollAfter {
		// A factor the user has passed: now, and only now, the login may
		// enrol one the policy allows.
		ch, err := s.open(ctx, pending{
			UserID: p.UserID, AMR: amrWith(p.AMR, proved...), Enroll: true, UA: p.UA,
			PasswordStamp: p.PasswordStamp, Origin: tok, Client: p.Client, Audience: p.Audience, Scope: p.Scope, Risk: p.Risk,
		}, f.pol)
		return session.Result{Challenge: ch, User: u}, err
	}
	return s.complete(ctx, tok, p, amrWith(p.AMR, proved...), m)
}

// complete starts the session of a login whose pending token tok was
// consumed, then publishes event.SecondFactorVerified with the token the
// sign-in started with, in a transaction of its own: an error of its
// subscribers is logged and does not undo the sign-in.
func (s *Service) complete(ctx context.Context, tok string, p pending, amr []string, m httpapi.Meta) (session.Result, error) {
	// The first step's client and grant, not this request's.
	m.ClientID, m.Audience, m.Scope = p.Client, p.Audience, p.Scope
	res, err := s.Sessions.Complete(ctx, p.UserID, p.PasswordStamp, amr, m, p.Risk)
	if err != nil {
		return res, err
	}
	if p.Origin != "" {
		tok = p.Origin
	}
	e := event.SecondFactorVerified{UserID: p.UserID, PendingToken: tok, Meta: m}
	if !s.Store.Listens(e) {
		return res, nil
	}
	if err := s.Store.InTx(ctx, func(tx Tx) error { return tx.Publish(ctx, e) }); err != nil {
		s.Log.ErrorContext(ctx, "a step deferred to the second factor failed", "error", err.Error())
	}
	return res, nil
}

// amrWith adds "mfa" and what a second step proved to amr.
func amrWith(amr []string, proved ...string) []string {
	out := append([]string(nil), amr...)
	for _, a := range append([]string{"mfa"}, proved...) {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// FinishEnrollment completes a login that had to enrol a factor: the
// enrollment token is consumed (once) and the session starts with the new
// factor in its amr.
func (s *Service) FinishEnrollment(ctx context.Context, tok, method string, m httpapi.Meta) (session.Result, error) {
	return s.FinishEnrollmentWith(ctx, tok, []string{amrOf[method]}, m)
}

// FinishEnrollmentWith is FinishEnrollment for a factor whose amr depends
// on the device (a passkey: hwk or swk).
func (s *Service) FinishEnrollmentWith(ctx context.Context, tok string, proved []string, m httpapi.Meta) (session.Result, error) {
	b, err := s.KV.GetDel(ctx, pendingKey(tok))
	if errors.Is(err, kv.ErrNotFound) {
		return session.Result{}, ErrInvalidMFAToken
	}
	if err != nil {
		return session.Result{}, err
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil || !p.Enroll {
		return session.Result{}, ErrInvalidMFAToken
	}
	return s.complete(ctx, tok, p, amrWith(p.AMR, proved...), m)
}
