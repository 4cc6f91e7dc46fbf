// Package delivery makes the attempts of webhook deliveries: Standard
// Webhooks signatures (https://www.standardwebhooks.com/), destinations
// safe from server-side request forgery, the River job that sends one
// attempt and schedules the next, dead letters, and the retention job.
// Package webhook (the endpoints, the outbox, the admin API) builds on it.
package delivery

import "github.com/riverqueue/river"

// DeliverArgs is the job that makes the next attempt of a delivery. It
// carries only the delivery's ID: the event, the endpoint and its secret
// are read when the job runs.
type DeliverArgs struct {
	DeliveryID string `json:"delivery_id"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return "webhook_deliver" }

// Queue is the River queue deliveries are worked on, apart from the
// emails and text messages of the default queue, so that a slow endpoint
// cannot delay a sign-in's email.
const Queue = "webhooks"

// InsertOpts returns the options of a delivery job: its own queue, and
// River's own retries off (the worker schedules the next attempt itself,
// by inserting a new job in the transaction that records the attempt).
func InsertOpts() *river.InsertOpts {
	return &river.InsertOpts{Queue: Queue, MaxAttempts: 1}
}

// SecretAD is the associated data an endpoint's signing secret is sealed
// with (secret.Keyring.Seal), which binds the sealed secret to its
// endpoint: a secret copied to another row does not open.
func SecretAD(endpointID string) []byte { return []byte("webhook_endpoint:" + endpointID) }
