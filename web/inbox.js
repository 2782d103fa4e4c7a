// Herald's live inbox: a person's notifications, unread first, marked read one by one or all
// at once, acknowledged where the sender asks for it; new ones arrive, and reads made anywhere
// else (chat, Teams, a browser notification, the phone) show, over server-sent events without
// a reload; a recalled notification disappears. Opened from a link the
// bot gives one person; its token is the only credential. Plain script, no build step.
//
// The stream is read with fetch() rather than EventSource so that the token travels in the
// Authorization header (never in a URL, where logs and history would keep it); reconnecting
// with Last-Event-ID and the server's `retry:` works as EventSource does it.
'use strict';

(() => {
  const API = '/api/inbox';
  const TOKEN_KEY = 'herald.inbox.token';
  const SEVERITY = {
    info: { icon: 'i', label: 'Information' },
    warning: { icon: '!', label: 'Warning' },
    error: { icon: '×', label: 'Error' },
  };
  const NO_TOKEN = 'Open this page from the link the Herald bot sends you: type "inbox" in your ' +
    'chat with Herald.';
  const EXPIRED = 'This link has expired. Type "inbox" in your chat with Herald for a new one.';

  const $ = (id) => document.getElementById(id);
  const items = new Map();
  let token = null;
  let lastEventId = null;
  let retryMs = 2000;
  let stopped = false;

  function takeToken() {
    // Out of the address bar (kept for this tab only): not bookmarked, shared or kept in history.
    const fromUrl = new URLSearchParams(window.location.search).get('token');
    if (fromUrl) {
      try { sessionStorage.setItem(TOKEN_KEY, fromUrl); } catch (e) { /* private mode */ }
      window.history.replaceState(null, '', window.location.pathname);
      return fromUrl;
    }
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function expiresAt(value) {
    // A courtesy only (when to renew): Herald checks the signature and expiry itself.
    try {
      const body = value.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(body));
      return typeof claims.exp === 'number' ? claims.exp * 1000 : null;
    } catch (e) {
      return null;
    }
  }

  function setState(state, message) {
    document.body.dataset.state = state;
    const note = $('message');
    note.textContent = message || '';
    note.hidden = !message;
  }

  function setConnection(state) {
    document.body.dataset.connection = state;
    $('connection').textContent = {
      connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', closed: 'offline',
    }[state];
  }

  function api(path, options = {}) {
    return fetch(API + path, {
      ...options,
      cache: 'no-store',
      headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` },
    });
  }

  function when(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? '' : date.toLocaleString();
  }

  function safeUrl(url) {
    try {
      return new URL(url).protocol === 'https:' ? url : null;
    } catch (e) {
      return null;
    }
  }

  function sorted() {
    return [...items.values()].sort((a, b) => {
      if (a.read !== b.read) return a.read ? 1 : -1;
      return String(b.createdAt).localeCompare(String(a.createdAt));
    });
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderItem(item) {
    const severity = SEVERITY[item.severity] ? item.severity : 'info';
    const li = element('li', `item severity-${severity}`);
    li.dataset.id = item.id;
    li.dataset.read = String(item.read);
    li.dataset.severity = severity;
    const icon = element('span', 'icon', SEVERITY[severity].icon);
    icon.setAttribute('role', 'img');
    icon.setAttribute('aria-label', SEVERITY[severity].label);
    li.append(icon);

    const main = element('div', 'body');
    const title = element('h2', 'title');
    if (!item.read) title.append(element('span', 'unread-dot', '●'));
    const link = item.url && safeUrl(item.url);
    if (link) {
      const anchor = element('a', '', item.title);
      anchor.href = link;
      anchor.target = '_blank';
      anchor.rel = 'noopener noreferrer';
      title.append(anchor);
    } else {
      title.append(document.createTextNode(item.title));
    }
    main.append(title);
    if (item.text) main.append(element('p', 'text', item.text));
    li.append(main);

    const actions = element('div', 'actions');
    if (item.acknowledge) {
      li.dataset.acknowledged = String(Boolean(item.acknowledged));
      if (item.acknowledged) {
        const done = `✓ Acknowledged ${when(item.acknowledgedAt)}`;
        actions.append(element('span', 'acknowledged', done));
      } else {
        const button = element('button', 'acknowledge', item.acknowledge.text);
        button.type = 'button';
        button.addEventListener('click', () => acknowledge(item.id, button));
        actions.append(button);
      }
    }
    if (!item.read) {
      const button = element('button', 'quiet mark-read', 'Mark read');
      button.type = 'button';
      button.addEventListener('click', () => markRead(item.id, button));
      actions.append(button);
    }
    li.append(actions);
    const meta = [SEVERITY[severity].label, item.type, when(item.createdAt)];
    if (item.version > 1) meta.push('updated');
    li.append(element('p', 'meta', meta.filter(Boolean).join(' · ')));
    return li;
  }

  function render() {
    const list = $('items');
    const all = sorted();
    list.replaceChildren(...all.map(renderItem));
    const unread = all.filter((item) => !item.read).length;
    $('unread').textContent = String(unread);
    document.body.dataset.unread = String(unread);
    $('read-all').disabled = unread === 0;
    $('empty').hidden = all.length > 0;
    document.title = unread ? `(${unread}) Your notifications · Herald` : 'Your notifications · Herald';
  }

  function upsert(item) {
    // Recalled by its sender: it leaves the inbox.
    if (item.recalled) items.delete(item.id);
    else items.set(item.id, item);
  }

  async function acknowledge(id, button) {
    if (button) button.disabled = true;
    const response = await api(`/${encodeURIComponent(id)}/acknowledge`, { method: 'POST' });
    if (response.ok) {
      const body = await response.json();
      const item = items.get(id);
      if (item) {
        upsert({
          ...item,
          acknowledged: true,
          acknowledgedAt: body.acknowledgedAt,
          read: true,
          readAt: item.readAt || body.acknowledgedAt,
        });
      }
      render();
    } else if (response.status === 401) {
      expire();
    } else if (button) {
      button.disabled = false;
    }
  }

  async function markRead(id, button) {
    if (button) button.disabled = true;
    const response = await api(`/${encodeURIComponent(id)}/read`, { method: 'POST' });
    if (response.ok) {
      const body = await response.json();
      const item = items.get(id);
      if (item) upsert({ ...item, read: true, readAt: body.readAt });
      render();
    } else if (response.status === 401) {
      expire();
    } else if (button) {
      button.disabled = false;
    }
  }

  async function markAllRead() {
    $('read-all').disabled = true;
    const response = await api('/read-all', { method: 'POST' });
    if (response.ok) {
      for (const item of items.values()) {
        if (!item.read) upsert({ ...item, read: true, readAt: new Date().toISOString() });
      }
      render();
    } else if (response.status === 401) {
      expire();
    }
  }

  function expire() {
    stopped = true;
    setConnection('closed');
    setState('expired', EXPIRED);
  }

  function dispatch(event, data) {
    if (event === 'snapshot') {
      items.clear();
      for (const item of data.items) upsert(item);
      render();
      setState('ready');
    } else if (event === 'notification') {
      upsert(data);
      render();
    }
  }

  async function readStream(response) {
    // The event-stream format (HTML Living Standard, "server-sent events"), line by line.
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let event = '';
    let data = [];
    let id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === '') {
          if (id !== null) lastEventId = id;
          if (data.length) dispatch(event || 'message', JSON.parse(data.join('\n')));
          event = '';
          data = [];
          id = null;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'event') event = text;
        else if (field === 'data') data.push(text);
        else if (field === 'id') id = text;
        else if (field === 'retry' && /^\d+$/.test(text)) retryMs = Number(text);
      }
    }
  }

  async function connect() {
    while (!stopped) {
      try {
        const headers = { Accept: 'text/event-stream' };
        if (lastEventId) headers['Last-Event-ID'] = lastEventId;
        const response = await api('/events', { headers });
        if (response.status === 401) {
          expire();
          return;
        }
        if (!response.ok) throw new Error(`Herald answered ${response.status}`);
        setConnection('live');
        await readStream(response);
      } catch (e) {
        // The connection dropped (network, server restart): reconnect below.
      }
      if (stopped) return;
      setConnection('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }

  function scheduleRenewal() {
    // Trade the token for a fresh one before it runs out, for as long as the page is open.
    const expiry = expiresAt(token);
    if (!expiry) return;
    const delay = Math.max(1000, (expiry - Date.now()) / 2);
    setTimeout(async () => {
      try {
        const response = await api('/token', { method: 'POST' });
        if (response.status === 401) {
          expire();
          return;
        }
        if (response.ok) {
          token = (await response.json()).token;
          try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* private mode */ }
          // The link's absolute lifetime is reached (HERALD_LINK_MAX_HOURS): no later token
          // will come; the page says "expired" when this one runs out.
          if (expiresAt(token) <= expiry) return;
        }
      } catch (e) {
        // Offline for a moment: try again on the next schedule.
      }
      if (!stopped) scheduleRenewal();
    }, delay);
  }

  function start() {
    $('read-all').addEventListener('click', markAllRead);
    token = takeToken();
    if (!token) {
      setConnection('closed');
      setState('no-token', NO_TOKEN);
      return;
    }
    const expiry = expiresAt(token);
    if (expiry && expiry <= Date.now()) {
      expire();
      return;
    }
    setConnection('connecting');
    scheduleRenewal();
    connect();
  }

  start();
})();
