package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/admin"
	"github.com/gatehouse/gatehouse/internal/apikey"
	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/authzcheck"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mfa"
	"github.com/gatehouse/gatehouse/internal/passkey"
	"github.com/gatehouse/gatehouse/internal/rbac"
	"github.com/gatehouse/gatehouse/internal/risk"
	"github.com/gatehouse/gatehouse/internal/security"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/social"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/throttle"
	"github.com/gatehouse/gatehouse/internal/user"
	"github.com/gatehouse/gatehouse/internal/webhook"
)

// services are the domain services the handlers and workers are built
// on.
type services struct {
	apis     *apis.Registry
	sessions *session.Service
	mfa      *mfa.Service
	users    *user.Service
	social   *social.Service
	admin    *admin.Service
	webhooks *webhook.Service
	security *security.Service
	// securityEvents records security events and correlates them, and
	// respond reacts to them (alerts, automated responses).
	securityEvents *security.Recorder
	respond        *security.Responder
	// conditions compiles RBAC's CEL conditions and engine decides
	// checks; both are shared by everything that decides or writes them.
	conditions *authz.Compiler
	engine     *authz.Engine
	// authorizer decides the administration API's permissions.
	authorizer auth.Authorizer
	// rbac manages permissions, roles and grants; checker decides
	// permission checks.
	rbac    *rbac.Service
	checker *authzcheck.Checker
	// apikeys manages API keys and service accounts.
	apikeys *apikey.Service
	// passkeys registers passkeys and runs their ceremonies.
	passkeys *passkey.Service
}

// newServices builds every domain service in the order they depend on each
// other, each complete when built, then subscribes the reactions of one
// domain to another's events. This is the one place that shows both.
func newServices(d *deps) (services, error) {
	var s services
	var err error
	if s.apis, err = newAPIRegistry(d); err != nil {
		return services{}, err
	}
	// Sign-in asks MFA after every correct password, and MFA finishes
	// logins through sign-in: the two are built together.
	sd, err := sessionDeps(d, s.apis)
	if err != nil {
		return services{}, err
	}
	// Passkeys sign in through sign-in and are a second factor of MFA.
	s.sessions, s.mfa, err = session.NewWithSecondFactor(sd, func(sessions *session.Service) (*mfa.Service, error) {
		var err error
		if s.passkeys, err = newPasskeyService(d, sessions); err != nil {
			return nil, err
		}
		var asFactor mfa.Passkeys // nil, not a nil *passkey.Service, when off
		if s.passkeys != nil {
			asFactor = s.passkeys
		}
		return newMFAService(d, sessions, asFactor)
	})
	if err != nil {
		return services{}, err
	}
	if s.users, err = newUserService(d, s.sessions); err != nil {
		return services{}, err
	}
	providers, err := socialProviders(d.cfg)
	if err != nil {
		return services{}, fmt.Errorf("social sign-in settings:\n%w", err)
	}
	if s.social, err = newSocialService(d, providers, s.sessions, s.mfa); err != nil {
		return services{}, err
	}
	if s.admin, err = admin.New(admin.Deps{
		Store: adminStore(d.db.store, d.bus), Sessions: s.sessions, Now: d.now,
		Locks: map[string]admin.Lock{event.LockSignIn: s.sessions, event.LockMFA: s.mfa},
	}); err != nil {
		return services{}, err
	}
	if s.webhooks, err = newWebhookService(d); err != nil {
		return services{}, err
	}
	// The security events and incidents, for administrators.
	if s.securityEvents, err = security.NewRecorder(d.cfg.Security.Rules(), d.now); err != nil {
		return services{}, err
	}
	if s.respond, err = newResponder(d, s.securityEvents, s.sessions); err != nil {
		return services{}, err
	}
	if s.security, err = security.New(security.Deps{
		Store: event.Narrow(d.db.store, d.bus, func(tx event.Tx) security.AdminTx { return tx }), Now: d.now,
	}); err != nil {
		return services{}, err
	}
	if s.conditions, err = authz.NewCompiler(authz.CompilerOptions{}); err != nil {
		return services{}, err
	}
	if s.engine, err = authz.NewEngine(s.conditions); err != nil {
		return services{}, err
	}
	// Checks are answered from each node's cache of the users' grants and
	// roles, which every change to them invalidates on every node.
	if s.checker, err = authzcheck.New(authzcheck.Deps{
		Store: d.db.store, Engine: s.engine, KV: d.state.kv, Now: d.now, Log: d.log,
	}); err != nil {
		return services{}, err
	}
	s.authorizer = adminAuthorizer{checker: s.checker, locate: country(d.intel)}
	if s.rbac, err = rbac.New(rbac.Deps{
		Store:    store.Narrow(d.db.store, func(tx store.Store) rbac.Tx { return tx }),
		Compiler: s.conditions, Engine: s.engine, Now: d.now, Log: d.log,
		Changed: func(ctx context.Context, c rbac.Change) { invalidate(ctx, s.checker, d.log, c.All, c.Users...) },
	}); err != nil {
		return services{}, err
	}
	if d.keyAuthn != nil {
		if s.apikeys, err = apikey.New(apikey.Deps{
			Store:   event.Narrow(d.db.store, d.bus, func(tx event.Tx) apikey.Tx { return tx }),
			Checker: s.checker, Authn: d.keyAuthn, Keyring: d.keys, Jobs: d.queue,
			MaxTTL: d.cfg.APIKeys.MaxTTL, LeakSecret: []byte(d.cfg.APIKeys.LeakReportSecret), Tiers: d.rateLimitTiers(),
			Now: d.now, Log: d.log,
		}); err != nil {
			return services{}, err
		}
	}
	subscribe(d.bus, s)
	if d.keyAuthn != nil {
		subscribeKeyOwners(d.bus, d.keyAuthn)
	}
	return s, nil
}

