// Starts Swagger UI on the Gatehouse API docs page. It lives in its own
// file so that the page needs no inline script under its
// Content-Security-Policy. The spec URL comes from the data-spec-url
// attribute that the server writes into the page.
(function () {
  "use strict";

  var root = document.getElementById("swagger-ui");
  if (!root || typeof window.SwaggerUIBundle !== "function") {
    return;
  }

  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    plugins: [window.SwaggerUIBundle.plugins.DownloadUrl],
    layout: "BaseLayout",
    // Do not send the spec to the public validator service, nor load its
    // badge image.
    validatorUrl: null,
    // Never take configuration (such as another spec URL) from the query
    // string.
    queryConfigEnabled: false,
    // Keep bearer tokens entered under "Authorize" out of localStorage.
    persistAuthorization: false,
    displayRequestDuration: true,
    filter: true
  });
})();
