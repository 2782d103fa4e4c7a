// Herald's operator page for one notification: progress per channel, the delivery rate over
// time (an SVG chart drawn here, no library) and the per-recipient report. Opened with an API
// key (asked for, kept in this tab) or a link token for this notification. It polls the status
// every second and the timeline every two while delivery runs, then every five seconds (a
// changed re-post of the notification starts delivery again). Plain script, no build step.
'use strict';

(() => {
  const KEY_STORE = 'herald.operator.key';
  const TOKEN_STORE = 'herald.operator.token.';
  const STATUS_MS = 1000;
  const TIMELINE_MS = 2000;
  const IDLE_MS = 5000;
  const ORDER = ['delivered', 'skipped', 'failed', 'deadTargets', 'retrying', 'queued'];
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  const id = decodeURIComponent(window.location.pathname.replace(/^\/notifications\//, ''));
  let credential = null;
  let linkToken = false;
  let timelineAt = 0;

  function store(name, value) {
    try { sessionStorage.setItem(name, value); } catch (e) { /* private mode */ }
  }

  function stored(name) {
    try { return sessionStorage.getItem(name); } catch (e) { return null; }
  }

  function takeCredential() {
    // A link token is taken out of the address bar (and kept for this tab only).
    const fromUrl = new URLSearchParams(window.location.search).get('token');
    if (fromUrl) {
      store(TOKEN_STORE + id, fromUrl);
      window.history.replaceState(null, '', window.location.pathname);
    }
    const token = fromUrl || stored(TOKEN_STORE + id);
    if (token) {
      linkToken = true;
      return token;
    }
    return stored(KEY_STORE);
  }

  function setState(state, message) {
    document.body.dataset.state = state;
    $('message').textContent = message || '';
    $('message').hidden = !message;
  }

  function api(path, options = {}) {
    return fetch(`/api/notifications/${encodeURIComponent(id)}${path}`, {
      ...options,
      cache: 'no-store',
      headers: { Authorization: `Bearer ${credential}` },
    });
  }

  function refused(response) {
    if (response.status === 401) {
      if (linkToken) {
        setState('expired', 'This link has expired: ask for a new one (POST …/link), or open ' +
          'the page with an API key.');
        store(TOKEN_STORE + id, '');
        linkToken = false;
        askForKey();
      } else {
        store(KEY_STORE, '');
        askForKey('That API key was not accepted.');
      }
      return true;
    }
    if (response.status === 404) {
      setState('error', `Herald has no notification ${id}.`);
      return true;
    }
    return false;
  }

  function askForKey(message) {
    credential = null;
    $('key-form').hidden = false;
    if (!$('title').dataset.loaded) {
      // Nothing is loading until a key is given: say what the page is instead of "Loading…".
      $('title').textContent = `Delivery of notification ${id}`;
      $('status').textContent = 'API key needed';
    }
    if (message) setState('needs-key', message);
    else if (document.body.dataset.state !== 'expired') setState('needs-key');
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function row(name, counters) {
    const total = ORDER.reduce((sum, key) => sum + (counters[key] || 0), 0);
    const line = element('div', 'channel');
    line.dataset.channel = name;
    line.append(element('span', 'name', name));
    const bar = element('div', 'bar');
    bar.setAttribute('role', 'img');
    const done = total - (counters.queued || 0) - (counters.retrying || 0);
    bar.setAttribute('aria-label', `${name}: ${done} of ${total} done`);
    for (const key of ORDER) {
      const count = counters[key] || 0;
      if (!count) continue;
      const part = element('span', key);
      part.style.width = `${(100 * count) / total}%`;
      part.title = `${key}: ${count}`;
      bar.append(part);
    }
    line.append(bar);
    line.append(element('span', 'numbers', `${done} / ${total} done`));
    return line;
  }

  function showStatus(status) {
    document.title = `${status.title} · delivery · Herald`;
    document.body.dataset.status = status.status;
    $('title').textContent = status.title;
    $('title').dataset.loaded = 'true';
    $('status').textContent = status.status;
    $('recipients').textContent = `${status.recipients} recipient${status.recipients === 1 ? '' : 's'}`;
    $('updated').textContent = `version ${status.version}`;
    $('total').replaceChildren(...row('all channels', status.counters).childNodes);
    $('total').dataset.channel = 'all';
    const channels = Object.keys(status.channels).sort();
    $('channels').replaceChildren(...channels.map((name) => row(name, status.channels[name])));
    const reasons = Object.entries(status.reasons || {}).map(([reason, n]) => `${reason}: ${n}`);
    $('reasons').textContent = reasons.length ? `Reasons — ${reasons.join(', ')}` : '';
    for (const section of ['progress', 'rate', 'report']) $(section).hidden = false;
    showFunnel(status);
  }

  // Delivered → read → acknowledged: of the people whose inbox has it (one state per person,
  // wherever they read it), with where they first did.
  function showFunnel(status) {
    const engagement = status.engagement;
    if (!engagement) return;
    const steps = [
      ['delivered', 'reached', engagement.recipients],
      ['read', 'read', engagement.read],
    ];
    if (engagement.acknowledged !== null && engagement.acknowledged !== undefined) {
      steps.push(['acknowledged', 'acknowledged', engagement.acknowledged]);
    }
    const base = Math.max(engagement.recipients, 1);
    $('funnel-steps').replaceChildren(...steps.map(([key, label, count]) => {
      const item = element('li', key);
      item.dataset.step = key;
      item.dataset.count = String(count);
      const bar = element('span', 'bar');
      bar.style.width = `${(100 * count) / base}%`;
      item.append(element('span', 'name', label), bar,
        element('span', 'numbers', `${count} (${Math.round((100 * count) / base)} %)`));
      return item;
    }));
    const via = Object.entries(engagement.readVia || {}).map(([where, n]) => `${where}: ${n}`);
    $('funnel-via').textContent = via.length ? `First read in — ${via.join(', ')}` : '';
    $('funnel').hidden = false;
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function timeLabel(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function drawChart(timeline) {
    // Bars: deliveries per second in each bucket (delivered up, failed + dead stacked on top).
    const size = timeline.bucketSeconds;
    $('rate-caption').textContent = `per second, ${size}-second buckets`;
    const chart = $('chart');
    chart.dataset.buckets = String(timeline.buckets.length);
    if (!timeline.buckets.length) {
      chart.replaceChildren(element('p', '', 'Nothing delivered yet.'));
      return;
    }
    const byStart = new Map(timeline.buckets.map((b) => [Date.parse(b.start), b]));
    const first = Math.min(...byStart.keys());
    const last = Math.max(...byStart.keys());
    const count = Math.round((last - first) / (size * 1000)) + 1;
    const rates = [];
    for (let i = 0; i < count; i += 1) {
      const bucket = byStart.get(first + i * size * 1000) || {};
      rates.push({
        ok: (bucket.delivered || 0) / size,
        bad: ((bucket.failed || 0) + (bucket.deadTargets || 0)) / size,
        read: (bucket.read || 0) / size,
        acked: (bucket.acknowledged || 0) / size,
      });
    }
    const peak = Math.max(...rates.map((r) => Math.max(r.ok + r.bad, r.read, r.acked)), 1e-9);
    const width = 640;
    const height = 200;
    const left = 48;
    const bottom = 22;
    const plotWidth = width - left - 8;
    const plotHeight = height - bottom - 8;
    const step = plotWidth / count;
    const root = svg('svg', {
      viewBox: `0 0 ${width} ${height}`, role: 'img',
      'aria-label': `Delivery rate, peak ${peak.toFixed(1)} per second`,
    });
    root.append(svg('line', { class: 'axis', x1: left, y1: 8, x2: left, y2: 8 + plotHeight }));
    root.append(svg('line', {
      class: 'axis', x1: left, y1: 8 + plotHeight, x2: width - 8, y2: 8 + plotHeight,
    }));
    root.append(svg('text', { x: left - 6, y: 14, 'text-anchor': 'end' }, peak.toFixed(peak < 10 ? 1 : 0)));
    root.append(svg('text', { x: left - 6, y: 8 + plotHeight, 'text-anchor': 'end' }, '0'));
    root.append(svg('text', { x: left, y: height - 6 }, timeLabel(first)));
    root.append(svg('text', { x: width - 8, y: height - 6, 'text-anchor': 'end' },
      timeLabel(last + size * 1000)));
    rates.forEach((rate, i) => {
      const x = left + i * step + Math.min(1, step * 0.1);
      const w = Math.max(1, step - Math.min(2, step * 0.2));
      const okHeight = (rate.ok / peak) * plotHeight;
      const badHeight = (rate.bad / peak) * plotHeight;
      if (okHeight > 0) {
        const bar = svg('rect', { class: 'ok', x, y: 8 + plotHeight - okHeight, width: w, height: okHeight });
        bar.append(svg('title', {}, `${rate.ok.toFixed(2)} delivered/s`));
        root.append(bar);
      }
      if (badHeight > 0) {
        root.append(svg('rect', {
          class: 'bad', x, y: 8 + plotHeight - okHeight - badHeight, width: w, height: badHeight,
        }));
      }
    });
    // The funnel over time: first reads and acknowledgements per second, as lines.
    for (const [key, cls] of [['read', 'read'], ['acked', 'acked']]) {
      if (!rates.some((r) => r[key] > 0)) continue;
      const points = rates.map((r, i) => {
        const x = left + (i + 0.5) * step;
        return `${x.toFixed(1)},${(8 + plotHeight - (r[key] / peak) * plotHeight).toFixed(1)}`;
      });
      const line = svg('polyline', { class: cls, points: points.join(' '), fill: 'none' });
      line.append(svg('title', {}, key === 'read' ? 'read per second' : 'acknowledged per second'));
      root.append(line);
    }
    chart.replaceChildren(root);
  }

  async function download() {
    const response = await api('/report.csv');
    if (refused(response)) return;
    if (!response.ok) {
      setState('error', `The report could not be read (${response.status}).`);
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const anchor = element('a');
    anchor.href = url;
    anchor.download = `${id}-report.csv`;
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function poll() {
    if (!credential) return;
    try {
      const response = await api('');
      if (refused(response)) return;
      if (!response.ok) throw new Error(`Herald answered ${response.status}`);
      const status = await response.json();
      showStatus(status);
      const finished = status.status === 'completed';
      if (finished || Date.now() - timelineAt >= TIMELINE_MS) {
        const timeline = await api('/timeline');
        if (timeline.ok) drawChart(await timeline.json());
        timelineAt = Date.now();
      }
      setState(finished ? 'completed' : 'live');
      setTimeout(poll, finished ? IDLE_MS : STATUS_MS);
      return;
    } catch (e) {
      setState('live', 'Herald cannot be reached just now; trying again.');
    }
    setTimeout(poll, STATUS_MS);
  }

  function scheduleRenewal() {
    // A link token is traded for a fresh one before it runs out while the page is open.
    if (!linkToken) return;
    let expiry = null;
    try {
      const body = credential.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      expiry = JSON.parse(atob(body)).exp * 1000;
    } catch (e) {
      return;
    }
    setTimeout(async () => {
      if (!linkToken) return;
      try {
        const response = await api('/link', { method: 'POST' });
        if (response.ok) {
          credential = (await response.json()).token;
          store(TOKEN_STORE + id, credential);
          // The link's absolute lifetime is reached: no later token will come.
          if (JSON.parse(atob(credential.split('.')[1].replace(/-/g, '+')
            .replace(/_/g, '/'))).exp * 1000 <= expiry) return;
        }
      } catch (e) { /* try again on the next schedule */ }
      scheduleRenewal();
    }, Math.max(1000, (expiry - Date.now()) / 2));
  }

  function begin() {
    $('key-form').hidden = true;
    setState('loading');
    scheduleRenewal();
    poll();
  }

  function start() {
    $('notification-id').textContent = id;
    $('download').addEventListener('click', download);
    $('key-form').addEventListener('submit', (event) => {
      event.preventDefault();
      credential = $('api-key').value.trim();
      if (!credential) return;
      store(KEY_STORE, credential);
      linkToken = false;
      begin();
    });
    credential = takeCredential();
    if (credential) begin();
    else askForKey();
  }

  start();
})();
