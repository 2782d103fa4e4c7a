// The start page's health badges, from /healthz and /readyz of this same server.
(() => {
  'use strict';

  async function check(id, path, okStatus) {
    const badge = document.getElementById(id);
    try {
      const response = await fetch(path, { cache: 'no-store' });
      const body = await response.json();
      const ok = response.ok && body.status === okStatus;
      badge.dataset.state = ok ? 'ok' : 'bad';
      badge.textContent = ok ? 'yes' : `no (${body.status || response.status})`;
    } catch (e) {
      badge.dataset.state = 'bad';
      badge.textContent = 'unreachable';
    }
  }

  check('healthz', '/healthz', 'ok');
  check('readyz', '/readyz', 'ready');
})();