// newAPIRegistry builds the registry of APIs (resource servers).
func newAPIRegistry(d *deps) (*apis.Registry, error) {
	return apis.New(apis.Deps{
		Store: apiStore(d.db.store), Issuer: d.cfg.Server.Issuer, DefaultAudience: d.cfg.Tokens.DefaultAudience,
		CacheTTL: 10 * time.Second, Now: d.now, Log: d.log,
	})
}

// newResponder builds the alerts and automated responses of security
// events: blocks through the rate limiter's penalties (throttle.Block),
// sessions ended through the session service, emails as durable jobs.
func newResponder(d *deps, rec *security.Recorder, sessions *session.Service) (*security.Responder, error) {
	bypass, err := bypassNetworks(d.cfg)
	if err != nil {
		return nil, err
	}
	var allowlisted func(string) bool
	if where := locate(d.intel); where != nil {
		allowlisted = func(ip string) bool { return slices.Contains(where(ip).Lists, risk.ListAllowlist) }
	}
	return security.NewResponder(security.ResponderDeps{
		Settings: d.cfg.Security.Responses(), Recorder: rec,
		InTx: event.Narrow(d.db.store, d.bus, func(tx event.Tx) security.ReactTx { return tx }).InTx,
		BlockIP: func(ctx context.Context, ip string) (int, time.Duration, error) {
			p, err := throttle.Block(ctx, d.state.multi, bypass, ip)
			return p.Level, p.BlockedFor, err
		},
		Allowlisted: allowlisted,
		EndSessions: func(ctx context.Context, userID, reason string) (int, error) {
			live, err := sessions.List(ctx, userID)
			if err != nil {
				return 0, err
			}
			return len(live), sessions.RevokeUserSessions(ctx, userID, "", reason)
		},
		Jobs: d.queue, Keys: d.keys, Now: d.now, Log: d.log,
	})
}

