// CIBA push mode with openid-client: the server POSTs the tokens themselves to our notification
// endpoint (CIBA 10.3). Nobody else validated them: we verify the ID token and that it binds
// the tokens and this request (at_hash, rt_hash, auth_req_id; CIBA 10.3.1).
import { timingSafeEqual, randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import * as client from 'openid-client'
import * as jose from 'jose'
import { authenticationRequest, checkIdToken, configure, summary } from './common.mjs'

const config = await configure()
const server = config.serverMetadata()
const jwks = jose.createRemoteJWKSet(new URL(server.jwks_uri))

const notificationToken = randomBytes(32).toString('base64url')
const expected = Buffer.from(`Bearer ${notificationToken}`)
const endpoint = new URL(process.env.NOTIFICATION_ENDPOINT)
const pushed = new Promise((resolve) => {
  const listener = createServer((request, response) => {
    const chunks = []
    request.on('data', (chunk) => chunks.push(chunk))
    request.on('end', () => {
      const given = Buffer.from(request.headers.authorization ?? '')
      if (request.method !== 'POST' || given.length !== expected.length || !timingSafeEqual(given, expected)) {
        response.writeHead(401).end()
        return
      }
      response.writeHead(204).end() // the tokens are delivered once: keep them now
      listener.close()
      resolve(JSON.parse(Buffer.concat(chunks).toString()))
    })
  })
  listener.listen(Number(endpoint.port), endpoint.hostname)
})

const started = await client.initiateBackchannelAuthentication(
  config,
  await authenticationRequest(config, { client_notification_token: notificationToken }),
)
console.error(`waiting for the user (${started.expires_in} s) ...`)
const tokens = await pushed
if (tokens.error) throw new Error(`the request failed: ${tokens.error}`) // CIBA 12: access_denied, ...
if (tokens.auth_req_id !== started.auth_req_id) throw new Error('tokens for another request')

const { payload: claims } = await jose.jwtVerify(tokens.id_token, jwks, {
  issuer: server.issuer,
  audience: config.clientMetadata().client_id,
  algorithms: [config.clientMetadata().id_token_signed_response_alg ?? 'RS256'],
  requiredClaims: ['sub', 'iat', 'exp', 'auth_time'],
  clockTolerance: 30,
})
await checkIdToken(claims, tokens, started.auth_req_id, true)
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)

console.log(JSON.stringify({ auth_req_id: started.auth_req_id, ...summary(tokens, claims), userinfo }))
