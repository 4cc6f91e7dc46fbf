// Package delivery makes the attempts of webhook deliveries: Standard
// Webhooks signatures (https://www.standardwebhooks.com/), destinations
// safe from server-side request forgery, the River job that sends one
// attempt and schedules the next, dead letters, and the retention job.
// Package webhook (the endpoints, the outbox, the admin API) builds on it.
package delivery

import "github.com/riverqueue/river"

// DeliverArgs is the job that makes the next attempt of a delivery. It
// carries only the delivery's ID (and which attempt it makes): the event,
// the endpoint and its secret are read when the job runs.
//
// Enqueue DeliverArgs{DeliveryID: id} with InsertOpts(), in the
// transaction that creates the delivery (or requeues it, for a retry or a
// replay), for the delivery's next attempt.
type DeliverArgs struct {
	DeliveryID string `json:"delivery_id"`
	// Attempt, when not 0, is the number of the attempt the job makes (1
	// for the first): the worker sets it on the jobs it schedules, and a
	// job whose attempt was made already (its delivery has Attempt or
	// more attempts) does nothing. That keeps a job that runs twice (the
	// process died before River recorded it done) from starting a second
	// chain of retries. 0, as other packages enqueue it, makes whatever
	// attempt is next.
	Attempt int `json:"attempt,omitempty"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return "webhook_deliver" }

// Queue is the River queue deliveries are worked on, apart from the
// emails and text messages of the default queue, so that a slow endpoint
// cannot delay a sign-in's email.
const Queue = "webhooks"

// JobMaxAttempts is how often River runs a delivery job that returns an
// error. The worker returns one only when the database failed (an
// attempt's failure is recorded, and the next attempt scheduled, by the
// worker itself with a new job), so River's retries, with its backoff
// (1 s, 16 s, 81 s, … about 4 hours in all), ride out a database outage:
// with a single run, a delivery whose job met one would stay pending
// with no job to send it.
const JobMaxAttempts = 10

// InsertOpts returns the options of a delivery job: its own queue, and
// JobMaxAttempts. The worker sets ScheduledAt on the jobs it schedules.
func InsertOpts() *river.InsertOpts {
	return &river.InsertOpts{Queue: Queue, MaxAttempts: JobMaxAttempts}
}

// SecretAD is the associated data an endpoint's signing secret is sealed
// with (secret.Keyring.Seal), which binds the sealed secret to its
// endpoint: a secret copied to another row does not open.
func SecretAD(endpointID string) []byte { return []byte("webhook_endpoint:" + endpointID) }
