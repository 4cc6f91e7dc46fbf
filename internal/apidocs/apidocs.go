// Package apidocs serves interactive API documentation (Swagger UI) at
// /docs from assets embedded in the binary, so the page loads nothing from
// a CDN and works under a strict Content-Security-Policy: no inline
// scripts, no inline styles, no eval.
//
// Mount the handler for both the page and its assets:
//
//	docs := apidocs.Handler("/openapi.json")
//	mux.Handle("GET /docs", docs)
//	mux.Handle("GET /docs/", docs)
//
// The vendored Swagger UI files, their version and how to update them are
// described in assets/README.md.
package apidocs

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

// DefaultSpecURL is where Gatehouse serves its OpenAPI document; Handler
// uses it when given an empty spec URL.
const DefaultSpecURL = "/openapi.json"

//go:embed index.html
var indexHTML string

//go:embed assets
var assetFS embed.FS

// assetTypes lists the files under assets/ that are served, with their
// Content-Type. Anything else (README.md) is not served. compress marks
// text worth gzip-encoding.
var assetTypes = map[string]struct {
	contentType string
	compress    bool
}{
	"swagger-ui-bundle.js":             {"text/javascript; charset=utf-8", true},
	"swagger-ui.css":                   {"text/css; charset=utf-8", true},
	"init.js":                          {"text/javascript; charset=utf-8", false},
	"docs.css":                         {"text/css; charset=utf-8", false},
	"favicon-16x16.png":                {"image/png", false},
	"favicon-32x32.png":                {"image/png", false},
	"LICENSE":                          {"text/plain; charset=utf-8", true},
	"NOTICE":                           {"text/plain; charset=utf-8", false},
	"swagger-ui-bundle.js.LICENSE.txt": {"text/plain; charset=utf-8", false},
}

// Cache-Control values. A request whose ?v= matches the asset's content
// hash may be cached for a year: a changed asset gets a new URL. Anything
// else must be revalidated (cheap: every response carries an ETag).
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// asset is one servable file.
type asset struct {
	contentType string
	body        []byte
	version     string // short content hash, used as ?v= in the page
	etag        string
	gzipped     func() []byte // nil unless compressible; computed on first use
}

// loadAssets reads and hashes the embedded assets once per process.
var loadAssets = sync.OnceValue(func() map[string]*asset {
	m := make(map[string]*asset, len(assetTypes))
	for name, typ := range assetTypes {
		body, err := fs.ReadFile(assetFS, path.Join("assets", name))
		if err != nil {
			// The list above and the embedded files are out of step: a
			// build mistake that the package tests catch.
			panic(fmt.Sprintf("apidocs: embedded asset %s: %v", name, err))
		}
		sum := sha256.Sum256(body)
		a := &asset{
			contentType: typ.contentType,
			body:        body,
			version:     hex.EncodeToString(sum[:6]),
		}
		a.etag = `"` + a.version + `"`
		if typ.compress {
			a.gzipped = sync.OnceValue(func() []byte { return gzipBytes(body) })
		}
		m[name] = a
	}
	return m
})

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
	_, _ = zw.Write(b)                                       // writes to a bytes.Buffer do not fail
	_ = zw.Close()
	return buf.Bytes()
}

// CSP returns the Content-Security-Policy the docs page needs when the
// OpenAPI document and the API it describes are on the page's own origin.
// Handler sets it (widened by the spec's origin when that is elsewhere) on
// the page response; callers that set policies centrally can use it too.
//
//   - script-src 'self': Swagger UI and init.js; no inline script, no eval.
//   - style-src 'self': Swagger UI only sets styles through the CSSOM,
//     which CSP does not restrict, and its Markdown sanitizer strips style
//     attributes, so no 'unsafe-inline' is needed.
//   - img-src 'self' data: blob:: the favicons, the data: SVG icons in
//     swagger-ui.css, and image responses shown by "Try it out" (blob:).
//   - connect-src 'self': fetching the spec and "Try it out" requests.
func CSP() string {
	return cspWith("")
}

func cspWith(extraConnect string) string {
	connect := "'self'"
	if extraConnect != "" {
		connect += " " + extraConnect
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data: blob:",
		"connect-src " + connect,
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
}

// specOrigin returns the origin of an absolute http(s) spec URL, or "" for
// a same-origin (relative) one.
func specOrigin(specURL string) string {
	u, err := url.Parse(specURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "") {
		return ""
	}
	if u.Scheme == "" { // protocol-relative //host/path: same scheme as the page
		return u.Host
	}
	return u.Scheme + "://" + u.Host
}

// page is a rendered docs page.
type page struct {
	body []byte
	etag string
}

type handler struct {
	assets map[string]*asset
	csp    string
	// The page is served at /docs and /docs/. Asset links are relative,
	// so that the page also works behind a reverse proxy that mounts
	// Gatehouse under a path prefix, and relative links resolve
	// differently from the two URLs: one rendering for each.
	pageNoSlash, pageSlash page
}

// Handler returns a handler for GET (and HEAD) /docs, /docs/ (the page) and
// /docs/<asset>. specURL is where the page fetches the OpenAPI document
// from (DefaultSpecURL if empty); if it names another origin, the page's
// CSP allows connecting to it. Unknown paths get 404, other methods 405.
func Handler(specURL string) http.Handler {
	if specURL == "" {
		specURL = DefaultSpecURL
	}
	h := &handler{
		assets: loadAssets(),
		csp:    cspWith(specOrigin(specURL)),
	}
	h.pageNoSlash = h.render(specURL, "docs/")
	h.pageSlash = h.render(specURL, "./")

	mux := http.NewServeMux()
	mux.HandleFunc("GET /docs", h.servePage(&h.pageNoSlash))
	mux.HandleFunc("GET /docs/{$}", h.servePage(&h.pageSlash))
	mux.HandleFunc("GET /docs/{name}", h.serveAsset)
	return mux
}

// render executes index.html with asset links relative to base. The
// template and the asset list are compiled in, so any failure is a build
// mistake, and panics.
func (h *handler) render(specURL, base string) page {
	funcs := template.FuncMap{
		"asset": func(name string) (string, error) {
			a, ok := h.assets[name]
			if !ok {
				return "", fmt.Errorf("unknown asset %q", name)
			}
			return base + name + "?v=" + a.version, nil
		},
	}
	tmpl := template.Must(template.New("index.html").Funcs(funcs).Parse(indexHTML))
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, struct{ SpecURL string }{specURL}); err != nil {
		panic("apidocs: render index.html: " + err.Error())
	}
	sum := sha256.Sum256(buf.Bytes())
	return page{body: buf.Bytes(), etag: `"` + hex.EncodeToString(sum[:6]) + `"`}
}

func (h *handler) servePage(p *page) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Content-Security-Policy", h.csp)
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("Cache-Control", cacheRevalidate)
		hdr.Set("ETag", p.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(p.body))
	}
}

func (h *handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("v") == a.version {
		hdr.Set("Cache-Control", cacheImmutable)
	} else {
		hdr.Set("Cache-Control", cacheRevalidate)
	}
	body, etag := a.body, a.etag
	if a.gzipped != nil {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			body = a.gzipped()
			etag = `"` + a.version + `-gz"`
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether Accept-Encoding values list gzip with a
// non-zero quality.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q, hasQ := strings.CutPrefix(strings.TrimSpace(params), "q=")
			if !hasQ {
				return true
			}
			q = strings.TrimRight(strings.TrimSpace(q), "0")
			return q != "" && q != "." && q != "0."
		}
	}
	return false
}
