// Starts Swagger UI on /api/docs (no inline script: the page's CSP allows scripts from this origin only).
// "Try it out" runs in the operator's session: state changes carry the CSRF token (ingest/api/csrf.py).
"use strict";

window.addEventListener("DOMContentLoaded", function () {
  const box = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: box.dataset.openapi,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    requestInterceptor: function (request) {
      if (!/^(GET|HEAD|OPTIONS)$/i.test(request.method || "GET")) {
        request.headers["X-CSRF-Token"] = box.dataset.csrf;
      }
      return request;
    },
  });
});
