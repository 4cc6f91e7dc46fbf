package delivery_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/webhook/delivery"
)

// BenchmarkDeliveries measures deliveries to a local receiver worked by
// River (20 at once) on each backend: b.N stored deliveries get their
// jobs at once, and the clock stops when the last one is delivered. It
// reports deliveries/s. Run it with a fixed count:
//
//	go test -run '^$' -bench Deliveries -benchtime 2000x ./internal/webhook/delivery/
func BenchmarkDeliveries(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			e := newEnvN(b, be.open(b), 20)
			rcv := newReceiver(b, answer{status: 200})
			ep, _ := e.endpoint(b, "whep_bench", rcv.srv.URL)
			ctx := b.Context()
			now := time.Now().UTC()
			params := make([]river.InsertManyParams, b.N)
			for i := range b.N {
				ev := store.WebhookEvent{ID: fmt.Sprintf("msg_b%d", i), Type: "user.created", OccurredAt: now,
					Data: []byte(`{"user_id":"u1"}`), UserID: "u1", CreatedAt: now}
				if err := e.st.CreateWebhookEvent(ctx, ev); err != nil {
					b.Fatal(err)
				}
				id := fmt.Sprintf("whdl_b%d", i)
				if err := e.st.CreateWebhookDeliveries(ctx, []store.WebhookDelivery{{ID: id, EndpointID: ep.ID, EventID: ev.ID,
					EventType: ev.Type, Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}}); err != nil {
					b.Fatal(err)
				}
				params[i] = river.InsertManyParams{Args: delivery.DeliverArgs{DeliveryID: id}, InsertOpts: delivery.InsertOpts()}
			}
			b.ResetTimer()
			if _, err := e.q.InsertMany(ctx, params); err != nil {
				b.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Minute)
			for {
				n, _, err := e.st.PendingWebhookDeliveries(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%d deliveries still pending", n)
				}
				time.Sleep(5 * time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
			if got := len(rcv.requests()); got < b.N {
				b.Errorf("%d requests for %d deliveries", got, b.N)
			}
		})
	}
}

// BenchmarkDeliveriesCeiling is what BenchmarkDeliveries is compared
// with: the same signed POSTs to the same kind of receiver, 20 at once,
// with no database and no queue: the cost of the HTTP exchange and the
// signature alone. It reports deliveries/s.
func BenchmarkDeliveriesCeiling(b *testing.B) {
	rcv := newReceiver(b, answer{status: 200})
	secret, err := delivery.NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	client := delivery.Destinations{AllowPrivate: true}.Client(10 * time.Second)
	body := []byte(`{"id":"msg_b","type":"user.created","timestamp":"2026-12-04T00:00:00Z","data":{"user_id":"u1"}}`)
	work := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 20 {
		wg.Go(func() {
			for i := range work {
				h, err := delivery.Headers([]string{secret}, fmt.Sprintf("msg_b%d", i), time.Now(), body)
				if err != nil {
					b.Error(err)
					return
				}
				req, _ := http.NewRequest("POST", rcv.srv.URL, bytes.NewReader(body))
				req.Header = h
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
	for i := range b.N {
		work <- i
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
