package catalog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/sms"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/webhook/catalog"
)

// issueTypes are the types item 1 of the issue asks for, and the test
// event.
var issueTypes = []string{
	"user.created", "user.updated", "user.deleted", "user.email_verified", "user.password_changed",
	"user.password_reset", "user.locked", "user.unlocked", "user.disabled", "user.enabled",
	"session.created", "session.revoked", "session.refresh_reuse_detected",
	"mfa.enrolled", "mfa.removed", "mfa.backup_codes_regenerated",
	"identity.linked", "identity.unlinked", "organization.member_added", "organization.member_removed",
	"security.lockout", "security.refresh_reuse", "security.mfa_locked",
	"security.incident_opened", "security.incident_escalated", "security.incident_resolved", "security.alert",
	"webhook.test",
}

// compile compiles a type's schema with a JSON Schema 2020-12 validator
// (github.com/santhosh-tekuri/jsonschema/v6) that asserts formats.
func compile(t *testing.T, typ catalog.Type) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(typ.Schema))
	if err != nil {
		t.Fatalf("%s: schema is not JSON: %v", typ.Name, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	url := "urn:gatehouse:webhook:" + typ.Name
	if err := c.AddResource(url, doc); err != nil {
		t.Fatalf("%s: %v", typ.Name, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatalf("%s: schema does not compile: %v", typ.Name, err)
	}
	return sch
}

// TestTypesAreSortedAndComplete checks the catalogue: every type of the
// issue, sorted, each described, with one schema file each (and no file
// without a type), each schema a strict 2020-12 object schema.
func TestTypesAreSortedAndComplete(t *testing.T) {
	types := catalog.Types()
	var names []string
	for _, typ := range types {
		names = append(names, typ.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("Types() is not sorted by name: %v", names)
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values(issueTypes)), names); diff != "" {
		t.Errorf("Types() (-issue +catalogue):\n%s", diff)
	}
	files, err := os.ReadDir("schemas")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if name, ok := strings.CutSuffix(f.Name(), ".json"); !ok || !slices.Contains(names, name) {
			t.Errorf("schemas/%s is the schema of no type", f.Name())
		}
	}
	for _, typ := range types {
		if len(typ.Description) < 20 {
			t.Errorf("%s: description %q says too little", typ.Name, typ.Description)
		}
		compile(t, typ)
		var doc struct {
			Schema               string         `json:"$schema"`
			Type                 string         `json:"type"`
			AdditionalProperties *bool          `json:"additionalProperties"`
			Required             []string       `json:"required"`
			Properties           map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(typ.Schema, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Schema != "https://json-schema.org/draft/2020-12/schema" || doc.Type != "object" ||
			doc.AdditionalProperties == nil || *doc.AdditionalProperties || len(doc.Required) == 0 {
			t.Errorf("%s: schema is not a closed 2020-12 object schema with required fields", typ.Name)
		}
		for _, r := range doc.Required {
			if _, ok := doc.Properties[r]; !ok {
				t.Errorf("%s: required %q is no property", typ.Name, r)
			}
		}
		if got, ok := catalog.Lookup(typ.Name); !ok || got.Name != typ.Name {
			t.Errorf("Lookup(%q) = %v, %v", typ.Name, got.Name, ok)
		}
	}
	if _, ok := catalog.Lookup("user.registered"); ok {
		t.Error("Lookup found a type the catalogue does not have")
	}
}

// Values planted in the test events that no payload may carry.
const (
	plantedHash        = "$argon2id$v=19$m=19456,t=2,p=1$PLANTEDSALT$PLANTEDHASHVALUE"
	plantedFingerprint = "planted-device-fingerprint-9f8e7d"
	plantedToken       = "planted-mfa-token-Zx81"
	plantedSMSBody     = "planted-sealed-sms-body-with-code-123456"
	plantedAppMetadata = "planted-app-metadata-only-admins-see"
	plantedDeviceHash  = "planted-refresh-device-hash"
	fullPhone          = "+447700900123"
)

var (
	userID  = "0193a5c2-7e41-7b8a-9c3d-2f6e8a1b4c5d"
	adminID = "0193a5c2-7e41-7b8a-9c3d-2f6e8a1b0001"
	orgID   = "0193a5c2-7e41-7b8a-9c3d-2f6e8a1b0002"
	sessID  = "0193a5c2-7e41-7b8a-9c3d-2f6e8a1b0003"
	sess2ID = "0193a5c2-7e41-7b8a-9c3d-2f6e8a1b0004"
	devID   = "0193a5c2-7e41-7b8a-9c3d-2f6e8a1b0005"
	identID = "0193a5c2-7e41-7b8a-9c3d-2f6e8a1b0006"
	at      = time.Date(2026, 12, 3, 21, 14, 7, 123456000, time.UTC)
	web     = httpapi.Meta{IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", RequestID: "req-1", DeviceID: "laptop-1"}
	v6      = httpapi.Meta{IP: "2001:db8::7", UserAgent: "curl/8.9", ActorID: userID}
	byAdmin = httpapi.Meta{IP: "198.51.100.4", UserAgent: "admin-console", ActorID: adminID}
)

// account is a realistic account, with the secrets and private fields an
// account holds planted in it.
func account() store.User {
	return store.User{
		ID: userID, Email: "ada@example.com", EmailNormalized: "ada@example.com", EmailVerifiedAt: at,
		PendingEmail: "ada@example.org", PasswordHash: plantedHash, Name: "Ada Lovelace", GivenName: "Ada",
		FamilyName: "Lovelace", Locale: "en-GB", Zoneinfo: "Europe/London", PhoneNumber: fullPhone,
		Picture: "https://example.com/ada.png", Metadata: map[string]any{"theme": "dark"},
		AppMetadata: map[string]any{"note": plantedAppMetadata}, Status: store.UserActive, CreatedAt: at, UpdatedAt: at,
	}
}

func session() store.Session {
	return store.Session{
		ID: sessID, UserID: userID, ClientID: "spa-client", CreatedAt: at, LastSeenAt: at, ExpiresAt: at.Add(30 * 24 * time.Hour),
		IP: web.IP, UserAgent: web.UserAgent, Browser: "Firefox", OS: "Linux", DeviceType: "desktop",
		DeviceFingerprint: plantedFingerprint, AMR: []string{"pwd", "mfa", "otp"}, AuthTime: at, Scope: "openid profile",
	}
}

// cases are realistic bus events and the webhook types each must give,
// in order: every event the bus carries, and every variant of one that
// gives another type or another shape.
func cases() []struct {
	name  string
	e     event.Event
	types []string
} {
	unverified := account()
	unverified.EmailVerifiedAt, unverified.PendingEmail, unverified.PhoneNumber, unverified.Metadata = time.Time{}, "", "", nil
	bare := session()
	bare.ClientID, bare.Browser, bare.OS, bare.DeviceType, bare.AMR, bare.IP, bare.UserAgent = "", "", "", "", nil, "", ""
	incident := func() store.SecurityIncident {
		return store.SecurityIncident{
			ID: "sinc_1", Type: "credential_stuffing", Status: store.IncidentOpen, Key: "203.0.113.9", Severity: store.SeverityHigh,
			FirstSeen: at, LastSeen: at.Add(time.Minute), IPs: []string{"203.0.113.9"}, UserIDs: []string{userID, sess2ID}, EventCount: 20,
			NotifiedAt: at.Add(time.Minute),
		}
	}
	escalated := incident()
	escalated.Escalations = 2
	resolved := incident()
	resolved.Type, resolved.Key, resolved.IPs, resolved.UserIDs = "account_many_countries", userID, nil, []string{userID}
	resolved.Status, resolved.ResolvedAt, resolved.ResolvedBy, resolved.Note = store.IncidentResolved, at.Add(time.Hour), adminID, "handled"
	score := 95
	alert := store.SecurityEvent{
		ID: "sev_1", Type: "risk_blocked", Severity: store.SeverityHigh, OccurredAt: at, UserID: userID, IP: "203.0.113.9",
		Country: "AU", City: "Sydney", ASN: 64500, Device: plantedFingerprint, Score: &score,
		Reasons: []store.SecurityReason{{Code: "impossible_travel", Points: 50}, {Code: "tor_exit", Points: 45}}, IncidentID: "sinc_1",
	}
	return []struct {
		name  string
		e     event.Event
		types []string
	}{
		{"sign-up", event.UserRegistered{User: unverified, Meta: web}, []string{"user.created"}},
		{"created by an operator", event.UserCreated{User: account(), Via: event.CreatedByAdmin, Meta: httpapi.Meta{UserAgent: "gatehouse-cli"}}, []string{"user.created"}},
		{"imported", event.UserCreated{User: unverified, Via: event.CreatedByImport}, []string{"user.created"}},
		{"social sign-up", event.UserCreated{User: account(), Via: event.CreatedBySocial, Provider: "google", Meta: web}, []string{"user.created"}},
		{"profile updated", event.UserUpdated{User: account(), Fields: []string{"name", "given_name", "family_name", "locale", "zoneinfo", "phone_number", "picture", "metadata"}, Meta: v6}, []string{"user.updated"}},
		{"address change requested", event.UserUpdated{User: account(), Fields: []string{"pending_email"}, Meta: v6}, []string{"user.updated"}},
		{"address changed", event.UserUpdated{User: unverified, Fields: []string{"email", "pending_email", "phone_number", "metadata"}}, []string{"user.updated"}},
		{"nothing known updated", event.UserUpdated{User: account(), Fields: []string{"password_hash"}}, nil},
		{"deleted", event.UserDeleted{UserID: userID, Email: "ada@example.com", Meta: byAdmin}, []string{"user.deleted"}},
		{"verified by link", event.EmailVerified{UserID: userID, Email: "ada@example.com", Via: event.VerifiedByLink, Meta: web}, []string{"user.email_verified"}},
		{"verified by change", event.EmailVerified{UserID: userID, Email: "ada@example.org", Via: event.VerifiedByEmailChange}, []string{"user.email_verified"}},
		{"verified by reset", event.EmailVerified{UserID: userID, Email: "ada@example.com", Via: event.VerifiedByPasswordReset, Meta: v6}, []string{"user.email_verified"}},
		{"verified by magic link", event.EmailVerified{UserID: userID, Email: "ada@example.com", Via: event.VerifiedByMagicLink, Meta: web}, []string{"user.email_verified"}},
		{"verified by provider", event.EmailVerified{UserID: userID, Email: "ada@example.com", Via: event.VerifiedByProvider, Meta: web}, []string{"user.email_verified"}},
		{"password changed", event.PasswordChanged{UserID: userID, Meta: v6}, []string{"user.password_changed"}},
		{"password reset", event.PasswordChanged{UserID: userID, Reset: true, Meta: web}, []string{"user.password_reset"}},
		{"sign-in locked", event.AccountLocked{UserID: userID, Action: "security.account_locked", Lock: time.Minute, Until: at.Add(time.Minute), Meta: web}, []string{"user.locked", "security.lockout"}},
		{"mfa locked", event.AccountLocked{UserID: userID, Action: "security.mfa_locked", Lock: 4 * time.Minute, Until: at.Add(4 * time.Minute), Meta: v6}, []string{"user.locked", "security.mfa_locked"}},
		{"unlocked", event.UserUnlocked{UserID: userID, Locks: []string{event.LockMFA, event.LockSignIn}, Meta: byAdmin}, []string{"user.unlocked"}},
		{"disabled", event.UserStatusChanged{UserID: userID, Status: store.UserDisabled, Previous: store.UserActive, Meta: byAdmin}, []string{"user.disabled"}},
		{"enabled", event.UserStatusChanged{UserID: userID, Status: store.UserActive, Previous: store.UserDisabled, Meta: byAdmin}, []string{"user.enabled"}},
		{"session started", event.SessionStarted{Session: session(), Meta: web}, []string{"session.created"}},
		{"bare session started", event.SessionStarted{Session: bare}, []string{"session.created"}},
		{"sessions revoked", event.SessionsRevoked{UserID: userID, SessionIDs: []string{sessID, sess2ID}, Reason: "logout_all", Meta: v6}, []string{"session.revoked", "session.revoked"}},
		{"session revoked by an admin", event.SessionsRevoked{UserID: userID, SessionIDs: []string{sessID}, Reason: "revoked_by_admin", Meta: byAdmin}, []string{"session.revoked"}},
		{"sessions revoked by a disowned sign-in", event.SessionsRevoked{UserID: userID, SessionIDs: []string{sessID, sess2ID}, Reason: "not_me", Meta: web}, []string{"session.revoked", "session.revoked"}},
		{"sign-in disowned", event.SignInDisowned{UserID: userID, SessionIDs: []string{sessID}, Meta: web}, nil},
		{"refresh token reused", event.RefreshTokenReused{Session: session(), Meta: web}, []string{"session.refresh_reuse_detected", "security.refresh_reuse", "session.revoked"}},
		{"factor enrolled", event.SecondFactorEnrolled{UserID: userID, Method: "totp", DeviceID: devID}, []string{"mfa.enrolled"}},
		{"factor removed", event.SecondFactorRemoved{UserID: userID, Method: "sms", DeviceID: devID}, []string{"mfa.removed"}},
		{"passkey registered", event.SecondFactorEnrolled{UserID: userID, Method: "webauthn", DeviceID: devID}, []string{"mfa.enrolled"}},
		{"passkey removed", event.SecondFactorRemoved{UserID: userID, Method: "webauthn", DeviceID: devID}, []string{"mfa.removed"}},
		{"backup codes", event.BackupCodesRegenerated{UserID: userID, Count: 10}, []string{"mfa.backup_codes_regenerated"}},
		{"identity linked", event.IdentityLinked{UserID: userID, IdentityID: identID, Provider: "github", Meta: web}, []string{"identity.linked"}},
		{"identity unlinked", event.IdentityUnlinked{UserID: userID, IdentityID: identID, Provider: "github", Meta: v6}, []string{"identity.unlinked"}},
		{"member added", event.OrganizationMemberAdded{OrganizationID: orgID, UserID: userID, Role: store.OrgAdmin, Meta: byAdmin}, []string{"organization.member_added"}},
		{"member removed", event.OrganizationMemberRemoved{OrganizationID: orgID, UserID: userID, Meta: byAdmin}, []string{"organization.member_removed"}},
		{"second factor verified", event.SecondFactorVerified{UserID: userID, PendingToken: plantedToken, Meta: web}, nil},
		{"sign-in risk", event.SignInRisk{UserID: userID, Decision: "step_up", Score: 50, Reasons: []store.SecurityReason{{Code: "impossible_travel", Points: 50}}, Meta: web}, nil},
		{"incident opened", event.SecurityIncidentNotified{Incident: incident()}, []string{"security.incident_opened"}},
		{"incident escalated", event.SecurityIncidentNotified{Incident: escalated, Escalated: true}, []string{"security.incident_escalated"}},
		{"incident resolved", event.SecurityIncidentResolved{Incident: resolved, Meta: byAdmin}, []string{"security.incident_resolved"}},
		{"security alert", event.SecurityAlerted{Event: alert}, []string{"security.alert"}},
		{"bare security alert", event.SecurityAlerted{Event: store.SecurityEvent{ID: "sev_2", Type: "not_me", Severity: store.SeverityHigh, OccurredAt: at, UserID: userID}}, []string{"security.alert"}},
		{"sign-in failed", event.SignInFailed{UserID: userID, Account: userID, Meta: web}, nil},
		{"session anomaly", event.SessionAnomaly{UserID: userID, SessionID: sessID, Score: 60, Meta: web}, nil},
		{"session ended for an anomaly", event.SessionAnomaly{UserID: userID, SessionID: sessID, Score: 95, Revoked: true, Meta: web}, []string{"session.revoked"}},
		{"sessions ended by an incident", event.SessionsRevoked{UserID: userID, SessionIDs: []string{sessID}, Reason: "security_incident"}, []string{"session.revoked"}},
		{"second factor failed", event.SecondFactorFailed{UserID: userID, Meta: web}, nil},
		{"sms failed", event.SMSDeliveryFailed{Args: sms.SendArgs{To: fullPhone, SealedBody: plantedSMSBody, UserID: userID, Purpose: "mfa_login", Ref: plantedDeviceHash}, Cause: errors.New("carrier said no")}, nil},
	}
}

// TestMessagesMatchTheirSchemas runs realistic events through Messages:
// each gives the types it should, each message's data is a JSON object
// valid against its type's schema, is about the user, names the
// organisation only where the event does, and carries none of the secrets
// planted in the events; and every type of the catalogue is produced by
// some event (or is webhook.test).
func TestMessagesMatchTheirSchemas(t *testing.T) {
	schemas := map[string]*jsonschema.Schema{}
	for _, typ := range catalog.Types() {
		schemas[typ.Name] = compile(t, typ)
	}
	produced := map[string]bool{}
	check := func(t *testing.T, m catalog.Message) {
		t.Helper()
		produced[m.Type] = true
		sch, ok := schemas[m.Type]
		if !ok {
			t.Fatalf("message of type %q, which the catalogue does not have", m.Type)
		}
		b, err := json.Marshal(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("{")) {
			t.Fatalf("%s: data %s is not a JSON object", m.Type, b)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s: data %s does not match its schema: %v", m.Type, b, err)
		}
		for _, secret := range []string{plantedHash, "PLANTEDHASHVALUE", plantedFingerprint, plantedToken, plantedSMSBody, plantedAppMetadata, plantedDeviceHash, "7700900123", "req-1"} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s: data %s carries %q", m.Type, b, secret)
			}
		}
		var data map[string]any
		json.Unmarshal(b, &data)
		if uid, ok := data["user_id"]; ok && uid != m.UserID {
			t.Errorf("%s: message about user %q, data names %v", m.Type, m.UserID, uid)
		}
		if oid, ok := data["organization_id"]; ok != (len(m.OrganizationIDs) > 0) || (ok && !slices.Equal(m.OrganizationIDs, []string{oid.(string)})) {
			t.Errorf("%s: organisations %v, data names %v", m.Type, m.OrganizationIDs, oid)
		}
		if actor, ok := data["actor_id"]; ok && actor == m.UserID {
			t.Errorf("%s: actor_id is the user themselves", m.Type)
		}
	}
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			msgs := catalog.Messages(c.e)
			var got []string
			for _, m := range msgs {
				got = append(got, m.Type)
				check(t, m)
			}
			if !slices.Equal(got, c.types) {
				t.Errorf("Messages(%T) types = %v, want %v", c.e, got, c.types)
			}
		})
	}
	t.Run("test event", func(t *testing.T) {
		m := catalog.Test("whep_0193a5c27e41")
		if m.Type != "webhook.test" || m.UserID != "" {
			t.Errorf("Test() = %+v", m)
		}
		check(t, m)
	})
	for _, name := range issueTypes {
		if !produced[name] {
			t.Errorf("no event gives %s: an orphan type", name)
		}
	}
}

