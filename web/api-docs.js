// Draws /openapi.json with Swagger UI (web/vendor, served by Herald itself: nothing is fetched
// from elsewhere). "Try it out" calls this server; give it an API key with "Authorize".
(() => {
  'use strict';

  function start() {
    if (typeof window.SwaggerUIBundle !== 'function') {
      document.getElementById('missing').hidden = false;
      document.body.dataset.state = 'missing';
      return;
    }
    window.SwaggerUIBundle({
      url: '/openapi.json',
      dom_id: '#swagger-ui',
      deepLinking: true,
      validatorUrl: null,
      onComplete: () => { document.body.dataset.state = 'ready'; },
    });
  }

  start();
})();
