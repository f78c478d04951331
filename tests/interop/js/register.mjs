// Dynamic client registration with openid-client (RFC 7591): the client registers itself at the
// discovered registration_endpoint with the initial access token its operator gave it, then runs
// CIBA poll mode with the credentials it was issued, refreshes, asks userinfo, and finally
// deletes its own registration (RFC 7592, which openid-client leaves to plain fetch).
//   ISSUER, INITIAL_ACCESS_TOKEN          always
//   LOGIN_HINT, BINDING_MESSAGE, SCOPE    the request
import * as client from 'openid-client'
import { checkIdToken, summary } from './common.mjs'

const env = process.env
const issuer = new URL(env.ISSUER)
const execute = [client.enableNonRepudiationChecks]
if (issuer.protocol === 'http:') execute.push(client.allowInsecureRequests) // development only

// 1. Register: the CIBA metadata of CIBA section 4, the grants it needs, a secret it is issued.
const config = await client.dynamicClientRegistration(
  issuer,
  {
    client_name: 'openid-client kiosk',
    grant_types: ['urn:openid:params:grant-type:ciba', 'refresh_token'],
    backchannel_token_delivery_mode: 'poll',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  client.ClientSecretBasic(), // the client_secret the server issues
  { initialAccessToken: env.INITIAL_ACCESS_TOKEN, execute },
)
const registered = config.clientMetadata()

// 2. CIBA poll mode with the registered client, as poll.mjs runs it.
const started = await client.initiateBackchannelAuthentication(config, {
  scope: env.SCOPE ?? 'openid',
  login_hint: env.LOGIN_HINT,
  binding_message: env.BINDING_MESSAGE,
})
const tokens = await client.pollBackchannelAuthenticationGrant(config, started)
const claims = await checkIdToken(tokens.claims(), tokens, started.auth_req_id)
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
const userinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub)

// 3. RFC 7592: delete the registration; the client's credentials stop working.
const deleted = await fetch(registered.registration_client_uri, {
  method: 'DELETE',
  headers: { authorization: `Bearer ${registered.registration_access_token}` },
})
let afterwards
try {
  await client.initiateBackchannelAuthentication(config, { scope: 'openid', login_hint: env.LOGIN_HINT })
  afterwards = 'accepted'
} catch (error) {
  // 401 invalid_client comes with a Basic challenge (RFC 6749 section 5.2), which carries no
  // error parameter: openid-client throws on the challenge, and the error is in the body.
  const body = error.response ? await error.response.json().catch(() => ({})) : {}
  afterwards = error.error ?? body.error ?? error.code ?? String(error)
}

console.log(JSON.stringify({
  client_id: registered.client_id,
  registered: {
    client_name: registered.client_name,
    grant_types: registered.grant_types,
    backchannel_token_delivery_mode: registered.backchannel_token_delivery_mode,
    client_secret_expires_at: registered.client_secret_expires_at,
    registration_client_uri: registered.registration_client_uri,
  },
  auth_req_id: started.auth_req_id,
  ...summary(tokens, claims),
  refreshed: { token_type: refreshed.token_type },
  userinfo,
  deleted: deleted.status,
  afterwards,
}))
