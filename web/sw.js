// Herald's service worker: shows pushed notifications (even with every tab closed), opens
// their link on click and tells Herald it was read (or acknowledged, with the notification's
// acknowledge action), keeps the app badge at the unread count, and re-registers with Herald
// when the push service renews the subscription. Served as /push/sw.js with the scope /push/.
'use strict';

const STATE_CACHE = 'herald-push';
const STATE_URL = '/push/subscription.json';

self.addEventListener('install', () => {
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('push', (event) => {
  event.waitUntil(show(event.data));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(clicked(event.notification.data || {}, event.action));
});

self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(resubscribe(event.oldSubscription, event.newSubscription));
});

function parse(data) {
  if (!data) return {};
  try {
    return data.json();
  } catch (e) {
    return { text: data.text() };
  }
}

// Payload (Herald's delivery/webpush.py): {id, title, text, icon, url, severity, type, data?,
// acknowledge?, unread?}.
async function show(data) {
  const notification = parse(data);
  const options = {
    body: notification.text || '',
    // One notification per Herald id: a progress update replaces the one on screen.
    tag: notification.id || undefined,
    data: {
      id: notification.id,
      url: notification.url,
      type: notification.type,
      severity: notification.severity,
      data: notification.data,
      acknowledge: notification.acknowledge,
    },
    // An error, or a notification waiting for an acknowledgement, stays until dealt with.
    requireInteraction: notification.severity === 'error' || Boolean(notification.acknowledge),
  };
  if (notification.icon) options.icon = notification.icon;
  if (notification.acknowledge) {
    options.actions = [{ action: 'acknowledge', title: notification.acknowledge }];
  }
  if (typeof notification.unread === 'number') await badge(notification.unread);
  return self.registration.showNotification(notification.title || 'Herald', options);
}

// The app badge (Badging API, where the browser has one): the person's unread count.
async function badge(count) {
  try {
    if (count > 0 && self.navigator.setAppBadge) await self.navigator.setAppBadge(count);
    else if (self.navigator.clearAppBadge) await self.navigator.clearAppBadge();
  } catch (e) { /* no badge here: nothing to keep in step */ }
}

// A click on the notification: read (and its link opened); on its acknowledge action:
// acknowledged. Herald is told either way, so it is read everywhere, not only here.
async function clicked(data, action) {
  if (action === 'acknowledge') return report('/api/push/acknowledge', data.id);
  // The report does not wait on the window, nor fails with it (a browser may refuse to open one).
  const opened = openOrFocus(data.url).catch(() => undefined);
  const [status] = await Promise.all([report('/api/push/read', data.id), opened]);
  return status;
}

// The subscription proves whose browser this is: its endpoint and auth secret (only this
// browser and Herald know the secret), as on re-registration.
async function proof() {
  const subscription = await self.registration.pushManager.getSubscription();
  if (subscription) {
    const json = subscription.toJSON();
    return { endpoint: json.endpoint, auth: json.keys.auth };
  }
  return remembered();
}

async function report(path, id) {
  if (!id) return 0;
  const subscription = await proof();
  if (!subscription) return 0;
  try {
    const response = await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ id, endpoint: subscription.endpoint, auth: subscription.auth }),
    });
    if (response.ok) {
      const answer = await response.json();
      if (typeof answer.unread === 'number') await badge(answer.unread);
    }
    return response.status;
  } catch (e) {
    return 0; // offline: the click still opened the link
  }
}

function target(url) {
  try {
    const parsed = new URL(url, self.registration.scope);
    if (parsed.protocol === 'https:' || parsed.protocol === 'http:') return parsed.href;
  } catch (e) { /* no or bad url: open the consent page */ }
  return self.registration.scope;
}

async function openOrFocus(url) {
  const href = target(url);
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const open = windows.find((client) => client.url === href && 'focus' in client);
  if (open) return open.focus();
  if (self.clients.openWindow) return self.clients.openWindow(href);
  return undefined;
}

async function remembered() {
  const cache = await caches.open(STATE_CACHE);
  const response = await cache.match(STATE_URL);
  return response ? response.json() : null;
}

async function remember(json) {
  const cache = await caches.open(STATE_CACHE);
  await cache.put(STATE_URL, new Response(JSON.stringify(
    { endpoint: json.endpoint, auth: json.keys.auth })));
}

function decodeKey(base64url) {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

// The push service replaced (or dropped) the subscription: subscribe again if it did not
// hand us a new one, and register the new one with Herald, proving with the old one's
// endpoint and auth secret that it is the same browser (no link token is needed).
async function resubscribe(oldSubscription, newSubscription) {
  const previous = oldSubscription
    ? (({ endpoint, keys }) => ({ endpoint, auth: keys.auth }))(oldSubscription.toJSON())
    : await remembered();
  let subscription = newSubscription;
  if (!subscription) {
    const response = await fetch('/api/push/vapid-public-key', { cache: 'no-store' });
    const { publicKey } = await response.json();
    subscription = await self.registration.pushManager.subscribe(
      { userVisibleOnly: true, applicationServerKey: decodeKey(publicKey) });
  }
  if (!previous) return 0; // nothing proves whose browser this is: the page asks again
  const json = subscription.toJSON();
  const response = await fetch('/api/push/subscriptions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ subscription: json, previous, userAgent: navigator.userAgent }),
  });
  if (response.ok) await remember(json);
  return response.status;
}

// For tests driving the worker through the DevTools protocol.
self.herald = { show, openOrFocus, resubscribe, clicked };
