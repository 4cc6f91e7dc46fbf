package apikey

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/store"
)

// HeaderSignature carries the HMAC-SHA256 of a leak report's body,
// "sha256=<hex>", as GitHub signs its deliveries.
const HeaderSignature = "X-Hub-Signature-256"

// maxLeakBody bounds a leak report's body.
const maxLeakBody = 1 << 20

// Leak report errors.
var (
	// ErrBadSignature is a leak report without a valid signature.
	ErrBadSignature = errors.New("apikey: leak report signature missing or wrong")
	// ErrLeakDisabled answers leak reports when no secret is configured.
	ErrLeakDisabled = errors.New("apikey: leak reports are not enabled")
)

// LeakReport is one key a secret scanning service found (GitHub's
// format).
type LeakReport struct {
	Token  string `json:"token"`
	Type   string `json:"type,omitempty"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// LeakAck is the answer to a leak report: how many tokens were received.
// It says nothing of which were live keys, so that a report cannot be
// used to test keys.
type LeakAck struct {
	Received int `json:"received"`
}

// VerifySignature checks header (HeaderSignature's value) against the
// HMAC-SHA256 of body under secret, in constant time.
func VerifySignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(secret) == 0 {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// ReportLeaks revokes every live key among reports (reason "leaked"),
// records api_key.leaked, emails its owner (or, for a service account's
// key, the person who created it) and drops it from every node's cache.
// Unknown, malformed and already dead tokens are ignored alike. It returns
// the IDs of the keys it revoked.
func (s *Service) ReportLeaks(ctx context.Context, m httpapi.Meta, reports []LeakReport) ([]string, error) {
	var revoked []string
	for _, rep := range reports {
		if _, err := Parse(rep.Token); err != nil {
			continue
		}
		k, err := s.d.Store.GetAPIKeyByHash(ctx, Hashes(s.keys, rep.Token))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return revoked, err
		}
		now := s.now()
		if !k.RevokedAt.IsZero() || (!k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)) {
			continue
		}
		var changed bool
		err = s.d.Store.InTx(ctx, func(tx Tx) error {
			var err error
			if k, changed, err = tx.RevokeAPIKey(ctx, k.ID, now, reasonLeaked); err != nil || !changed {
				return err
			}
			data := keyData(k)
			data["url"], data["source"] = truncate(rep.URL, 2000), truncate(rep.Source, 200)
			if err := tx.AppendAuditEvent(ctx, s.event(m, k.OwnerID, auditLeaked, data)); err != nil {
				return err
			}
			// The security event (security.api_key_leaked), with its
			// incident and alerts, is the security domain's reaction.
			if err := tx.Publish(ctx, event.APIKeyLeaked{Key: k, URL: data["url"].(string), Source: data["source"].(string), Meta: m}); err != nil {
				return err
			}
			return s.mailLeak(ctx, tx, k, rep, now)
		})
		if err != nil {
			return revoked, err
		}
		if changed {
			revoked = append(revoked, k.ID)
			s.d.Log.WarnContext(ctx, "api key reported leaked and revoked", "api_key_id", k.ID, "source", truncate(rep.Source, 200))
		}
	}
	if len(revoked) > 0 {
		s.invalidate(ctx, revoked...)
	}
	return revoked, nil
}

// mailLeak enqueues the api_key_leaked message to whoever answers for k.
func (s *Service) mailLeak(ctx context.Context, tx Tx, k store.APIKey, rep LeakReport, _ time.Time) error {
	to := k.OwnerID
	if k.Kind == store.APIKeyService {
		to = k.CreatedBy
	}
	if to == "" {
		return nil
	}
	u, err := tx.GetUser(ctx, to)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if u.Kind == store.UserKindService || !u.DeletedAt.IsZero() || u.Email == "" {
		return nil
	}
	where := "in public"
	if rep.Source != "" {
		where = "on " + truncate(rep.Source, 50)
	}
	event := fmt.Sprintf("Your API key %q (%s…) was found %s and has been revoked.", k.Name, k.Prefix, where)
	args, err := mail.NewSendArgs(s.d.Keyring, mail.APIKeyLeaked, u.Email, mail.Data{RecipientName: u.Name, Event: event, Time: k.RevokedAt}, "")
	if err != nil {
		return err
	}
	_, err = s.d.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// leaked serves POST /v1/api-keys/leaked.
func (h *Handlers) leaked(w http.ResponseWriter, r *http.Request) error {
	if len(h.Service.d.LeakSecret) == 0 {
		return ErrLeakDisabled
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLeakBody+1))
	if err != nil {
		return httpapi.NewProblem(http.StatusBadRequest, "invalid_body", "The body could not be read.")
	}
	if len(body) > maxLeakBody {
		return httpapi.NewProblem(http.StatusRequestEntityTooLarge, "body_too_large", "The report is too large.")
	}
	if !VerifySignature(h.Service.d.LeakSecret, body, r.Header.Get(HeaderSignature)) {
		return ErrBadSignature
	}
	var reports []LeakReport
	if err := json.Unmarshal(body, &reports); err != nil {
		return httpapi.Validation(httpapi.FieldError{Field: "", Rule: "invalid_json", Message: "Send a JSON array of {token, url, source}."})
	}
	if _, err := h.Service.ReportLeaks(r.Context(), auth.RequestMeta(r), reports); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, LeakAck{Received: len(reports)})
}
