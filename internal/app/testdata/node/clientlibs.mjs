// Integrator client libraries against a running Gatehouse, as issue 14
// and docs/integration.md promise: oauth4webapi and openid-client discover
// the server with both the 'oidc' and the 'oauth2' algorithm, openid-client
// gets a token by the client_credentials grant, and jose verifies it the
// way docs/integration.md tells a Node backend to.
//
// Run by TestClientLibraries (internal/app/clientlibs_test.go):
//
//   node clientlibs.mjs ISSUER
//
// with CLIENT_ID, CLIENT_SECRET and CLIENT_SCOPE (a scope of the client to
// ask for) in the environment. The server is plain http on loopback, so
// every library is told to allow insecure requests.
//
// Prints one JSON document, {"results":[{"name":…,"ok":…,…}]}, on stdout
// and exits 1 if any check failed.

import * as oauth from 'oauth4webapi'
import * as client from 'openid-client'
import { createRemoteJWKSet, jwtVerify } from 'jose'

const issuerArg = process.argv[2]
const { CLIENT_ID: clientId, CLIENT_SECRET: clientSecret, CLIENT_SCOPE: scope } = process.env
if (!issuerArg || !clientId || !clientSecret || !scope) {
  console.error('usage: CLIENT_ID=… CLIENT_SECRET=… CLIENT_SCOPE=… node clientlibs.mjs ISSUER')
  process.exit(2)
}
const issuer = new URL(issuerArg)
const algorithms = ['oidc', 'oauth2']
const results = []

// check runs one named step; fn returns details to report, or throws.
async function check(name, fn) {
  try {
    results.push({ name, ok: true, ...(await fn()) })
  } catch (err) {
    results.push({ name, ok: false, error: describe(err) })
  }
}

function describe(err) {
  return { name: err?.name, code: err?.code, claim: err?.claim, message: String(err?.message ?? err) }
}

function metadataOf(as) {
  for (const field of ['token_endpoint', 'jwks_uri']) {
    if (typeof as[field] !== 'string' || as[field] === '') throw new Error(`metadata has no ${field}`)
  }
  if (as.issuer !== issuerArg) throw new Error(`issuer ${as.issuer}, want ${issuerArg}`)
  return { issuer: as.issuer, token_endpoint: as.token_endpoint, jwks_uri: as.jwks_uri }
}

// oauth4webapi: the low-level discovery request and its validation
// (processDiscoveryResponse checks that the issuer is the one asked for).
for (const algorithm of algorithms) {
  await check(`oauth4webapi discovery ${algorithm}`, async () => {
    const res = await oauth.discoveryRequest(issuer, { algorithm, [oauth.allowInsecureRequests]: true })
    return metadataOf(await oauth.processDiscoveryResponse(issuer, res))
  })
}

// openid-client: discovery, then the client_credentials grant, once with
// its default client authentication (client_secret_post) and once with
// client_secret_basic.
const configs = {}
for (const algorithm of algorithms) {
  await check(`openid-client discovery ${algorithm}`, async () => {
    const auth = algorithm === 'oidc' ? undefined : client.ClientSecretBasic(clientSecret)
    const config = await client.discovery(issuer, clientId, clientSecret, auth, {
      algorithm,
      execute: [client.allowInsecureRequests],
    })
    configs[algorithm] = config
    return metadataOf(config.serverMetadata())
  })
}

const tokens = {}
for (const [algorithm, authMethod] of [['oidc', 'client_secret_post'], ['oauth2', 'client_secret_basic']]) {
  await check(`openid-client client_credentials ${authMethod}`, async () => {
    const config = configs[algorithm]
    if (!config) throw new Error(`no configuration: discovery ${algorithm} failed`)
    const res = await client.clientCredentialsGrant(config, { scope })
    if (!res.access_token) throw new Error('no access_token')
    tokens[authMethod] = res.access_token
    return { token_type: res.token_type, scope: res.scope, expires_in: res.expiresIn() }
  })
}

// jose, as in docs/integration.md ("Node, with jose"): the keys from the
// discovered jwks_uri, the issuer as the audience.
const token = tokens.client_secret_basic ?? tokens.client_secret_post
const jwksURI = configs.oauth2?.serverMetadata().jwks_uri ?? configs.oidc?.serverMetadata().jwks_uri
const verifyOptions = (audience) => ({
  issuer: issuerArg,
  audience,
  typ: 'at+jwt',
  algorithms: ['RS256', 'ES256', 'EdDSA'],
  requiredClaims: ['sub', 'client_id', 'jti'],
  clockTolerance: 30,
})
const jwks = jwksURI && createRemoteJWKSet(new URL(jwksURI))

await check('jose jwtVerify', async () => {
  if (!token || !jwks) throw new Error('no token or jwks_uri to verify with')
  const { payload, protectedHeader } = await jwtVerify(token, jwks, verifyOptions(issuerArg))
  return { header: protectedHeader, payload }
})

// The same token for another API must be refused, and for its audience.
await check('jose jwtVerify wrong audience', async () => {
  if (!token || !jwks) throw new Error('no token or jwks_uri to verify with')
  try {
    await jwtVerify(token, jwks, verifyOptions('https://other.example'))
  } catch (err) {
    if (err?.code !== 'ERR_JWT_CLAIM_VALIDATION_FAILED' || err?.claim !== 'aud') {
      throw new Error(`refused, but not for its audience: ${JSON.stringify(describe(err))}`)
    }
    return { refused: describe(err) }
  }
  throw new Error('a token was accepted for audience https://other.example')
})

process.stdout.write(JSON.stringify({ results }) + '\n')
process.exit(results.every((r) => r.ok) ? 0 : 1)
