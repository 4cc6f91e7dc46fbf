package passkey

import (
	"embed"
	"net/http"
	"strings"
)

// demoFiles are the /passkeys-demo page: HTML and one script, no inline
// code, so the page runs under a strict Content-Security-Policy.
//
//go:embed demo/index.html demo/app.js
var demoFiles embed.FS

// demoCSP lets the page run its own script and call the API on its own
// origin, nothing else.
const demoCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// demo serves the page and its script (development only: the wiring
// mounts it when the environment is not production).
func (h *Handlers) demo(w http.ResponseWriter, r *http.Request) error {
	name, typ := "demo/index.html", "text/html; charset=utf-8"
	if strings.HasSuffix(r.URL.Path, "/app.js") {
		name, typ = "demo/app.js", "text/javascript; charset=utf-8"
	}
	b, err := demoFiles.ReadFile(name)
	if err != nil {
		return err
	}
	hdr := w.Header()
	hdr.Set("Content-Type", typ)
	hdr.Set("Content-Security-Policy", demoCSP)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}
