package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// TestWebhooksSurviveKill is issue 16's crash test: SIGKILL the server
// during a burst of 200 sign-ups, restart it on the same data, and every
// accepted sign-up's user.created still reaches the receiver, signed
// (duplicates allowed, none missing, none for a user that does not
// exist). It runs on SQLite, and on PostgreSQL + Redis when the test
// services are set.
func TestWebhooksSurviveKill(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		testWebhooksSurviveKill(t, nil)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dbURL := testenv.PostgresURL(t)
		redisURL, prefix := testenv.Redis(t)
		testWebhooksSurviveKill(t, []string{
			"GATEHOUSE_DATABASE_URL=" + dbURL,
			"GATEHOUSE_REDIS_URL=" + redisURL,
			"GATEHOUSE_REDIS_KEY_PREFIX=" + prefix,
		})
	})
}

const (
	killSignups = 200
	killClients = 16
	// killWait bounds the wait for the deliveries after the restart. A
	// delivery the kill interrupted is run again once River rescues its
	// job, a minute or so after it started (jobsConfig), plus the
	// rescuer's interval and the old leader's lease: well under this.
	killWait = 4 * time.Minute
)

func testWebhooksSurviveKill(t *testing.T, extra []string) {
	dir := t.TempDir()
	env := cleanEnv(append([]string{
		"GATEHOUSE_ENV=test",
		"GATEHOUSE_HTTP_ADDR=127.0.0.1:0",
		"GATEHOUSE_ADMIN_ADDR=127.0.0.1:0",
		"GATEHOUSE_DATA_DIR=" + dir + "/data",
		"GATEHOUSE_LOG_FORMAT=json",
		"GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true",
		"GATEHOUSE_WEBHOOK_RETRY_SCHEDULE=1s,2s,4s",
		"GATEHOUSE_ARGON2_MEMORY_KIB=8192",
		"GATEHOUSE_ARGON2_TIME=1",
		// The bypass covers the rate limiter of the routes; the account
		// service keeps its own sign-ups-per-IP limit, which it does not.
		"GATEHOUSE_RATE_LIMIT_BYPASS_CIDRS=127.0.0.1/32",
		"GATEHOUSE_REGISTER_LIMIT_PER_IP=100000",
	}, extra...)...)

	recv := newKillReceiver()
	hook := httptest.NewServer(recv)
	t.Cleanup(hook.Close)

	srv := startServe(t, dir, env)
	adminEmail, adminPassword := "admin-"+randomText(t, 6)+"@example.com", randomText(t, 18)
	createAdmin(t, dir, env, adminEmail, adminPassword)
	token := login(t, srv.public, adminEmail, adminPassword)

	var endpoint struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	status, body := callJSON(t, http.MethodPost, srv.public+"/v1/admin/webhooks", token,
		map[string]any{"url": hook.URL + "/hooks", "events": []string{"user.created"}}, &endpoint)
	if status != http.StatusCreated {
		t.Fatalf("create endpoint = %d %s", status, body)
	}
	wh, err := standardwebhooks.NewWebhook(endpoint.Secret)
	if err != nil {
		t.Fatalf("the official library refuses the endpoint's secret: %v", err)
	}
	recv.setVerifier(wh)

	// The burst: killClients clients send killSignups sign-ups; when half
	// have been answered, the server is killed.
	batch := randomText(t, 6)
	emails := make([]string, killSignups)
	for i := range emails {
		emails[i] = fmt.Sprintf("kill-%s-%03d@example.com", batch, i)
	}
	password := randomText(t, 18)
	statuses := make([]int, killSignups) // 0: the request failed
	var answered atomic.Int32
	var killOnce sync.Once
	killed := make(chan struct{})
	kill := func() {
		killOnce.Do(func() {
			if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Errorf("SIGKILL: %v", err)
			}
			close(killed)
		})
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: killClients}}
	next := make(chan int)
	var wg sync.WaitGroup
	for range killClients {
		wg.Go(func() {
			for i := range next {
				b, _ := json.Marshal(map[string]string{"email": emails[i], "password": password})
				res, err := client.Post(srv.public+"/v1/auth/register", "application/json", bytes.NewReader(b))
				if err != nil {
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				statuses[i] = res.StatusCode
				if answered.Add(1) == killSignups/2 {
					kill()
				}
			}
		})
	}
	for i := range killSignups {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatalf("the server was not killed: only %d sign-ups were answered", answered.Load())
	}
	srv.waitExit(t)

	accepted := map[string]bool{}
	failed := 0
	for i, code := range statuses {
		switch code {
		case http.StatusCreated:
			accepted[emails[i]] = true
		case 0:
			failed++
		default:
			t.Errorf("sign-up %s = %d, want 201 (or no answer, after the kill)", emails[i], code)
		}
	}
	t.Logf("%d sign-ups accepted, %d unanswered (the kill)", len(accepted), failed)
	if failed == 0 {
		t.Fatalf("every sign-up was answered: the kill did not happen during the burst")
	}
	if t.Failed() {
		t.FailNow()
	}

	// Restart on the same data; every accepted sign-up's user.created
	// arrives, and the delivery log ends with nothing pending or failed.
	srv = startServe(t, dir, env)
	restarted := time.Now()
	token = login(t, srv.public, adminEmail, adminPassword)
	var (
		missing  []string
		log      []deliveryEntry
		complete time.Duration // when the last accepted sign-up's event came
	)
	deadline := time.Now().Add(killWait)
	for {
		missing = recv.missing(accepted)
		if len(missing) == 0 && complete == 0 {
			complete = time.Since(restarted)
		}
		log = deliveryLog(t, srv.public, token, endpoint.ID)
		if len(missing) == 0 && settled(log) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the restart: %d accepted sign-ups without a user.created (%v), delivery log %s",
				killWait, len(missing), missing[:min(len(missing), 10)], summary(log))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("after the restart: every accepted sign-up's user.created in %v, every delivery delivered in %v",
		complete.Round(time.Second), time.Since(restarted).Round(time.Second))

	got, bad := recv.snapshot()
	for _, b := range bad {
		t.Errorf("receiver: %s", b)
	}
	// One event, so one webhook-id, per user; one user per address.
	ids := map[string]string{}   // user ID → webhook-id
	users := map[string]string{} // email → user ID
	eventIDs := map[string]bool{}
	for _, r := range got {
		if id, ok := ids[r.userID]; ok && id != r.webhookID {
			t.Errorf("user %s: user.created under webhook-ids %s and %s, want one event", r.userID, id, r.webhookID)
		}
		ids[r.userID] = r.webhookID
		if u, ok := users[r.email]; ok && u != r.userID {
			t.Errorf("%s: user.created for users %s and %s", r.email, u, r.userID)
		}
		users[r.email] = r.userID
		eventIDs[r.webhookID] = true
	}
	// No phantom: each event is about a user that exists, with its address.
	for userID := range ids {
		var u struct {
			ID    string `json:"id"`
			Email string `json:"email"`
		}
		status, body := callJSON(t, http.MethodGet, srv.public+"/v1/admin/users/"+userID, token, nil, &u)
		switch {
		case status == http.StatusNotFound:
			t.Errorf("user.created for user %s, who does not exist", userID)
		case status != http.StatusOK:
			t.Errorf("GET user %s = %d %s", userID, status, body)
		case !slices.ContainsFunc(got, func(r killDelivery) bool { return r.userID == userID && r.email == u.Email }):
			t.Errorf("user %s is %s, not the address of its user.created", userID, u.Email)
		}
	}
	// The log and the receiver know the same events.
	logged := map[string]bool{}
	for _, d := range log {
		logged[d.EventID] = true
	}
	for id := range eventIDs {
		if !logged[id] {
			t.Errorf("received event %s is not in the delivery log", id)
		}
	}
	for id := range logged {
		if !eventIDs[id] {
			t.Errorf("delivered event %s never reached the receiver", id)
		}
	}
	t.Logf("%d user.created received for %d users (%d duplicates), %d deliveries logged",
		len(got), len(ids), len(got)-len(ids), len(log))
}

