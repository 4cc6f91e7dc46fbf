package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The client libraries integrators use, run against a real server: what
// issue 14 and docs/integration.md promise. Node (oauth4webapi,
// openid-client, jose; pinned in testdata/node/package.json) runs
// testdata/node/clientlibs.mjs; Python runs docs/integration.md's own PyJWT
// snippet through testdata/python/doc_snippet.py.
//
// Where node and the installed packages, or python3 with PyJWT, are
// missing the test skips, unless GATEHOUSE_TEST_REQUIRE_CLIENT_LIBS=1 (as
// CI sets) makes that a failure.
//
//	GATEHOUSE_TEST_NODE_MODULES  node_modules of an `npm ci` of testdata/node
//	                             (default: testdata/node/node_modules)
//	GATEHOUSE_TEST_PYTHON        a python3 that imports jwt and cryptography
//	                             (default: python3 on PATH, then /usr/bin/python3)

const (
	requireClientLibsVar = "GATEHOUSE_TEST_REQUIRE_CLIENT_LIBS"
	nodeModulesVar       = "GATEHOUSE_TEST_NODE_MODULES"
	pythonVar            = "GATEHOUSE_TEST_PYTHON"
	clientLibTimeout     = 60 * time.Second
)

func TestClientLibraries(t *testing.T) {
	node, nodeModules, nodeMissing := findNode()
	python, pythonMissing := findPyJWT()
	if nodeMissing != "" && pythonMissing != "" {
		clientLibMissing(t, "%s; %s", nodeMissing, pythonMissing)
	}
	snippet := pyJWTSnippet(t)
	// Every signing algorithm the server offers, since a library may
	// support one key type and not another.
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			e := newIssuerEnv(t, map[string]string{"GATEHOUSE_SIGNING_ALG": alg})
			issuer := e.url("")
			const scope = "read:invoices"
			worker := e.newClient(t, "Billing worker", "read:invoices,write:invoices")

			t.Run("Node", func(t *testing.T) {
				if nodeMissing != "" {
					clientLibMissing(t, "%s", nodeMissing)
				}
				results := runClientLib(t, node, nodeScriptDir(t, nodeModules), []string{"clientlibs.mjs", issuer},
					"CLIENT_ID="+worker.ID, "CLIENT_SECRET="+worker.Secret, "CLIENT_SCOPE="+scope)
				want := []string{
					"jose jwtVerify", "jose jwtVerify wrong audience",
					"oauth4webapi discovery oauth2", "oauth4webapi discovery oidc",
					"openid-client client_credentials client_secret_basic", "openid-client client_credentials client_secret_post",
					"openid-client discovery oauth2", "openid-client discovery oidc",
				}
				if diff := cmp.Diff(want, slices.Sorted(maps.Keys(results))); diff != "" {
					t.Errorf("checks run (-want +got):\n%s", diff)
				}
				wantMetadata := map[string]any{"issuer": issuer, "token_endpoint": issuer + "/oauth2/token", "jwks_uri": issuer + "/.well-known/jwks.json"}
				for _, name := range []string{"oauth4webapi discovery oauth2", "oauth4webapi discovery oidc", "openid-client discovery oauth2", "openid-client discovery oidc"} {
					r := results[name]
					got := map[string]any{"issuer": r["issuer"], "token_endpoint": r["token_endpoint"], "jwks_uri": r["jwks_uri"]}
					if diff := cmp.Diff(wantMetadata, got); diff != "" {
						t.Errorf("%s: metadata (-want +got):\n%s", name, diff)
					}
				}
				for _, name := range []string{"openid-client client_credentials client_secret_basic", "openid-client client_credentials client_secret_post"} {
					if r := results[name]; !strings.EqualFold(str(r["token_type"]), "bearer") || r["scope"] != scope {
						t.Errorf("%s: token response %v, want a bearer token for scope %s", name, r, scope)
					}
				}
				verified := results["jose jwtVerify"]
				header, _ := verified["header"].(map[string]any)
				payload, _ := verified["payload"].(map[string]any)
				if header["typ"] != "at+jwt" || header["alg"] != alg {
					t.Errorf("jose: header %v, want typ at+jwt and alg %s", header, alg)
				}
				if payload["iss"] != issuer || payload["sub"] != worker.ID || payload["client_id"] != worker.ID || payload["scope"] != scope || !hasAudience(payload["aud"], issuer) {
					t.Errorf("jose: claims %v, want iss and aud %s, sub and client_id %s, scope %s", payload, issuer, worker.ID, scope)
				}
				if refused, _ := results["jose jwtVerify wrong audience"]["refused"].(map[string]any); refused["claim"] != "aud" {
					t.Errorf("jose with audience https://other.example: %v, want a refusal for the aud claim", results["jose jwtVerify wrong audience"])
				}
			})

			t.Run("PyJWT", func(t *testing.T) {
				if pythonMissing != "" {
					clientLibMissing(t, "%s", pythonMissing)
				}
				e.signUp(t, "ada@example.com")
				user := loginFull(t, e, "ada@example.com", strongPassword)
				tokens, err := json.Marshal(map[string]string{
					"client_credentials": e.clientToken(t, worker, scope),
					"user":               str(user["access_token"]),
				})
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "snippet.py"), []byte(snippet), 0o600); err != nil {
					t.Fatal(err)
				}
				harness, err := filepath.Abs(filepath.Join("testdata", "python", "doc_snippet.py"))
				if err != nil {
					t.Fatal(err)
				}
				results := runClientLib(t, python, dir, []string{harness, "snippet.py"},
					"GATEHOUSE_ISSUER="+issuer, "ACCESS_TOKENS="+string(tokens))
				var want []string
				for _, tok := range []string{"client_credentials", "user"} {
					for _, c := range []string{"altered signature", "valid", "wrong audience"} {
						want = append(want, tok+": "+c)
					}
				}
				if diff := cmp.Diff(want, slices.Sorted(maps.Keys(results))); diff != "" {
					t.Errorf("checks run (-want +got):\n%s", diff)
				}
				for name, want := range map[string]map[string]any{
					"client_credentials: valid": {"iss": issuer, "sub": worker.ID, "client_id": worker.ID, "scope": scope},
					"user: valid":               {"iss": issuer, "sub": user["user"].(map[string]any)["id"], "client_id": "gatehouse", "sid": user["session_id"]},
				} {
					claims, _ := results[name]["claims"].(map[string]any)
					got := map[string]any{}
					for k := range want {
						got[k] = claims[k]
					}
					if diff := cmp.Diff(want, got); diff != "" || !hasAudience(claims["aud"], issuer) {
						t.Errorf("%s: claims %v (-want +got):\n%s", name, claims, diff)
					}
					if h, _ := results[name]["header"].(map[string]any); h["alg"] != alg {
						t.Errorf("%s: header %v, want alg %s", name, h, alg)
					}
				}
				for _, c := range []struct{ name, refusal string }{
					{"client_credentials: wrong audience", "InvalidAudienceError"},
					{"user: wrong audience", "InvalidAudienceError"},
					{"client_credentials: altered signature", "InvalidSignatureError"},
					{"user: altered signature", "InvalidSignatureError"},
				} {
					if refused, _ := results[c.name]["refused"].(map[string]any); refused["type"] != c.refusal {
						t.Errorf("%s: %v, want %s", c.name, results[c.name], c.refusal)
					}
				}
			})
		})
	}
}