// subscribe registers the reactions between domains. Each runs in the
// transaction that published its event (see package event).
func subscribe(bus *event.Bus, s services) {
	subscribeAdminGrant(bus)
	subscribeAuthzInvalidation(bus, s.checker, s.rbac)
	// The webhook outbox: every event that concerns a subscribed endpoint
	// is recorded, with its deliveries and their jobs, in the transaction
	// of its change.
	event.SubscribeAll(bus, func(ctx context.Context, tx event.Tx, e event.Event) error {
		return s.webhooks.Record(ctx, tx, e)
	})
	// Lockouts and refresh-token reuse are security events, correlated
	// into incidents (an account attacked from many addresses …).
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.AccountLocked) error {
		typ := security.TypeLockout
		if e.Action == "security.mfa_locked" {
			typ = security.TypeMFALocked
		}
		return s.respond.Handle(ctx, tx, security.Event{
			Type: typ, UserID: e.UserID, IP: e.Meta.IP, Device: e.Meta.DeviceID,
			Data: map[string]any{"lock_seconds": int(e.Lock.Seconds()), "until": e.Until.UTC()},
		})
	})
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.RefreshTokenReused) error {
		return s.respond.Handle(ctx, tx, security.Event{
			Type: security.TypeRefreshReuse, UserID: e.Session.UserID, IP: e.Meta.IP, Device: e.Meta.DeviceID,
			Data: map[string]any{"session_id": e.Session.ID},
		})
	})
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.SecondFactorFailed) error {
		return s.respond.Handle(ctx, tx, security.Event{Type: security.TypeMFAFailed, UserID: e.UserID, IP: e.Meta.IP, Device: e.Meta.DeviceID})
	})
	// Administrators' changes to an account's security: the locks
	// lifted, the account disabled or enabled, its sessions ended.
	adminChange := func(ctx context.Context, tx event.Tx, userID, action string, m httpapi.Meta, data map[string]any) error {
		if m.ActorID == "" || m.ActorID == userID {
			return nil // the user's own doing, or a job's
		}
		data["action"] = action
		return s.respond.Handle(ctx, tx, security.Event{
			Type: security.TypeAdminSecurityChange, UserID: userID, ActorID: m.ActorID, IP: m.IP, Data: data,
		})
	}
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.UserUnlocked) error {
		return adminChange(ctx, tx, e.UserID, "unlock", e.Meta, map[string]any{"locks": e.Locks})
	})
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.UserStatusChanged) error {
		return adminChange(ctx, tx, e.UserID, "status", e.Meta, map[string]any{"status": string(e.Status), "previous": string(e.Previous)})
	})
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.SessionsRevoked) error {
		return adminChange(ctx, tx, e.UserID, "end_sessions", e.Meta, map[string]any{"reason": e.Reason, "sessions_ended": len(e.SessionIDs)})
	})
	// Failed sign-ins feed credential stuffing and attacks on an account.
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.SignInFailed) error {
		return s.respond.Handle(ctx, tx, security.Event{
			Type: security.TypeLoginFailed, UserID: e.UserID, Account: e.Account, IP: e.Meta.IP, Device: e.Meta.DeviceID,
		})
	})
	// The risk score's step-ups and blocks of sign-ins, with its reasons.
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.SignInRisk) error {
		typ := security.TypeRiskStepUp
		if e.Decision == string(risk.Block) {
			typ = security.TypeRiskBlocked
		}
		score := e.Score
		return s.respond.Handle(ctx, tx, security.Event{
			Type: typ, UserID: e.UserID, IP: e.Meta.IP, Device: e.Meta.DeviceID,
			Country: e.Country, City: e.City, ASN: int64(e.ASN), Score: &score, Reasons: e.Reasons,
		})
	})
	// Refreshes that did not fit their session, with the score's reasons;
	// high when the session was ended for it.
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.SessionAnomaly) error {
		severity := store.SeverityMedium
		if e.Revoked {
			severity = store.SeverityHigh
		}
		score := e.Score
		return s.respond.Handle(ctx, tx, security.Event{
			Type: security.TypeSessionAnomaly, Severity: severity, UserID: e.UserID, IP: e.Meta.IP, Device: e.Meta.DeviceID,
			Country: e.Country, City: e.City, ASN: int64(e.ASN), Score: &score, Reasons: e.Reasons,
			Data: map[string]any{"session_id": e.SessionID, "revoked": e.Revoked},
		})
	})
	// A leaked API key, revoked: a security event of high severity, so
	// the administrators are alerted.
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.APIKeyLeaked) error {
		return s.respond.Handle(ctx, tx, security.Event{
			Type: security.TypeAPIKeyLeaked, UserID: e.Key.OwnerID, IP: e.Meta.IP,
			Data: map[string]any{
				"key_id": e.Key.ID, "prefix": e.Key.Prefix, "name": e.Key.Name, "kind": e.Key.Kind,
				"url": e.URL, "source": e.Source,
			},
		})
	})
	// A passkey whose sign count went backwards: possibly cloned, refused
	// from now on; a security event of high severity.
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.PasskeyCloned) error {
		return s.respond.Handle(ctx, tx, security.Event{
			Type: security.TypePasskeyCloned, UserID: e.UserID, IP: e.Meta.IP, Device: e.Meta.DeviceID,
			Data: map[string]any{"passkey_id": e.PasskeyID, "name": e.Name, "stored_sign_count": e.StoredCount, "presented_sign_count": e.PresentedCount},
		})
	})
	// A sign-in disowned by its user ("this wasn't me"): every session
	// ended, a password reset required.
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.SignInDisowned) error {
		return s.respond.Handle(ctx, tx, security.Event{
			Type: security.TypeNotMe, UserID: e.UserID, IP: e.Meta.IP,
			Data: map[string]any{"sessions_ended": len(e.SessionIDs), "session_ids": e.SessionIDs},
		})
	})
	// A text message of a sign-in that could not be sent opens the email
	// code as a fallback for that sign-in.
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.SMSDeliveryFailed) error {
		return s.mfa.SMSFailed(ctx, tx, e.Args, e.Cause)
	})
	// A social link confirmed with the password of an account with MFA
	// is made once the second factor succeeded.
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.SecondFactorVerified) error {
		return s.social.CompleteDeferredLink(ctx, tx, e.PendingToken, e.UserID, e.Meta)
	})
}

// addServiceWorkers adds the job workers that work for a domain service:
// magic-link requests (social) and forgot-password and
// resend-verification requests (accounts). They join the bundle after the
// queue was made, as the services enqueue through it, and before it
// starts; River looks workers up in the bundle when it works a job (see
// TestWorkerAddedBeforeStart in internal/jobs).
func addServiceWorkers(workers *river.Workers, s services) error {
	if err := river.AddWorkerSafely(workers, social.NewMagicLinkWorker(s.social)); err != nil {
		return err
	}
	if err := river.AddWorkerSafely(workers, user.NewEmailRequestWorker(s.users)); err != nil {
		return err
	}
	return river.AddWorkerSafely(workers, &security.EscalateWorker{Responder: s.respond})
}
