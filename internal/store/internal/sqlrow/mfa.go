package sqlrow

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// MFADeviceColumns is the column list ScanMFADevice expects, in order; the
// values MFADeviceValues returns are in the same order.
const MFADeviceColumns = "id, user_id, type, name, secret, phone_number, email, confirmed_at, " +
	"is_default, last_step, last_used_at, created_at, updated_at"

// ScanMFADevice scans one row selected with MFADeviceColumns. td scans a
// NOT NULL time column, ntd a nullable one.
func ScanMFADevice(s Scanner, td, ntd TimeDest) (store.MFADevice, error) {
	var (
		d                          store.MFADevice
		name, secret, phone, email *string
	)
	err := s.Scan(&d.ID, &d.UserID, &d.Type, &name, &secret, &phone, &email, ntd(&d.ConfirmedAt),
		&d.IsDefault, &d.LastStep, ntd(&d.LastUsedAt), td(&d.CreatedAt), td(&d.UpdatedAt))
	if err != nil {
		return store.MFADevice{}, err
	}
	d.Name, d.Secret, d.PhoneNumber, d.Email = deref(name), deref(secret), deref(phone), deref(email)
	utc(&d.ConfirmedAt, &d.LastUsedAt, &d.CreatedAt, &d.UpdatedAt)
	return d, nil
}

// MFADeviceValues returns the values of the MFADeviceColumns columns of a
// device PrepareMFADevice returned, in order.
func MFADeviceValues(d store.MFADevice, tv TimeValue) []any {
	return []any{
		d.ID, d.UserID, d.Type, Null(d.Name), Null(d.Secret), Null(d.PhoneNumber), Null(d.Email), tv(d.ConfirmedAt),
		d.IsDefault, d.LastStep, tv(d.LastUsedAt), tv(d.CreatedAt), tv(d.UpdatedAt),
	}
}

// ValidMFAType reports whether t is one of the MFA device types; the
// migrations hold the same list in a CHECK constraint.
func ValidMFAType(t string) bool {
	switch t {
	case store.MFATOTP, store.MFASMS, store.MFAEmail:
		return true
	}
	return false
}

// ValidMFAChannel reports whether c is a channel MFA codes are sent
// through (MFASMS or MFAEmail).
func ValidMFAChannel(c string) bool { return c == store.MFASMS || c == store.MFAEmail }

// PrepareMFADevice validates d for CreateMFADevice and fills in what the
// store sets: the ID (a UUIDv7 when empty) and CreatedAt = UpdatedAt = now.
// A user ID that is not a UUID is store.ErrNotFound: no user has it. IDs
// come back in canonical form and times in UTC to the microsecond.
func PrepareMFADevice(d store.MFADevice, now time.Time) (store.MFADevice, error) {
	id, err := newID(d.ID)
	if err != nil {
		return d, fmt.Errorf("mfa device: %w", err)
	}
	d.ID = id
	user, ok := ParseID(d.UserID)
	if !ok {
		return d, fmt.Errorf("mfa device: user %q: %w", d.UserID, store.ErrNotFound)
	}
	d.UserID = user
	switch {
	case !ValidMFAType(d.Type):
		return d, fmt.Errorf("mfa device: unknown type %q", d.Type)
	case d.LastStep < 0:
		return d, errors.New("mfa device: LastStep cannot be negative")
	case !validText(d.Secret):
		// Not quoting the value: it is a (sealed) secret.
		return d, errors.New("mfa device: Secret is not valid UTF-8 text without NUL")
	}
	if err := checkDeviceText(d); err != nil {
		return d, err
	}
	d.CreatedAt = Micro(now)
	d.UpdatedAt = d.CreatedAt
	d.ConfirmedAt, d.LastUsedAt = microOrZero(d.ConfirmedAt), microOrZero(d.LastUsedAt)
	return d, nil
}

// PrepareMFADeviceUpdate validates d for UpdateMFADevice: its ID and
// UserID in canonical form (either not a UUID is store.ErrNotFound), the
// fields UpdateMFADevice writes checked, their times in UTC to the
// microsecond.
func PrepareMFADeviceUpdate(d store.MFADevice) (store.MFADevice, error) {
	id, okID := ParseID(d.ID)
	user, okUser := ParseID(d.UserID)
	if !okID || !okUser {
		return d, fmt.Errorf("mfa device %q of user %q: %w", d.ID, d.UserID, store.ErrNotFound)
	}
	d.ID, d.UserID = id, user
	if err := checkDeviceText(d); err != nil {
		return d, err
	}
	d.ConfirmedAt, d.LastUsedAt = microOrZero(d.ConfirmedAt), microOrZero(d.LastUsedAt)
	return d, nil
}