// clientLibMissing skips the test, or fails it when CI requires the
// client libraries.
func clientLibMissing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv(requireClientLibsVar) == "1" {
		t.Fatalf(format+" (and %s=1)", append(args, requireClientLibsVar)...)
	}
	t.Skipf(format, args...)
}

// findNode returns the node binary and the node_modules directory with
// testdata/node's packages, or why they cannot be used.
func findNode() (node, modules, missing string) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", "", "node is not on PATH"
	}
	modules = os.Getenv(nodeModulesVar)
	if modules == "" {
		modules = filepath.Join("testdata", "node", "node_modules")
	} else if fi, err := os.Stat(filepath.Join(modules, "node_modules")); err == nil && fi.IsDir() {
		modules = filepath.Join(modules, "node_modules") // the directory npm ci ran in
	}
	if _, err := os.Stat(filepath.Join(modules, "openid-client", "package.json")); err != nil {
		return "", "", "no installed client libraries at " + modules + " (npm ci in internal/app/testdata/node, or set " + nodeModulesVar + ")"
	}
	if modules, err = filepath.Abs(modules); err != nil {
		return "", "", err.Error()
	}
	return node, modules, ""
}

// nodeScriptDir returns a directory from which node runs the scripts of
// testdata/node (clientlibs.mjs, webhookverify.mjs)
// with the packages installed in modules.
//
// Node resolves an ES module's imports from the real location of the
// importing file, walking up to the nearest node_modules: NODE_PATH does
// not apply to ESM, and node_modules may live anywhere (CI installs it in
// a temporary directory so that the checkout stays clean). So the script
// is copied (not linked: a link would resolve to testdata/node again) into
// a fresh directory beside a node_modules symlink to the installation.
// The packages themselves then resolve their own imports from their real
// location inside that installation.
//
// It first checks that the installation holds the versions package.json
// pins, so that a stale node_modules does not test other versions.
func nodeScriptDir(t *testing.T, modules string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "node", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct{ Dependencies map[string]string }
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatalf("testdata/node/package.json: %v", err)
	}
	for name, version := range pkg.Dependencies {
		raw, err := os.ReadFile(filepath.Join(modules, name, "package.json"))
		var installed struct{ Version string }
		if err == nil {
			err = json.Unmarshal(raw, &installed)
		}
		if err != nil || installed.Version != version {
			t.Fatalf("%s in %s is %q (%v), package.json pins %s: run npm ci again", name, modules, installed.Version, err, version)
		}
	}
	dir := t.TempDir()
	scripts, err := filepath.Glob(filepath.Join("testdata", "node", "*.mjs"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts in testdata/node (%v)", err)
	}
	for _, path := range scripts {
		script, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), script, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// findPyJWT returns a python3 that imports PyJWT with its crypto
// dependency, or why there is none. python3 on PATH may be a pyenv or
// virtualenv interpreter without the system's packages, so the system
// interpreter, where Debian's python3-jwt installs, is tried after it.
func findPyJWT() (python, missing string) {
	candidates := []string{os.Getenv(pythonVar)}
	if candidates[0] == "" {
		candidates = []string{"python3", "/usr/bin/python3"}
	}
	for _, c := range candidates {
		path, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), clientLibTimeout)
		err = exec.CommandContext(ctx, path, "-c", "import jwt, cryptography").Run()
		cancel()
		if err == nil {
			return path, ""
		}
	}
	return "", "no python3 with PyJWT and cryptography among " + strings.Join(candidates, ", ") + " (apt-get install python3-jwt, or set " + pythonVar + ")"
}

