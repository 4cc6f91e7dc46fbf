package catalog

import (
	"cmp"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Message is one webhook event to record: its type, its data (which
// marshals to a JSON object valid against the type's schema), and whom it
// is about, which decides the organisation-scoped endpoints that get it.
type Message struct {
	Type string
	Data any
	// UserID is the user the event is about ("" for none).
	UserID string
	// OrganizationIDs are the organisations the event itself names (a
	// membership added or removed); the outbox adds the organisations the
	// user belongs to.
	OrganizationIDs []string
}

// Messages returns the webhook messages of a bus event: none for an event
// receivers are not told of, one, or several (a lock is user.locked and
// its security.* view; a refresh token's reuse is detected, a security
// signal and a session revoked; several sessions revoked are one message
// each).
func Messages(e event.Event) []Message {
	switch e := e.(type) {
	case event.UserRegistered:
		return one("user.created", e.User.ID, created(e.User, "sign_up", "", e.Meta))
	case event.UserCreated:
		return one("user.created", e.User.ID, created(e.User, e.Via, e.Provider, e.Meta))
	case event.UserUpdated:
		d := updated(e)
		if len(d.Fields) == 0 {
			return nil
		}
		return one("user.updated", e.User.ID, d)
	case event.UserDeleted:
		return one("user.deleted", e.UserID, userDeleted{User: e.UserID, Email: e.Email, request: requestAbout(e.UserID, e.Meta)})
	case event.EmailVerified:
		return one("user.email_verified", e.UserID, emailVerified{User: e.UserID, Email: e.Email, Method: e.Via, client: clientOf(e.Meta)})
	case event.PasswordChanged:
		name := "user.password_changed"
		if e.Reset {
			name = "user.password_reset"
		}
		return one(name, e.UserID, userOnly{User: e.UserID, client: clientOf(e.Meta)})
	case event.AccountLocked:
		return locked(e)
	case event.UserUnlocked:
		return one("user.unlocked", e.UserID, unlocked{User: e.UserID, Locks: e.Locks, request: requestAbout(e.UserID, e.Meta)})
	case event.UserStatusChanged:
		switch e.Status {
		case store.UserDisabled:
			return one("user.disabled", e.UserID, byAdmin{User: e.UserID, request: requestAbout(e.UserID, e.Meta)})
		case store.UserActive:
			return one("user.enabled", e.UserID, byAdmin{User: e.UserID, request: requestAbout(e.UserID, e.Meta)})
		}
		return nil
	case event.SessionStarted:
		return one("session.created", e.Session.UserID, sessionCreated(e))
	case event.SessionsRevoked:
		out := make([]Message, 0, len(e.SessionIDs))
		for _, id := range e.SessionIDs {
			out = append(out, Message{Type: "session.revoked", UserID: e.UserID, Data: sessionRevoked{
				Session: id, User: e.UserID, Reason: e.Reason, request: requestAbout(e.UserID, e.Meta),
			}})
		}
		return out
	case event.RefreshTokenReused:
		s := sessionSignal{Session: e.Session.ID, User: e.Session.UserID, client: clientOf(e.Meta)}
		return []Message{
			{Type: "session.refresh_reuse_detected", UserID: s.User, Data: s},
			{Type: "security.refresh_reuse", UserID: s.User, Data: s},
			{Type: "session.revoked", UserID: s.User, Data: sessionRevoked{
				Session: s.Session, User: s.User, Reason: "refresh_token_reuse", request: request{client: s.client},
			}},
		}
	case event.SessionAnomaly:
		if !e.Revoked {
			return nil // a security.alert when its severity calls for one
		}
		return []Message{{Type: "session.revoked", UserID: e.UserID, Data: sessionRevoked{
			Session: e.SessionID, User: e.UserID, Reason: "risk_anomaly", request: request{client: clientOf(e.Meta)},
		}}}
	case event.SecurityIncidentNotified:
		if e.Escalated {
			return []Message{{Type: "security.incident_escalated", UserID: incidentUser(e.Incident), Data: escalatedIncident{incidentOf(e.Incident), e.Incident.Escalations}}}
		}
		return []Message{{Type: "security.incident_opened", UserID: incidentUser(e.Incident), Data: incidentOf(e.Incident)}}
	case event.SecurityIncidentResolved:
		return []Message{{Type: "security.incident_resolved", UserID: incidentUser(e.Incident), Data: resolvedIncident{
			securityIncident: incidentOf(e.Incident), ResolvedAt: e.Incident.ResolvedAt, Actor: e.Incident.ResolvedBy,
		}}}
	case event.SecurityAlerted:
		return []Message{{Type: "security.alert", UserID: e.Event.UserID, Data: alertOf(e.Event)}}
	case event.SecondFactorEnrolled:
		return one("mfa.enrolled", e.UserID, factor{User: e.UserID, Device: e.DeviceID, Method: e.Method})
	case event.SecondFactorRemoved:
		return one("mfa.removed", e.UserID, factor{User: e.UserID, Device: e.DeviceID, Method: e.Method})
	case event.BackupCodesRegenerated:
		return one("mfa.backup_codes_regenerated", e.UserID, backupCodes{User: e.UserID, Count: e.Count})
	case event.IdentityLinked:
		return one("identity.linked", e.UserID, identity{User: e.UserID, Identity: e.IdentityID, Provider: e.Provider, client: clientOf(e.Meta)})
	case event.IdentityUnlinked:
		return one("identity.unlinked", e.UserID, identity{User: e.UserID, Identity: e.IdentityID, Provider: e.Provider, client: clientOf(e.Meta)})
	case event.OrganizationMemberAdded:
		return []Message{{Type: "organization.member_added", UserID: e.UserID, OrganizationIDs: []string{e.OrganizationID}, Data: membership{
			User: e.UserID, Organization: e.OrganizationID, Role: e.Role, request: requestAbout(e.UserID, e.Meta),
		}}}
	case event.OrganizationMemberRemoved:
		return []Message{{Type: "organization.member_removed", UserID: e.UserID, OrganizationIDs: []string{e.OrganizationID}, Data: membership{
			User: e.UserID, Organization: e.OrganizationID, request: requestAbout(e.UserID, e.Meta),
		}}}
	}
	// Events receivers are not told of: mfa.verified (session.created
	// tells of the sign-in), sms.delivery_failed.
	return nil
}

// Test is the message of a test event sent to the endpoint endpointID
// (webhook.test).
func Test(endpointID string) Message {
	return Message{Type: "webhook.test", Data: testData{
		Endpoint: endpointID, Message: "This is a test event from Gatehouse.",
	}}
}

func one(name, userID string, data any) []Message {
	return []Message{{Type: name, UserID: userID, Data: data}}
}

// client is where the request came from; request adds who made it when it
// was someone else than the user (an administrator).
type client struct {
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

type request struct {
	Actor string `json:"actor_id,omitempty"`
	client
}

func clientOf(m httpapi.Meta) client { return client{IP: m.IP, UserAgent: m.UserAgent} }

// requestAbout is the request m that changed something of userID's:
// actor_id names who made it only when that was someone else than the
// user (an administrator).
func requestAbout(userID string, m httpapi.Meta) request {
	r := request{Actor: m.ActorID, client: clientOf(m)}
	if r.Actor == userID {
		r.Actor = ""
	}
	return r
}

type userCreated struct {
	User          string    `json:"user_id"`
	Email         string    `json:"email"`
	EmailVerified bool      `json:"email_verified"`
	Name          string    `json:"name,omitempty"`
	Source        string    `json:"source"`
	Provider      string    `json:"provider,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	request
}

func created(u store.User, source, provider string, m httpapi.Meta) userCreated {
	return userCreated{
		User: u.ID, Email: u.Email, EmailVerified: !u.EmailVerifiedAt.IsZero(), Name: u.Name,
		Source: source, Provider: provider, CreatedAt: u.CreatedAt.UTC(), request: requestAbout(u.ID, m),
	}
}

type userUpdated struct {
	User    string         `json:"user_id"`
	Fields  []string       `json:"fields"`
	Changes map[string]any `json:"changes"`
	request
}

// updated takes the new value of each changed field from the account;
// a field it does not know is left out, and a phone number is masked.
func updated(e event.UserUpdated) userUpdated {
	u := e.User
	values := map[string]any{
		"name": u.Name, "given_name": u.GivenName, "family_name": u.FamilyName, "locale": u.Locale,
		"zoneinfo": u.Zoneinfo, "phone_number": maskPhone(u.PhoneNumber), "picture": u.Picture,
		"metadata": emptyIfNil(u.Metadata), "email": u.Email, "pending_email": u.PendingEmail,
	}
	out := userUpdated{User: u.ID, Fields: []string{}, Changes: map[string]any{}, request: requestAbout(u.ID, e.Meta)}
	for _, f := range e.Fields {
		v, ok := values[f]
		if !ok {
			continue
		}
		out.Fields = append(out.Fields, f)
		out.Changes[f] = v
	}
	return out
}

func emptyIfNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// maskPhone keeps the last 4 digits of a phone number: "+447700900123" →
// "********0123".
func maskPhone(p string) string {
	if p == "" {
		return ""
	}
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, p)
	keep := min(4, len(digits)/2)
	return strings.Repeat("*", max(len(digits)-keep, 1)) + digits[len(digits)-keep:]
}

type userDeleted struct {
	User  string `json:"user_id"`
	Email string `json:"email"`
	request
}

type emailVerified struct {
	User   string `json:"user_id"`
	Email  string `json:"email"`
	Method string `json:"method"`
	client
}

type userOnly struct {
	User string `json:"user_id"`
	client
}

type byAdmin struct {
	User string `json:"user_id"`
	request
}

type lock struct {
	User    string    `json:"user_id"`
	Lock    string    `json:"lock,omitempty"` // in user.locked only
	Seconds int       `json:"lock_seconds"`
	Until   time.Time `json:"locked_until"`
	client
}

// locked is a lock as user.locked and as its security.* view.
func locked(e event.AccountLocked) []Message {
	security, name := "security.lockout", event.LockSignIn
	if e.Action == "security.mfa_locked" {
		security, name = "security.mfa_locked", event.LockMFA
	}
	l := lock{User: e.UserID, Seconds: max(1, int((e.Lock+time.Second-1)/time.Second)), Until: e.Until.UTC(), client: clientOf(e.Meta)}
	withName := l
	withName.Lock = name
	return []Message{
		{Type: "user.locked", UserID: e.UserID, Data: withName},
		{Type: security, UserID: e.UserID, Data: l},
	}
}

type unlocked struct {
	User  string   `json:"user_id"`
	Locks []string `json:"locks"`
	request
}

type sessionCreatedData struct {
	Session    string    `json:"session_id"`
	User       string    `json:"user_id"`
	Client     string    `json:"client_id,omitempty"`
	AMR        []string  `json:"amr"`
	Browser    string    `json:"browser,omitempty"`
	OS         string    `json:"os,omitempty"`
	DeviceType string    `json:"device_type"`
	Device     string    `json:"device_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	client
}

func sessionCreated(e event.SessionStarted) sessionCreatedData {
	s := e.Session
	amr := s.AMR
	if amr == nil {
		amr = []string{}
	}
	return sessionCreatedData{
		Session: s.ID, User: s.UserID, Client: s.ClientID, AMR: amr, Browser: s.Browser, OS: s.OS,
		DeviceType: cmp.Or(s.DeviceType, "unknown"), Device: e.Meta.DeviceID,
		CreatedAt: s.CreatedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC(),
		client: client{IP: cmp.Or(s.IP, e.Meta.IP), UserAgent: cmp.Or(s.UserAgent, e.Meta.UserAgent)},
	}
}

type sessionRevoked struct {
	Session string `json:"session_id"`
	User    string `json:"user_id"`
	Reason  string `json:"reason"`
	request
}

type sessionSignal struct {
	Session string `json:"session_id"`
	User    string `json:"user_id"`
	client
}

type factor struct {
	User   string `json:"user_id"`
	Device string `json:"device_id"`
	Method string `json:"method"`
}

type backupCodes struct {
	User  string `json:"user_id"`
	Count int    `json:"count"`
}

type identity struct {
	User     string `json:"user_id"`
	Identity string `json:"identity_id"`
	Provider string `json:"provider"`
	client
}

type membership struct {
	User         string `json:"user_id"`
	Organization string `json:"organization_id"`
	Role         string `json:"role,omitempty"` // in member_added only
	request
}

type testData struct {
	Endpoint string `json:"endpoint_id"`
	Message  string `json:"message"`
}

// securityIncident is an incident as security.incident_* events carry it.
type securityIncident struct {
	Incident   string    `json:"incident_id"`
	Type       string    `json:"incident_type"`
	Severity   string    `json:"severity"`
	Status     string    `json:"status"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	IPs        []string  `json:"ips"`
	UserIDs    []string  `json:"user_ids"`
	EventCount int       `json:"event_count"`
}

type escalatedIncident struct {
	securityIncident
	Escalations int `json:"escalations"`
}

type resolvedIncident struct {
	securityIncident
	ResolvedAt time.Time `json:"resolved_at"`
	Actor      string    `json:"actor_id,omitempty"`
}

func incidentOf(inc store.SecurityIncident) securityIncident {
	return securityIncident{
		Incident: inc.ID, Type: inc.Type, Severity: cmp.Or(inc.Severity, store.SeverityMedium), Status: inc.Status,
		FirstSeen: inc.FirstSeen.UTC(), LastSeen: inc.LastSeen.UTC(),
		IPs: nonNil(inc.IPs), UserIDs: nonNil(inc.UserIDs), EventCount: inc.EventCount,
	}
}

// incidentUser is the user an incident is about, for organisation-scoped
// endpoints: its one account, "" when it names several or none.
func incidentUser(inc store.SecurityIncident) string {
	if len(inc.UserIDs) == 1 {
		return inc.UserIDs[0]
	}
	return ""
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// securityAlert is a security event as security.alert carries it.
type securityAlert struct {
	Event      string    `json:"event_id"`
	Type       string    `json:"event_type"`
	Severity   string    `json:"severity"`
	OccurredAt time.Time `json:"occurred_at"`
	User       string    `json:"user_id,omitempty"`
	IP         string    `json:"ip,omitempty"`
	Country    string    `json:"country,omitempty"`
	City       string    `json:"city,omitempty"`
	ASN        int64     `json:"asn,omitempty"`
	Score      *int      `json:"score,omitempty"`
	Reasons    []string  `json:"reasons,omitempty"`
	Incident   string    `json:"incident_id,omitempty"`
}

func alertOf(ev store.SecurityEvent) securityAlert {
	a := securityAlert{
		Event: ev.ID, Type: ev.Type, Severity: ev.Severity, OccurredAt: ev.OccurredAt.UTC(), User: ev.UserID, IP: ev.IP,
		Country: ev.Country, City: ev.City, ASN: ev.ASN, Score: ev.Score, Incident: ev.IncidentID,
	}
	for _, r := range ev.Reasons {
		a.Reasons = append(a.Reasons, r.Code)
	}
	return a
}