func checkDeviceText(d store.MFADevice) error {
	for name, v := range map[string]string{"Name": d.Name, "PhoneNumber": d.PhoneNumber, "Email": d.Email} {
		if !validText(v) {
			return fmt.Errorf("mfa device: %s is not valid UTF-8 text without NUL", name)
		}
	}
	return nil
}

// PrepareBackupCodes validates the arguments of ReplaceBackupCodes: it
// returns the user ID in canonical form (store.ErrNotFound when it is not a
// UUID), a new UUIDv7 for each hash and now in UTC to the microsecond.
// Hashes must be non-empty; a hash given twice is left for the unique
// index to reject (store.ErrConflict).
func PrepareBackupCodes(userID string, hashes []string, now time.Time) (string, []string, time.Time, error) {
	user, ok := ParseID(userID)
	if !ok {
		return "", nil, time.Time{}, fmt.Errorf("backup codes: user %q: %w", userID, store.ErrNotFound)
	}
	ids := make([]string, len(hashes))
	for i, h := range hashes {
		if !Storable(h) {
			return "", nil, time.Time{}, errors.New("backup codes: hashes must be non-empty UTF-8 text without NUL")
		}
		id, err := newID("")
		if err != nil {
			return "", nil, time.Time{}, fmt.Errorf("backup codes: %w", err)
		}
		ids[i] = id
	}
	return user, ids, Micro(now), nil
}

// MFACodeColumns is the column list ScanMFACode expects, in order; the
// values MFACodeValues returns are in the same order.
const MFACodeColumns = "id, user_id, device_id, channel, code_hash, attempts, expires_at, consumed_at, created_at"

// ScanMFACode scans one row selected with MFACodeColumns.
func ScanMFACode(s Scanner, td, ntd TimeDest) (store.MFACode, error) {
	var (
		c      store.MFACode
		device *string
	)
	err := s.Scan(&c.ID, &c.UserID, &device, &c.Channel, &c.CodeHash, &c.Attempts,
		td(&c.ExpiresAt), ntd(&c.ConsumedAt), td(&c.CreatedAt))
	if err != nil {
		return store.MFACode{}, err
	}
	c.DeviceID = deref(device)
	utc(&c.ExpiresAt, &c.ConsumedAt, &c.CreatedAt)
	return c, nil
}

// MFACodeValues returns the values of the MFACodeColumns columns of a code
// PrepareMFACode returned, in order.
func MFACodeValues(c store.MFACode, tv TimeValue) []any {
	return []any{
		c.ID, c.UserID, Null(c.DeviceID), c.Channel, c.CodeHash, c.Attempts,
		tv(c.ExpiresAt), tv(c.ConsumedAt), tv(c.CreatedAt),
	}
}