// pyJWTSnippet returns the ```python block of docs/integration.md's
// "Python, with PyJWT" section: the test runs what the guide shows.
func pyJWTSnippet(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "integration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n### Python, with PyJWT\n")
	if ok {
		for _, next := range []string{"\n## ", "\n### "} { // up to the next heading
			section, _, _ = strings.Cut(section, next)
		}
		_, section, ok = strings.Cut(section, "\n```python\n")
	}
	if ok {
		section, _, ok = strings.Cut(section, "\n```\n")
	}
	if !ok {
		t.Fatal("docs/integration.md has no ```python block under \"### Python, with PyJWT\"")
	}
	return section + "\n"
}

// runClientLib runs a client library script in dir and returns its
// checks by name. The script prints {"results":[{"name","ok",…}]} and
// exits non-zero when a check failed; every failed check is reported.
func runClientLib(t *testing.T, bin, dir string, args []string, env ...string) map[string]map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientLibTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	// The server is on loopback: no proxy from the environment applies.
	cmd.Env = append(os.Environ(), append(env, "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	if stderr.Len() > 0 {
		t.Logf("%s stderr:\n%s", filepath.Base(bin), stderr.String())
	}
	var out struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out.Results) == 0 {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("%s %v did not finish in %s", bin, args, clientLibTimeout)
		}
		t.Fatalf("%s %v: %v; stdout %q is not a list of results (%v)", bin, args, runErr, stdout.String(), err)
	}
	results := map[string]map[string]any{}
	failed := false
	for _, r := range out.Results {
		name := str(r["name"])
		if _, dup := results[name]; dup {
			t.Errorf("check %q reported twice", name)
		}
		results[name] = r
		if r["ok"] != true {
			failed = true
			t.Errorf("%s: %v", name, r["error"])
		}
	}
	if runErr != nil && !failed {
		t.Errorf("%s %v: %v, though every check passed", bin, args, runErr)
	}
	if runErr == nil && failed {
		t.Errorf("%s %v exited 0 though a check failed", bin, args)
	}
	if failed {
		t.FailNow() // the checks' details below would only repeat it
	}
	return results
}

func str(v any) string { s, _ := v.(string); return s }

// hasAudience reports whether an aud claim (a string or a list) holds want.
func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return slices.Contains(a, any(want))
	}
	return false
}
