package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runMFA(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("DeviceRoundTrip", func(t *testing.T) { testMFADeviceRoundTrip(t, migrated(t)) })
	t.Run("DeviceInvalid", func(t *testing.T) { testMFADeviceInvalid(t, migrated(t)) })
	t.Run("DeviceOwnership", func(t *testing.T) { testMFADeviceOwnership(t, migrated(t)) })
	t.Run("DefaultDevice", func(t *testing.T) { testMFADefaultDevice(t, migrated(t)) })
	t.Run("TOTPStep", func(t *testing.T) { testMFATOTPStep(t, migrated(t)) })
	t.Run("BackupCodes", func(t *testing.T) { testMFABackupCodes(t, migrated(t)) })
	t.Run("Codes", func(t *testing.T) { testMFACodes(t, migrated(t)) })
	t.Run("ParallelCodes", func(t *testing.T) { testMFAParallelCodes(t, migrated(t)) })
	t.Run("ParallelReplace", func(t *testing.T) { testMFAParallelReplace(t, migrated(t)) })
	t.Run("InTx", func(t *testing.T) { testMFAInTx(t, migrated(t)) })
	t.Run("Cascades", func(t *testing.T) { testMFACascades(t, migrated(t)) })
	t.Run("SecondFactors", func(t *testing.T) { testSecondFactors(t, migrated(t)) })
}

// mfaAt is the fixed "now" the MFA tests run at.
var mfaAt = time.Date(2025, 6, 1, 8, 30, 0, 0, time.UTC)

func mustCreateDevice(t *testing.T, s store.Store, d store.MFADevice) store.MFADevice {
	t.Helper()
	created, err := s.CreateMFADevice(context.Background(), d)
	if err != nil {
		t.Fatalf("CreateMFADevice(%+v): %v", d, err)
	}
	return created
}

func mustGetDevice(t *testing.T, s store.Store, userID, id string) store.MFADevice {
	t.Helper()
	d, err := s.GetMFADevice(context.Background(), userID, id)
	if err != nil {
		t.Fatalf("GetMFADevice(%s): %v", id, err)
	}
	return d
}

func totpDevice(userID string) store.MFADevice {
	return store.MFADevice{UserID: userID, Type: store.MFATOTP, Name: "phone app", Secret: "sealed:" + uuid.NewString()}
}

// defaults returns the IDs of the user's default devices.
func defaults(t *testing.T, s store.Store, userID string) []string {
	t.Helper()
	list, err := s.ListMFADevices(context.Background(), userID)
	if err != nil {
		t.Fatalf("ListMFADevices: %v", err)
	}
	var ids []string
	for _, d := range list {
		if d.IsDefault {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

func testMFADeviceRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("mfa@example.com"))
	india := time.FixedZone("IST", 5*3600+30*60)
	in := store.MFADevice{
		ID:          strings.ToUpper(uuid.NewString()),
		UserID:      strings.ToUpper(user.ID),
		Type:        store.MFASMS,
		Name:        "Ada's phone",
		Secret:      "sealed:v1:abc",
		PhoneNumber: "+442071234567",
		Email:       "ada@example.com",
		ConfirmedAt: time.Date(2025, 5, 1, 12, 0, 0, 123456789, india),
		IsDefault:   true,
		LastStep:    58_000_000,
		LastUsedAt:  time.Date(2025, 5, 2, 12, 0, 0, 999, india),
		CreatedAt:   time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), // ignored
		UpdatedAt:   time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), // ignored
	}
	created, err := s.CreateMFADevice(ctx, in)
	if err != nil {
		t.Fatalf("CreateMFADevice: %v", err)
	}
	checkNow(t, "CreatedAt", created.CreatedAt)
	if !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", created.UpdatedAt, created.CreatedAt)
	}
	want := store.MFADevice{
		ID:          strings.ToLower(in.ID),
		UserID:      user.ID,
		Type:        store.MFASMS,
		Name:        in.Name,
		Secret:      in.Secret,
		PhoneNumber: in.PhoneNumber,
		Email:       in.Email,
		ConfirmedAt: time.Date(2025, 5, 1, 6, 30, 0, 123456000, time.UTC),
		IsDefault:   true,
		LastStep:    58_000_000,
		LastUsedAt:  time.Date(2025, 5, 2, 6, 30, 0, 0, time.UTC),
		CreatedAt:   created.CreatedAt,
		UpdatedAt:   created.CreatedAt,
	}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("CreateMFADevice returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, mustGetDevice(t, s, strings.ToUpper(user.ID), in.ID)); diff != "" {
		t.Errorf("GetMFADevice (-want +got):\n%s", diff)
	}

	// Defaults: a UUIDv7, empty strings as NULL, zero times as NULL.
	minimal := mustCreateDevice(t, s, store.MFADevice{UserID: user.ID, Type: store.MFATOTP})
	if id, err := uuid.Parse(minimal.ID); err != nil || id.Version() != 7 || id.String() != minimal.ID {
		t.Errorf("generated ID = %q, want a canonical UUIDv7", minimal.ID)
	}
	wantMinimal := store.MFADevice{ID: minimal.ID, UserID: user.ID, Type: store.MFATOTP, CreatedAt: minimal.CreatedAt, UpdatedAt: minimal.CreatedAt}
	if diff := cmp.Diff(wantMinimal, mustGetDevice(t, s, user.ID, minimal.ID)); diff != "" {
		t.Errorf("minimal device (-want +got):\n%s", diff)
	}
	if n := count(t, s, "SELECT count(*) FROM mfa_devices WHERE id = '"+minimal.ID+
		"' AND name IS NULL AND secret IS NULL AND phone_number IS NULL AND email IS NULL AND confirmed_at IS NULL AND last_used_at IS NULL"); n != 1 {
		t.Error("empty strings and zero times of a device not stored as NULL")
	}

	list, err := s.ListMFADevices(ctx, user.ID)
	if err != nil {
		t.Fatalf("ListMFADevices: %v", err)
	}
	if diff := cmp.Diff([]store.MFADevice{want, wantMinimal}, list); diff != "" {
		t.Errorf("ListMFADevices, oldest first (-want +got):\n%s", diff)
	}

	// Update writes Name, ConfirmedAt, IsDefault, LastUsedAt, PhoneNumber
	// and Email, and nothing else.
	upd := created
	upd.UserID = strings.ToUpper(user.ID)
	upd.ID = strings.ToUpper(created.ID)
	upd.Name, upd.PhoneNumber, upd.Email = "", "+15551234567", "grace@example.com"
	upd.ConfirmedAt, upd.LastUsedAt = time.Time{}, time.Date(2025, 5, 3, 1, 2, 3, 456789999, india)
	upd.IsDefault = false
	upd.Type, upd.Secret, upd.LastStep = store.MFAEmail, "other secret", 1
	upd.CreatedAt = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	updated, err := s.UpdateMFADevice(ctx, upd)
	if err != nil {
		t.Fatalf("UpdateMFADevice: %v", err)
	}
	if !updated.UpdatedAt.After(created.UpdatedAt) {
		t.Errorf("UpdatedAt = %v, want after %v", updated.UpdatedAt, created.UpdatedAt)
	}
	checkNow(t, "UpdatedAt", updated.UpdatedAt)
	wantUpd := want
	wantUpd.Name, wantUpd.PhoneNumber, wantUpd.Email = "", "+15551234567", "grace@example.com"
	wantUpd.ConfirmedAt, wantUpd.LastUsedAt = time.Time{}, time.Date(2025, 5, 2, 19, 32, 3, 456789000, time.UTC)
	wantUpd.IsDefault = false
	wantUpd.UpdatedAt = updated.UpdatedAt
	if diff := cmp.Diff(wantUpd, updated); diff != "" {
		t.Errorf("UpdateMFADevice returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantUpd, mustGetDevice(t, s, user.ID, created.ID)); diff != "" {
		t.Errorf("GetMFADevice after update (-want +got):\n%s", diff)
	}
	if n := count(t, s, "SELECT count(*) FROM mfa_devices WHERE id = '"+created.ID+"' AND name IS NULL AND confirmed_at IS NULL"); n != 1 {
		t.Error("updated empty Name and zero ConfirmedAt not stored as NULL")
	}

	if err := s.DeleteMFADevice(ctx, strings.ToUpper(user.ID), strings.ToUpper(created.ID)); err != nil {
		t.Fatalf("DeleteMFADevice: %v", err)
	}
	if _, err := s.GetMFADevice(ctx, user.ID, created.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetMFADevice after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteMFADevice(ctx, user.ID, created.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteMFADevice: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateMFADevice(ctx, upd); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateMFADevice of a deleted device: err = %v, want ErrNotFound", err)
	}
	if list, err := s.ListMFADevices(ctx, user.ID); err != nil || len(list) != 1 || list[0].ID != minimal.ID {
		t.Errorf("ListMFADevices after delete = %+v, %v; want only the minimal device", list, err)
	}
}

func testMFADeviceInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("invalid-mfa@example.com"))
	taken := mustCreateDevice(t, s, totpDevice(user.ID))
	for _, tc := range []struct {
		name     string
		mod      func(d *store.MFADevice)
		notFound bool
	}{
		{"bad ID", func(d *store.MFADevice) { d.ID = "not-a-uuid" }, false},
		{"unknown type", func(d *store.MFADevice) { d.Type = "webauthn" }, false},
		{"no type", func(d *store.MFADevice) { d.Type = "" }, false},
		{"negative last step", func(d *store.MFADevice) { d.LastStep = -1 }, false},
		{"NUL in name", func(d *store.MFADevice) { d.Name = "a\x00b" }, false},
		{"invalid UTF-8 secret", func(d *store.MFADevice) { d.Secret = "\xff" }, false},
		{"bad user ID", func(d *store.MFADevice) { d.UserID = "not-a-uuid" }, true},
		{"no user ID", func(d *store.MFADevice) { d.UserID = "" }, true},
		{"unknown user", func(d *store.MFADevice) { d.UserID = uuid.NewString() }, true},
	} {
		d := totpDevice(user.ID)
		tc.mod(&d)
		_, err := s.CreateMFADevice(ctx, d)
		switch {
		case tc.notFound && !errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: err = %v, want ErrNotFound", tc.name, err)
		case !tc.notFound && (err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict)):
			t.Errorf("%s: err = %v, want a validation error", tc.name, err)
		}
	}
	d := totpDevice(user.ID)
	d.ID = taken.ID
	if _, err := s.CreateMFADevice(ctx, d); !errors.Is(err, store.ErrConflict) {
		t.Errorf("taken ID: err = %v, want ErrConflict", err)
	}
	if n := count(t, s, "SELECT count(*) FROM mfa_devices"); n != 1 {
		t.Errorf("%d devices after invalid creates, want 1", n)
	}
	upd := taken
	upd.Email = "\x00"
	if _, err := s.UpdateMFADevice(ctx, upd); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateMFADevice with NUL in Email: err = %v, want a validation error", err)
	}
}

