// CIBA ping mode with openid-client: the server calls our notification endpoint when the user
// has decided, and we fetch the tokens once (CIBA 10.2).
import { timingSafeEqual, randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import * as client from 'openid-client'
import { authenticationRequest, checkIdToken, configure, dpop, summary } from './common.mjs'

const config = await configure()
const DPoP = await dpop(config)

// The client notification endpoint registered for this client (an https URL in production).
// The server authenticates with the client_notification_token we sent: compare it in constant
// time, answer 204, and take the auth_req_id from the body.
const notificationToken = randomBytes(32).toString('base64url')
const expected = Buffer.from(`Bearer ${notificationToken}`)
const endpoint = new URL(process.env.NOTIFICATION_ENDPOINT)
const pinged = new Promise((resolve) => {
  const server = createServer((request, response) => {
    const chunks = []
    request.on('data', (chunk) => chunks.push(chunk))
    request.on('end', () => {
      const given = Buffer.from(request.headers.authorization ?? '')
      if (request.method !== 'POST' || given.length !== expected.length || !timingSafeEqual(given, expected)) {
        response.writeHead(401).end()
        return
      }
      response.writeHead(204).end()
      server.close()
      resolve(JSON.parse(Buffer.concat(chunks).toString()))
    })
  })
  server.listen(Number(endpoint.port), endpoint.hostname)
})

const started = await client.initiateBackchannelAuthentication(
  config,
  await authenticationRequest(config, { client_notification_token: notificationToken }),
)
console.error(`waiting for the user (${started.expires_in} s) ...`)
const ping = await pinged
if (ping.auth_req_id !== started.auth_req_id) throw new Error('a ping for another request')

// One token request: the result is ready (a ping client may also poll, at `interval`).
const tokens = await client.genericGrantRequest(
  config,
  'urn:openid:params:grant-type:ciba',
  { auth_req_id: started.auth_req_id },
  { DPoP },
)
const claims = await checkIdToken(tokens.claims(), tokens, started.auth_req_id, true)
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP })

console.log(JSON.stringify({ auth_req_id: started.auth_req_id, ...summary(tokens, claims), userinfo }))
