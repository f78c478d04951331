// CIBA poll mode with openid-client: ask for the user, poll until they decide, use the tokens.
import * as client from 'openid-client'
import { authenticationRequest, checkIdToken, configure, dpop, summary } from './common.mjs'

const config = await configure()
const DPoP = await dpop(config)

// 1. The authentication request (CIBA 7.1). Show the binding message on this device too.
const started = await client.initiateBackchannelAuthentication(config, await authenticationRequest(config))
console.error(`waiting for the user: polling every ${started.interval ?? 5} s for ${started.expires_in} s`)

// 2. Poll the token endpoint (CIBA 10.1). openid-client waits `interval` between polls, 5 s
//    more after each slow_down, gives up at expires_in, and answers a DPoP nonce challenge.
const tokens = await client.pollBackchannelAuthenticationGrant(config, started, undefined, { DPoP })
const claims = await checkIdToken(tokens.claims(), tokens, started.auth_req_id)

// 3. Refresh the tokens (the same user: sub, and auth_time of the approval), then ask userinfo.
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP })
const again = refreshed.id_token && (await checkIdToken(refreshed.claims(), refreshed))
if (again && (again.sub !== claims.sub || again.auth_time !== claims.auth_time)) {
  throw new Error('the refreshed ID token names another user or another authentication')
}
const userinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub, { DPoP })

console.log(JSON.stringify({
  auth_req_id: started.auth_req_id,
  interval: started.interval,
  ...summary(tokens, claims),
  refreshed: refreshed.id_token ? summary(refreshed, again) : { token_type: refreshed.token_type },
  userinfo,
}))
