package user

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Profile is the JSON shape of an account as its owner sees it. Field
// names follow the OpenID Connect standard claims where one exists.
type Profile struct {
	ID              string         `json:"id"`
	Email           string         `json:"email"`
	EmailVerified   bool           `json:"email_verified"`
	EmailVerifiedAt *time.Time     `json:"email_verified_at"`
	PendingEmail    string         `json:"pending_email,omitempty"`
	Name            string         `json:"name"`
	GivenName       string         `json:"given_name"`
	FamilyName      string         `json:"family_name"`
	Locale          string         `json:"locale"`
	Zoneinfo        string         `json:"zoneinfo"`
	PhoneNumber     string         `json:"phone_number"`
	Picture         string         `json:"picture,omitempty"` // absent when unset: the document says format uri
	Metadata        map[string]any `json:"metadata"`
	AppMetadata     map[string]any `json:"app_metadata"`
	Department      string         `json:"department"`
	JobTitle        string         `json:"job_title"`
	EmployeeID      string         `json:"employee_id"`
	Status          string         `json:"status"`
	LastLoginAt     *time.Time     `json:"last_login_at"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func emptyIfNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// ProfileOf renders u for its owner.
func ProfileOf(u store.User) Profile {
	return Profile{
		ID: u.ID, Email: u.Email, EmailVerified: !u.EmailVerifiedAt.IsZero(), EmailVerifiedAt: timePtr(u.EmailVerifiedAt),
		PendingEmail: u.PendingEmail, Name: u.Name, GivenName: u.GivenName, FamilyName: u.FamilyName,
		Locale: u.Locale, Zoneinfo: u.Zoneinfo, PhoneNumber: u.PhoneNumber, Picture: u.Picture,
		Metadata: emptyIfNil(u.Metadata), AppMetadata: emptyIfNil(u.AppMetadata),
		Department: u.Department, JobTitle: u.JobTitle, EmployeeID: u.EmployeeID,
		Status: string(u.Status), LastLoginAt: timePtr(u.LastLoginAt), CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(),
	}
}

// optional is a PATCH field: Set tells whether it was sent at all, Null
// whether it was sent as null (clear it).
type optional[T any] struct {
	Set   bool
	Null  bool
	Value T
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// ProfilePatch is the body of PATCH /v1/me. Absent fields are left alone;
// null clears a field.
type ProfilePatch struct {
	Email       optional[string]          `json:"email"`
	Name        optional[string]          `json:"name"`
	GivenName   optional[string]          `json:"given_name"`
	FamilyName  optional[string]          `json:"family_name"`
	Locale      optional[string]          `json:"locale"`
	Zoneinfo    optional[string]          `json:"zoneinfo"`
	PhoneNumber optional[string]          `json:"phone_number"`
	Picture     optional[string]          `json:"picture"`
	Metadata    optional[json.RawMessage] `json:"metadata"`
	// CurrentPassword confirms an email change by a caller who did not
	// sign in within Config.ReauthWindow. It is not a profile field.
	CurrentPassword string `json:"current_password"`
}

// GetProfile returns the account of userID.
func (s *Service) GetProfile(ctx context.Context, userID string) (store.User, error) {
	return s.Store.GetUser(ctx, userID)
}

// UpdateProfile applies a validated patch. Changed fields are recorded in
// the activity trail with old and new values. A new email address does not
// take effect until it is verified: a link goes to the new address and a
// notice to the old one.
func (s *Service) UpdateProfile(ctx context.Context, userID string, p ProfilePatch, m httpapi.Meta) (store.User, error) {
	plan, err := checkPatch(p)
	if err != nil {
		return store.User{}, err
	}
	confirmed, err := s.confirmEmailChange(ctx, userID, plan.newEmail, p.CurrentPassword, m)
	if err != nil {
		return store.User{}, err
	}
	var out store.User
	err = s.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.GetUserForUpdate(ctx, userID)
		if err != nil {
			return err
		}
		pending := u.PendingEmail
		diff := plan.apply(&u)
		if plan.newEmail != "" {
			if err := s.changeEmail(ctx, tx, &u, plan.newEmail, confirmed, diff, m); err != nil {
				return err
			}
		}
		if out, err = tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		fields := slices.Sorted(maps.Keys(diff))
		if out.PendingEmail != pending {
			fields = append(fields, "pending_email") // a new address requested, or the request cancelled
		}
		if len(diff) > 0 {
			if err := s.audit(ctx, tx, m, u.ID, "user.profile_updated", map[string]any{"changes": diff}); err != nil {
				return err
			}
		}
		if len(fields) == 0 {
			return nil
		}
		return tx.Publish(ctx, event.UserUpdated{User: out, Fields: fields, Meta: m})
	})
	return out, err
}

// patchPlan is a checked ProfilePatch: the fields to set and the new
// email address, if one is asked for.
type patchPlan struct {
	changes     []fieldChange
	setMetadata bool
	metadata    map[string]any
	newEmail    string
}

// fieldChange sets one string field of the profile.
type fieldChange struct {
	field string
	ptr   func(*store.User) *string
	value string
}

// checkPatch validates every field of p at once.
func checkPatch(p ProfilePatch) (patchPlan, error) {
	var errs fieldErrors
	var plan patchPlan
	text := func(field string, max int) func(string) string {
		return func(v string) string { return cleanText(&errs, field, v, max) }
	}
	add := func(o optional[string], field string, check func(string) string, ptr func(*store.User) *string) {
		switch {
		case !o.Set:
		case o.Null:
			plan.changes = append(plan.changes, fieldChange{field, ptr, ""})
		default:
			plan.changes = append(plan.changes, fieldChange{field, ptr, check(o.Value)})
		}
	}
	add(p.Name, "name", text("name", maxNameLength), func(u *store.User) *string { return &u.Name })
	add(p.GivenName, "given_name", text("given_name", maxNameLength), func(u *store.User) *string { return &u.GivenName })
	add(p.FamilyName, "family_name", text("family_name", maxNameLength), func(u *store.User) *string { return &u.FamilyName })
	add(p.Locale, "locale", func(v string) string { return checkLocale(&errs, v) }, func(u *store.User) *string { return &u.Locale })
	add(p.Zoneinfo, "zoneinfo", func(v string) string { return checkZoneinfo(&errs, v) }, func(u *store.User) *string { return &u.Zoneinfo })
	add(p.PhoneNumber, "phone_number", func(v string) string { return checkPhone(&errs, v) }, func(u *store.User) *string { return &u.PhoneNumber })
	add(p.Picture, "picture", func(v string) string { return checkPicture(&errs, v) }, func(u *store.User) *string { return &u.Picture })
	if p.Metadata.Set {
		plan.setMetadata, plan.metadata = true, map[string]any{}
		if !p.Metadata.Null {
			plan.metadata = checkMetadata(&errs, "metadata", p.Metadata.Value)
		}
	}
	if p.Email.Set {
		if p.Email.Null {
			errs.add("email", "required", "The email address cannot be removed.")
		} else {
			plan.newEmail = checkEmail(&errs, "email", p.Email.Value)
		}
	}
	return plan, errs.err()
}

// apply sets the plan's fields (but the email address) on u and returns
// what changed, for the audit event.
func (plan patchPlan) apply(u *store.User) map[string]any {
	diff := map[string]any{}
	for _, c := range plan.changes {
		ptr := c.ptr(u)
		if *ptr != c.value {
			diff[c.field] = map[string]any{"old": *ptr, "new": c.value}
			*ptr = c.value
		}
	}
	if plan.setMetadata && !reflect.DeepEqual(emptyIfNil(u.Metadata), plan.metadata) {
		diff["metadata"] = map[string]any{"old": emptyIfNil(u.Metadata), "new": plan.metadata}
		u.Metadata = plan.metadata
	}
	return diff
}

// recentlyAuthenticated reports whether the caller authenticated within
// Config.ReauthWindow.
func (s *Service) recentlyAuthenticated(m httpapi.Meta) bool {
	return !m.AuthTime.IsZero() && s.now().Sub(m.AuthTime) <= s.Config.ReauthWindow
}

// confirmPassword checks the current password given to confirm a change,
// through the sign-in lockout. Without one the change needs a recent
// sign-in instead (ErrEmailChangeNeedsReauth).
func (s *Service) confirmPassword(ctx context.Context, userID, pw string, m httpapi.Meta) error {
	if pw == "" || s.Passwords == nil {
		return ErrEmailChangeNeedsReauth
	}
	return s.Passwords.VerifyPassword(ctx, userID, pw, m)
}

// throttleEmailChange takes one unit from the user's email change limit
// and one from the new address's send limit, answering 429 rate_limited
// over either.
func (s *Service) throttleEmailChange(ctx context.Context, userID, newEmail string) error {
	for _, k := range []struct {
		key string
		l   ratelimit.Limit
	}{{"email-change:user:" + userID, s.Config.EmailChangePerUser}, {s.addrKey(NormalizeEmail(newEmail)), s.Config.EmailPerAddress}} {
		ok, retry, err := s.allow(ctx, k.key, k.l)
		if err != nil {
			return err
		}
		if !ok {
			return rateLimited(retry)
		}
	}
	return nil
}

// maskEmail hides most of the local part: "alice@example.com" → "a***@example.com".
func maskEmail(e string) string {
	for i, r := range e {
		if r == '@' {
			if i <= 1 {
				return "***" + e[i:]
			}
			return e[:1] + "***" + e[i:]
		}
	}
	return "***"
}

// Activity is one entry of the account's activity trail.
type Activity struct {
	ID         string         `json:"id"`
	Action     string         `json:"action"`
	OccurredAt time.Time      `json:"occurred_at"`
	ActorID    string         `json:"actor_id,omitempty"`
	IP         string         `json:"ip,omitempty"`
	UserAgent  string         `json:"user_agent,omitempty"`
	Data       map[string]any `json:"data"`
}

// Activity lists the account's events, newest first. The actor, IP
// address and user agent are shown only for the user's own actions: an
// event someone else caused (an administrator, or an unauthenticated
// request such as a password reset request or a sign-up attempt on the
// address) keeps its action, time and data, but not who made it or from
// where.
func (s *Service) Activity(ctx context.Context, userID, cursor string, limit int) ([]Activity, string, error) {
	events, next, err := s.Store.ListAuditEvents(ctx, store.AuditFilter{SubjectID: userID, Cursor: cursor, Limit: limit})
	if err != nil {
		return nil, "", err
	}
	out := make([]Activity, 0, len(events))
	for _, e := range events {
		a := Activity{ID: e.ID, Action: e.Action, OccurredAt: e.OccurredAt.UTC(), Data: emptyIfNil(e.Data)}
		if e.ActorID == userID {
			a.ActorID, a.IP, a.UserAgent = e.ActorID, e.IP, e.UserAgent
		}
		out = append(out, a)
	}
	return out, next, nil
}
