// Package sms sends Gatehouse's text messages (one-time sign-in and
// verification codes) and defends the SMS channel against abuse.
//
// The pieces, in the order a code passes through them:
//
//   - Normalize turns what a user typed into an E.164 number
//     ("+447911123456"); it insists on the leading + and country code,
//     because guessing a default region sends codes to the wrong country.
//   - A Guard decides whether a code may be sent to that number at all:
//     a country allowlist, a refusal of numbers that cannot receive SMS
//     (landline, premium-rate, toll-free, shared-cost) and rate limits
//     per user, per number and per country calling code. These are the
//     defences against SMS pumping (toll fraud), where an attacker makes a
//     service send messages to number ranges whose operator shares the
//     termination fees, and against SMS bombing of one victim.
//   - Sending happens in a River job (kind "sms.send", queue "sms"), never
//     in the HTTP request. NewSendArgs seals the message body, which holds
//     the code, with the secret.Keyring, so the river_job row never holds
//     a usable code; Worker opens it just before handing it to the
//     Provider. A retryable failure (Twilio 429 or 5xx, a network error)
//     is retried with River's backoff; a permanent one (ErrPermanent: an
//     invalid, unreachable or blocked number, a refused account) cancels
//     the job. Either way, once the SMS will not be sent, Worker.OnFailure
//     lets the caller offer the email code instead.
//   - A Provider delivers it: Twilio through its Messages REST API, or
//     Outbox, which writes .sms files for development.
//     NewProviderFromConfig picks one from configuration.
//   - StatusHandler serves POST /v1/webhooks/twilio/status: Twilio's
//     delivery callbacks, checked against their X-Twilio-Signature and
//     handed to a Record function. A late "undelivered" or "failed" status
//     is the other moment to offer the email code.
//
// Nothing in this package logs a message body or a whole phone number;
// logs carry the calling code and a masked number (Mask).
package sms
