// The device page: a client of the consent API, as a native app would be.
//
// Everything it shows comes from the API, read as the signed-in user (session cookie, CSRF
// header); the page itself carries only the API's URLs in data-* attributes and the
// translated sentences in a JSON block, so it runs under a CSP without 'unsafe-inline'.
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
  const settled = new Set(); // auth_req_ids decided on this page: never shown as pending again
  let timer = null;
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

  function cardFor(authReqId) {
    return Array.prototype.find.call(list.children, function (card) {
      return card.dataset.id === authReqId;
    });
  }

  // --- the pending list ---

  function render(requests) {
    const shown = requests.filter(function (request) {
      return !settled.has(request.auth_req_id);
    });
    const ids = new Set(shown.map(function (request) { return request.auth_req_id; }));
    Array.prototype.slice.call(list.children).forEach(function (card) {
      if (!ids.has(card.dataset.id) && !inFlight.has(card.dataset.id)) card.remove();
    });
    shown.forEach(function (request, index) {
      let card = cardFor(request.auth_req_id);
      if (!card) card = buildCard(request);
      if (list.children[index] !== card) list.insertBefore(card, list.children[index] || null);
    });
    showCount();
    closeNotificationsExcept(ids);
  }

  function showCount() {
    const text = list.children.length ? t("count", { count: list.children.length }) : t("empty");
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
    ["approve", "deny"].forEach(function (action) {
      const button = card.querySelector("." + action);
      button.setAttribute("aria-describedby", headingId);
      button.addEventListener("click", function () { decide(request, action, card); });
    });
    return card;
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
      card.querySelector(".approve").hidden = true;
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

  function approvalBody(request) {
    if (!(request.authorization_details || []).length) return "{}";
    return JSON.stringify({ displayed_details_hash: request.authorization_details_digest });
  }

  async function refresh() {
    clearTimeout(timer);
    if (signedOut) return;
    try {
      const response = await api(config.requestsUrl);
      if (response.status === 401 || response.status === 403) {
        signOut();
        return;
      }
      if (response.ok) {
        render(await response.json());
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
  }

  // --- deciding ---

  async function decide(request, action, card) {
    const id = request.auth_req_id;
    if (inFlight.has(id)) return;
    inFlight.add(id);
    showError("");
    card.setAttribute("aria-busy", "true");
    card.querySelectorAll(".actions button").forEach(function (button) { button.disabled = true; });
    statusEl.textContent = t(action === "approve" ? "approving" : "denying");
    let response = null;
    let body = {};
    try {
      const payload = action === "approve" ? approvalBody(request) : "{}";
      response = await api(decisionUrl(id, action), { method: "POST", body: payload });
      body = await response.json().catch(function () { return {}; });
    } catch (error) {
      response = null;
    }
    inFlight.delete(id);
    card.removeAttribute("aria-busy");
    if (response && (response.ok || response.status === 409 || response.status === 404)) {
      settled.add(id);
      card.remove();
      showCount();
      const outcome = response.ok ? action === "approve" ? "approved" : "denied"
        : body.state === "expired" ? "expired" : "gone";
      confirmDecision(request, outcome);
      closeNotification(id);
      refresh();
      return;
    }
    card.querySelectorAll(".actions button").forEach(function (button) { button.disabled = false; });
    showCount();
    if (response && response.status === 401) {
      signOut();
    } else if (response === null) {
      showError(t("failed"));
    } else {
      showError(body.error_description || body.detail || t("failed"));
    }
    refresh();
  }

  function confirmDecision(request, outcome) {
    const item = decisionTemplate.content.firstElementChild.cloneNode(true);
    const values = { client: request.client_name, time: clock(Date.now()) };
    item.classList.add(outcome);
    item.dataset.id = request.auth_req_id;
    item.querySelector(".mark").textContent = { approved: "✓", denied: "✕", expired: "⏱", gone: "•" }[outcome];
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
    if (outcome === "approved" || outcome === "denied") next.textContent = t(outcome + "Next", values);
    else next.remove();
    item.querySelector(".dismiss").addEventListener("click", function () {
      item.remove();
      document.getElementById("main").focus();
    });
    decisions.insertBefore(item, decisions.firstChild);
    item.focus();
  }

  // --- the service worker: installable app, Web Push, and refresh on push ---

  let registration = null;

  function closeNotification(authReqId) {
    if (!registration || !registration.getNotifications) return;
    registration.getNotifications({ tag: "ciba-" + authReqId }).then(function (open) {
      open.forEach(function (notification) { notification.close(); });
    }).catch(function () {});
  }

  function closeNotificationsExcept(pendingIds) {
    if (!registration || !registration.getNotifications) return;
    registration.getNotifications().then(function (open) {
      open.forEach(function (notification) {
        const id = notification.data && notification.data.auth_req_id;
        if (id && !pendingIds.has(id)) notification.close();
      });
    }).catch(function () {});
  }

  function startServiceWorker() {
    if (!("serviceWorker" in navigator) || !config.serviceWorkerUrl) return;
    navigator.serviceWorker.addEventListener("message", function (event) {
      if (event.data && event.data.type === "ciba.refresh") refresh();
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

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) clearTimeout(timer);
    else refresh();
  });
  window.addEventListener("online", refresh);

  refresh();
  startServiceWorker();
  // Running: the page's fallback for a script that never started is not needed.
  const scriptMissing = document.getElementById("ciba-script-missing");
  if (scriptMissing) scriptMissing.remove();
})();