func testMFADeviceOwnership(t *testing.T, s store.Store) {
	ctx := context.Background()
	owner := mustCreateUser(t, s, newUser("owner@example.com"))
	other := mustCreateUser(t, s, newUser("other@example.com"))
	d := mustCreateDevice(t, s, totpDevice(owner.ID))
	otherDevice := mustCreateDevice(t, s, totpDevice(other.ID))

	for _, tc := range []struct{ name, userID, id string }{
		{"another user", other.ID, d.ID},
		{"unknown user", uuid.NewString(), d.ID},
		{"unknown device", owner.ID, uuid.NewString()},
		{"user ID not a UUID", "owner", d.ID},
		{"device ID not a UUID", owner.ID, "device"},
	} {
		if _, err := s.GetMFADevice(ctx, tc.userID, tc.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: GetMFADevice err = %v, want ErrNotFound", tc.name, err)
		}
		u := d
		u.UserID, u.ID, u.Name = tc.userID, tc.id, "stolen"
		if _, err := s.UpdateMFADevice(ctx, u); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: UpdateMFADevice err = %v, want ErrNotFound", tc.name, err)
		}
		u.IsDefault = true
		if _, err := s.UpdateMFADevice(ctx, u); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: UpdateMFADevice(IsDefault) err = %v, want ErrNotFound", tc.name, err)
		}
		if err := s.DeleteMFADevice(ctx, tc.userID, tc.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: DeleteMFADevice err = %v, want ErrNotFound", tc.name, err)
		}
		if ok, err := s.AcceptTOTPStep(ctx, tc.userID, tc.id, 100, mfaAt); ok || err != nil {
			t.Errorf("%s: AcceptTOTPStep = %v, %v; want false, nil", tc.name, ok, err)
		}
	}
	if diff := cmp.Diff(d, mustGetDevice(t, s, owner.ID, d.ID)); diff != "" {
		t.Errorf("device changed by calls naming another user (-before +after):\n%s", diff)
	}
	for userID, want := range map[string]string{owner.ID: d.ID, other.ID: otherDevice.ID} {
		list, err := s.ListMFADevices(ctx, userID)
		if err != nil || len(list) != 1 || list[0].ID != want {
			t.Errorf("ListMFADevices(%s) = %+v, %v; want only %s", userID, list, err, want)
		}
	}
	for _, userID := range []string{uuid.NewString(), "not-a-uuid"} {
		if list, err := s.ListMFADevices(ctx, userID); err != nil || len(list) != 0 {
			t.Errorf("ListMFADevices(%q) = %+v, %v; want none", userID, list, err)
		}
	}
}

