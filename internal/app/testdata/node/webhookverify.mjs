// Verifies a Gatehouse webhook delivery with the official Standard
// Webhooks library for JavaScript, the way the README tells a Node
// receiver to.
//
// Run by TestWebhooksVerifyInNode (internal/app/webhooks_test.go):
//
//   node webhookverify.mjs DELIVERY.json
//
// where DELIVERY.json is {"secret", "body", "headers": {name: value}}.
// Prints {"results":[{"name":…,"ok":…}]} on stdout.

import { readFileSync } from 'node:fs'
import { Webhook } from 'standardwebhooks'

const { secret, body, headers } = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const results = []

function check(name, fn) {
  try {
    results.push({ name, ok: true, ...fn() })
  } catch (err) {
    results.push({ name, ok: false, error: String(err && err.message || err) })
  }
}

check('standardwebhooks verify', () => {
  const wh = new Webhook(secret) // whsec_…
  const event = wh.verify(body, {
    'webhook-id': headers['webhook-id'],
    'webhook-timestamp': headers['webhook-timestamp'],
    'webhook-signature': headers['webhook-signature'],
  })
  return { type: event.type, id: event.id }
})

check('standardwebhooks verify tampered body', () => {
  const wh = new Webhook(secret)
  try {
    wh.verify(body.replace('"data":{', '"data":{"x":1,'), headers)
  } catch {
    return {}
  }
  throw new Error('a tampered body verified')
})

console.log(JSON.stringify({ results }))
process.exit(results.every((r) => r.ok) ? 0 : 1)
