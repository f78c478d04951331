// What the three examples share: the client's configuration (discovery, client authentication,
// mutual TLS, DPoP, a signed request) and the ID-token checks that openid-client leaves to the
// application. Everything a deployment chooses comes from the environment:
//   ISSUER, CLIENT_ID                     always
//   CLIENT_SECRET                         client_secret_basic, or
//   CLIENT_KEY=key.jwk                    private_key_jwt: the private JWK (with kid and alg), or
//   CLIENT_CERT, CLIENT_CERT_KEY          tls_client_auth (and certificate-bound tokens); with
//   SERVER_CA                             the CA that verifies the server's certificate
//   REQUEST_KEY=key.jwk                   sign the authentication request (CIBA 7.1.1; FAPI-CIBA)
//   DPOP_ALG=ES256                        DPoP-bound tokens (RFC 9449)
//   ID_TOKEN_ALG=PS256                    the registered id_token_signed_response_alg (default RS256)
//   DISCOVERY=oauth2                      RFC 8414 metadata instead of OpenID Connect discovery
//   LOGIN_HINT, BINDING_MESSAGE, SCOPE    the request
import { readFileSync } from 'node:fs'
import * as client from 'openid-client'
import * as jose from 'jose'
import { Agent, fetch as undiciFetch } from 'undici'

const env = process.env

export async function configure() {
  const issuer = new URL(env.ISSUER)
  let auth = client.ClientSecretBasic(env.CLIENT_SECRET)
  if (env.CLIENT_KEY) {
    const jwk = JSON.parse(readFileSync(env.CLIENT_KEY, 'utf8'))
    auth = client.PrivateKeyJwt({ key: await jose.importJWK(jwk, jwk.alg), kid: jwk.kid })
  } else if (env.CLIENT_CERT) {
    auth = client.TlsClientAuth() // the certificate is the credential (RFC 8705 section 2)
  }
  const metadata = { require_auth_time: true } // CIBA ID tokens carry the approval's time
  if (env.ID_TOKEN_ALG) metadata.id_token_signed_response_alg = env.ID_TOKEN_ALG
  // Check ID-token signatures too, not only their claims.
  const execute = [client.enableNonRepudiationChecks]
  if (issuer.protocol === 'http:') execute.push(client.allowInsecureRequests) // development only
  const options = { algorithm: env.DISCOVERY ?? 'oidc', execute }
  if (env.CLIENT_CERT) {
    // Mutual TLS: every request to the server presents the client's certificate.
    const agent = new Agent({
      connect: {
        cert: readFileSync(env.CLIENT_CERT),
        key: readFileSync(env.CLIENT_CERT_KEY),
        ca: readFileSync(env.SERVER_CA),
      },
    })
    options[client.customFetch] = (url, init) => undiciFetch(url, { ...init, dispatcher: agent })
  }
  return client.discovery(issuer, env.CLIENT_ID, metadata, auth, options)
}

// A DPoP key for this run of the client, or undefined: openid-client sends the proofs and, when
// the server answers use_dpop_nonce, retries once with the nonce it was given.
export async function dpop(config) {
  if (!env.DPOP_ALG) return undefined
  return client.getDPoPHandle(config, await client.randomDPoPKeyPair(env.DPOP_ALG))
}

// The authentication request's parameters (CIBA 7.1), signed as a request object when the
// client registered a request-signing algorithm (CIBA 7.1.1; FAPI-CIBA requires it).
export async function authenticationRequest(config, extra = {}) {
  const params = {
    scope: env.SCOPE ?? 'openid',
    login_hint: env.LOGIN_HINT,
    binding_message: env.BINDING_MESSAGE,
    ...extra,
  }
  if (!env.REQUEST_KEY) return params
  const jwk = JSON.parse(readFileSync(env.REQUEST_KEY, 'utf8'))
  const request = await new jose.SignJWT(params)
    .setProtectedHeader({ alg: jwk.alg, kid: jwk.kid })
    .setIssuer(config.clientMetadata().client_id)
    .setAudience(config.serverMetadata().issuer)
    .setIssuedAt()
    .setNotBefore('0s')
    .setExpirationTime('5m')
    .setJti(crypto.randomUUID())
    .sign(await jose.importJWK(jwk, jwk.alg))
  return { request }
}

// The left half of the token's hash, with the hash of the ID token's algorithm
// (OpenID Connect Core 3.3.2.11): SHA-256 for RS256, PS256 and ES256.
async function halfHash(value, alg) {
  const digest = { 256: 'SHA-256', 384: 'SHA-384', 512: 'SHA-512' }[alg.slice(-3)] ?? 'SHA-512'
  const hash = new Uint8Array(await crypto.subtle.digest(digest, new TextEncoder().encode(value)))
  return jose.base64url.encode(hash.slice(0, hash.length / 2))
}

// What openid-client does not check in a CIBA ID token: that it belongs to these tokens
// (at_hash; rt_hash when a refresh token came with it) and to this request (auth_req_id,
// required in ping and push mode, CIBA 10.3.1). `claims` are the validated claims.
export async function checkIdToken(claims, tokens, authReqId, required = false) {
  const { alg } = jose.decodeProtectedHeader(tokens.id_token)
  const mismatch = async (name, token) => claims[name] !== (await halfHash(token, alg))
  if (await mismatch('at_hash', tokens.access_token)) {
    throw new Error('the ID token does not belong to this access token (at_hash)')
  }
  if (tokens.refresh_token && (await mismatch('urn:openid:params:jwt:claim:rt_hash', tokens.refresh_token))) {
    throw new Error('the ID token does not belong to this refresh token (rt_hash)')
  }
  const requestId = claims['urn:openid:params:jwt:claim:auth_req_id']
  if ((required || requestId !== undefined) && requestId !== authReqId) {
    throw new Error('the ID token was not issued for this request (auth_req_id)')
  }
  return claims
}

// What the examples print: enough to see what happened, never a token.
export function summary(tokens, claims) {
  return {
    token_type: tokens.token_type,
    scope: tokens.scope,
    expires_in: tokens.expires_in,
    refresh_token: tokens.refresh_token !== undefined,
    id_token_alg: jose.decodeProtectedHeader(tokens.id_token).alg,
    claims,
  }
}
