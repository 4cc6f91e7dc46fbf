package delivery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// envelope is the JSON body of every webhook: the Standard Webhooks
// payload shape.
type envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// Envelope returns the body a stored event is delivered with:
// {"id","type","timestamp","data"}, the timestamp in RFC 3339 in UTC (to
// the microsecond the event was stored with) and data the event's JSON
// object, compacted. It depends on the event alone, so every attempt of
// a delivery, and every delivery of the event, sends the same bytes.
func Envelope(ev store.WebhookEvent) ([]byte, error) {
	data := bytes.TrimSpace(ev.Data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	if !json.Valid(data) || data[0] != '{' {
		return nil, errors.New("webhook: event data is not a JSON object")
	}
	b, err := json.Marshal(envelope{
		ID:        ev.ID,
		Type:      ev.Type,
		Timestamp: ev.OccurredAt.UTC().Format(time.RFC3339Nano),
		Data:      data,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: encode envelope: %w", err)
	}
	return b, nil
}
