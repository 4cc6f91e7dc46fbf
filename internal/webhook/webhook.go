// Package webhook delivers Gatehouse's events to customer endpoints,
// signed as Standard Webhooks (https://www.standardwebhooks.com/): the
// endpoints and their subscriptions, the transactional outbox that records
// an event with the change that caused it, the durable deliveries (River
// jobs) with retries, dead letters and replay, and their analytics.
package webhook

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
