package delivery

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/store"
)

func TestEnvelope(t *testing.T) {
	ev := store.WebhookEvent{
		ID: "msg_1", Type: "user.created",
		OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.FixedZone("CET", 3600)),
		Data:       []byte("{ \"user_id\": \"u1\",\n \"email\": \"a<b>@example.com\" }"),
	}
	b, err := Envelope(ev)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": "msg_1", "type": "user.created", "timestamp": "2026-01-02T02:04:05.123456Z",
		"data": map[string]any{"user_id": "u1", "email": "a<b>@example.com"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("envelope (-want +got):\n%s", diff)
	}
	again, _ := Envelope(ev)
	if !bytes.Equal(b, again) {
		t.Error("the envelope of one event changes between calls")
	}
	if bytes.ContainsAny(b, "\n") {
		t.Errorf("envelope not compact: %s", b)
	}

	empty, err := Envelope(store.WebhookEvent{ID: "msg_2", Type: "webhook.test", OccurredAt: ev.OccurredAt})
	if err != nil || !bytes.Contains(empty, []byte(`"data":{}`)) {
		t.Errorf("no data: %s, %v; want data {}", empty, err)
	}
	for _, bad := range []string{`[1,2]`, `"x"`, `{"a":`, `null`} {
		if _, err := Envelope(store.WebhookEvent{ID: "msg_3", Type: "x", Data: []byte(bad)}); err == nil {
			t.Errorf("data %s accepted", bad)
		}
	}
}