// killDelivery is one verified user.created the receiver took.
type killDelivery struct {
	webhookID, userID, email string
}

// killReceiver is a webhook endpoint that verifies each delivery with the
// official Standard Webhooks library and records the user.created ones.
type killReceiver struct {
	mu  sync.Mutex
	wh  *standardwebhooks.Webhook
	got []killDelivery
	bad []string // what was refused, and why
}

func newKillReceiver() *killReceiver { return &killReceiver{} }

func (k *killReceiver) setVerifier(wh *standardwebhooks.Webhook) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.wh = wh
}

func (k *killReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	k.mu.Lock()
	defer k.mu.Unlock()
	refuse := func(format string, args ...any) {
		k.bad = append(k.bad, fmt.Sprintf("webhook-id %q: ", r.Header.Get("webhook-id"))+fmt.Sprintf(format, args...))
		http.Error(w, "refused", http.StatusBadRequest)
	}
	if err != nil {
		refuse("read body: %v", err)
		return
	}
	if k.wh == nil {
		refuse("a delivery before the endpoint was created")
		return
	}
	if err := k.wh.Verify(body, r.Header); err != nil {
		refuse("signature: %v", err)
		return
	}
	var env struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			UserID string `json:"user_id"`
			Email  string `json:"email"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		refuse("body %s: %v", body, err)
		return
	}
	if env.Type != "user.created" || env.Data.UserID == "" || env.Data.Email == "" {
		refuse("not a user.created with user_id and email: %s", body)
		return
	}
	k.got = append(k.got, killDelivery{webhookID: r.Header.Get("webhook-id"), userID: env.Data.UserID, email: env.Data.Email})
	w.WriteHeader(http.StatusNoContent)
}

// missing lists the addresses of emails without a user.created, sorted.
func (k *killReceiver) missing(emails map[string]bool) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range k.got {
		seen[r.email] = true
	}
	var out []string
	for e := range emails {
		if !seen[e] {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out
}

func (k *killReceiver) snapshot() ([]killDelivery, []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.got), slices.Clone(k.bad)
}

// deliveryEntry is a delivery as GET /v1/admin/webhooks/{id}/deliveries
// shows it.
type deliveryEntry struct {
	ID      string `json:"id"`
	EventID string `json:"event_id"`
	Status  string `json:"status"`
}

// deliveryLog reads every delivery of endpoint id.
func deliveryLog(t *testing.T, public, token, id string) []deliveryEntry {
	t.Helper()
	var all []deliveryEntry
	cursor := ""
	for {
		var page struct {
			Deliveries []deliveryEntry `json:"deliveries"`
			NextCursor string          `json:"next_cursor"`
		}
		u := public + "/v1/admin/webhooks/" + id + "/deliveries?limit=200"
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		if status, body := callJSON(t, http.MethodGet, u, token, nil, &page); status != http.StatusOK {
			t.Fatalf("deliveries = %d %s", status, body)
		}
		all = append(all, page.Deliveries...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// settled reports whether every delivery of log was delivered.
func settled(log []deliveryEntry) bool {
	return !slices.ContainsFunc(log, func(d deliveryEntry) bool { return d.Status != "delivered" })
}

// summary counts the deliveries of log by status.
func summary(log []deliveryEntry) string {
	n := map[string]int{}
	for _, d := range log {
		n[d.Status]++
	}
	return fmt.Sprint(n)
}

// serveProcess is a running `gatehouse serve`.
type serveProcess struct {
	cmd    *exec.Cmd
	public string // base URL of the public listener
	exited chan struct{}
	mu     sync.Mutex
	logs   []string
}

// startServe starts `gatehouse serve` in dir with env and waits for its
// start-up line. Its log is kept (and shown if the test fails); it is
// killed when the test ends, if it still runs.
func startServe(t *testing.T, dir string, env []string) *serveProcess {
	t.Helper()
	p := &serveProcess{cmd: exec.Command(binary, "serve"), exited: make(chan struct{})}
	p.cmd.Dir, p.cmd.Env = dir, env
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs = append(p.logs, line)
			p.mu.Unlock()
			var rec struct {
				Msg      string `json:"msg"`
				HTTPAddr string `json:"http_addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "gatehouse started" {
				started <- rec.HTTPAddr
			}
		}
		io.Copy(io.Discard, stderr) // a line too long for the scanner
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Logf("log of server process %d (last lines):\n%s", p.cmd.Process.Pid, strings.Join(p.logs[max(0, len(p.logs)-60):], "\n"))
		}
	})
	select {
	case addr := <-started:
		p.public = "http://" + addr
	case <-p.exited:
		t.Fatalf("server exited before starting")
	case <-time.After(90 * time.Second):
		t.Fatalf("no start-up line in 90s")
	}
	return p
}

// waitExit waits for the process to end (after a kill).
func (p *serveProcess) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("server still running 30s after SIGKILL")
	}
}

// createAdmin makes a verified administrator with the CLI.
func createAdmin(t *testing.T, dir string, env []string, email, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "users", "create", "--email", email, "--password-stdin", "--admin", "--verified")
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("users create: %v\n%s", err, out)
	}
}

// login signs in and returns the access token.
func login(t *testing.T, public, email, password string) string {
	t.Helper()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	status, body := callJSON(t, http.MethodPost, public+"/v1/auth/login", "", map[string]string{"email": email, "password": password}, &out)
	if status != http.StatusOK || out.AccessToken == "" {
		t.Fatalf("login = %d %s", status, body)
	}
	return out.AccessToken
}

// callJSON sends in (if not nil) as JSON with the bearer token (if any),
// and decodes a 2xx answer into out. It returns the status and the body.
func callJSON(t *testing.T, method, url, token string, in, out any) (int, string) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	if res.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
	return res.StatusCode, string(b)
}

// randomText is n random bytes in URL-safe base64: unguessable, so a
// strong password, and unique, so a fresh address.
func randomText(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(base64.RawURLEncoding.EncodeToString(b))
}