// PrepareMFACode validates c for CreateMFACode and fills in what the caller
// may leave out: a UUIDv7 ID and CreatedAt = now. A user or device ID that
// is not a UUID is store.ErrNotFound. A new code has had no attempts and
// is not consumed. IDs come back in canonical form and times in UTC to the
// microsecond.
func PrepareMFACode(c store.MFACode, now time.Time) (store.MFACode, error) {
	id, err := newID(c.ID)
	if err != nil {
		return c, fmt.Errorf("mfa code: %w", err)
	}
	c.ID = id
	user, ok := ParseID(c.UserID)
	if !ok {
		return c, fmt.Errorf("mfa code: user %q: %w", c.UserID, store.ErrNotFound)
	}
	c.UserID = user
	if c.DeviceID != "" {
		device, ok := ParseID(c.DeviceID)
		if !ok {
			return c, fmt.Errorf("mfa code: device %q: %w", c.DeviceID, store.ErrNotFound)
		}
		c.DeviceID = device
	}
	switch {
	case !ValidMFAChannel(c.Channel):
		return c, fmt.Errorf("mfa code: unknown channel %q", c.Channel)
	case !Storable(c.CodeHash):
		return c, errors.New("mfa code: CodeHash is required (UTF-8 text without NUL)")
	case c.ExpiresAt.IsZero():
		return c, errors.New("mfa code: ExpiresAt is required")
	case c.Attempts != 0 || !c.ConsumedAt.IsZero():
		return c, errors.New("mfa code: a new code has no attempts and is not consumed")
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	c.ExpiresAt, c.CreatedAt = Micro(c.ExpiresAt), Micro(c.CreatedAt)
	return c, nil
}

// MFACodeTarget normalises the code a caller of AttemptMFACode asks for:
// the user ID and (when set) the device ID in canonical form, and reports
// false when no code can match (an ID that is not a UUID, an unknown
// channel).
func MFACodeTarget(userID, channel, deviceID string) (user, device string, ok bool) {
	user, ok = ParseID(userID)
	if !ok || !ValidMFAChannel(channel) {
		return "", "", false
	}
	if deviceID == "" {
		return user, "", true
	}
	device, ok = ParseID(deviceID)
	return user, device, ok
}

// OrganizationColumns is the column list ScanOrganization expects, in
// order.
const OrganizationColumns = "id, name, slug, policy, created_at, updated_at"

// ScanOrganization scans one row selected with OrganizationColumns. The
// policy comes back as a map, empty rather than nil.
func ScanOrganization(s Scanner, td TimeDest) (store.Organization, error) {
	var (
		o      store.Organization
		policy []byte
	)
	if err := s.Scan(&o.ID, &o.Name, &o.Slug, &policy, td(&o.CreatedAt), td(&o.UpdatedAt)); err != nil {
		return store.Organization{}, err
	}
	utc(&o.CreatedAt, &o.UpdatedAt)
	o.Policy = map[string]any{}
	if err := json.Unmarshal(policy, &o.Policy); err != nil {
		return store.Organization{}, fmt.Errorf("decode policy of organization %s: %w", o.ID, err)
	}
	return o, nil
}

// PreparedOrganization is a validated organisation ready to be written.
type PreparedOrganization struct {
	store.Organization
	// PolicyJSON is Policy encoded as a JSON object ({} for nil).
	PolicyJSON string
}

// PrepareOrganization validates o for CreateOrganization (create true: an
// empty ID becomes a UUIDv7, zero CreatedAt and UpdatedAt become now) or
// UpdateOrganization (create false: the ID must be given, and one that is
// not a UUID is store.ErrNotFound). Name and Slug are required. IDs come
// back in canonical form and times in UTC to the microsecond.
func PrepareOrganization(o store.Organization, now time.Time, create bool) (PreparedOrganization, error) {
	if create {
		id, err := newID(o.ID)
		if err != nil {
			return PreparedOrganization{}, fmt.Errorf("organization: %w", err)
		}
		o.ID = id
		if o.CreatedAt.IsZero() {
			o.CreatedAt = now
		}
		if o.UpdatedAt.IsZero() {
			o.UpdatedAt = o.CreatedAt
		}
		o.CreatedAt, o.UpdatedAt = Micro(o.CreatedAt), Micro(o.UpdatedAt)
	} else {
		id, ok := ParseID(o.ID)
		if !ok {
			return PreparedOrganization{}, fmt.Errorf("organization %q: %w", o.ID, store.ErrNotFound)
		}
		o.ID = id
	}
	if !Storable(o.Name) || !Storable(o.Slug) {
		return PreparedOrganization{}, errors.New("organization: Name and Slug are required (UTF-8 text without NUL)")
	}
	policy, err := encodeObject(o.Policy)
	if err != nil {
		return PreparedOrganization{}, fmt.Errorf("organization: encode policy: %w", err)
	}
	return PreparedOrganization{Organization: o, PolicyJSON: string(policy)}, nil
}

// MembershipColumns is the column list ScanMembership expects, in order.
const MembershipColumns = "org_id, user_id, role, created_at"

// ScanMembership scans one row selected with MembershipColumns.
func ScanMembership(s Scanner, td TimeDest) (store.OrgMembership, error) {
	var m store.OrgMembership
	if err := s.Scan(&m.OrgID, &m.UserID, &m.Role, td(&m.CreatedAt)); err != nil {
		return store.OrgMembership{}, err
	}
	m.CreatedAt = m.CreatedAt.UTC()
	return m, nil
}

// ValidOrgRole reports whether r is one of the organisation roles; the
// migrations hold the same list in a CHECK constraint.
func ValidOrgRole(r string) bool {
	switch r {
	case store.OrgOwner, store.OrgAdmin, store.OrgMember:
		return true
	}
	return false
}

// PrepareMembership validates m for SetMembership: organisation and user
// IDs in canonical form (either not a UUID is store.ErrNotFound), a known
// role, and CreatedAt (now when zero) in UTC to the microsecond.
func PrepareMembership(m store.OrgMembership, now time.Time) (store.OrgMembership, error) {
	org, okOrg := ParseID(m.OrgID)
	user, okUser := ParseID(m.UserID)
	if !okOrg || !okUser {
		return m, fmt.Errorf("membership of user %q in organization %q: %w", m.UserID, m.OrgID, store.ErrNotFound)
	}
	m.OrgID, m.UserID = org, user
	if !ValidOrgRole(m.Role) {
		return m, fmt.Errorf("membership: unknown role %q", m.Role)
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	m.CreatedAt = Micro(m.CreatedAt)
	return m, nil
}

// microOrZero is Micro that keeps the zero time zero.
func microOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return Micro(t)
}