func testMFADefaultDevice(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("default@example.com"))
	other := mustCreateUser(t, s, newUser("other-default@example.com"))
	a := mustCreateDevice(t, s, withIsDefault(totpDevice(user.ID)))
	otherDefault := mustCreateDevice(t, s, withIsDefault(totpDevice(other.ID)))
	if _, err := s.CreateMFADevice(ctx, withIsDefault(totpDevice(user.ID))); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second default device: err = %v, want ErrConflict", err)
	}
	b := mustCreateDevice(t, s, totpDevice(user.ID))
	c := mustCreateDevice(t, s, totpDevice(user.ID))

	got, err := s.UpdateMFADevice(ctx, withIsDefault(b))
	if err != nil || !got.IsDefault {
		t.Fatalf("UpdateMFADevice(b default) = %+v, %v", got, err)
	}
	if ids := defaults(t, s, user.ID); !slices.Equal(ids, []string{b.ID}) {
		t.Errorf("defaults after making b default = %v, want [b %s]", ids, b.ID)
	}
	if ids := defaults(t, s, other.ID); !slices.Equal(ids, []string{otherDefault.ID}) {
		t.Errorf("another user's default = %v, want %s untouched", ids, otherDefault.ID)
	}

	// A device that does not exist becomes no default, and the user keeps
	// theirs.
	ghost := withIsDefault(c)
	ghost.ID = uuid.NewString()
	if _, err := s.UpdateMFADevice(ctx, ghost); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateMFADevice(unknown device, default): err = %v, want ErrNotFound", err)
	}
	if ids := defaults(t, s, user.ID); !slices.Equal(ids, []string{b.ID}) {
		t.Errorf("defaults after a failed update = %v, want [b %s]", ids, b.ID)
	}

	// Unsetting leaves none; updating another field keeps the others'.
	if _, err := s.UpdateMFADevice(ctx, mustGetDevice(t, s, user.ID, b.ID)); err != nil {
		t.Fatal(err)
	}
	if ids := defaults(t, s, user.ID); !slices.Equal(ids, []string{b.ID}) {
		t.Errorf("defaults after rewriting b = %v, want [b %s]", ids, b.ID)
	}
	if _, err := s.UpdateMFADevice(ctx, c); err != nil {
		t.Fatal(err)
	}
	if ids := defaults(t, s, user.ID); !slices.Equal(ids, []string{b.ID}) {
		t.Errorf("defaults after updating c without IsDefault = %v, want [b %s]", ids, b.ID)
	}
	noDefault := mustGetDevice(t, s, user.ID, b.ID)
	noDefault.IsDefault = false
	if _, err := s.UpdateMFADevice(ctx, noDefault); err != nil {
		t.Fatal(err)
	}
	if ids := defaults(t, s, user.ID); len(ids) != 0 {
		t.Errorf("defaults after unsetting b = %v, want none", ids)
	}

	// Parallel calls making different devices default all succeed and
	// leave exactly one.
	const goroutines = 8
	devices := []store.MFADevice{a, b, c}
	for len(devices) < goroutines {
		devices = append(devices, mustCreateDevice(t, s, totpDevice(user.ID)))
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, goroutines)
	)
	for i, d := range devices {
		wg.Go(func() {
			<-start
			_, errs[i] = s.UpdateMFADevice(context.Background(), withIsDefault(d))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("parallel UpdateMFADevice #%d: %v", i, err)
		}
	}
	if ids := defaults(t, s, user.ID); len(ids) != 1 {
		t.Errorf("after %d parallel default changes the user has defaults %v, want exactly one", goroutines, ids)
	}
	if ids := defaults(t, s, other.ID); !slices.Equal(ids, []string{otherDefault.ID}) {
		t.Errorf("another user's default = %v, want %s untouched", ids, otherDefault.ID)
	}
}

func testMFATOTPStep(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("totp@example.com"))
	d := mustCreateDevice(t, s, totpDevice(user.ID))
	other := mustCreateDevice(t, s, totpDevice(user.ID))
	const step = 58_000_123

	const goroutines = 50
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		oks   = make([]bool, goroutines)
		errs  = make([]error, goroutines)
	)
	for i := range goroutines {
		wg.Go(func() {
			<-start
			oks[i], errs[i] = s.AcceptTOTPStep(context.Background(), user.ID, d.ID, step, mfaAt.Add(time.Duration(i)*time.Microsecond))
		})
	}
	close(start)
	wg.Wait()
	accepted := 0
	for i := range goroutines {
		if errs[i] != nil {
			t.Errorf("AcceptTOTPStep #%d: %v", i, errs[i])
		}
		if oks[i] {
			accepted++
		}
	}
	if accepted != 1 {
		t.Errorf("%d of %d parallel AcceptTOTPStep calls with one step got true, want exactly 1", accepted, goroutines)
	}
	got := mustGetDevice(t, s, user.ID, d.ID)
	if got.LastStep != step || got.LastUsedAt.Before(mfaAt) || got.LastUsedAt.After(mfaAt.Add(goroutines*time.Microsecond)) {
		t.Errorf("after accepting: LastStep = %d, LastUsedAt = %v; want %d, about %v", got.LastStep, got.LastUsedAt, step, mfaAt)
	}

	later := mfaAt.Add(time.Minute)
	for _, tc := range []struct {
		name string
		step int64
		want bool
	}{
		{"same step again", step, false},
		{"earlier step", step - 1, false},
		{"next step", step + 1, true},
		{"the step before the accepted one", step, false},
		{"much later step", step + 10, true},
		{"between", step + 5, false},
	} {
		if ok, err := s.AcceptTOTPStep(ctx, user.ID, d.ID, tc.step, later); ok != tc.want || err != nil {
			t.Errorf("%s: AcceptTOTPStep(%d) = %v, %v; want %v", tc.name, tc.step, ok, err, tc.want)
		}
	}
	got = mustGetDevice(t, s, user.ID, d.ID)
	if got.LastStep != step+10 || !got.LastUsedAt.Equal(later) {
		t.Errorf("LastStep = %d, LastUsedAt = %v; want %d, %v", got.LastStep, got.LastUsedAt, step+10, later)
	}
	// Steps are per device.
	if ok, err := s.AcceptTOTPStep(ctx, user.ID, other.ID, step, later); !ok || err != nil {
		t.Errorf("AcceptTOTPStep on another device = %v, %v; want true", ok, err)
	}
	// Step 0 is "none accepted", never a step.
	if ok, err := s.AcceptTOTPStep(ctx, user.ID, mustCreateDevice(t, s, totpDevice(user.ID)).ID, 0, later); ok || err != nil {
		t.Errorf("AcceptTOTPStep(0) = %v, %v; want false", ok, err)
	}
}

