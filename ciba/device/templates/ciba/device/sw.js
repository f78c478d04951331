{% load i18n %}// The device page's service worker, served by ciba.device from the page's own path so that
// its scope (self.registration.scope) is the page. It shows a notification for each CIBA
// request pushed by ciba.backends.webpush.WebPushNotifier and opens the page on a tap; a
// withdrawal pushed once the request is no longer pending closes that notification again. It
// caches nothing: the page shows a signed-in user's requests, which must never come from a
// cache.
"use strict";

const ICON = {{ icon_url|safe }};
const TITLE = "{% filter escapejs %}{% translate 'Sign-in request' %}{% endfilter %}";
const TITLE_FROM = "{% filter escapejs %}{% translate '{client} asks you to confirm' %}{% endfilter %}";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function pageClients() {
  return self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (all) {
    return all.filter(function (client) { return client.url.indexOf(self.registration.scope) === 0; });
  });
}

self.addEventListener("push", function (event) {
  let data = null;
  try {
    data = event.data ? event.data.json() : null;
  } catch (error) {
    data = null;
  }
  if (data && data.type === "ciba.authentication_withdrawn") {
    event.waitUntil(withdraw(data));
    return;
  }
  if (!data || data.type !== "ciba.authentication_requested") return;
  const lines = [];
  if (data.binding_message) lines.push(data.binding_message);
  // The short form of RFC 9396 authorization_details (a payment's amount and payee): what the
  // user must recognise before opening the page, where the whole details are shown.
  if (Array.isArray(data.authorization_details)) {
    data.authorization_details.forEach(function (detail) {
      if (detail && detail.summary) lines.push(detail.summary);
    });
  }
  if (Array.isArray(data.scopes) && data.scopes.length) {
    lines.push(data.scopes.map(function (scope) { return scope.description || scope.scope; }).join(", "));
  }
  event.waitUntil(Promise.all([
    self.registration.showNotification(
      data.client_name ? TITLE_FROM.replace("{client}", data.client_name) : TITLE,
      {
        body: lines.join("\n"),
        tag: "ciba-" + data.auth_req_id,
        icon: ICON,
        badge: ICON,
        requireInteraction: true,
        data: { auth_req_id: data.auth_req_id, expires_at: data.expires_at },
      }
    ),
    // An open page shows the new request at once instead of at its next refresh.
    pageClients().then(function (pages) {
      pages.forEach(function (page) { page.postMessage({ type: "ciba.refresh" }); });
    }),
  ]));
});

// The request no longer awaits a decision (decided on another device, expired, withdrawn by
// the site): close its notification and tell open pages, which drop its card at once.
function withdraw(data) {
  return Promise.all([
    self.registration.getNotifications({ tag: "ciba-" + data.auth_req_id }).then(function (open) {
      open.forEach(function (notification) { notification.close(); });
    }),
    pageClients().then(function (pages) {
      pages.forEach(function (page) {
        page.postMessage({
          type: "ciba.withdrawn",
          auth_req_id: data.auth_req_id,
          state: data.state,
          reason: data.reason,
          client_name: data.client_name,
        });
      });
    }),
  ]);
}

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  event.waitUntil(pageClients().then(function (pages) {
    const page = pages.find(function (client) { return "focus" in client; });
    if (page) {
      page.postMessage({ type: "ciba.refresh" });
      return page.focus();
    }
    return self.clients.openWindow(self.registration.scope);
  }));
});
