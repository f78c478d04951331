// Passkeys (WebAuthn) for the device app: the JSON forms of WebAuthn Level 3 in and out of
// the browser's API, used by device.js (enroll, approve) and by the sign-in page, which this
// file runs by itself ("Sign in with a passkey").
//
// The server speaks the JSON forms (PublicKeyCredentialCreationOptionsJSON and
// PublicKeyCredentialRequestOptionsJSON in, credential.toJSON() out). Browsers that have
// PublicKeyCredential.parse*OptionsFromJSON and toJSON() do the conversion; for the others a
// small base64url fallback does the same.
(function () {
  "use strict";

  function bytesToBase64Url(buffer) {
    const bytes = new Uint8Array(buffer);
    let raw = "";
    for (let i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function base64UrlToBuffer(value) {
    const base64 = (value + "=".repeat((4 - (value.length % 4)) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(base64);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function supported() {
    return Boolean(window.PublicKeyCredential && navigator.credentials && navigator.credentials.create);
  }

  function withIds(descriptors) {
    return (descriptors || []).map(function (descriptor) {
      return Object.assign({}, descriptor, { id: base64UrlToBuffer(descriptor.id) });
    });
  }

  function creationOptions(json) {
    if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    const options = Object.assign({}, json, {
      challenge: base64UrlToBuffer(json.challenge),
      user: Object.assign({}, json.user, { id: base64UrlToBuffer(json.user.id) }),
    });
    if (json.excludeCredentials) options.excludeCredentials = withIds(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    const options = Object.assign({}, json, { challenge: base64UrlToBuffer(json.challenge) });
    if (json.allowCredentials) options.allowCredentials = withIds(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") {
      try {
        return credential.toJSON();
      } catch (error) {
        // Some early implementations throw on extension results: fall back below.
      }
    }
    const response = credential.response;
    const json = {
      id: credential.id,
      rawId: bytesToBase64Url(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: bytesToBase64Url(response.clientDataJSON) },
    };
    if (credential.authenticatorAttachment) json.authenticatorAttachment = credential.authenticatorAttachment;
    if (response.attestationObject) {
      json.response.attestationObject = bytesToBase64Url(response.attestationObject);
      if (response.getTransports) json.response.transports = response.getTransports();
    } else {
      json.response.authenticatorData = bytesToBase64Url(response.authenticatorData);
      json.response.signature = bytesToBase64Url(response.signature);
      if (response.userHandle) json.response.userHandle = bytesToBase64Url(response.userHandle);
    }
    return json;
  }

  // A new passkey from the server's creation options; resolves to RegistrationResponseJSON.
  async function create(publicKey) {
    const credential = await navigator.credentials.create({ publicKey: creationOptions(publicKey) });
    return credentialJSON(credential);
  }

  // An assertion over the server's challenge; resolves to AuthenticationResponseJSON.
  async function get(publicKey) {
    const credential = await navigator.credentials.get({ publicKey: requestOptions(publicKey) });
    return credentialJSON(credential);
  }

  // What went wrong in the browser, in the page's words (``t`` is its translator).
  function explain(error, t) {
    if (error && error.name === "NotAllowedError") return t("passkeyCancelled");
    if (error && error.name === "InvalidStateError") return t("passkeyExists");
    return t("passkeyFailed", { reason: error && error.message ? error.message : String(error) });
  }

  window.CibaPasskeys = {
    supported: supported,
    create: create,
    get: get,
    explain: explain,
    base64UrlToBuffer: base64UrlToBuffer,
    bytesToBase64Url: bytesToBase64Url,
  };

  // --- the sign-in page ---

  const root = document.getElementById("ciba-sign-in");
  const section = document.getElementById("ciba-passkey-sign-in");
  if (!root || !section || !supported()) return;
  const config = root.dataset;
  const messages = JSON.parse(document.getElementById("ciba-device-messages").textContent);
  const button = document.getElementById("ciba-passkey-sign-in-button");
  const statusEl = document.getElementById("ciba-sign-in-status");
  const errorEl = document.getElementById("ciba-sign-in-error");

  function t(key, values) {
    return messages[key].replace(/\{(\w+)\}/g, function (match, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : match;
    });
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": config.csrfToken },
      body: JSON.stringify(body),
    });
  }

  async function problem(response) {
    const body = await response.json().catch(function () { return {}; });
    return body.error_description || body.detail || response.statusText || String(response.status);
  }

  async function signIn() {
    button.disabled = true;
    errorEl.hidden = true;
    statusEl.textContent = t("waitingForPasskey");
    try {
      let response = await post(config.optionsUrl, {});
      if (!response.ok) throw new Error(await problem(response));
      const options = await response.json();
      let credential;
      try {
        credential = await get(options.publicKey);
      } catch (error) {
        throw new Error(explain(error, t));
      }
      statusEl.textContent = t("signingIn");
      response = await post(config.signInUrl, { credential: credential, next: config.next || "" });
      if (!response.ok) throw new Error(t("signInFailed", { reason: await problem(response) }));
      const body = await response.json();
      window.location.assign(body.redirect);
    } catch (error) {
      statusEl.textContent = "";
      errorEl.textContent = error.message;
      errorEl.hidden = false;
      button.disabled = false;
    }
  }

  button.addEventListener("click", signIn);
  section.hidden = false;
})();