func testMFABackupCodes(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("backup@example.com"))
	other := mustCreateUser(t, s, newUser("other-backup@example.com"))
	countCodes := func(userID string) int {
		t.Helper()
		n, err := s.CountBackupCodes(ctx, userID)
		if err != nil {
			t.Fatalf("CountBackupCodes: %v", err)
		}
		return n
	}
	use := func(userID, hash string) bool {
		t.Helper()
		ok, err := s.UseBackupCode(ctx, userID, hash, mfaAt)
		if err != nil {
			t.Fatalf("UseBackupCode: %v", err)
		}
		return ok
	}
	hashes := func(prefix string, n int) []string {
		h := make([]string, n)
		for i := range h {
			h[i] = fmt.Sprintf("%s-%02d-%s", prefix, i, tokenHash())
		}
		return h
	}

	if n := countCodes(user.ID); n != 0 {
		t.Errorf("CountBackupCodes before any = %d, want 0", n)
	}
	first := hashes("first", 10)
	if err := s.ReplaceBackupCodes(ctx, strings.ToUpper(user.ID), first, mfaAt); err != nil {
		t.Fatalf("ReplaceBackupCodes: %v", err)
	}
	if err := s.ReplaceBackupCodes(ctx, other.ID, first[:2], mfaAt); err != nil {
		t.Fatalf("ReplaceBackupCodes for another user with the same hashes: %v", err)
	}
	if n := countCodes(strings.ToUpper(user.ID)); n != 10 {
		t.Errorf("CountBackupCodes = %d, want 10", n)
	}
	if !use(strings.ToUpper(user.ID), first[0]) {
		t.Error("UseBackupCode of a fresh code = false")
	}
	if use(user.ID, first[0]) {
		t.Error("UseBackupCode of a used code = true")
	}
	if n := countCodes(user.ID); n != 9 {
		t.Errorf("CountBackupCodes after one use = %d, want 9", n)
	}
	if n := count(t, s, "SELECT count(*) FROM mfa_backup_codes WHERE user_id = '"+user.ID+"' AND used_at IS NOT NULL"); n != 1 {
		t.Errorf("%d used codes recorded, want 1", n)
	}
	if n := countCodes(other.ID); n != 2 {
		t.Errorf("another user's count = %d, want 2 (untouched)", n)
	}
	for name, tc := range map[string][2]string{
		"unknown hash":       {user.ID, tokenHash()},
		"hash in upper case": {user.ID, strings.ToUpper(first[1])},
		"empty hash":         {user.ID, ""},
		"another user":       {mustCreateUser(t, s, newUser("third@example.com")).ID, first[1]},
		"user not a UUID":    {"user", first[1]},
	} {
		if use(tc[0], tc[1]) {
			t.Errorf("%s: UseBackupCode = true", name)
		}
	}

	// Fifty parallel uses of one code: one wins.
	const goroutines = 50
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		oks   = make([]bool, goroutines)
		errs  = make([]error, goroutines)
	)
	for i := range goroutines {
		wg.Go(func() {
			<-start
			oks[i], errs[i] = s.UseBackupCode(context.Background(), user.ID, first[1], mfaAt)
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i := range goroutines {
		if errs[i] != nil {
			t.Errorf("UseBackupCode #%d: %v", i, errs[i])
		}
		if oks[i] {
			won++
		}
	}
	if won != 1 {
		t.Errorf("%d of %d parallel UseBackupCode calls with one code got true, want exactly 1", won, goroutines)
	}

	// A new set voids the old one, used or not.
	second := hashes("second", 8)
	second[0] = first[0] // a hash of the old set may come back
	if err := s.ReplaceBackupCodes(ctx, user.ID, second, mfaAt.Add(time.Hour)); err != nil {
		t.Fatalf("ReplaceBackupCodes again: %v", err)
	}
	if n := countCodes(user.ID); n != 8 {
		t.Errorf("CountBackupCodes after replacing = %d, want 8", n)
	}
	if use(user.ID, first[5]) {
		t.Error("a code of the replaced set was accepted")
	}
	if !use(user.ID, second[0]) || !use(user.ID, second[7]) {
		t.Error("a code of the new set was refused")
	}
	if n := count(t, s, "SELECT count(*) FROM mfa_backup_codes WHERE user_id = '"+user.ID+"'"); n != 8 {
		t.Errorf("%d backup code rows after replacing, want 8 (the old set deleted)", n)
	}

	// A failing replacement changes nothing.
	dup := []string{"dup", "x", "dup"}
	if err := s.ReplaceBackupCodes(ctx, user.ID, dup, mfaAt); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ReplaceBackupCodes with a duplicate: err = %v, want ErrConflict", err)
	}
	if n := countCodes(user.ID); n != 6 {
		t.Errorf("CountBackupCodes after a failed replace = %d, want 6 (the set before it)", n)
	}
	for _, bad := range [][]string{{""}, {"a\x00"}, {"ok", "\xff"}} {
		if err := s.ReplaceBackupCodes(ctx, user.ID, bad, mfaAt); err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("ReplaceBackupCodes(%q): err = %v, want a validation error", bad, err)
		}
	}
	for _, userID := range []string{uuid.NewString(), "not-a-uuid"} {
		for _, set := range [][]string{{"a"}, nil} {
			if err := s.ReplaceBackupCodes(ctx, userID, set, mfaAt); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("ReplaceBackupCodes(%q, %q): err = %v, want ErrNotFound", userID, set, err)
			}
		}
		if n, err := s.CountBackupCodes(ctx, userID); n != 0 || err != nil {
			t.Errorf("CountBackupCodes(%q) = %d, %v; want 0", userID, n, err)
		}
	}
	if n := countCodes(user.ID); n != 6 {
		t.Errorf("CountBackupCodes after invalid replaces = %d, want 6", n)
	}

	// An empty set voids every code.
	if err := s.ReplaceBackupCodes(ctx, user.ID, nil, mfaAt); err != nil {
		t.Fatalf("ReplaceBackupCodes(nil): %v", err)
	}
	if n := countCodes(user.ID); n != 0 {
		t.Errorf("CountBackupCodes after an empty set = %d, want 0", n)
	}
	if use(user.ID, second[1]) {
		t.Error("a code was accepted after an empty set replaced them")
	}
}

func mustCreateCode(t *testing.T, s store.Store, c store.MFACode) store.MFACode {
	t.Helper()
	if c.CodeHash == "" {
		c.CodeHash = tokenHash()
	}
	if c.ExpiresAt.IsZero() {
		c.ExpiresAt = mfaAt.Add(10 * time.Minute)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = mfaAt
	}
	created, err := s.CreateMFACode(context.Background(), c)
	if err != nil {
		t.Fatalf("CreateMFACode(%+v): %v", c, err)
	}
	return created
}

// attempt calls AttemptMFACode at mfaAt with 5 attempts allowed and
// returns the ID of the code it counted on, or "" for ErrNotFound.
func attempt(t *testing.T, s store.Store, userID, channel, deviceID string) string {
	t.Helper()
	c, err := s.AttemptMFACode(context.Background(), userID, channel, deviceID, 5, mfaAt)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatalf("AttemptMFACode: %v", err)
	}
	return c.ID
}

