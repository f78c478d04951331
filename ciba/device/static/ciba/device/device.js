// The device page: a client of the consent API, as a native app would be.
//
// Everything it shows comes from the API, read as the signed-in user (session cookie, CSRF
// header); the page itself carries only the API's URLs in data-* attributes and the
// translated sentences in a JSON block, so it runs under a CSP without 'unsafe-inline'.
//
// Approving takes what the request's "authentication" says (required_level, methods): a tap
// when the session suffices, else a passkey (an assertion over this very transaction, its
// options from the request's authentication-options) or the password re-entered. The page
// also manages the user's passkeys and user code, and shows the user's QR code for tills ("Show
// my code", a single-use login_hint_token, when the site issues them). passkeys.js (window.CibaPasskeys) does the
// WebAuthn part; without it the page works without passkeys.
(function () {
  "use strict";

  const root = document.getElementById("ciba-device");
  if (!root) return;
  const config = root.dataset;
  const messages = JSON.parse(document.getElementById("ciba-device-messages").textContent);

  // How often the list is re-read while the page is visible; with Web Push on for this
  // browser, the service worker announces new requests, so the page can ask less often.
  const REFRESH_MS = 3000;
  const REFRESH_WITH_PUSH_MS = 15000;
  let refreshMs = REFRESH_MS;
  const list = document.getElementById("ciba-requests");
  const statusEl = document.getElementById("ciba-status");
  const errorEl = document.getElementById("ciba-error");
  const decisions = document.getElementById("ciba-decisions");
  const requestTemplate = document.getElementById("ciba-request-template");
  const decisionTemplate = document.getElementById("ciba-decision-template");

  const inFlight = new Set(); // auth_req_ids being decided now
  const leaving = new Set(); // auth_req_ids no longer pending, whose card is on its way out
  // How long a withdrawn request's card says so before it goes.
  const WITHDRAWN_MS = 4000;
  const settled = new Set(); // auth_req_ids decided on this page: never shown as pending again
  const stepUps = new Map(); // auth_req_id -> what a 403 step_up_required asked for
  const chosen = new Map(); // auth_req_id -> the method the user picked instead ("password")
  let passkeys = null; // the user's passkeys, once read (null: not known, or none possible)
  let timer = null;
  // When the list last rendered was asked for: refreshes can overlap (the timer's and one a
  // push asked for), and an older answer arriving last must not undo a newer one.
  let renderedAsked = 0;
  let signedOut = false;
  let cardCounter = 0;

  function t(key, values) {
    return messages[key].replace(/\{(\w+)\}/g, function (match, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : match;
    });
  }

  function csrfToken() {
    if (config.csrfToken) return config.csrfToken;
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function api(url, options) {
    const init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    init.headers = Object.assign({ Accept: "application/json" }, init.headers);
    if (init.method && init.method !== "GET") {
      init.headers["X-CSRFToken"] = csrfToken();
      if (init.body !== undefined) init.headers["Content-Type"] = "application/json";
    }
    return fetch(url, init);
  }

  function decisionUrl(authReqId, action) {
    return config.requestsUrl + encodeURIComponent(authReqId) + "/" + action + "/";
  }

  function clock(value) {
    return new Date(value).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function showError(text) {
    errorEl.textContent = text;
    errorEl.hidden = !text;
  }

  function showCardError(card, text) {
    const el = card.querySelector(".card-error");
    el.textContent = text || "";
    el.hidden = !text;
  }

  function cardFor(authReqId) {
    return Array.prototype.find.call(list.children, function (card) {
      return card.dataset.id === authReqId;
    });
  }

  // --- the pending list ---

  // ``asked`` is when the list was asked for: a notification shown after that may be for a
  // request the list could not know of yet, so only older ones are closed by it.
  function render(requests, asked) {
    const shown = requests.filter(function (request) {
      return !settled.has(request.auth_req_id);
    });
    const ids = new Set(shown.map(function (request) { return request.auth_req_id; }));
    Array.prototype.slice.call(list.children).forEach(function (card) {
      if (!ids.has(card.dataset.id) && !inFlight.has(card.dataset.id)) drop(card);
    });
    shown.forEach(function (request, index) {
      let card = cardFor(request.auth_req_id);
      if (!card) card = buildCard(request);
      if (list.children[index] !== card) list.insertBefore(card, list.children[index] || null);
    });
    showCount();
    closeNotificationsExcept(ids, asked);
    codeSawRequests(ids);
  }

  // A card whose request is no longer pending (decided on another device, expired, withdrawn
  // by the site that sent it): a withdrawn one says so briefly, any other simply goes.
  async function drop(card) {
    const id = card.dataset.id;
    if (leaving.has(id)) return;
    leaving.add(id);
    let state = null;
    try {
      const response = await api(config.requestsUrl + encodeURIComponent(id) + "/");
      if (response.ok) state = (await response.json()).state;
    } catch (error) {
      state = null;
    }
    if (state === "cancelled") showWithdrawn(card);
    else removeCard(card);
  }

  function removeCard(card) {
    leaving.delete(card.dataset.id);
    card.remove();
    showCount();
  }

  // "Withdrawn by <client>": the site that sent the request took it back (its customer walked
  // away, or it sent a newer one). Nothing can be done with it any more.
  function showWithdrawn(card) {
    if (card.classList.contains("withdrawn")) return;
    leaving.add(card.dataset.id);
    card.classList.add("withdrawn");
    card.setAttribute("aria-disabled", "true");
    card.querySelectorAll("button, input").forEach(function (control) { control.disabled = true; });
    const note = card.querySelector(".withdrawn-note");
    note.textContent = t("withdrawn", { client: card.cibaRequest.client_name });
    note.hidden = false;
    closeNotification(card.dataset.id);
    showCount();
    setTimeout(function () { removeCard(card); }, WITHDRAWN_MS);
  }

  function liveCards() {
    return Array.prototype.filter.call(list.children, function (card) {
      return !card.classList.contains("withdrawn");
    });
  }

  function showCount() {
    const count = liveCards().length;
    const text = count ? t("count", { count: count }) : t("empty");
    if (statusEl.textContent !== text) statusEl.textContent = text; // unchanged: not re-announced
  }

  function buildCard(request) {
    const card = requestTemplate.content.firstElementChild.cloneNode(true);
    const headingId = "ciba-request-" + ++cardCounter;
    card.dataset.id = request.auth_req_id;
    const heading = card.querySelector(".client");
    heading.id = headingId;
    heading.textContent = request.client_name;
    const binding = card.querySelector(".binding");
    if (request.binding_message) {
      binding.textContent = request.binding_message;
    } else {
      binding.textContent = t("noBinding");
      binding.classList.add("none");
    }
    showDetails(card, request);
    showContext(card, request.request_context);
    const scopes = card.querySelector(".scopes");
    request.scopes.forEach(function (scope) {
      const item = document.createElement("li");
      item.textContent = scope.description;
      scopes.appendChild(item);
    });
    card.querySelector(".expires").textContent = t("expires", { time: clock(request.expires_at) });
    card.cibaRequest = request;
    card.querySelectorAll(".actions button, .password-form button, .link").forEach(function (button) {
      button.setAttribute("aria-describedby", headingId);
    });
    card.querySelector(".approve").addEventListener("click", function () {
      decide(request, card, "approve", tap);
    });
    card.querySelector(".approve-passkey").addEventListener("click", function () {
      decide(request, card, "approve", withPasskey);
    });
    card.querySelector(".alt-passkey").addEventListener("click", function () {
      decide(request, card, "approve", withPasskey);
    });
    card.querySelector(".alt-password").addEventListener("click", function () {
      chosen.set(request.auth_req_id, "password");
      applyMode(card);
      card.querySelector(".password-form input").focus();
    });
    card.querySelector(".password-form").addEventListener("submit", function (event) {
      event.preventDefault();
      const input = card.querySelector(".password-form input");
      const password = input.value;
      input.value = "";
      decide(request, card, "approve", function (req) { return withPassword(req, password); });
    });
    card.querySelector(".enroll-here").addEventListener("click", function () {
      enrollHere(card);
    });
    card.querySelector(".deny").addEventListener("click", function () {
      decide(request, card, "deny", deny);
    });
    // "I did not ask for this": a confirm step, with the offer to block the site.
    const reportButton = card.querySelector(".report");
    const confirmReport = card.querySelector(".confirm-report");
    const blockBox = card.querySelector(".block-client");
    blockBox.id = headingId + "-block";
    card.querySelector(".block-label").setAttribute("for", blockBox.id);
    card.querySelector(".block-label-text").textContent = t("alsoBlock", { client: request.client_name });
    reportButton.addEventListener("click", function () {
      confirmReport.hidden = false;
      reportButton.hidden = true;
      card.querySelector(".confirm-report-button").focus();
    });
    card.querySelector(".keep-request").addEventListener("click", function () {
      confirmReport.hidden = true;
      reportButton.hidden = false;
      blockBox.checked = false;
      reportButton.focus();
    });
    card.querySelector(".confirm-report-button").addEventListener("click", function () {
      const block = blockBox.checked;
      decide(request, card, "report", function (req) {
        return post(req.auth_req_id, "report", { block: block }).then(function (outcome) {
          outcome.blocked = block;
          return outcome;
        });
      });
    });
    applyMode(card);
    return card;
  }

  // --- what approving takes ---

  function webauthn() {
    return Boolean(config.passkeysUrl && window.CibaPasskeys && window.CibaPasskeys.supported());
  }

  function usablePasskeys() {
    return (passkeys || []).filter(function (passkey) { return !passkey.disabled; });
  }

  // What this page asks for to approve ``request``: "tap" (the session suffices), "passkey",
  // "password", "enroll" (a passkey is needed and the user has none yet), "unsupported" (a
  // passkey is needed and this browser has no WebAuthn) or "impossible" (no method offered).
  function needsOf(request) {
    const stepUp = stepUps.get(request.auth_req_id);
    if (stepUp) return stepUp;
    const auth = request.authentication || {};
    return { level: auth.required_level || "session", methods: auth.methods || [] };
  }

  function modeFor(request) {
    const needs = needsOf(request);
    if (!needs.level || needs.level === "session") return "tap";
    const methods = needs.methods || [];
    const byPasskey = methods.indexOf("passkey") !== -1;
    const byPassword = methods.indexOf("password") !== -1;
    if (byPassword && chosen.get(request.auth_req_id) === "password") return "password";
    if (byPasskey && webauthn() && usablePasskeys().length) return "passkey";
    if (byPassword) return "password";
    if (byPasskey) return webauthn() ? "enroll" : "unsupported";
    return "impossible";
  }

  function applyMode(card) {
    const request = card.cibaRequest;
    const mode = modeFor(request);
    const needs = needsOf(request);
    const blocked = card.dataset.unreadable === "true";
    const methods = needs.methods || [];
    const passkeyOffered = !methods.length || methods.indexOf("passkey") !== -1;
    function show(selector, on) { card.querySelector(selector).hidden = !on || blocked; }
    card.dataset.mode = mode;
    show(".approve", mode === "tap");
    show(".approve-passkey", mode === "passkey");
    show(".enroll-here", mode === "enroll");
    show(".password-form", mode === "password");
    show(".alt-passkey", (mode === "tap" || mode === "password") && passkeyOffered &&
      webauthn() && usablePasskeys().length > 0);
    show(".alt-password", mode === "passkey" && methods.indexOf("password") !== -1);
    const note = card.querySelector(".auth-note");
    const text = {
      password: "needsPassword",
      passkey: "needsPasskey",
      enroll: "needsEnrollment",
      unsupported: "needsUnsupported",
      impossible: "cannotApprove",
    }[mode];
    note.textContent = text && !blocked ? t(text) : "";
    note.hidden = !note.textContent;
  }

  function applyModes() {
    Array.prototype.forEach.call(list.children, applyMode);
  }

  function primaryControl(card) {
    return Array.prototype.find.call(
      card.querySelectorAll(".actions button, .password-form input"),
      function (el) { return !el.closest("[hidden]"); }
    );
  }

  // RFC 9396 authorization details (a payment's amount and payee), as the server rendered
  // them: the approval then says it was exactly this that the user saw (its digest).
  function showDetails(card, request) {
    const details = request.authorization_details || [];
    if (!details.length) return;
    const section = card.querySelector(".details");
    const listEl = section.querySelector(".detail-list");
    (request.authorization_details_display || []).forEach(function (detail) {
      const item = document.createElement("li");
      item.className = "detail";
      item.dataset.type = detail.type;
      item.textContent = detail.text;
      listEl.appendChild(item);
    });
    if (!request.authorization_details_digest) {
      // No digest: the server cannot stand behind a display of these details (a type it no
      // longer supports), so nothing here can be approved. Say so; denying still works.
      const item = document.createElement("li");
      item.className = "detail unreadable";
      item.textContent = t("detailsUnreadable");
      listEl.appendChild(item);
      card.dataset.unreadable = "true";
    }
    section.hidden = false;
  }

  // CIBA §7.1 request_context: whatever the client says about where the request comes from.
  function showContext(card, context) {
    if (!context || typeof context !== "object" || Array.isArray(context)) return;
    const keys = Object.keys(context);
    if (!keys.length) return;
    const dl = card.querySelector(".context-list");
    keys.forEach(function (key) {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      const value = context[key];
      dd.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 1);
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
    card.querySelector(".context").hidden = false;
  }

  // The fields of the approval that say what is approved: the same in the passkey's
  // authentication-options, since its challenge is bound to exactly this transaction.
  function approvalFields(request) {
    if (!(request.authorization_details || []).length) return {};
    return { displayed_details_hash: request.authorization_details_digest };
  }

  async function refresh() {
    clearTimeout(timer);
    if (signedOut) return;
    try {
      const asked = Date.now();
      const response = await api(config.requestsUrl);
      if (response.status === 401 || response.status === 403) {
        signOut();
        return;
      }
      if (response.ok) {
        const requests = await response.json();
        if (asked < renderedAsked) return; // a newer answer is on the page already
        renderedAsked = asked;
        render(requests, asked);
        if (errorEl.dataset.kind === "offline") clearOffline();
      }
    } catch (error) {
      errorEl.dataset.kind = "offline";
      showError(t("offline"));
    }
    schedule();
  }

  function clearOffline() {
    delete errorEl.dataset.kind;
    showError("");
  }

  function schedule() {
    clearTimeout(timer);
    if (!document.hidden && !signedOut) timer = setTimeout(refresh, refreshMs);
  }

  function signOut() {
    signedOut = true;
    clearTimeout(timer);
    showError(t("signedOut"));
    hideCode("");
  }

  // --- deciding ---

  async function post(authReqId, action, payload) {
    const response = await api(decisionUrl(authReqId, action), { method: "POST", body: JSON.stringify(payload) });
    const body = await response.json().catch(function () { return {}; });
    return { response: response, body: body };
  }

  function deny(request) {
    return post(request.auth_req_id, "deny", {});
  }

  function tap(request) {
    return post(request.auth_req_id, "approve", approvalFields(request));
  }

  function withPassword(request, password) {
    const payload = Object.assign(approvalFields(request), { authentication: { method: "password", password: password } });
    return post(request.auth_req_id, "approve", payload);
  }

  // Ask for options bound to this transaction, let the authenticator sign them, approve with
  // the assertion. The same fields go to both calls: the server recomputes the challenge.
  async function withPasskey(request) {
    const fields = approvalFields(request);
    const options = await post(request.auth_req_id, "authentication-options", fields);
    if (!options.response.ok) return options;
    statusEl.textContent = t("waitingForPasskey");
    let credential;
    try {
      credential = await window.CibaPasskeys.get(options.body.publicKey);
    } catch (error) {
      return { response: null, body: {}, message: window.CibaPasskeys.explain(error, t) };
    }
    statusEl.textContent = t("approving");
    const payload = Object.assign({}, fields, { authentication: { method: "passkey", credential: credential } });
    return post(request.auth_req_id, "approve", payload);
  }

  function setBusy(card, busy) {
    if (busy) card.setAttribute("aria-busy", "true");
    else card.removeAttribute("aria-busy");
    card.querySelectorAll("button, input").forEach(function (control) { control.disabled = busy; });
  }

  async function decide(request, card, action, how) {
    const id = request.auth_req_id;
    if (inFlight.has(id)) return;
    inFlight.add(id);
    showError("");
    showCardError(card, "");
    setBusy(card, true);
    statusEl.textContent = t({ approve: "approving", deny: "denying", report: "reporting" }[action]);
    let outcome;
    try {
      outcome = await how(request);
    } catch (error) {
      outcome = { response: null, body: {} };
    }
    inFlight.delete(id);
    setBusy(card, false);
    conclude(request, card, action, outcome);
  }

  function conclude(request, card, action, outcome) {
    const id = request.auth_req_id;
    const response = outcome.response;
    const body = outcome.body || {};
    if (response && (response.ok || response.status === 409 || response.status === 404)) {
      settled.add(id);
      card.remove();
      showCount();
      const decided = { approve: "approved", deny: "denied", report: "reported" }[action];
      const outcomeName = response.ok ? decided
        : body.state === "expired" ? "expired" : body.state === "cancelled" ? "withdrawn" : "gone";
      confirmDecision(request, outcomeName, outcome.blocked && response.ok);
      closeNotification(id);
      if (outcome.blocked && response.ok) loadBlocks(true);
      refresh();
      return;
    }
    showCount();
    if (response && response.status === 401) {
      signOut();
    } else if (response && response.status === 403 && body.error === "step_up_required") {
      // The policy wants more than what was sent: ask for it, on this card.
      stepUps.set(id, { level: body.level || "", methods: body.methods || [], acr: body.acr || "" });
      chosen.delete(id);
      applyMode(card);
      showCardError(card, body.error_description || t("failed"));
      const control = primaryControl(card);
      if (control) control.focus();
    } else if (response === null) {
      showCardError(card, outcome.message || t("failed"));
    } else {
      // invalid_authentication among others: the server's words; the request stays pending.
      showCardError(card, body.error_description || body.detail || t("failed"));
      // A refused passkey may now be disabled (a clone suspected): show it, stop offering it.
      if (body.error === "invalid_authentication" && passkeySection) loadPasskeys();
    }
    refresh();
  }

  function confirmDecision(request, outcome, blocked) {
    const item = decisionTemplate.content.firstElementChild.cloneNode(true);
    const values = { client: request.client_name, time: clock(Date.now()) };
    item.classList.add(outcome);
    item.dataset.id = request.auth_req_id;
    item.querySelector(".mark").textContent = {
      approved: "✓", denied: "✕", reported: "⚑", expired: "⏱", withdrawn: "↩", gone: "•",
    }[outcome];
    item.querySelector(".title").textContent = t(outcome + "Title");
    item.querySelector(".summary").textContent = t(outcome + "Text", values);
    const binding = item.querySelector(".binding");
    if (request.binding_message) binding.textContent = request.binding_message;
    else binding.remove();
    const summaries = item.querySelector(".detail-summaries");
    (request.authorization_details_display || []).forEach(function (detail) {
      const line = document.createElement("li");
      line.textContent = detail.summary;
      summaries.appendChild(line);
    });
    const next = item.querySelector(".next");
    if (outcome === "reported" && blocked) next.textContent = t("reportedBlockedNext", values);
    else if (outcome === "approved" || outcome === "denied" || outcome === "reported") {
      next.textContent = t(outcome + "Next", values);
    } else next.remove();
    item.querySelector(".dismiss").addEventListener("click", function () {
      item.remove();
      document.getElementById("main").focus();
    });
    decisions.insertBefore(item, decisions.firstChild);
    item.focus();
  }

  // --- passkeys: enroll, list, rename, remove ---

  const passkeySection = document.getElementById("ciba-passkeys");
  const passkeyList = document.getElementById("ciba-passkey-list");
  const passkeyTemplate = document.getElementById("ciba-passkey-template");
  const passkeyForm = document.getElementById("ciba-passkey-create");

  function passkeyUrl(id) {
    return config.passkeysUrl + encodeURIComponent(id) + "/";
  }

  function day(value) {
    return new Date(value).toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
  }

  function sectionSay(prefix, text, isError) {
    const ok = document.getElementById(prefix + "-message");
    const bad = document.getElementById(prefix + "-error");
    ok.textContent = isError ? "" : text || "";
    bad.textContent = isError ? text || "" : "";
    bad.hidden = !(isError && text);
  }

  async function problem(response) {
    const body = await response.json().catch(function () { return {}; });
    return body.error_description || body.detail || t("failed");
  }

  async function loadPasskeys() {
    if (!passkeySection) return;
    try {
      const response = await api(config.passkeysUrl);
      if (!response.ok) throw new Error(await problem(response));
      passkeys = await response.json();
    } catch (error) {
      passkeys = null;
      sectionSay("ciba-passkeys", t("passkeysUnreadable"), true);
    }
    showPasskeys();
    applyModes();
  }

  function showPasskeys() {
    passkeySection.hidden = false;
    passkeyForm.hidden = !webauthn();
    const status = document.getElementById("ciba-passkeys-status");
    const all = passkeys || [];
    let text = all.length ? t("passkeysCount", { count: all.length }) : t("passkeysNone");
    if (!webauthn()) text += " " + t("passkeysUnsupported");
    status.textContent = text;
    passkeyList.textContent = "";
    all.forEach(function (passkey) { passkeyList.appendChild(passkeyItem(passkey)); });
  }

  function passkeyItem(passkey) {
    const item = passkeyTemplate.content.firstElementChild.cloneNode(true);
    item.dataset.id = passkey.id;
    item.querySelector(".passkey-name").textContent = passkey.name;
    const meta = [
      t("passkeyCreatedAt", { date: day(passkey.created_at) }),
      passkey.last_used_at ? t("passkeyLastUsed", { date: day(passkey.last_used_at) }) : t("passkeyNeverUsed"),
      t(passkey.device_bound ? "passkeyDeviceBound" : "passkeySynced"),
    ];
    item.querySelector(".passkey-meta").textContent = meta.join(" · ");
    const disabled = item.querySelector(".passkey-disabled");
    if (passkey.disabled) {
      disabled.textContent = t("passkeyDisabled");
      disabled.hidden = false;
    }
    const actions = item.querySelector(".passkey-actions");
    const renameForm = item.querySelector(".rename-form");
    const confirm = item.querySelector(".confirm-remove");
    const nameInput = renameForm.querySelector("input");
    ["rename", "remove"].forEach(function (name) {
      item.querySelector("." + name).setAttribute("aria-label", item.querySelector("." + name).textContent + ": " + passkey.name);
    });
    function only(part) {
      actions.hidden = part !== actions;
      renameForm.hidden = part !== renameForm;
      confirm.hidden = part !== confirm;
    }
    item.querySelector(".rename").addEventListener("click", function () {
      nameInput.value = passkey.name;
      only(renameForm);
      nameInput.focus();
    });
    item.querySelector(".remove").addEventListener("click", function () {
      only(confirm);
      confirm.querySelector(".confirm").focus();
    });
    item.querySelectorAll(".cancel").forEach(function (button) {
      button.addEventListener("click", function () { only(actions); });
    });
    renameForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const response = await api(passkeyUrl(passkey.id), {
        method: "PATCH",
        body: JSON.stringify({ name: nameInput.value }),
      }).catch(function () { return null; });
      if (!response) return sectionSay("ciba-passkeys", t("failed"), true);
      if (!response.ok) return sectionSay("ciba-passkeys", await problem(response), true);
      const renamed = await response.json();
      sectionSay("ciba-passkeys", t("passkeyRenamed", { name: renamed.name }));
      await loadPasskeys();
    });
    confirm.querySelector(".confirm").addEventListener("click", async function () {
      const response = await api(passkeyUrl(passkey.id), { method: "DELETE" }).catch(function () { return null; });
      if (!response) return sectionSay("ciba-passkeys", t("failed"), true);
      if (!response.ok && response.status !== 404) return sectionSay("ciba-passkeys", await problem(response), true);
      sectionSay("ciba-passkeys", t("passkeyRemoved", { name: passkey.name }));
      await loadPasskeys();
    });
    return item;
  }

  function defaultPasskeyName() {
    return t("passkeyDefaultName", { platform: platform() }).slice(0, 64);
  }

  // Registration options from the server, a new credential from the authenticator, the
  // credential to the server; resolves to the new passkey, rejects with a sentence.
  async function enroll(name) {
    let response = await api(config.passkeyOptionsUrl, { method: "POST", body: "{}" });
    if (!response.ok) throw new Error(await problem(response));
    const options = await response.json();
    let credential;
    try {
      credential = await window.CibaPasskeys.create(options.publicKey);
    } catch (error) {
      throw new Error(window.CibaPasskeys.explain(error, t));
    }
    response = await api(config.passkeysUrl, {
      method: "POST",
      body: JSON.stringify({ credential: credential, name: name || defaultPasskeyName() }),
    });
    if (!response.ok) throw new Error(await problem(response));
    return response.json();
  }

  if (passkeyForm) {
    passkeyForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const button = passkeyForm.querySelector("button");
      const input = document.getElementById("ciba-passkey-name");
      button.disabled = true;
      sectionSay("ciba-passkeys", t("passkeyCreating"));
      try {
        const created = await enroll(input.value.trim());
        input.value = "";
        sectionSay("ciba-passkeys", t("passkeyCreated", { name: created.name }));
        await loadPasskeys();
      } catch (error) {
        sectionSay("ciba-passkeys", error.message, true);
      }
      button.disabled = false;
    });
  }

  // A request needs a passkey and the user has none: create it right on the card.
  async function enrollHere(card) {
    setBusy(card, true);
    showCardError(card, "");
    statusEl.textContent = t("passkeyCreating");
    try {
      const created = await enroll("");
      if (passkeySection) sectionSay("ciba-passkeys", t("passkeyCreated", { name: created.name }));
      await loadPasskeys();
    } catch (error) {
      showCardError(card, error.message);
    }
    setBusy(card, false);
    showCount();
    applyMode(card);
    const control = primaryControl(card);
    if (control) control.focus();
  }

  // --- the user code (CIBA section 7.1.2): set, change, remove ---

  const userCodeSection = document.getElementById("ciba-user-code");

  function showUserCode(state) {
    const status = document.getElementById("ciba-user-code-status");
    let text = state.is_set ? t("userCodeSet", { date: day(state.updated_at) }) : t("userCodeNone");
    if (state.locked_until) text += " " + t("userCodeLocked", { time: clock(state.locked_until) });
    status.textContent = text;
    userCodeSection.querySelector(".save-user-code").textContent =
      t(state.is_set ? "userCodeChangeButton" : "userCodeSetButton");
    document.getElementById("ciba-user-code-remove").hidden = !state.is_set;
    userCodeSection.hidden = false;
  }

  async function loadUserCode() {
    const response = await api(config.userCodeUrl).catch(function () { return null; });
    if (response && response.ok) showUserCode(await response.json());
    else if (response) sectionSay("ciba-user-code", await problem(response), true);
  }

  function setUpUserCode() {
    if (!userCodeSection || !config.userCodeUrl) return;
    const form = document.getElementById("ciba-user-code-form");
    const input = document.getElementById("ciba-user-code-input");
    const remove = document.getElementById("ciba-user-code-remove");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const response = await api(config.userCodeUrl, {
        method: "PUT",
        body: JSON.stringify({ user_code: input.value }),
      }).catch(function () { return null; });
      if (!response) return sectionSay("ciba-user-code", t("failed"), true);
      if (!response.ok) return sectionSay("ciba-user-code", await userCodeProblem(response), true);
      input.value = "";
      showUserCode(await response.json());
      sectionSay("ciba-user-code", t("userCodeSaved"));
    });
    remove.addEventListener("click", async function () {
      const response = await api(config.userCodeUrl, { method: "DELETE" }).catch(function () { return null; });
      if (!response || !response.ok) return sectionSay("ciba-user-code", t("failed"), true);
      sectionSay("ciba-user-code", t("userCodeRemoved"));
      await loadUserCode();
      input.focus();
    });
    loadUserCode();
  }

  async function userCodeProblem(response) {
    const body = await response.json().catch(function () { return {}; });
    if (body.error_description || body.detail) return body.error_description || body.detail;
    const field = body.user_code; // a serializer's field errors
    return Array.isArray(field) && field.length ? String(field[0]) : t("failed");
  }

  // --- "Show my code": a QR code a till scans instead of asking for the username ---
  //
  // Each code is a login_hint_token the server issued for this user (single use, short-lived,
  // no personal data in it). The page asks for a new one shortly before the shown one expires,
  // but only while the page is visible and someone has touched it in the last ten minutes:
  // codes are not minted for a phone left lying on a counter. A request arriving means a code
  // did its job, so the code is hidden then. The token itself is never logged or put in a URL.

  const myCode = document.getElementById("ciba-my-code");
  const CODE_EARLY_MS = 20000; // ask for the next code this long before the shown one expires
  const CODE_MIN_WAIT_MS = 5000; // never sooner than this after the last one (short lifetimes)
  const CODE_IDLE_MS = 10 * 60 * 1000; // no tap or key for this long: stop refreshing
  const codeState = {
    shown: false, // the user asked to see the code and it has not been hidden since
    expiresAt: 0, // when the code on screen expires (this device's clock)
    refreshTimer: null,
    tickTimer: null,
    generation: 0, // a newer fetch or hide makes an older fetch's answer irrelevant
    requestsSeen: null, // auth_req_ids pending when the code was first shown
  };
  let lastInteraction = Date.now();

  function codeParts() {
    return {
      toggle: document.getElementById("ciba-my-code-toggle"),
      panel: document.getElementById("ciba-my-code-panel"),
      image: document.getElementById("ciba-my-code-image"),
      countdown: document.getElementById("ciba-my-code-countdown"),
      message: document.getElementById("ciba-my-code-message"),
      error: document.getElementById("ciba-my-code-error"),
    };
  }

  function stopCodeTimers() {
    clearTimeout(codeState.refreshTimer);
    clearInterval(codeState.tickTimer);
    codeState.refreshTimer = null;
    codeState.tickTimer = null;
  }

  function codeSay(text, isError) {
    const parts = codeParts();
    parts.message.textContent = isError ? "" : text || "";
    parts.error.textContent = isError ? text || "" : "";
    parts.error.hidden = !(isError && text);
  }

  // A code on screen is read by a till's camera, often after the user has turned the phone
  // round: the screen must not dim or lock meanwhile (Screen Wake Lock API, where present).
  // The browser drops the lock when the page is hidden; codeVisible asks again.
  let wakeLock = null;
  async function keepScreenOn(on) {
    if (!on) {
      const held = wakeLock;
      wakeLock = null;
      if (held) held.release().catch(function () {});
      return;
    }
    if (wakeLock || document.hidden || !navigator.wakeLock) return;
    try {
      const lock = await navigator.wakeLock.request("screen");
      if (!codeState.shown || wakeLock) {
        lock.release().catch(function () {}); // hidden (or locked twice) while it was asked for
        return;
      }
      wakeLock = lock;
      lock.addEventListener("release", function () { if (wakeLock === lock) wakeLock = null; });
    } catch (error) {
      wakeLock = null; // refused (battery saver, no user gesture): the code still shows
    }
  }

  function setCodeShown(shown) {
    const parts = codeParts();
    keepScreenOn(shown);
    codeState.shown = shown;
    parts.toggle.textContent = t(shown ? "myCodeHide" : "myCodeShow");
    parts.toggle.setAttribute("aria-expanded", shown ? "true" : "false");
    parts.panel.hidden = !shown;
    myCode.classList.toggle("showing", shown);
  }

  // Hide the code (the user asked, a request arrived, the page sat unused, the session ended)
  // and say why; nothing is fetched until the user asks again.
  function hideCode(reason) {
    if (!myCode || !config.myCodeUrl) return;
    codeState.generation++;
    stopCodeTimers();
    const parts = codeParts();
    parts.image.replaceChildren();
    parts.countdown.textContent = "";
    codeState.expiresAt = 0;
    codeState.requestsSeen = null;
    setCodeShown(false);
    codeSay(reason ? t(reason) : "");
  }

  function idle() {
    return Date.now() - lastInteraction > CODE_IDLE_MS;
  }

  function cardIds() {
    return new Set(Array.prototype.map.call(list.children, function (card) { return card.dataset.id; }));
  }

  async function showCode() {
    lastInteraction = Date.now();
    codeState.requestsSeen = cardIds();
    setCodeShown(true);
    await fetchCode();
  }

  // The SVG the server drew, as an element of this page (parsed, never injected as HTML),
  // with a name for screen readers that says what it is, not what it encodes.
  function codeImage(markup) {
    const parsed = new DOMParser().parseFromString(markup, "image/svg+xml");
    const svg = parsed.documentElement;
    if (!svg || svg.localName !== "svg" || parsed.getElementsByTagName("parsererror").length) {
      throw new Error(t("failed"));
    }
    const node = document.importNode(svg, true);
    node.setAttribute("role", "img");
    node.setAttribute("aria-label", t("myCodeAlt"));
    node.setAttribute("focusable", "false");
    return node;
  }

  async function fetchCode() {
    const generation = ++codeState.generation;
    stopCodeTimers();
    const parts = codeParts();
    if (idle() || document.hidden) {
      if (idle()) hideCode("myCodeIdle");
      return;
    }
    if (!codeState.expiresAt) codeSay(t("myCodeLoading"));
    let response = null;
    let body = {};
    try {
      response = await api(config.myCodeUrl, { method: "POST" });
      body = await response.json().catch(function () { return {}; });
    } catch (error) {
      response = null;
    }
    if (generation !== codeState.generation || !codeState.shown) return; // hidden meanwhile
    if (response && response.status === 401) {
      signOut();
      return;
    }
    if (!response || !response.ok || typeof body.svg !== "string") {
      // Keep an unexpired code on screen; try again soon while the page is in use (after the
      // Retry-After of a 429: codes asked for too fast).
      const retryAfter = response && response.status === 429 ? Number(response.headers.get("Retry-After")) : 0;
      if (!retryAfter) {
        const reason = (response && (body.error_description || body.detail)) || t("offline");
        codeSay(t("myCodeFailed", { reason: reason }), true);
      }
      const wait = retryAfter > 0 ? retryAfter * 1000 : CODE_MIN_WAIT_MS * 2;
      if (!document.hidden) codeState.refreshTimer = setTimeout(fetchCode, wait);
      if (codeState.expiresAt) startTicking();
      return;
    }
    try {
      parts.image.replaceChildren(codeImage(body.svg));
    } catch (error) {
      codeSay(t("myCodeFailed", { reason: error.message }), true);
      return;
    }
    codeSay("");
    const lifetimeMs = Math.max(0, Number(body.expires_in) || 0) * 1000;
    codeState.expiresAt = Date.now() + lifetimeMs; // expires_in, not expires_at: clocks differ
    if (!document.hidden) {
      codeState.refreshTimer = setTimeout(fetchCode, Math.max(CODE_MIN_WAIT_MS, lifetimeMs - CODE_EARLY_MS));
    }
    startTicking();
  }

  function startTicking() {
    clearInterval(codeState.tickTimer);
    tick();
    codeState.tickTimer = setInterval(tick, 1000);
  }

  function tick() {
    const parts = codeParts();
    const left = Math.max(0, Math.round((codeState.expiresAt - Date.now()) / 1000));
    if (!left) {
      clearInterval(codeState.tickTimer);
      parts.image.replaceChildren();
      parts.countdown.textContent = "";
      codeSay(t("myCodeExpired"));
      return;
    }
    const time = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
    parts.countdown.textContent = t("myCodeValid", { time: time });
  }

  // Called with the pending requests after each refresh: a new one (the till just used the
  // code, most likely) hides the code, so the request is what the user looks at next.
  function codeSawRequests(ids) {
    if (!codeState.shown || !codeState.requestsSeen) return;
    const arrived = Array.from(ids).some(function (id) { return !codeState.requestsSeen.has(id); });
    if (arrived) hideCode("myCodeUsed");
  }

  // Back on screen: a code that is still good keeps counting down; one about to expire (or
  // gone while the page was hidden) is replaced at once, unless the page sat unused too long.
  function codeVisible() {
    if (!codeState.shown) return;
    if (idle()) {
      hideCode("myCodeIdle");
      return;
    }
    keepScreenOn(true);
    if (codeState.expiresAt - Date.now() <= CODE_EARLY_MS) fetchCode();
    else {
      startTicking();
      codeState.refreshTimer = setTimeout(fetchCode, codeState.expiresAt - Date.now() - CODE_EARLY_MS);
    }
  }

  function setUpMyCode() {
    if (!myCode || !config.myCodeUrl) return;
    const parts = codeParts();
    ["pointerdown", "keydown", "touchstart"].forEach(function (name) {
      document.addEventListener(name, function () { lastInteraction = Date.now(); }, { passive: true });
    });
    parts.toggle.addEventListener("click", function () {
      if (codeState.shown) hideCode("");
      else showCode();
    });
    setCodeShown(false);
    myCode.hidden = false;
  }

  // --- the service worker: installable app, Web Push, and refresh on push ---

  let registration = null;

  function closeNotification(authReqId) {
    if (!registration || !registration.getNotifications) return;
    registration.getNotifications({ tag: "ciba-" + authReqId }).then(function (open) {
      open.forEach(function (notification) { notification.close(); });
    }).catch(function () {});
  }

  // A withdrawal pushed by the server (ciba.backends' withdrawal message, relayed by the
  // service worker): the card goes at once, a withdrawn one saying so first.
  function withdrawn(data) {
    const card = cardFor(data.auth_req_id);
    if (!card || inFlight.has(data.auth_req_id)) return;
    if (data.state === "cancelled") showWithdrawn(card);
    else removeCard(card);
  }

  // A list that was asked for before a notification was shown says nothing about that
  // notification's request (it may have been created since): closing it would lose the
  // prompt of a request that is still pending.
  function closeNotificationsExcept(pendingIds, asked) {
    if (!registration || !registration.getNotifications) return;
    registration.getNotifications().then(function (open) {
      open.forEach(function (notification) {
        const id = notification.data && notification.data.auth_req_id;
        const shownBefore = !notification.timestamp || notification.timestamp <= asked;
        if (id && shownBefore && !pendingIds.has(id)) notification.close();
      });
    }).catch(function () {});
  }

  function startServiceWorker() {
    if (!("serviceWorker" in navigator) || !config.serviceWorkerUrl) return;
    navigator.serviceWorker.addEventListener("message", function (event) {
      const data = event.data || {};
      if (data.type === "ciba.withdrawn") withdrawn(data);
      if (data.type === "ciba.refresh" || data.type === "ciba.withdrawn") refresh();
    });
    navigator.serviceWorker.register(config.serviceWorkerUrl).then(function (reg) {
      registration = reg;
      setUpPush();
    }).catch(function () {
      // Without a service worker the page still works; only push and installing are lost.
    });
  }

  function base64UrlToBytes(value) {
    const base64 = (value + "=".repeat((4 - (value.length % 4)) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(base64);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function sameKey(buffer, bytes) {
    if (!buffer) return false;
    const have = new Uint8Array(buffer);
    return have.length === bytes.length && have.every(function (byte, i) { return byte === bytes[i]; });
  }

  function platform() {
    if (navigator.userAgentData && navigator.userAgentData.platform) return navigator.userAgentData.platform;
    const ua = navigator.userAgent;
    const known = [["Android", "Android"], ["iPhone", "iPhone"], ["iPad", "iPad"], ["Mac", "macOS"],
      ["Windows", "Windows"], ["CrOS", "ChromeOS"], ["Linux", "Linux"]];
    const found = known.find(function (pair) { return ua.indexOf(pair[0]) !== -1; });
    return found ? found[1] : "?";
  }

  function setUpPush() {
    const section = document.getElementById("ciba-push");
    if (!section || !config.vapidPublicKey || !("PushManager" in window) || !("Notification" in window)) return;
    const statusText = document.getElementById("ciba-push-status");
    const button = document.getElementById("ciba-push-toggle");
    const serverKey = base64UrlToBytes(config.vapidPublicKey);
    const storageKey = function (endpoint) { return "ciba-device:webpush:" + endpoint; };
    let enabled = false;
    section.hidden = false;

    function show(on, text) {
      enabled = on;
      refreshMs = on ? REFRESH_WITH_PUSH_MS : REFRESH_MS;
      statusText.textContent = text || t(on ? "pushOn" : "pushOff");
      button.textContent = t(on ? "pushTurnOff" : "pushTurnOn");
      button.hidden = Notification.permission === "denied" && !on;
      button.disabled = false;
    }

    async function currentDevice() {
      // The device row this browser registered, if it still exists for this user.
      const subscription = await registration.pushManager.getSubscription();
      const deviceId = subscription && localStorage.getItem(storageKey(subscription.endpoint));
      if (!deviceId) return { subscription: subscription, deviceId: null };
      const response = await api(config.devicesUrl + encodeURIComponent(deviceId) + "/");
      return { subscription: subscription, deviceId: response.ok ? deviceId : null };
    }

    async function turnOn() {
      const permission = await Notification.requestPermission();
      if (permission !== "granted") {
        show(false, permission === "denied" ? t("pushBlocked") : t("pushOff"));
        return;
      }
      let subscription = await registration.pushManager.getSubscription();
      if (subscription && !sameKey(subscription.options.applicationServerKey, serverKey)) {
        await subscription.unsubscribe(); // made for another key: it would not accept ours
        subscription = null;
      }
      if (!subscription) {
        subscription = await registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: serverKey,
        });
      }
      const response = await api(config.devicesUrl, {
        method: "POST",
        body: JSON.stringify({
          kind: "webpush",
          subscription: subscription.toJSON(),
          label: t("pushLabel", { platform: platform() }).slice(0, 100),
        }),
      });
      const body = await response.json().catch(function () { return {}; });
      if (!response.ok) {
        throw new Error(body.error_description || body.detail || response.statusText);
      }
      localStorage.setItem(storageKey(subscription.endpoint), body.id);
      show(true);
    }

    async function turnOff() {
      const found = await currentDevice();
      if (found.deviceId) {
        await api(config.devicesUrl + encodeURIComponent(found.deviceId) + "/", { method: "DELETE" });
      }
      if (found.subscription) {
        localStorage.removeItem(storageKey(found.subscription.endpoint));
        await found.subscription.unsubscribe();
      }
      show(false);
    }

    button.addEventListener("click", function () {
      button.disabled = true;
      statusText.textContent = t("pushWorking");
      (enabled ? turnOff() : turnOn()).catch(function (error) {
        show(false, t("pushFailed", { reason: error && error.message ? error.message : String(error) }));
      });
    });

    currentDevice().then(function (found) {
      if (Notification.permission === "denied") show(false, t("pushBlocked"));
      else show(Boolean(found.deviceId) && Notification.permission === "granted");
    }).catch(function () { show(false); });
  }

  // --- blocked services: the sites the user blocked when reporting a request ---

  const blockSection = document.getElementById("ciba-blocks");
  const blockList = document.getElementById("ciba-block-list");
  const blockTemplate = document.getElementById("ciba-block-template");

  // Shown when there is a block (or one was just lifted, so the user sees it happen).
  async function loadBlocks(keepShown) {
    if (!blockSection || !config.blocksUrl) return;
    const response = await api(config.blocksUrl).catch(function () { return null; });
    if (!response || !response.ok) return;
    const blocks = await response.json();
    blockList.textContent = "";
    blocks.forEach(function (block) { blockList.appendChild(blockItem(block)); });
    document.getElementById("ciba-blocks-status").textContent = blocks.length ? "" : t("blocksNone");
    blockSection.hidden = !blocks.length && !keepShown;
  }

  function blockItem(block) {
    const item = blockTemplate.content.firstElementChild.cloneNode(true);
    item.dataset.clientId = block.client_id;
    item.querySelector(".block-name").textContent = block.client_name;
    item.querySelector(".block-meta").textContent = t("blockedSince", { date: day(block.created_at) });
    const button = item.querySelector(".unblock");
    button.setAttribute("aria-label", t("unblockLabel", { client: block.client_name }));
    button.addEventListener("click", async function () {
      button.disabled = true;
      const url = config.blocksUrl + encodeURIComponent(block.client_id) + "/";
      const response = await api(url, { method: "DELETE" }).catch(function () { return null; });
      if (response && (response.ok || response.status === 404)) {
        sectionSay("ciba-blocks", t("unblocked", { client: block.client_name }), false);
        loadBlocks(true);
      } else {
        button.disabled = false;
        sectionSay("ciba-blocks", t("failed"), true);
      }
    });
    return item;
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      clearTimeout(timer);
      stopCodeTimers(); // no new codes for a page nobody sees
    } else {
      refresh();
      codeVisible();
    }
  });
  window.addEventListener("online", refresh);

  // Passkeys first: whether the user has one decides each card's button.
  (config.passkeysUrl ? loadPasskeys() : Promise.resolve()).then(refresh, refresh);
  setUpUserCode();
  setUpMyCode();
  loadBlocks();
  startServiceWorker();
  // Running: the page's fallback for a script that never started is not needed.
  const scriptMissing = document.getElementById("ciba-script-missing");
  if (scriptMissing) scriptMissing.remove();
})();
