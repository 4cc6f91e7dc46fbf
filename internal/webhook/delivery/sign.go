package delivery

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/gatehouse/gatehouse/internal/secret"
)

// Standard Webhooks headers (https://www.standardwebhooks.com/).
const (
	HeaderID        = standardwebhooks.HeaderWebhookID        // "webhook-id"
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp // "webhook-timestamp"
	HeaderSignature = standardwebhooks.HeaderWebhookSignature // "webhook-signature"
)

// SecretPrefix starts every signing secret, as Standard Webhooks defines.
const SecretPrefix = "whsec_"

// secretBytes is the size of a signing secret: Standard Webhooks asks for
// 24 to 64 bytes.
const secretBytes = 32

// NewSecret returns a new signing secret: "whsec_" and the standard
// base64 of 32 random bytes, the form the Standard Webhooks libraries
// take. It is shown to the administrator once and stored sealed (see
// SealSecret).
func NewSecret() (string, error) {
	b, err := secret.RandomBytes(secretBytes)
	if err != nil {
		return "", err
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// Sealer seals a value bound to associated data, as *secret.Keyring does.
type Sealer interface {
	Seal(plaintext, associatedData []byte) (string, error)
}

// Opener opens what a Sealer sealed, as *secret.Keyring does.
type Opener interface {
	Open(sealed string, associatedData []byte) ([]byte, error)
}

// SealSecret seals the signing secret of an endpoint (the "whsec_…" string
// NewSecret returned) for store.WebhookEndpoint.Secret or PreviousSecret,
// bound to the endpoint by SecretAD: what the delivery worker opens.
func SealSecret(s Sealer, endpointID, signingSecret string) (string, error) {
	sealed, err := s.Seal([]byte(signingSecret), SecretAD(endpointID))
	if err != nil {
		return "", fmt.Errorf("webhook: seal signing secret: %w", err)
	}
	return sealed, nil
}

// OpenSecret opens a signing secret sealed by SealSecret.
func OpenSecret(o Opener, endpointID, sealed string) (string, error) {
	b, err := o.Open(sealed, SecretAD(endpointID))
	if err != nil {
		return "", fmt.Errorf("webhook: open signing secret: %w", err)
	}
	return string(b), nil
}

// Headers returns the Standard Webhooks headers of a message: webhook-id
// msgID, webhook-timestamp ts in Unix seconds, and webhook-signature with
// one "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per secret, separated
// by spaces, in the order given (the current secret first, then the
// previous one during a rotation's overlap). Each secret is a "whsec_…"
// string; the prefix may be left out. Errors never carry a secret.
func Headers(secrets []string, msgID string, ts time.Time, body []byte) (http.Header, error) {
	if len(secrets) == 0 {
		return nil, errors.New("webhook: no signing secret")
	}
	if msgID == "" {
		return nil, errors.New("webhook: empty message id")
	}
	sigs := make([]string, 0, len(secrets))
	for i, s := range secrets {
		if !strings.HasPrefix(s, SecretPrefix) {
			s = SecretPrefix + s
		}
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			// Say only which one failed: the library's error is about
			// the secret's encoding.
			return nil, fmt.Errorf("webhook: signing secret %d is not whsec_ and base64", i)
		}
		sig, err := wh.Sign(msgID, ts, body)
		if err != nil {
			return nil, fmt.Errorf("webhook: sign: %w", err)
		}
		sigs = append(sigs, sig)
	}
	h := make(http.Header, 3)
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	return h, nil
}