func testMFACodes(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("codes@example.com"))
	other := mustCreateUser(t, s, newUser("other-codes@example.com"))
	phone := mustCreateDevice(t, s, store.MFADevice{UserID: user.ID, Type: store.MFASMS, PhoneNumber: "+15550000001"})
	phone2 := mustCreateDevice(t, s, store.MFADevice{UserID: user.ID, Type: store.MFASMS, PhoneNumber: "+15550000002"})
	otherPhone := mustCreateDevice(t, s, store.MFADevice{UserID: other.ID, Type: store.MFASMS, PhoneNumber: "+15550000003"})

	// Round trip.
	chile := time.FixedZone("CLT", -4*3600)
	in := store.MFACode{
		ID:        strings.ToUpper(uuid.NewString()),
		UserID:    strings.ToUpper(user.ID),
		DeviceID:  strings.ToUpper(phone.ID),
		Channel:   store.MFASMS,
		CodeHash:  "hmac:" + tokenHash(),
		ExpiresAt: time.Date(2025, 6, 1, 4, 40, 0, 999999999, chile),
		CreatedAt: time.Date(2025, 6, 1, 4, 30, 0, 1, chile),
	}
	created, err := s.CreateMFACode(ctx, in)
	if err != nil {
		t.Fatalf("CreateMFACode: %v", err)
	}
	want := store.MFACode{
		ID: strings.ToLower(in.ID), UserID: user.ID, DeviceID: phone.ID, Channel: store.MFASMS, CodeHash: in.CodeHash,
		ExpiresAt: time.Date(2025, 6, 1, 8, 40, 0, 999999000, time.UTC),
		CreatedAt: time.Date(2025, 6, 1, 8, 30, 0, 0, time.UTC),
	}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("CreateMFACode returned (-want +got):\n%s", diff)
	}
	got, err := s.AttemptMFACode(ctx, strings.ToUpper(user.ID), store.MFASMS, strings.ToUpper(phone.ID), 5, mfaAt)
	if err != nil {
		t.Fatalf("AttemptMFACode: %v", err)
	}
	want.Attempts = 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AttemptMFACode returned (-want +got):\n%s", diff)
	}

	// Defaults: a UUIDv7 ID, CreatedAt now, no device stored as NULL.
	minimal, err := s.CreateMFACode(ctx, store.MFACode{UserID: user.ID, Channel: store.MFAEmail, CodeHash: tokenHash(), ExpiresAt: mfaAt.Add(time.Hour)})
	if err != nil {
		t.Fatalf("CreateMFACode(minimal): %v", err)
	}
	if id, err := uuid.Parse(minimal.ID); err != nil || id.Version() != 7 || id.String() != minimal.ID {
		t.Errorf("generated ID = %q, want a canonical UUIDv7", minimal.ID)
	}
	checkNow(t, "CreatedAt", minimal.CreatedAt)
	if n := count(t, s, "SELECT count(*) FROM mfa_codes WHERE id = '"+minimal.ID+"' AND device_id IS NULL AND consumed_at IS NULL AND attempts = 0"); n != 1 {
		t.Error("a code without a device not stored with device_id NULL")
	}

	// Attempts stop at maxAttempts.
	for i := 2; i <= 5; i++ {
		c, err := s.AttemptMFACode(ctx, user.ID, store.MFASMS, phone.ID, 5, mfaAt)
		if err != nil || c.Attempts != i || c.ID != created.ID {
			t.Fatalf("attempt %d = %+v, %v; want Attempts %d on %s", i, c, err, i, created.ID)
		}
	}
	if _, err := s.AttemptMFACode(ctx, user.ID, store.MFASMS, phone.ID, 5, mfaAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("sixth attempt with 5 allowed: err = %v, want ErrNotFound", err)
	}
	if c, err := s.AttemptMFACode(ctx, user.ID, store.MFASMS, phone.ID, 6, mfaAt); err != nil || c.Attempts != 6 {
		t.Errorf("attempt with 6 allowed = %+v, %v; want Attempts 6", c, err)
	}
	if _, err := s.AttemptMFACode(ctx, user.ID, store.MFASMS, phone.ID, 0, mfaAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("attempt with 0 allowed: err = %v, want ErrNotFound", err)
	}

	// A resend supersedes the unconsumed codes of the same user, channel
	// and device only.
	sms1 := mustCreateCode(t, s, store.MFACode{UserID: user.ID, DeviceID: phone.ID, Channel: store.MFASMS})
	sms2 := mustCreateCode(t, s, store.MFACode{UserID: user.ID, DeviceID: phone2.ID, Channel: store.MFASMS})
	smsNoDevice := mustCreateCode(t, s, store.MFACode{UserID: user.ID, Channel: store.MFASMS})
	email := mustCreateCode(t, s, store.MFACode{UserID: user.ID, DeviceID: phone.ID, Channel: store.MFAEmail})
	otherSMS := mustCreateCode(t, s, store.MFACode{UserID: other.ID, DeviceID: otherPhone.ID, Channel: store.MFASMS})
	if n := count(t, s, "SELECT count(*) FROM mfa_codes WHERE id = '"+created.ID+"'"); n != 0 {
		t.Error("the superseded code is still stored")
	}
	for name, tc := range map[string]struct {
		userID, channel, device, want string
	}{
		"same device":       {user.ID, store.MFASMS, phone.ID, sms1.ID},
		"other device":      {user.ID, store.MFASMS, phone2.ID, sms2.ID},
		"no device":         {user.ID, store.MFASMS, "", smsNoDevice.ID},
		"other channel":     {user.ID, store.MFAEmail, phone.ID, email.ID},
		"email, no device":  {user.ID, store.MFAEmail, "", minimal.ID},
		"other user":        {other.ID, store.MFASMS, otherPhone.ID, otherSMS.ID},
		"other user's dev":  {user.ID, store.MFASMS, otherPhone.ID, ""},
		"unknown device":    {user.ID, store.MFASMS, uuid.NewString(), ""},
		"device not a UUID": {user.ID, store.MFASMS, "phone", ""},
		"user not a UUID":   {"user", store.MFASMS, phone.ID, ""},
		"unknown channel":   {user.ID, "voice", phone.ID, ""},
	} {
		if got := attempt(t, s, tc.userID, tc.channel, tc.device); got != tc.want {
			t.Errorf("%s: attempted code %q, want %q", name, got, tc.want)
		}
	}
	// Of several unconsumed codes (which CreateMFACode never leaves, but
	// which rows written by hand may) the latest by CreatedAt counts.
	older := insertCode(t, s, user.ID, phone2.ID, sms2.CreatedAt.Add(-time.Minute))
	if got := attempt(t, s, user.ID, store.MFASMS, phone2.ID); got != sms2.ID {
		t.Errorf("with an older code %s, attempt counted on %q, want the latest %s", older, got, sms2.ID)
	}
	newer := insertCode(t, s, user.ID, phone2.ID, sms2.CreatedAt.Add(time.Minute))
	if got := attempt(t, s, user.ID, store.MFASMS, phone2.ID); got != newer {
		t.Errorf("with a newer code, attempt counted on %q, want %s", got, newer)
	}

	// Expired codes count no attempts.
	if _, err := s.AttemptMFACode(ctx, user.ID, store.MFASMS, phone.ID, 5, sms1.ExpiresAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("attempt at expiry: err = %v, want ErrNotFound", err)
	}
	if c, err := s.AttemptMFACode(ctx, user.ID, store.MFASMS, phone.ID, 5, sms1.ExpiresAt.Add(-time.Microsecond)); err != nil || c.Attempts != 2 {
		t.Errorf("attempt just before expiry = %+v, %v; want Attempts 2", c, err)
	}

	// Consume once; a consumed code counts no attempts and is history,
	// not superseded.
	if ok, err := s.ConsumeMFACode(ctx, strings.ToUpper(sms1.ID), mfaAt); !ok || err != nil {
		t.Fatalf("ConsumeMFACode = %v, %v; want true", ok, err)
	}
	if ok, err := s.ConsumeMFACode(ctx, sms1.ID, mfaAt); ok || err != nil {
		t.Errorf("second ConsumeMFACode = %v, %v; want false", ok, err)
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if ok, err := s.ConsumeMFACode(ctx, id, mfaAt); ok || err != nil {
			t.Errorf("ConsumeMFACode(%q) = %v, %v; want false", id, ok, err)
		}
	}
	if got := attempt(t, s, user.ID, store.MFASMS, phone.ID); got != "" {
		t.Errorf("attempt after consuming counted on %s, want none", got)
	}
	if n := count(t, s, "SELECT count(*) FROM mfa_codes WHERE id = '"+sms1.ID+"' AND consumed_at IS NOT NULL"); n != 1 {
		t.Error("the consumed code is not kept, marked consumed")
	}
	sms3 := mustCreateCode(t, s, store.MFACode{UserID: user.ID, DeviceID: phone.ID, Channel: store.MFASMS})
	if n := count(t, s, "SELECT count(*) FROM mfa_codes WHERE id = '"+sms1.ID+"'"); n != 1 {
		t.Error("a new code deleted a consumed one")
	}
	if got := attempt(t, s, user.ID, store.MFASMS, phone.ID); got != sms3.ID {
		t.Errorf("attempt after a new code counted on %q, want %s", got, sms3.ID)
	}

	// Invalid codes.
	for _, tc := range []struct {
		name     string
		mod      func(c *store.MFACode)
		notFound bool
	}{
		{"bad ID", func(c *store.MFACode) { c.ID = "x" }, false},
		{"unknown channel", func(c *store.MFACode) { c.Channel = "totp" }, false},
		{"no hash", func(c *store.MFACode) { c.CodeHash = "" }, false},
		{"no expiry", func(c *store.MFACode) { c.ExpiresAt = time.Time{} }, false},
		{"attempts", func(c *store.MFACode) { c.Attempts = 1 }, false},
		{"consumed", func(c *store.MFACode) { c.ConsumedAt = mfaAt }, false},
		{"user not a UUID", func(c *store.MFACode) { c.UserID = "u" }, true},
		{"unknown user", func(c *store.MFACode) { c.UserID = uuid.NewString() }, true},
		{"device not a UUID", func(c *store.MFACode) { c.DeviceID = "d" }, true},
		{"unknown device", func(c *store.MFACode) { c.DeviceID = uuid.NewString() }, true},
		{"another user's device", func(c *store.MFACode) { c.DeviceID = otherPhone.ID }, true},
		{"taken ID", func(c *store.MFACode) { c.ID = sms3.ID }, false},
	} {
		c := store.MFACode{UserID: user.ID, DeviceID: phone2.ID, Channel: store.MFASMS, CodeHash: tokenHash(), ExpiresAt: mfaAt.Add(time.Hour)}
		tc.mod(&c)
		_, err := s.CreateMFACode(ctx, c)
		switch {
		case tc.notFound && !errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: err = %v, want ErrNotFound", tc.name, err)
		case !tc.notFound && tc.name == "taken ID" && !errors.Is(err, store.ErrConflict):
			t.Errorf("%s: err = %v, want ErrConflict", tc.name, err)
		case !tc.notFound && tc.name != "taken ID" && (err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict)):
			t.Errorf("%s: err = %v, want a validation error", tc.name, err)
		}
	}
	// A failed create supersedes nothing.
	if got := attempt(t, s, user.ID, store.MFASMS, phone2.ID); got != newer {
		t.Errorf("after failed creates, attempt counted on %q, want %s", got, newer)
	}
}

