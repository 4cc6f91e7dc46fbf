package passkey

import (
	"embed"
	"net/http"
	"strings"
)

// demoFiles are the /passkeys-demo page: HTML, one script and one
// stylesheet, no inline code or style, so the page runs under a strict
// Content-Security-Policy.
//
//go:embed demo/index.html demo/app.js demo/style.css
var demoFiles embed.FS

// demoCSP lets the page run its own script and call the API on its own
// origin, nothing else.
const demoCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// demo serves the page, its script and its stylesheet (development only:
// the wiring mounts it when the environment is not production).
func demo(w http.ResponseWriter, r *http.Request) {
	name, typ := "demo/index.html", "text/html; charset=utf-8"
	switch {
	case strings.HasSuffix(r.URL.Path, "/app.js"):
		name, typ = "demo/app.js", "text/javascript; charset=utf-8"
	case strings.HasSuffix(r.URL.Path, "/style.css"):
		name, typ = "demo/style.css", "text/css; charset=utf-8"
	}
	b, err := demoFiles.ReadFile(name)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", typ)
	hdr.Set("Content-Security-Policy", demoCSP)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
