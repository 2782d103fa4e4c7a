// Herald's browser-notification consent page: asks for permission, registers the service
// worker, subscribes with Herald's VAPID key and registers the subscription with the link
// token the bot gave this person. Plain script, no build step.
'use strict';

(() => {
  const API = '/api/push';
  const SCOPE = '/push/';
  const TOKEN_KEY = 'herald.push.token';
  const STATE_CACHE = 'herald-push';
  const STATE_URL = '/push/subscription.json';
  const SUBSCRIBE_TIMEOUT_MS = 30000;

  const STATES = {
    unsupported: 'not supported: this browser cannot show notifications from this page',
    blocked: 'blocked: notifications are blocked for this site',
    default: 'off: notifications have not been allowed yet',
    allowed: 'allowed, but this browser is not subscribed',
    subscribed: 'subscribed: this browser receives your Herald notifications',
  };
  const HELP = {
    unsupported: 'Open this link in a current Chrome, Edge, Firefox or Safari (on iPhone and ' +
      'iPad: add the page to your home screen first), over https.',
    blocked: 'Allow notifications for this site in your browser\'s site settings, then ' +
      'reload this page.',
    noToken: 'To subscribe, open this page from the link the Herald bot sends you: type ' +
      '"browser on" in your chat with Herald.',
    expired: 'This link has expired. Type "browser on" in your chat with Herald for a new one.',
  };

  const $ = (id) => document.getElementById(id);
  let token = null;

  function takeToken() {
    // The token is taken out of the address bar (and kept for this tab only), so it is not
    // bookmarked, shared by copying the address, or kept in the history.
    const params = new URLSearchParams(window.location.search);
    const fromUrl = params.get('token');
    if (fromUrl) {
      try { sessionStorage.setItem(TOKEN_KEY, fromUrl); } catch (e) { /* private mode */ }
      window.history.replaceState(null, '', window.location.pathname);
      return fromUrl;
    }
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function tokenExpired(value) {
    // A courtesy only: Herald checks the token's signature and expiry itself.
    try {
      const body = value.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(body));
      return typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now();
    } catch (e) {
      return false;
    }
  }

  function supported() {
    return window.isSecureContext && 'serviceWorker' in navigator &&
      'PushManager' in window && 'Notification' in window;
  }

  function render(state, message) {
    document.body.dataset.state = state;
    $('state').textContent = STATES[state];
    const note = $('message');
    note.textContent = message || '';
    note.hidden = !message;
    const canEnable = state === 'default' || state === 'allowed';
    $('enable').hidden = !canEnable;
    $('enable').disabled = !token || tokenExpired(token);
    $('disable').hidden = state !== 'subscribed';
  }

  function busy(on) {
    document.body.dataset.busy = on ? 'true' : 'false';
    $('enable').disabled = on || !token || tokenExpired(token);
    $('disable').disabled = on;
  }

  async function registration() {
    await navigator.serviceWorker.register('/push/sw.js', { scope: SCOPE });
    return navigator.serviceWorker.ready;
  }

  async function currentState() {
    if (!supported()) return 'unsupported';
    if (Notification.permission === 'denied') return 'blocked';
    const reg = await registration();
    const subscription = await reg.pushManager.getSubscription();
    if (Notification.permission !== 'granted') return 'default';
    return subscription ? 'subscribed' : 'allowed';
  }

  function decodeKey(base64url) {
    const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
    const raw = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function sameKey(subscription, key) {
    const current = subscription.options && subscription.options.applicationServerKey;
    if (!current) return true;
    const bytes = new Uint8Array(current);
    return bytes.length === key.length && bytes.every((b, i) => b === key[i]);
  }

  async function vapidKey() {
    const response = await fetch(`${API}/vapid-public-key`, { cache: 'no-store' });
    if (!response.ok) throw new Error(`Herald answered ${response.status}`);
    return decodeKey((await response.json()).publicKey);
  }

  function withTimeout(promise, ms, message) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  async function remember(json) {
    // What the service worker needs to re-register after pushsubscriptionchange: the
    // endpoint and its auth secret, which prove to Herald that it is this browser.
    if (!('caches' in window)) return;
    const cache = await caches.open(STATE_CACHE);
    await cache.put(STATE_URL, new Response(JSON.stringify(
      { endpoint: json.endpoint, auth: json.keys.auth })));
  }

  async function forget() {
    if ('caches' in window) await caches.delete(STATE_CACHE);
  }

  async function problem(response) {
    if (response.status === 401) return HELP.expired;
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    const field = body && body.error ? body.error.field : null;
    if (response.status === 403 && field === 'subscription.endpoint') {
      return 'This browser was subscribed for another person. To get your notifications ' +
        'here instead, turn them off on this page (if it offers that), then on again.';
    }
    if (response.status === 403) return 'This link was made for someone else. Ask the Herald ' +
      'bot for your own: type "browser on" in your chat with it.';
    if (body && body.error) return `Herald could not register this browser: ${body.error.message}`;
    return `Herald could not register this browser (${response.status}).`;
  }

  async function register(subscription) {
    const json = subscription.toJSON();
    const response = await fetch(`${API}/subscriptions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ subscription: json, token, userAgent: navigator.userAgent }),
    });
    if (response.ok) await remember(json);
    return response;
  }

  async function enable() {
    busy(true);
    try {
      const permission = await Notification.requestPermission();
      if (permission === 'denied') return render('blocked', HELP.blocked);
      if (permission !== 'granted') {
        return render('default', 'You closed the question without answering. Press the ' +
          'button to be asked again.');
      }
      const reg = await registration();
      const key = await vapidKey();
      let subscription = await reg.pushManager.getSubscription();
      if (subscription && !sameKey(subscription, key)) {
        await subscription.unsubscribe(); // made with an older key of Herald's
        subscription = null;
      }
      if (!subscription) {
        subscription = await withTimeout(
          reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }),
          SUBSCRIBE_TIMEOUT_MS,
          'Your browser\'s push service did not answer. Check your connection and try again.');
      }
      const response = await register(subscription);
      if (!response.ok) {
        const message = await problem(response);
        await subscription.unsubscribe().catch(() => false);
        return render('allowed', message);
      }
      return render('subscribed', 'Done. You can close this page: notifications arrive even ' +
        'when it is closed.');
    } catch (error) {
      return render(await currentState().catch(() => 'default'), error.message);
    } finally {
      busy(false);
    }
  }

  async function disable() {
    busy(true);
    let note = 'This browser no longer receives Herald notifications.';
    try {
      const reg = await registration();
      const subscription = await reg.pushManager.getSubscription();
      if (subscription) {
        const json = subscription.toJSON();
        try {
          const response = await fetch(`${API}/subscriptions`, {
            method: 'DELETE',
            headers: { 'Content-Type': 'application/json' },
            // The subscription's own secret proves it is this browser: no link needed.
            body: JSON.stringify({ endpoint: json.endpoint, auth: json.keys.auth }),
          });
          if (!response.ok && response.status !== 404) {
            note += ` (Herald answered ${response.status}; it stops trying once the push ` +
              'service reports the subscription gone.)';
          }
        } catch (e) {
          note += ' (Herald could not be reached; it stops trying once the push service ' +
            'reports the subscription gone.)';
        }
        await subscription.unsubscribe();
      }
      await forget();
      render(await currentState(), note);
    } catch (error) {
      render(await currentState().catch(() => 'default'), error.message);
    } finally {
      busy(false);
    }
  }

  async function start() {
    token = takeToken();
    $('enable').addEventListener('click', enable);
    $('disable').addEventListener('click', disable);
    if (!supported()) return render('unsupported', HELP.unsupported);
    let state;
    try {
      state = await currentState();
    } catch (error) {
      return render('unsupported', `${HELP.unsupported} (${error.message})`);
    }
    if (state === 'blocked') return render(state, HELP.blocked);
    if (!token) return render(state, state === 'subscribed' ? '' : HELP.noToken);
    if (tokenExpired(token)) return render(state, state === 'subscribed' ? '' : HELP.expired);
    if (state === 'subscribed') {
      // Opened from a fresh link: make sure Herald has this browser for this person.
      const reg = await navigator.serviceWorker.ready;
      const subscription = await reg.pushManager.getSubscription();
      const response = subscription ? await register(subscription) : null;
      if (response && !response.ok) return render(state, await problem(response));
    }
    return render(state, '');
  }

  document.addEventListener('DOMContentLoaded', () => {
    start().catch((error) => render('unsupported', error.message));
  });
})();