// insertCode stores an unconsumed SMS code by hand, bypassing
// CreateMFACode (which would supersede the others), and returns its ID.
func insertCode(t *testing.T, s store.Store, userID, deviceID string, createdAt time.Time) string {
	t.Helper()
	id := uuid.NewString()
	var created, expires string
	switch s.Dialect() {
	case store.DialectSQLite:
		created, expires = fmt.Sprint(createdAt.UnixMicro()), fmt.Sprint(createdAt.Add(time.Hour).UnixMicro())
	default:
		created, expires = "'"+createdAt.Format(time.RFC3339Nano)+"'", "'"+createdAt.Add(time.Hour).Format(time.RFC3339Nano)+"'"
	}
	err := rawExec(t, s).RawExec(context.Background(), fmt.Sprintf(`INSERT INTO mfa_codes
		(id, user_id, device_id, channel, code_hash, expires_at, created_at)
		VALUES ('%s', '%s', '%s', 'sms', '%s', %s, %s)`, id, userID, deviceID, tokenHash(), expires, created))
	if err != nil {
		t.Fatalf("insert code: %v", err)
	}
	return id
}

// Parallel attempts stop exactly at maxAttempts, and of parallel consumers
// exactly one wins.
func testMFAParallelCodes(t *testing.T, s store.Store) {
	user := mustCreateUser(t, s, newUser("parallel-codes@example.com"))
	code := mustCreateCode(t, s, store.MFACode{UserID: user.ID, Channel: store.MFAEmail})

	const attempts, maxAttempts = 20, 5
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		got   = make([]store.MFACode, attempts)
		errs  = make([]error, attempts)
	)
	for i := range attempts {
		wg.Go(func() {
			<-start
			got[i], errs[i] = s.AttemptMFACode(context.Background(), user.ID, store.MFAEmail, "", maxAttempts, mfaAt)
		})
	}
	close(start)
	wg.Wait()
	var counts []int
	for i, err := range errs {
		switch {
		case err == nil:
			counts = append(counts, got[i].Attempts)
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("AttemptMFACode #%d: %v, want success or ErrNotFound", i, err)
		}
	}
	slices.Sort(counts)
	if !slices.Equal(counts, []int{1, 2, 3, 4, 5}) {
		t.Errorf("%d parallel attempts with %d allowed returned Attempts %v, want exactly [1 2 3 4 5]", attempts, maxAttempts, counts)
	}
	if n := count(t, s, "SELECT count(*) FROM mfa_codes WHERE id = '"+code.ID+"' AND attempts = 5"); n != 1 {
		t.Error("the stored attempt count is not 5")
	}

	const consumers = 50
	oks := make([]bool, consumers)
	cerrs := make([]error, consumers)
	start = make(chan struct{})
	for i := range consumers {
		wg.Go(func() {
			<-start
			oks[i], cerrs[i] = s.ConsumeMFACode(context.Background(), code.ID, mfaAt)
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i := range consumers {
		if cerrs[i] != nil {
			t.Errorf("ConsumeMFACode #%d: %v", i, cerrs[i])
		}
		if oks[i] {
			won++
		}
	}
	if won != 1 {
		t.Errorf("%d of %d parallel ConsumeMFACode calls got true, want exactly 1", won, consumers)
	}
}

// The MFA methods run inside a transaction, and a rollback undoes them.
func testMFAInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("mfa-tx@example.com"))
	d := mustCreateDevice(t, s, totpDevice(user.ID))
	if err := s.ReplaceBackupCodes(ctx, user.ID, []string{"kept-1", "kept-2"}, mfaAt); err != nil {
		t.Fatal(err)
	}
	code := mustCreateCode(t, s, store.MFACode{UserID: user.ID, Channel: store.MFAEmail})

	err := s.InTx(ctx, func(tx store.Store) error {
		if _, err := tx.CreateMFADevice(ctx, withIsDefault(totpDevice(user.ID))); err != nil {
			return err
		}
		if _, err := tx.UpdateMFADevice(ctx, withIsDefault(d)); err != nil {
			return err
		}
		if ok, err := tx.AcceptTOTPStep(ctx, user.ID, d.ID, 7, mfaAt); !ok || err != nil {
			return fmt.Errorf("AcceptTOTPStep = %v, %v", ok, err)
		}
		if err := tx.ReplaceBackupCodes(ctx, user.ID, []string{"new"}, mfaAt); err != nil {
			return err
		}
		if ok, err := tx.UseBackupCode(ctx, user.ID, "new", mfaAt); !ok || err != nil {
			return fmt.Errorf("UseBackupCode = %v, %v", ok, err)
		}
		if n, err := tx.CountBackupCodes(ctx, user.ID); n != 0 || err != nil {
			return fmt.Errorf("CountBackupCodes in the transaction = %d, %v; want 0", n, err)
		}
		if _, err := tx.AttemptMFACode(ctx, user.ID, store.MFAEmail, "", 5, mfaAt); err != nil {
			return err
		}
		if ok, err := tx.ConsumeMFACode(ctx, code.ID, mfaAt); !ok || err != nil {
			return fmt.Errorf("ConsumeMFACode = %v, %v", ok, err)
		}
		next, err := tx.CreateMFACode(ctx, store.MFACode{UserID: user.ID, Channel: store.MFASMS, CodeHash: "h", ExpiresAt: mfaAt.Add(time.Hour)})
		if err != nil {
			return err
		}
		if c, err := tx.AttemptMFACode(ctx, user.ID, store.MFASMS, "", 5, mfaAt); err != nil || c.ID != next.ID {
			return fmt.Errorf("AttemptMFACode of the code created in the transaction = %+v, %v", c, err)
		}
		if list, err := tx.ListMFADevices(ctx, user.ID); err != nil || len(list) != 2 {
			return fmt.Errorf("ListMFADevices in the transaction = %d devices, %v; want 2", len(list), err)
		}
		if err := tx.DeleteMFADevice(ctx, user.ID, d.ID); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx = %v, want the rollback error", err)
	}
	if diff := cmp.Diff(d, mustGetDevice(t, s, user.ID, d.ID)); diff != "" {
		t.Errorf("device after rollback (-before +after):\n%s", diff)
	}
	if list, err := s.ListMFADevices(ctx, user.ID); err != nil || len(list) != 1 {
		t.Errorf("ListMFADevices after rollback = %d devices, %v; want 1", len(list), err)
	}
	if n, err := s.CountBackupCodes(ctx, user.ID); n != 2 || err != nil {
		t.Errorf("CountBackupCodes after rollback = %d, %v; want 2", n, err)
	}
	if c, err := s.AttemptMFACode(ctx, user.ID, store.MFAEmail, "", 5, mfaAt); err != nil || c.ID != code.ID || c.Attempts != 1 {
		t.Errorf("AttemptMFACode after rollback = %+v, %v; want the first attempt on %s", c, err, code.ID)
	}
	if got := attempt(t, s, user.ID, store.MFASMS, ""); got != "" {
		t.Errorf("the code created in the rolled-back transaction exists: %s", got)
	}

	// An error returned inside the transaction is the caller's to handle:
	// a failed default change there leaves the other defaults alone.
	a := mustCreateDevice(t, s, withIsDefault(totpDevice(user.ID)))
	err = s.InTx(ctx, func(tx store.Store) error {
		ghost := withIsDefault(totpDevice(user.ID))
		ghost.ID = uuid.NewString()
		if _, err := tx.UpdateMFADevice(ctx, ghost); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("UpdateMFADevice(unknown device): err = %v, want ErrNotFound", err)
		}
		return nil // commit anyway
	})
	if err != nil {
		t.Fatal(err)
	}
	if ids := defaults(t, s, user.ID); !slices.Equal(ids, []string{a.ID}) {
		t.Errorf("defaults after a committed failed update = %v, want [%s]", ids, a.ID)
	}
}

