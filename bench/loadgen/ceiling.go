package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/gatehouse/gatehouse/internal/password"
)

// ceiling is the bare in-process rate of one cryptographic operation, the
// most a server could reach on this machine if that operation were all it
// did.
type ceiling struct {
	Name        string  `json:"name"`
	Ops         int64   `json:"ops"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	Goroutines  int     `json:"goroutines"`
	Concurrency int     `json:"concurrency"` // operations allowed at once
	CPU         *cpuUse `json:"cpu,omitempty"`
}

// runFor calls op from goroutines goroutines until d has passed and
// returns how many calls finished and how long that took (calls under way
// at the deadline finish and count).
func runFor(ctx context.Context, goroutines int, d time.Duration, op func() error) (int64, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range goroutines {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if err := op(); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return n.Load(), time.Since(start), firstErr
}

// jwtSigningInput is header.payload of an access token shaped like
// Gatehouse's (RS256, kid, typ at+jwt, the usual claims): about 600 bytes.
func jwtSigningInput() string {
	enc := base64.RawURLEncoding.EncodeToString
	header := `{"alg":"RS256","kid":"HLxNxMf9NtlTQxr10jt2lg","typ":"at+jwt"}`
	now := time.Now().Unix()
	payload := fmt.Sprintf(`{"amr":["pwd"],"aud":"http://127.0.0.1:8080","auth_time":%d,"client_id":"gatehouse",`+
		`"exp":%d,"iat":%d,"iss":"http://127.0.0.1:8080","jti":"rcxItEaTrpU9QDXFS79uIQ","nbf":%d,`+
		`"sid":"01a21c1c-6257-7ab7-a896-22cfbb7cb81d","sub":"01a21c1c-59e5-7a8c-b3f9-6324ae364391"}`,
		now, now+900, now, now)
	return enc([]byte(header)) + "." + enc([]byte(payload))
}

// rs256Ceiling measures RS256 verification (SHA-256 of the signing input
// and an RSA-2048 PKCS#1 v1.5 check) or, with sign, signing, from
// goroutines goroutines.
func rs256Ceiling(ctx context.Context, goroutines int, d time.Duration, sign bool) (ceiling, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return ceiling{}, err
	}
	input := jwtSigningInput()
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return ceiling{}, err
	}
	pub := &key.PublicKey
	op, what := func() error {
		h := sha256.Sum256([]byte(input))
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig)
	}, "verify"
	if sign {
		op, what = func() error {
			h := sha256.Sum256([]byte(input))
			_, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
			return err
		}, "sign"
	}
	n, took, err := runFor(ctx, goroutines, d, op)
	if err != nil {
		return ceiling{}, fmt.Errorf("rs256 %s: %w", what, err)
	}
	tokenLen := len(input) + 1 + base64.RawURLEncoding.EncodedLen(len(sig))
	return ceiling{
		Name: fmt.Sprintf("RS256 %s (RSA-2048, %d-byte JWT)", what, tokenLen),
		Ops:  n, Seconds: took.Seconds(), OpsPerSec: float64(n) / took.Seconds(),
		Goroutines: goroutines, Concurrency: goroutines,
	}, nil
}

// argon2Ceiling measures Argon2id key derivation with p from goroutines
// goroutines, at most GOMAXPROCS at once (as the server's hasher, whose
// default concurrency is the number of CPUs).
func argon2Ceiling(ctx context.Context, p password.Params, goroutines int, d time.Duration) (ceiling, error) {
	if err := p.Validate(); err != nil {
		return ceiling{}, err
	}
	if d <= 0 {
		return ceiling{}, errors.New("duration must be positive")
	}
	slots := runtime.GOMAXPROCS(0)
	sem := make(chan struct{}, slots)
	salt := make([]byte, p.SaltLen)
	rand.Read(salt)
	pw := []byte(strings.Repeat("x", 24))
	n, took, err := runFor(ctx, goroutines, d, func() error {
		sem <- struct{}{}
		argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
		<-sem
		return nil
	})
	if err != nil {
		return ceiling{}, fmt.Errorf("argon2id: %w", err)
	}
	return ceiling{
		Name: fmt.Sprintf("Argon2id m=%d KiB t=%d p=%d", p.Memory, p.Time, p.Threads),
		Ops:  n, Seconds: took.Seconds(), OpsPerSec: float64(n) / took.Seconds(),
		Goroutines: goroutines, Concurrency: slots,
	}, nil
}
