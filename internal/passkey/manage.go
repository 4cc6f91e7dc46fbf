package passkey

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// knownAuthenticators names common authenticator models by AAGUID (from
// the community list at github.com/passkeydeveloper/passkey-authenticator-aaguids);
// others are named by the metadata service in an enterprise setup, or not
// at all.
var knownAuthenticators = map[string]string{
	"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "iCloud Keychain",
	"dd4ec289-e01d-41c9-bb89-70fa845d4bf2": "iCloud Keychain (Managed)",
	"ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": "Google Password Manager",
	"adce0002-35bc-c60a-648b-0b25f1f05503": "Chrome on Mac",
	"08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",
	"9ddd1817-af5a-4672-a2b9-3e3dd95000a9": "Windows Hello",
	"6028b017-b1d4-4c02-b4b3-afcdafc96bb2": "Windows Hello",
	"bada5566-a7aa-401f-bd96-45619a55120d": "1Password",
	"d548826e-79b4-db40-a3d8-11116f7e8349": "Bitwarden",
	"531126d6-e717-415c-9320-3d9aa6981239": "Dashlane",
	"53414d53-554e-4700-0000-000000000000": "Samsung Pass",
	"cb69481e-8ff7-4039-93ec-0a2729a154a8": "YubiKey 5 Series",
	"ee882879-721c-4913-9775-3dfcce97072a": "YubiKey 5 Series",
	"fa2b99dc-9e39-4257-8f92-4a30d23c4118": "YubiKey 5 Series with NFC",
	"2fc0579f-8113-47ea-b116-bb5a8db9202a": "YubiKey 5 Series with NFC",
}

// AuthenticatorName is the model's name where known, else "".
func AuthenticatorName(aaguid []byte) string {
	id, err := uuid.FromBytes(aaguid)
	if err != nil {
		return ""
	}
	return knownAuthenticators[id.String()]
}

func defaultName(aaguid uuid.UUID, n int) string {
	if name := knownAuthenticators[aaguid.String()]; name != "" {
		return name
	}
	return fmt.Sprintf("Passkey %d", n)
}

// View is a passkey as its owner sees it.
type View struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	CreatedAt         time.Time  `json:"created_at"`
	LastUsedAt        *time.Time `json:"last_used_at"`
	AAGUID            string     `json:"aaguid"`
	Authenticator     *string    `json:"authenticator"` // the model's name, where known
	Synced            bool       `json:"synced"`        // backed up to a password manager or keychain (backup state)
	DeviceBound       bool       `json:"device_bound"`  // cannot be synced (not backup eligible)
	UserVerifying     bool       `json:"user_verifying"`
	Transports        []string   `json:"transports"`
	PossiblyCloned    bool       `json:"possibly_cloned"`
	PossiblyClonedAt  *time.Time `json:"possibly_cloned_at,omitempty"`
	SignCountObserved uint32     `json:"sign_count"`
}

// ViewOf is p's View.
func ViewOf(p store.Passkey) View {
	v := View{
		ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt, Synced: p.BackupState, DeviceBound: !p.BackupEligible,
		UserVerifying: p.UserVerified, Transports: p.Transports, PossiblyCloned: !p.ClonedAt.IsZero(), SignCountObserved: p.SignCount,
	}
	if v.Transports == nil {
		v.Transports = []string{}
	}
	if id, err := uuid.FromBytes(p.AAGUID); err == nil {
		v.AAGUID = id.String()
	} else {
		v.AAGUID = uuid.Nil.String()
	}
	if name := AuthenticatorName(p.AAGUID); name != "" {
		v.Authenticator = &name
	}
	if !p.LastUsedAt.IsZero() {
		t := p.LastUsedAt
		v.LastUsedAt = &t
	}
	if !p.ClonedAt.IsZero() {
		t := p.ClonedAt
		v.PossiblyClonedAt = &t
	}
	return v
}

// viewData is what an account event says of a passkey.
func viewData(p store.Passkey) map[string]any {
	v := ViewOf(p)
	d := map[string]any{"passkey_id": v.ID, "name": v.Name, "aaguid": v.AAGUID, "synced": v.Synced, "device_bound": v.DeviceBound}
	if v.Authenticator != nil {
		d["authenticator"] = *v.Authenticator
	}
	return d
}

// List returns the user's passkeys, oldest first.
func (s *Service) List(ctx context.Context, userID string) ([]store.Passkey, error) {
	return s.d.Store.ListPasskeys(ctx, userID)
}

// Rename names one of the user's passkeys.
func (s *Service) Rename(ctx context.Context, p auth.Principal, id, name string, m httpapi.Meta) (store.Passkey, error) {
	name = strings.TrimSpace(name)
	if err := validName(name); err != nil {
		return store.Passkey{}, err
	}
	if name == "" {
		return store.Passkey{}, httpapi.Validation(httpapi.FieldError{Field: "name", Rule: "required", Message: "Give the passkey a name."})
	}
	var out store.Passkey
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.GetUser(ctx, p.UserID)
		if err != nil {
			return err
		}
		before, err := tx.GetPasskey(ctx, p.UserID, id)
		if err != nil {
			return err
		}
		if out, err = tx.RenamePasskey(ctx, p.UserID, id, name); err != nil {
			return err
		}
		data := viewData(out)
		data["previous_name"] = before.Name
		return s.notice(ctx, tx, u, fmt.Sprintf("A passkey was renamed (%s to %s)", before.Name, out.Name), "passkey.renamed", data, m)
	})
	return out, err
}

// Remove deletes one of the user's passkeys (recent authentication
// needed), unless it is the account's last way to sign in: no password,
// no external identity and no other usable passkey.
func (s *Service) Remove(ctx context.Context, p auth.Principal, id string, m httpapi.Meta) error {
	if err := s.requireRecent(p); err != nil {
		return err
	}
	return s.d.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.GetUserForUpdate(ctx, p.UserID)
		if err != nil {
			return err
		}
		target, err := tx.GetPasskey(ctx, p.UserID, id)
		if err != nil {
			return err
		}
		if u.PasswordHash == "" {
			ids, err := tx.ListIdentities(ctx, u.ID)
			if err != nil {
				return err
			}
			all, err := tx.ListPasskeys(ctx, u.ID)
			if err != nil {
				return err
			}
			others := 0
			for _, o := range usable(all) {
				if o.ID != target.ID {
					others++
				}
			}
			if len(ids) == 0 && others == 0 {
				return ErrLastSignInMethod
			}
		}
		if err := tx.DeletePasskey(ctx, p.UserID, id); err != nil {
			return err
		}
		if err := s.notice(ctx, tx, u, fmt.Sprintf("A passkey was removed (%s)", target.Name), "passkey.removed", viewData(target), m); err != nil {
			return err
		}
		return tx.Publish(ctx, event.SecondFactorRemoved{UserID: u.ID, Method: Method, DeviceID: target.ID})
	})
}