func withIsDefault(d store.MFADevice) store.MFADevice {
	d.IsDefault = true
	return d
}

// Deleting a device deletes the codes sent for it; removing a user's row
// deletes every second factor of the user.
func testMFACascades(t *testing.T, s store.Store) {
	ctx := context.Background()
	gone := mustCreateUser(t, s, newUser("gone-mfa@example.com"))
	kept := mustCreateUser(t, s, newUser("kept-mfa@example.com"))
	var keptEmail store.MFADevice
	for _, u := range []store.User{gone, kept} {
		d := mustCreateDevice(t, s, store.MFADevice{UserID: u.ID, Type: store.MFAEmail, Email: u.Email})
		keptEmail = d
		mustCreateDevice(t, s, totpDevice(u.ID))
		mustCreateCode(t, s, store.MFACode{UserID: u.ID, DeviceID: d.ID, Channel: store.MFAEmail})
		mustCreateCode(t, s, store.MFACode{UserID: u.ID, Channel: store.MFASMS})
		if err := s.ReplaceBackupCodes(ctx, u.ID, []string{"a", "b"}, mfaAt); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(userID string) (devices, codes, backup int64) {
		t.Helper()
		where := " WHERE user_id = '" + userID + "'"
		return count(t, s, "SELECT count(*) FROM mfa_devices"+where),
			count(t, s, "SELECT count(*) FROM mfa_codes"+where),
			count(t, s, "SELECT count(*) FROM mfa_backup_codes"+where)
	}

	if err := s.DeleteMFADevice(ctx, kept.ID, keptEmail.ID); err != nil {
		t.Fatal(err)
	}
	if d, c, b := rows(kept.ID); d != 1 || c != 1 || b != 2 {
		t.Errorf("after deleting a device: %d devices, %d codes, %d backup codes; want 1, 1 (the one without a device), 2", d, c, b)
	}
	if got := attempt(t, s, kept.ID, store.MFAEmail, keptEmail.ID); got != "" {
		t.Errorf("a code of a deleted device was attempted: %s", got)
	}

	if err := s.SoftDeleteUser(ctx, gone.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if d, c, b := rows(gone.ID); d != 2 || c != 2 || b != 2 {
		t.Errorf("after a soft delete: %d devices, %d codes, %d backup codes; want all kept", d, c, b)
	}
	if err := rawExec(t, s).RawExec(ctx, "DELETE FROM users WHERE id = '"+gone.ID+"'"); err != nil {
		t.Fatalf("delete user row: %v", err)
	}
	if d, c, b := rows(gone.ID); d != 0 || c != 0 || b != 0 {
		t.Errorf("after removing the user's row: %d devices, %d codes, %d backup codes; want none", d, c, b)
	}
	if d, c, b := rows(kept.ID); d != 1 || c != 1 || b != 2 {
		t.Errorf("another user's rows after removing a user: %d devices, %d codes, %d backup codes; want 1, 1, 2", d, c, b)
	}
}

// Parallel replacements of a user's backup codes, and parallel resends of
// a code, leave one set and one live code: each sees what the previous one
// wrote.
func testMFAParallelReplace(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("parallel-replace@example.com"))
	const goroutines, size = 8, 5
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, 2*goroutines)
	)
	for i := range goroutines {
		set := make([]string, size)
		for j := range set {
			set[j] = fmt.Sprintf("set-%d-code-%d", i, j)
		}
		wg.Go(func() {
			<-start
			errs[i] = s.ReplaceBackupCodes(context.Background(), user.ID, set, mfaAt)
		})
		wg.Go(func() {
			<-start
			_, errs[goroutines+i] = s.CreateMFACode(context.Background(), store.MFACode{
				UserID: user.ID, Channel: store.MFASMS, CodeHash: tokenHash(), ExpiresAt: mfaAt.Add(time.Hour),
			})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("parallel call #%d: %v", i, err)
		}
	}
	if n, err := s.CountBackupCodes(ctx, user.ID); n != size || err != nil {
		t.Errorf("after %d parallel ReplaceBackupCodes the user has %d codes (%v), want one set of %d", goroutines, n, err, size)
	}
	if n := count(t, s, "SELECT count(*) FROM mfa_codes WHERE user_id = '"+user.ID+"' AND consumed_at IS NULL"); n != 1 {
		t.Errorf("after %d parallel CreateMFACode calls the user has %d live codes, want 1", goroutines, n)
	}
}