// TestPayloadValues checks what the payloads say, beyond their shape:
// the changed fields' new values (a phone number masked), who acted, how
// an account was created, the lock's duration and end, why a session
// ended.
func TestPayloadValues(t *testing.T) {
	data := func(e event.Event, i int) map[string]any {
		t.Helper()
		msgs := catalog.Messages(e)
		if len(msgs) <= i {
			t.Fatalf("Messages(%T) = %d messages", e, len(msgs))
		}
		b, err := json.Marshal(msgs[i].Data)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, c := range []struct {
		name string
		got  map[string]any
		want map[string]any
	}{
		{"user.updated", data(event.UserUpdated{User: account(), Fields: []string{"name", "phone_number", "metadata"}, Meta: v6}, 0), map[string]any{
			"user_id": userID, "fields": []any{"name", "phone_number", "metadata"},
			"changes": map[string]any{"name": "Ada Lovelace", "phone_number": "********0123", "metadata": map[string]any{"theme": "dark"}},
			"ip":      "2001:db8::7", "user_agent": "curl/8.9",
		}},
		{"user.created by social sign-up", data(event.UserCreated{User: account(), Via: event.CreatedBySocial, Provider: "google"}, 0), map[string]any{
			"user_id": userID, "email": "ada@example.com", "email_verified": true, "name": "Ada Lovelace",
			"source": "social", "provider": "google", "created_at": "2026-12-03T21:14:07.123456Z",
		}},
		{"user.locked", data(event.AccountLocked{UserID: userID, Action: "security.mfa_locked", Lock: 90 * time.Second, Until: at.Add(90 * time.Second), Meta: web}, 0), map[string]any{
			"user_id": userID, "lock": "mfa", "lock_seconds": 90.0, "locked_until": "2026-12-03T21:15:37.123456Z",
			"ip": web.IP, "user_agent": web.UserAgent,
		}},
		{"user.disabled", data(event.UserStatusChanged{UserID: userID, Status: store.UserDisabled, Meta: byAdmin}, 0), map[string]any{
			"user_id": userID, "actor_id": adminID, "ip": byAdmin.IP, "user_agent": "admin-console",
		}},
		{"session.revoked of a reuse", data(event.RefreshTokenReused{Session: session(), Meta: web}, 2), map[string]any{
			"session_id": sessID, "user_id": userID, "reason": "refresh_token_reuse", "ip": web.IP, "user_agent": web.UserAgent,
		}},
		{"session.created", data(event.SessionStarted{Session: session(), Meta: web}, 0), map[string]any{
			"session_id": sessID, "user_id": userID, "client_id": "spa-client", "amr": []any{"pwd", "mfa", "otp"},
			"browser": "Firefox", "os": "Linux", "device_type": "desktop", "device_id": "laptop-1",
			"created_at": "2026-12-03T21:14:07.123456Z", "expires_at": "2027-01-02T21:14:07.123456Z",
			"ip": web.IP, "user_agent": web.UserAgent,
		}},
	} {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

// TestHandler checks GET /v1/webhooks/event-types against a real server:
// the catalogue as JSON, each type with its description and schema, and
// only GET (and HEAD) answered.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(catalog.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/v1/webhooks/event-types")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var body struct {
		EventTypes []struct {
			Type        string          `json:"type"`
			Description string          `json:"description"`
			Schema      json.RawMessage `json:"schema"`
		} `json:"event_types"`
	}
	dec := json.NewDecoder(res.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	types := catalog.Types()
	if len(body.EventTypes) != len(types) {
		t.Fatalf("%d event types listed, want %d", len(body.EventTypes), len(types))
	}
	for i, typ := range types {
		got := body.EventTypes[i]
		if got.Type != typ.Name || got.Description != typ.Description {
			t.Errorf("event_types[%d] = %s %q, want %s %q", i, got.Type, got.Description, typ.Name, typ.Description)
		}
		var a, b any
		json.Unmarshal(got.Schema, &a)
		json.Unmarshal(typ.Schema, &b)
		if diff := cmp.Diff(b, a); diff != "" {
			t.Errorf("%s: listed schema differs (-catalogue +listed):\n%s", typ.Name, diff)
		}
	}

	res, err = http.Post(srv.URL+"/v1/webhooks/event-types", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 405 || res.Header.Get("Allow") != "GET, HEAD" || !strings.Contains(string(b), "method_not_allowed") {
		t.Errorf("POST = %d %v %s, want 405 method_not_allowed", res.StatusCode, res.Header, b)
	}
}
