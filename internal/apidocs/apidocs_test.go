package apidocs

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// newServer mounts Handler the way the application does.
func newServer(t *testing.T, specURL string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	docs := Handler(specURL)
	mux.Handle("GET /docs", docs)
	mux.Handle("GET /docs/", docs)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

var linkRE = regexp.MustCompile(`(?i)\s(src|href)="([^"]*)"`)

// links returns the src and href values of page, HTML-unescaped.
func links(page []byte) []string {
	var out []string
	for _, m := range linkRE.FindAllSubmatch(page, -1) {
		out = append(out, strings.ReplaceAll(string(m[2]), "&amp;", "&"))
	}
	return out
}

func TestPageAndReferencedAssets(t *testing.T) {
	srv := newServer(t, "")
	wantTypes := map[string]string{
		".js":  "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8",
		".png": "image/png",
	}
	for _, pagePath := range []string{"/docs", "/docs/"} {
		t.Run(pagePath, func(t *testing.T) {
			pageURL := srv.URL + pagePath
			resp, page := get(t, pageURL)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", pagePath, resp.Status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); csp != CSP() {
				t.Errorf("page CSP = %q, want CSP() = %q", csp, CSP())
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("page Cache-Control = %q, want no-cache", cc)
			}
			if !bytes.Contains(page, []byte(`data-spec-url="/openapi.json"`)) {
				t.Errorf("page does not point Swagger UI at /openapi.json:\n%s", page)
			}

			base, err := url.Parse(pageURL)
			if err != nil {
				t.Fatal(err)
			}
			var fetched []string
			for _, link := range links(page) {
				if link == DefaultSpecURL { // the <noscript> link to the spec, not ours to serve
					continue
				}
				ref, err := url.Parse(link)
				if err != nil {
					t.Fatalf("bad link %q: %v", link, err)
				}
				if ref.IsAbs() || ref.Host != "" || strings.HasPrefix(link, "/") {
					t.Errorf("link %q is not relative", link)
				}
				u := base.ResolveReference(ref)
				if !strings.HasPrefix(u.Path, "/docs/") {
					t.Errorf("link %q resolves to %s, outside /docs/", link, u.Path)
				}
				resp, body := get(t, u.String())
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s: %s", u, resp.Status)
					continue
				}
				name := path.Base(u.Path)
				if got, want := resp.Header.Get("Content-Type"), wantTypes[path.Ext(name)]; got != want {
					t.Errorf("%s: Content-Type = %q, want %q", name, got, want)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != cacheImmutable {
					t.Errorf("%s: versioned asset Cache-Control = %q, want %q", name, cc, cacheImmutable)
				}
				if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: missing X-Content-Type-Options: nosniff", name)
				}
				embedded, err := fs.ReadFile(assetFS, "assets/"+name)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(body, embedded) {
					t.Errorf("%s: served body differs from embedded file", name)
				}
				fetched = append(fetched, name)
			}
			want := []string{"favicon-32x32.png", "favicon-16x16.png", "swagger-ui.css", "docs.css", "swagger-ui-bundle.js", "init.js"}
			if diff := cmp.Diff(want, fetched); diff != "" {
				t.Errorf("assets referenced by the page (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPageHasNoInlineCode(t *testing.T) {
	h := Handler("")
	for _, p := range []string{"/docs", "/docs/"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		page := rec.Body.String()
		for _, re := range []*regexp.Regexp{
			regexp.MustCompile(`(?i)<script(\s[^>]*)?>[^<]*\S[^<]*</script>`), // script with a body
			regexp.MustCompile(`(?i)<script(?:\s(?:[^>s]|s[^r]|sr[^c])*)?>`),  // script without src
			regexp.MustCompile(`(?i)<style`),
			regexp.MustCompile(`(?i)\sstyle\s*=`),
			regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
			regexp.MustCompile(`(?i)javascript:`),
		} {
			if m := re.FindString(page); m != "" {
				t.Errorf("%s: page has inline code %q (pattern %s)", p, m, re)
			}
		}
	}
}

func TestNoExternalURLs(t *testing.T) {
	h := Handler("")
	rendered := func(p string) []byte {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		return rec.Body.Bytes()
	}
	files := map[string][]byte{
		"index.html (template)": []byte(indexHTML),
		"page at /docs":         rendered("/docs"),
		"page at /docs/":        rendered("/docs/"),
	}
	for _, name := range []string{"init.js", "docs.css"} {
		b, err := fs.ReadFile(assetFS, "assets/"+name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	external := regexp.MustCompile(`(?i)https?://|(?:src|href|url)\s*[=(]\s*["']?//`)
	for name, b := range files {
		if m := external.Find(b); m != nil {
			t.Errorf("%s references an external URL (%q)", name, m)
		}
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	srv := newServer(t, "")
	for _, p := range []string{
		"/docs/nope.js",
		"/docs/README.md",  // in assets/ but not served
		"/docs/index.html", // the template is not an asset
		"/docs/assets/init.js",
		"/docs/swagger-ui.css.map",
		"/docs/swagger-ui-standalone-preset.js",
		"/docs/%2e%2e/apidocs.go",
	} {
		resp, _ := get(t, srv.URL+p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, resp.Status)
		}
	}
	for _, p := range []string{"/docs", "/docs/init.js"} {
		resp, err := http.Post(srv.URL+p, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %s, want 405", p, resp.Status)
		}
	}
	req, err := http.NewRequest(http.MethodHead, srv.URL+"/docs/init.js", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(loadAssets()["init.js"].body)) {
		t.Errorf("HEAD init.js: %s, length %d", resp.Status, resp.ContentLength)
	}
}

func TestCaching(t *testing.T) {
	h := Handler("")
	a := loadAssets()["init.js"]

	serve := func(target string, header http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", target, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	tests := []struct {
		name      string
		target    string
		header    http.Header
		wantCode  int
		wantCache string
	}{
		{"versioned", "/docs/init.js?v=" + a.version, nil, 200, cacheImmutable},
		{"unversioned", "/docs/init.js", nil, 200, cacheRevalidate},
		{"stale version", "/docs/init.js?v=000000000000", nil, 200, cacheRevalidate},
		{"revalidated", "/docs/init.js", http.Header{"If-None-Match": {a.etag}}, 304, cacheRevalidate},
		{"changed", "/docs/init.js", http.Header{"If-None-Match": {`"other"`}}, 200, cacheRevalidate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(tt.target, tt.header)
			if rec.Code != tt.wantCode {
				t.Errorf("status %d, want %d", rec.Code, tt.wantCode)
			}
			if got := rec.Header().Get("Cache-Control"); got != tt.wantCache {
				t.Errorf("Cache-Control %q, want %q", got, tt.wantCache)
			}
			if got := rec.Header().Get("ETag"); got != a.etag {
				t.Errorf("ETag %q, want %q", got, a.etag)
			}
		})
	}

	page := serve("/docs/", nil)
	etag := page.Header().Get("ETag")
	if etag == "" {
		t.Fatal("page has no ETag")
	}
	if rec := serve("/docs/", http.Header{"If-None-Match": {etag}}); rec.Code != http.StatusNotModified {
		t.Errorf("page revalidation: status %d, want 304", rec.Code)
	}
}

func TestGzip(t *testing.T) {
	h := Handler("")
	a := loadAssets()["swagger-ui-bundle.js"]
	for _, tt := range []struct {
		acceptEncoding string
		wantGzip       bool
	}{
		{"gzip", true},
		{"br, gzip;q=0.8", true},
		{"GZIP", true},
		{"", false},
		{"br", false},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
	} {
		req := httptest.NewRequest("GET", "/docs/swagger-ui-bundle.js", nil)
		if tt.acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", tt.acceptEncoding)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%q: status %d", tt.acceptEncoding, rec.Code)
		}
		if !strings.Contains(rec.Header().Get("Vary"), "Accept-Encoding") {
			t.Errorf("%q: missing Vary: Accept-Encoding", tt.acceptEncoding)
		}
		gotGzip := rec.Header().Get("Content-Encoding") == "gzip"
		if gotGzip != tt.wantGzip {
			t.Errorf("Accept-Encoding %q: gzip = %v, want %v", tt.acceptEncoding, gotGzip, tt.wantGzip)
		}
		body := rec.Body.Bytes()
		if gotGzip {
			if rec.Header().Get("ETag") == a.etag {
				t.Error("gzip response shares the identity ETag")
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(body, a.body) {
			t.Errorf("%q: body differs from asset", tt.acceptEncoding)
		}
	}
}

func TestCSP(t *testing.T) {
	csp := CSP()
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q contains %q", csp, bad)
		}
	}
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}

	tests := []struct {
		specURL     string
		wantConnect string
	}{
		{"/openapi.json", "connect-src 'self';"},
		{"openapi.json", "connect-src 'self';"},
		{"https://api.example.com/v1/openapi.json", "connect-src 'self' https://api.example.com;"},
		{"http://localhost:8080/openapi.json", "connect-src 'self' http://localhost:8080;"},
		{"//api.example.com/openapi.json", "connect-src 'self' api.example.com;"},
		{"ftp://example.com/x", "connect-src 'self';"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		Handler(tt.specURL).ServeHTTP(rec, httptest.NewRequest("GET", "/docs", nil))
		if got := rec.Header().Get("Content-Security-Policy"); !strings.Contains(got, tt.wantConnect) {
			t.Errorf("spec %q: CSP %q lacks %q", tt.specURL, got, tt.wantConnect)
		}
	}
}

func TestSpecURL(t *testing.T) {
	tests := []struct {
		specURL string
		want    string
	}{
		{"", `data-spec-url="/openapi.json"`},
		{"/api/v1/openapi.json", `data-spec-url="/api/v1/openapi.json"`},
		{`/x"><script>alert(1)</script>`, `data-spec-url="/x%22%3e%3cscript%3ealert%281%29%3c/script%3e"`},
		{"javascript:alert(1)", `data-spec-url="#ZgotmplZ"`},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		Handler(tt.specURL).ServeHTTP(rec, httptest.NewRequest("GET", "/docs/", nil))
		if !strings.Contains(rec.Body.String(), tt.want) {
			t.Errorf("spec %q: page lacks %s:\n%s", tt.specURL, tt.want, rec.Body)
		}
	}
}

// TestAssetListMatchesFiles keeps assetTypes and assets/ in step: every file
// is either served or deliberately not (README.md).
func TestAssetListMatchesFiles(t *testing.T) {
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		t.Fatal(err)
	}
	onDisk := make(map[string]bool)
	for _, e := range entries {
		if e.Name() == "README.md" {
			continue
		}
		onDisk[e.Name()] = true
		if _, ok := assetTypes[e.Name()]; !ok {
			t.Errorf("assets/%s is embedded but not listed in assetTypes", e.Name())
		}
	}
	for name := range assetTypes {
		if !onDisk[name] {
			t.Errorf("assetTypes lists %s, which is not in assets/", name)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := map[string]bool{
		"gzip":               true,
		"deflate, gzip":      true,
		"gzip;q=1.0":         true,
		"gzip;q=0.001":       true,
		" gzip ; q=0.5 ":     true,
		"gzip;q=0":           false,
		"gzip;q=0.0":         false,
		"identity":           false,
		"x-gzip":             false,
		"gzipx":              false,
		"br;q=1, gzip;q=0.0": false,
	}
	for in, want := range tests {
		if got := acceptsGzip([]string{in}); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", in, got, want)
		}
	}
}