// testSecondFactors checks that SecondFactors returns exactly what the
// four reads it stands for return, for the user asked about only, and
// sees its enclosing transaction.
func testSecondFactors(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("factors@example.com"))
	other := mustCreateUser(t, s, newUser("factors-other@example.com"))
	separate := func(userID string) store.SecondFactors {
		t.Helper()
		var (
			f   store.SecondFactors
			err error
		)
		if f.Organizations, err = s.UserOrganizations(ctx, userID); err != nil {
			t.Fatal(err)
		}
		if f.Devices, err = s.ListMFADevices(ctx, userID); err != nil {
			t.Fatal(err)
		}
		if f.BackupCodes, err = s.CountBackupCodes(ctx, userID); err != nil {
			t.Fatal(err)
		}
		if f.Passkeys, err = s.ListPasskeys(ctx, userID); err != nil {
			t.Fatal(err)
		}
		return f
	}
	check := func(what string, s store.Store, userID string, want store.SecondFactors) {
		t.Helper()
		got, err := s.SecondFactors(ctx, userID)
		if err != nil {
			t.Fatalf("SecondFactors (%s): %v", what, err)
		}
		if diff := cmp.Diff(want, got, equateEmpty); diff != "" {
			t.Errorf("SecondFactors (%s) (-want +got):\n%s", what, diff)
		}
	}
	check("nothing yet", s, user.ID, store.SecondFactors{})
	check("an ID no user has", s, "not-a-uuid", store.SecondFactors{})

	strict := mustCreateOrg(t, s, "Strict", "strict-factors", map[string]any{"mfa_required": true, "allowed_methods": []any{"totp"}})
	loose := mustCreateOrg(t, s, "Loose", "loose-factors", nil)
	mustCreateOrg(t, s, "Elsewhere", "elsewhere-factors", map[string]any{"mfa_required": true})
	for _, o := range []store.Organization{strict, loose} {
		if err := s.SetMembership(ctx, store.OrgMembership{OrgID: o.ID, UserID: user.ID, Role: store.OrgMember, CreatedAt: mfaAt}); err != nil {
			t.Fatal(err)
		}
	}
	confirmed := totpDevice(user.ID)
	confirmed.ConfirmedAt = mfaAt
	mustCreateDevice(t, s, confirmed)
	mustCreateDevice(t, s, store.MFADevice{UserID: user.ID, Type: store.MFASMS, Name: "phone", PhoneNumber: "+14155550100"})
	mustCreateDevice(t, s, totpDevice(other.ID))
	mustCreatePasskey(t, s, newPasskey(user.ID))
	mustCreatePasskey(t, s, newPasskey(other.ID))
	codes := []string{"code-a-" + tokenHash(), "code-b-" + tokenHash(), "code-c-" + tokenHash()}
	if err := s.ReplaceBackupCodes(ctx, user.ID, codes, mfaAt); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceBackupCodes(ctx, other.ID, []string{"code-o-" + tokenHash()}, mfaAt); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.UseBackupCode(ctx, user.ID, codes[0], mfaAt); err != nil || !ok {
		t.Fatalf("UseBackupCode = %v, %v", ok, err)
	}
	want := separate(user.ID)
	if len(want.Organizations) != 2 || len(want.Devices) != 2 || want.BackupCodes != 2 || len(want.Passkeys) != 1 {
		t.Fatalf("set-up: %d organisations, %d devices, %d codes, %d passkeys; want 2, 2, 2, 1",
			len(want.Organizations), len(want.Devices), want.BackupCodes, len(want.Passkeys))
	}
	check("organisations, devices, codes and passkeys", s, strings.ToUpper(user.ID), want)
	check("the other user", s, other.ID, separate(other.ID))

	// Inside InTx it reads the transaction's own writes.
	errRollback := errors.New("rollback")
	err := s.InTx(ctx, func(tx store.Store) error {
		mustCreateDevice(t, tx, store.MFADevice{UserID: user.ID, Type: store.MFAEmail, Name: "mail", Email: "factors@example.com"})
		got, err := tx.SecondFactors(ctx, user.ID)
		if err != nil {
			return err
		}
		if len(got.Devices) != 3 {
			t.Errorf("SecondFactors inside InTx: %d devices, want 3", len(got.Devices))
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx = %v", err)
	}
	check("after the rollback", s, user.ID, want)
}
